"""Steps about Redis: its configuration, ACL users and what each may do, read from the running server."""
from __future__ import annotations

from pytest_bdd import parsers, then

from steps.expect import Mismatches, expect
from steps.probes import container_exec, redis_server

DANGEROUS = (("FLUSHALL",), ("CONFIG", "GET", "maxmemory"), ("KEYS", "*"), ("DEBUG", "HELP"))


def _admin(stack) -> str:
    return stack.redis_password("admin")


@then(parsers.parse('the running Redis has "{name}" set to "{value}"'))
def _redis_setting(stack, evidence, name, value):
    fact = evidence.record(redis_server.config(stack.redis_port(), _admin(stack), name))
    expect(fact.observed == value, f"Redis {name}", value, fact.observed, fact,
           "is infra/redis/redis.conf mounted and loaded?")


@then(parsers.parse("the running Redis has a maxmemory of {gib:d} GiB"))
def _redis_maxmemory(stack, evidence, gib):
    fact = evidence.record(redis_server.config(stack.redis_port(), _admin(stack), "maxmemory"))
    expect(int(fact.observed) == gib * 2**30, "Redis maxmemory", f"{gib * 2**30} ({gib} GiB)", fact.observed,
           fact, "set maxmemory in infra/redis/redis.conf")


@then(parsers.parse('the running Redis evicts keys with the "{policy}" policy'))
def _redis_policy(stack, evidence, policy):
    _redis_setting(stack, evidence, "maxmemory-policy", policy)


@then("Redis refuses the default user")
def _default_refused(stack, evidence):
    fact = evidence.record(redis_server.ping(stack.redis_port(), None, None))
    expect(fact.observed.startswith(("NOAUTH", "DENIED")), "PING without signing in", "NOAUTH",
           fact.observed, fact, "`user default off` in infra/redis/users.acl")
    flags = evidence.record(redis_server.acl_user_flags(stack.redis_port(), _admin(stack), "default"))
    expect("off" in flags.observed, "the default user", "off", flags.observed, flags,
           "`user default off` in infra/redis/users.acl")


@then("Redis has exactly these users, each signing in with its own password:")
def _users_sign_in(stack, evidence, datatable):
    wanted = {row[0] for row in datatable[1:]}
    problems = Mismatches("Redis ACL users",
                          "passwords come from the env file; after changing one: docker compose up -d --force-recreate")
    users = evidence.record(redis_server.acl_users(stack.redis_port(), _admin(stack)))
    problems.check(users.observed - {"default"} == wanted, sorted(wanted), sorted(users.observed - {"default"}), users)
    for user in sorted(wanted):
        fact = evidence.record(redis_server.ping(*stack.redis(user)))
        problems.check(fact.observed == "PONG", f"{user} signs in and PINGs", fact.observed, fact)
    problems.raise_any()


@then("each domain user writes its own key prefix and is refused another domain's:")
def _domain_prefixes(stack, evidence, datatable):
    problems = Mismatches("domain users' key prefixes", "each domain user has ~<own prefix>* only")
    for user, own, other in datatable[1:]:
        password = stack.redis_password(user)
        mine = evidence.record(redis_server.write_and_read_back(stack.redis_port(), user, password, own))
        problems.check(mine.observed.allowed, f"{user} writes {own}*", mine.observed.reply, mine)
        theirs = evidence.record(redis_server.write_and_read_back(stack.redis_port(), user, password, other))
        problems.check(theirs.observed.refused_by_acl, f"{user} refused {other}* with NOPERM",
                       theirs.observed.reply, theirs)
    problems.raise_any()


@then("no user but admin may run FLUSHALL, CONFIG, KEYS or DEBUG")
def _dangerous_commands(stack, evidence):
    port, admin = stack.redis_port(), _admin(stack)
    problems = Mismatches("dangerous commands", "every user but admin needs -@dangerous (KEYS is in it)")
    users = evidence.record(redis_server.acl_users(port, admin)).observed
    for user in sorted(users - {"default"}):
        for command in DANGEROUS:
            fact = evidence.record(redis_server.acl_dry_run(port, admin, user, *command))
            may = fact.observed.allowed
            verb = "may" if user == "admin" else "may not"
            problems.check(may == (user == "admin"), f"{user} {verb} run {command[0]}", fact.observed.reply, fact)
    problems.raise_any()


@then("the ACL file the running Redis loaded stores password hashes only")
def _acl_file_hashed(stack, evidence):
    path = evidence.record(redis_server.config(stack.redis_port(), _admin(stack), "aclfile")).observed
    fact = evidence.record(container_exec.exec_in(stack.project, "redis", ["cat", path]))
    expect(fact.observed.exit_code == 0, "reading the loaded ACL file", "exit 0", fact.observed.output, fact)
    plain = redis_server.plain_text_passwords(fact.observed.output)
    expect(not plain, f"plain-text passwords in {path}", "none (only #<sha256> hashes)", plain, fact,
           "infra/redis/users.acl holds no password: the secrets service adds the hashes")


@then(parsers.parse('the "{user}" user stores a service instance under "{prefix}" with a TTL and finds it with SCAN'))
def _registry_storage(stack, evidence, user, prefix):
    fact = evidence.record(redis_server.registry_round_trip(*stack.redis(user)))
    observed = fact.observed
    ok = isinstance(observed, dict) and observed["ttl"] > 0 and observed["found_by_scan"]
    expect(ok, f"{user} stores {prefix}<name>:<instance> with a TTL", "stored, TTL > 0, found by SCAN MATCH",
           observed, fact, f"{user} needs ~registry:* and read, write and keyspace commands")


@then(parsers.parse('the "{user}" user is refused keys under "{prefix}"'))
def _refused_prefix(stack, evidence, user, prefix):
    fact = evidence.record(redis_server.write_and_read_back(*stack.redis(user), prefix))
    expect(fact.observed.refused_by_acl, f"{user} writing {prefix}*", "NOPERM", fact.observed.reply, fact)


@then(parsers.parse('the "{user}" user is refused the registry\'s keys'))
def _refused_registry(stack, evidence, user):
    # A plain write and read: refused for its key, not for a command the user lacks (domain users have no SCAN).
    _refused_prefix(stack, evidence, user, "registry:services:")


@then(parsers.parse('the "{user}" user may publish on "{allowed}" but not on "{refused}"'))
def _publish_channels(stack, evidence, user, allowed, refused):
    problems = Mismatches(f"{user} Pub/Sub channels", f"{user} needs &config:* and no other channel")
    ok = evidence.record(redis_server.publish(*stack.redis(user), allowed))
    problems.check(ok.observed.allowed, f"PUBLISH {allowed} allowed", ok.observed.reply, ok)
    no = evidence.record(redis_server.publish(*stack.redis(user), refused))
    problems.check(no.observed.refused_by_acl, f"PUBLISH {refused} refused", no.observed.reply, no)
    problems.raise_any()


@then(parsers.parse('the "{service}" healthcheck passes with the "{user}" user\'s password'))
def _redis_healthcheck_passes(stack, evidence, service, user):
    fact = evidence.record(container_exec.run_healthcheck(stack.project, service))
    expect(fact.observed.exit_code == 0, f"{service} healthcheck", "exit 0", fact.observed, fact)


@then(parsers.parse('the "{service}" healthcheck fails, signing in as "{user}", when Redis refuses that password'))
def _redis_healthcheck_fails(stack, evidence, service, user):
    port, admin = stack.redis_port(), _admin(stack)
    # Redis folds a denial like one logged in the last 60 s into that entry (its count grows, its
    # entry-id stays), so a new denial is a new entry or a higher count.
    before = {e.get("entry-id"): e.get("count", 1) for e in redis_server.acl_log(port, admin).observed}
    secret = "redis_password_" + user.replace("-", "_")
    fact = evidence.record(container_exec.run_healthcheck(stack.project, service,
                                                          secrets={secret: "not-the-password"}))
    expect(fact.observed.exit_code != 0, f"{service} healthcheck with a refused password", "a non-zero exit",
           fact.observed, fact, "the healthcheck must sign in and check the PONG, not ignore errors")
    log = evidence.record(redis_server.acl_log(port, admin))
    new = [e for e in log.observed if e.get("count", 1) > before.get(e.get("entry-id"), 0)]
    attempts = {(e.get("reason"), e.get("username")) for e in new}
    expect(("auth", user) in attempts, f"{service} healthcheck's sign-in", f"a failed auth as {user} in ACL LOG",
           sorted(attempts), log)


@then(parsers.parse('the "{user}" user may run PING and INFO but nothing else'))
def _healthcheck_user_limits(stack, evidence, user):
    port, password, admin = stack.redis_port(), stack.redis_password(user), _admin(stack)
    problems = Mismatches(f"{user} permissions", f"`{user}` is `-@all +ping +info` in infra/redis/users.acl")
    for command in (("PING",), ("INFO", "server")):
        fact = evidence.record(redis_server.run(port, user, password, *command))
        problems.check(fact.observed.allowed, f"{command[0]} allowed", fact.observed.reply[:80], fact)
    for command in (("GET", "registry:x"), ("SET", "registry:x", "1"), ("SCAN", "0"),
                    ("PUBLISH", "config:changes", "x"), ("CLIENT", "LIST"), ("CONFIG", "GET", "maxmemory")):
        fact = evidence.record(redis_server.acl_dry_run(port, admin, user, *command))
        problems.check(not fact.observed.allowed, f"{command[0]} refused", fact.observed.reply, fact)
    problems.raise_any()


@then(parsers.parse('the "{user}" user answers PING from the host'))
@then(parsers.parse('Redis answers PING from the host as the "{user}" user'))
def _ping_from_host(stack, evidence, user):
    fact = evidence.record(redis_server.ping(*stack.redis(user)))
    expect(fact.observed == "PONG", f"PING as {user} on 127.0.0.1:{stack.redis_port()}", "PONG", fact.observed, fact)


@then(parsers.parse('inside the network, "{service}" answers PING by name as the "{user}" user'))
def _ping_inside_network(stack, evidence, service, user):
    if stack.production:
        # Over TLS, from a service that has Python and the stack's CA, verifying the server's name.
        source = "service-registry"
        command = redis_server.ping_over_tls_command(service, 6379, user, "/run/secrets/ca.crt")
    else:
        source = next(s for s in stack.services if s != service)
        command = redis_server.ping_over_tcp_command(service, 6379, user)
    fact = evidence.record(container_exec.exec_in(stack.project, source, command,
                                                  {"PROBE_PASSWORD": stack.redis_password(user)}))
    expect(fact.observed.output.splitlines() == ["+OK", "+PONG"], f"{service}:6379 from {source} as {user}",
           ["+OK", "+PONG"], fact.observed.output, fact)
