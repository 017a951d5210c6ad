"""Steps of section S (extra): the security baseline. Each tries what an attacker on the stack's
network, or a careless change, would do, and expects it refused."""
from __future__ import annotations

import ipaddress
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from pytest_bdd import parsers, then, when

from steps.domains import DOMAIN_ROLES, DOMAIN_SCHEMAS
from steps.expect import Mismatches, expect, expect_eventually
from steps.harness import scratch
from steps.parameters import forget_parameter
from steps.phrases import listed
from steps.probes import (
    config_api,
    container_exec,
    container_state,
    exporters,
    http_api,
    networks,
    postgres_server,
    redis_server,
    registry_api,
    secrets,
    swarm_engine,
)
from steps.probes.facts import Fact, ProbeError
from steps.replicas import every_replica_answers
from steps.service_checks import check_every_service


def _remove_quietly(stack, name: str, instance_id: str, auth: tuple):
    """A finalizer: remove an instance the scenario registered (or that a broken registry took)."""
    def remove():
        try:
            registry_api.deregister(stack.registry_port(), name, instance_id, auth)
        except ProbeError:
            pass  # the registry does not answer: the scenario has said so already
    return remove


def _instance(name: str) -> dict:
    return {"name": name, "instance_id": name, "version": "0.1.0",
            "endpoints": {"http": f"http://{name}:8080"}, "metadata": {"environment": "docker"}}


@then("an anonymous registration is refused with 401 saying how to sign in, while reads need no sign-in")
def _anonymous_write_refused(stack, evidence):
    port = stack.registry_port()
    fact = evidence.record(registry_api.register(port, _instance(f"risk-monitor-acceptance-{uuid.uuid4().hex[:8]}"),
                                                 None))
    detail = str(http_api.json_object(fact).get("detail", ""))
    challenge = fact.observed["headers"].get("www-authenticate", "")
    expect(fact.observed["status"] == 401 and "HTTP Basic" in detail and challenge.startswith("Basic"),
           "an anonymous POST /api/v1/services", "401, a Basic challenge and how to sign in", fact.observed, fact,
           "writes depend on registry.deps.writer (HTTP Basic, checked by Redis)")
    read = evidence.record(registry_api.services(port))
    expect(read.observed["status"] == 200, "an anonymous GET /api/v1/services", 200, read.observed["status"], read)


@then("a registration signed in with a wrong password is refused with 401")
def _wrong_password_refused(stack, evidence):
    name = f"risk-monitor-acceptance-{uuid.uuid4().hex[:8]}"
    fact = evidence.record(registry_api.register(stack.registry_port(), _instance(name), ("risk-adapter", "guess")))
    expect(fact.observed["status"] == 401, "POST /api/v1/services as risk-adapter with a wrong password", 401,
           fact.observed, fact, "the registry signs the caller in to Redis and refuses what Redis refuses")


@when(parsers.parse('"{user}" registers a trading-engine instance, signed in as itself'),
      target_fixture="owned_instance")
def _owner_registers(stack, evidence, request, user):
    name = f"trading-engine-acceptance-{uuid.uuid4().hex[:8]}"
    auth = stack.signed_in_as(user)
    request.addfinalizer(_remove_quietly(stack, name, name, auth))
    fact = evidence.record(registry_api.register(stack.registry_port(), _instance(name), auth))
    expect(fact.observed["status"] == 201, f"POST /api/v1/services of {name} as {user}", 201, fact.observed, fact,
           f"~registry:services:trading* for {user} in infra/redis/users.acl")
    return {"name": name, "owner": user}


@then(parsers.parse('"{user}", signed in as itself, is refused with 403 registering, renewing and removing that '
                    'instance'))
def _other_service_refused(stack, evidence, owned_instance, user):
    port, name, auth = stack.registry_port(), owned_instance["name"], stack.signed_in_as(user)
    attempts = {
        "register": evidence.record(registry_api.register(port, _instance(name), auth)),
        "renew": evidence.record(registry_api.heartbeat(port, name, name, auth)),
        "remove": evidence.record(registry_api.deregister(port, name, name, auth)),
    }
    observed = {what: fact.observed["status"] for what, fact in attempts.items()}
    expect(set(observed.values()) == {403}, f"{user} writing {owned_instance['owner']}'s {name}",
           {what: 403 for what in attempts}, observed, attempts["register"],
           "perform each write as the caller's Redis user, so its ACL key patterns decide")
    still = evidence.record(registry_api.service(port, name))
    expect(still.observed["status"] == 200, f"{name} after {user}'s attempts", "still registered (200)",
           still.observed["status"], still)


@then(parsers.parse('"{user}", signed in as itself, is refused with 403 registering "{name}", one of the stack\'s '
                    'own services'))
def _own_services_refused(stack, evidence, request, user, name):
    # An instance of its own, short-lived and removed at the end, should the registry wrongly take it.
    forged = {**_instance(name), "instance_id": f"acceptance-{uuid.uuid4().hex[:8]}", "ttl_seconds": 2,
              "endpoints": {"http": "http://attacker.example:8080"}}
    auth = stack.signed_in_as(user)
    request.addfinalizer(_remove_quietly(stack, name, forged["instance_id"], auth))
    fact = evidence.record(registry_api.register(stack.registry_port(), forged, auth))
    expect(fact.observed["status"] == 403, f"POST /api/v1/services of {name} as {user}", 403, fact.observed, fact,
           "the stack's own services (infrastructure.json) are written by the registry alone")


@then(parsers.parse('a request to the {target} whose Host is "{host}" is refused with 400'))
def _foreign_host_refused(stack, evidence, target, host):
    port, path, variable = {"registry": (stack.registry_port(), "/api/v1/services", "REGISTRY_ALLOWED_HOSTS"),
                            "configuration service": (stack.config_port(), config_api.API, "CONFIG_ALLOWED_HOSTS"),
                            }[target]
    fact = evidence.record(http_api.call(port, "GET", path, headers={"Host": host}))
    expect(fact.observed["status"] == 400, f"GET {path} with Host: {host}", 400, fact.observed["status"],
           fact, f"{variable}: loopback and the service's own names only (DNS rebinding)")


@then("an anonymous configuration write is refused with 401 saying how to sign in, while reads need no sign-in")
def _anonymous_config_write_refused(stack, evidence, request):
    port, key = stack.config_port(), f"acceptance.p{uuid.uuid4().hex[:12]}"
    request.addfinalizer(lambda: forget_parameter(stack, key))
    fact = evidence.record(config_api.create(port, {"key": key, "type": "number", "value": 1}, None))
    detail = str(http_api.json_object(fact).get("detail", ""))
    challenge = fact.observed["headers"].get("www-authenticate", "")
    expect(fact.observed["status"] == 401 and "HTTP Basic" in detail and challenge.startswith("Basic"),
           "an anonymous POST /api/v1/configuration", "401, a Basic challenge and how to sign in", fact.observed,
           fact, "writes depend on configsvc.deps.editor (HTTP Basic, checked by Redis)")
    read = evidence.record(config_api.parameter(port, "risk.max_position_usd"))
    expect(read.observed["status"] == 200, "an anonymous GET of risk.max_position_usd", 200, read.observed["status"],
           read)


@then(parsers.parse('"{user}", signed in as itself, is refused with 403 writing "{key}" in production'))
def _editor_refused_production(stack, evidence, user, key):
    before = evidence.record(config_api.parameter(stack.config_port(), key, "production"))
    fact = evidence.record(config_api.create(stack.config_port(), {"key": key, "type": "number", "value": 1,
                                                                   "environment": "production"},
                                             stack.signed_in_as(user)))
    expect(fact.observed["status"] == 403, f"POST {key} in production as {user}", 403, fact.observed, fact,
           "production takes a production editor (CONFIG_PRODUCTION_EDITORS)")
    after = evidence.record(config_api.parameter(stack.config_port(), key, "production"))
    expect(http_api.json_object(after).get("version") == http_api.json_object(before).get("version"),
           f"{key} in production after {user}'s attempt", "unchanged", http_api.json_object(after), after)


@when(parsers.parse('"{user}", signed in as itself, writes a parameter in production claiming to be "{claim}"'),
      target_fixture="production_write")
def _production_write(stack, evidence, request, user, claim):
    key = f"acceptance.p{uuid.uuid4().hex[:12]}"
    request.addfinalizer(lambda: forget_parameter(stack, key, "production", user))
    fact = evidence.record(http_api.call(
        stack.config_port(), "POST", "/api/v1/configuration", auth=stack.signed_in_as(user),
        headers={"X-Updated-By": claim},
        json={"key": key, "type": "number", "value": 1, "environment": "production",
              "description": "written by the acceptance suite, removed at the end of its scenario"}))
    expect(fact.observed["status"] == 201, f"POST {key} in production as {user}", 201, fact.observed, fact)
    return {"key": key, "claim": claim}


@then(parsers.parse('the parameter\'s history names "{user}" as its author, not the claim'))
def _history_names_the_editor(stack, evidence, production_write, user):
    fact = evidence.record(config_api.history(stack.config_port(), production_write["key"], "production"))
    authors = [entry.get("changed_by") for entry in http_api.json_object(fact).get("history", [])]
    expect(authors == [user], f"the history of {production_write['key']} in production", [user], authors, fact,
           "record the signed-in editor, never what X-Updated-By claims")


@then("a 70 KiB body streamed in chunks, with no Content-Length, is refused with 413 by the registry and the "
      "configuration service")
def _streamed_bodies_bounded(stack, evidence):
    body = b'{"name": "' + b"x" * 70 * 1024 + b'"}'

    def chunks():  # a generator: requests sends it chunked, with no Content-Length to refuse it by
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]

    answers = {
        "registry": evidence.record(http_api.call(stack.registry_port(), "POST", "/api/v1/services", data=chunks(),
                                                  headers={"Content-Type": "application/json"})),
        "configuration service": evidence.record(http_api.call(
            stack.config_port(), "POST", "/api/v1/configuration", data=chunks(),
            headers={"Content-Type": "application/json"})),
    }
    observed = {service: fact.observed["status"] for service, fact in answers.items()}
    expect(set(observed.values()) == {413}, "a 70 KiB chunked POST", {service: 413 for service in answers}, observed,
           answers["registry"], "count the body while it streams in (servicekit.http.RequestGuard), not only by "
                                "its Content-Length")


# The log options every container's json-file driver sets: bounded files, rotated.
ROTATED_LOGS = ("max-size", "max-file")


def _least_privilege(service: str, observed: dict):
    problems = [
        *([] if observed["cap_drop"] == ["ALL"] else [f"cap_drop {observed['cap_drop']}"]),
        *([] if not observed["cap_add"] else [f"cap_add {observed['cap_add']}"]),
        *([] if observed["no_new_privileges"] else ["may gain privileges"]),
        *([] if observed["read_only_rootfs"] else ["writable root filesystem"]),
        *([] if observed["pids_limit"] > 0 else ["no pids limit"]),
        *([] if observed["log_driver"] == "json-file" and all(o in observed["log_options"] for o in ROTATED_LOGS)
          else [f"logs {observed['log_driver']} {observed['log_options']} not rotated"]),
    ]
    return not problems, f"{service}: no capability, no new privileges, read-only, pids and log limits", \
        "; ".join(problems) or "all set"


@then("every container of the stack drops all capabilities, cannot gain privileges, has a read-only root "
      "filesystem, a pids limit and rotated logs")
def _containers_least_privilege(stack, evidence):
    check_every_service(stack, evidence, "containers' privileges",
                        "merge the x-hardened settings (<<: *hardened) and set deploy.resources.limits.pids in "
                        "docker-compose.yml", container_state.privileges, _least_privilege)


def _not_root(service: str, observed: list):
    as_root = sorted({program for program, uid in observed if uid == 0})
    return not as_root and bool(observed), f"{service}: every process as an unprivileged user", \
        f"as root: {as_root}" if as_root else observed


@then("no process in any container of the stack runs as root")
def _no_root_process(stack, evidence):
    check_every_service(stack, evidence, "processes' users", "set USER in the image's Dockerfile (or user: in "
                        "docker-compose.yml) to the program's own account", container_state.process_users, _not_root)


@then(parsers.parse("these Redis users are refused {commands}, which list every domain's keys:"))
def _enumeration_refused(stack, evidence, commands, datatable):
    problems = Mismatches("keyspace enumeration", "append -scan -randomkey to the user in infra/redis/users.acl")
    for (user,) in datatable[1:]:
        for command in listed(commands):
            fact = evidence.record(redis_server.run(*stack.redis(user), *_whole_keyspace(command)))
            problems.check(fact.observed.refused_by_acl, f"{user} refused {command} with NOPERM",
                           fact.observed.reply[:120], fact)
    problems.raise_any()


def _whole_keyspace(command: str) -> tuple:
    """The command as an attacker would list keys with it: SCAN without MATCH walks every key."""
    return ("SCAN", "0", "COUNT", "10") if command == "SCAN" else (command,)


@then(parsers.parse('the "{user}" Redis user reads {allowed} but is refused the keys of {prefixes}, and {listing}'))
def _monitor_reads_no_key(stack, evidence, user, allowed, prefixes, listing):
    problems = Mismatches(f"what {user} reads", f"{user} has resetkeys and -@all +info +dbsize in "
                                                "infra/redis/users.acl")
    for command in listed(allowed):
        fact = evidence.record(redis_server.run(*stack.redis(user), command))
        problems.check(fact.observed.allowed, f"{user} may run {command}", fact.observed.reply[:120], fact)
    for prefix in listed(prefixes):
        fact = evidence.record(redis_server.run(*stack.redis(user), "GET", f"{prefix}acceptance-probe"))
        problems.check(fact.observed.refused_by_acl, f"{user} refused GET {prefix}… with NOPERM",
                       fact.observed.reply[:120], fact)
    fact = evidence.record(redis_server.run(*stack.redis(user), *_whole_keyspace(listing)))
    problems.check(fact.observed.refused_by_acl, f"{user} refused {listing} with NOPERM", fact.observed.reply[:120],
                   fact)
    problems.raise_any()


# What PostgreSQL answers a role it refuses: pg_hba.conf's reject, and a privilege it lacks.
HBA_REJECT = "pg_hba.conf rejects connection"
PERMISSION_DENIED = "42501"


@then(parsers.parse('the "{superuser}" superuser is refused over TCP, from the host and from inside the network, '
                    'and signs in on the Unix socket'))
def _superuser_socket_only(stack, evidence, superuser):
    problems = Mismatches(f"where {superuser} signs in", f"`host all {superuser} all reject` first in "
                                                         "infra/postgres/pg_hba.conf")
    password = stack.postgres_password(superuser)
    host = evidence.record(postgres_server.login(stack.postgres_port(), superuser, password, stack.database))
    problems.check(not host.observed.allowed and HBA_REJECT in host.observed.reply,
                   f"{superuser} over TCP from the host: {HBA_REJECT}", host.observed.reply, host)
    # From the network: psql in the postgres container, to the server's own address on the network.
    inside = evidence.record(container_exec.exec_in(
        stack.project, "postgres", ["psql", "-X", "-h", "postgres", "-U", superuser, "-d", stack.database, "-c",
                                    "SELECT 1"], {"PGPASSWORD": password}))
    problems.check(inside.observed.exit_code != 0 and HBA_REJECT in inside.observed.output,
                   f"{superuser} over TCP from the network: {HBA_REJECT}", inside.observed.output[:200], inside)
    socket = evidence.record(postgres_server.superuser_rows(*stack.postgres_superuser_on_socket(),
                                                           "SELECT current_user"))
    problems.check(socket.observed == [(superuser,)], f"{superuser} signs in on the socket", socket.observed, socket)
    problems.raise_any()


@then(parsers.parse('the "{role}" role is refused the "{dbname}" database over TCP'))
def _maintenance_database_refused(stack, evidence, role, dbname):
    fact = evidence.record(postgres_server.login(*stack.postgres(role, dbname)))
    expect(not fact.observed.allowed and HBA_REJECT in fact.observed.reply, f"{role} signing in to {dbname} over TCP",
           HBA_REJECT, fact.observed.reply, fact, f"reject {dbname} over TCP in infra/postgres/pg_hba.conf")


@then(parsers.parse('the "{role}" role reads the server\'s statistics but is refused the tables of every domain '
                    'schema and of "{own_schema}"'))
def _monitor_reads_no_data(stack, evidence, role, own_schema):
    problems = Mismatches(f"what {role} reads", f"{role} holds pg_monitor and no USAGE on a data schema "
                                               "(infra/postgres/init/01-init-schemas.sql)")
    stats = evidence.record(postgres_server.query(*stack.postgres(role), "SELECT count(*) FROM pg_stat_database"))
    problems.check(bool(stats.observed) and stats.observed[0][0] > 0, f"{role} reads pg_stat_database",
                   stats.observed, stats)
    # Without USAGE on a schema no table in it can be read, now or once created (a schema that does
    # not exist is not listed: section 2 reports it).
    _check_no_schema_usage(stack, evidence, problems, role, [*DOMAIN_SCHEMAS, own_schema])
    table = evidence.record(postgres_server.read_table(*stack.postgres(role), own_schema, "parameters"))
    problems.check(not table.observed.allowed and table.observed.reply.startswith(PERMISSION_DENIED),
                   f"{role} refused {own_schema}.parameters ({PERMISSION_DENIED} permission denied)",
                   table.observed.reply[:160], table)
    problems.raise_any()


def _check_no_schema_usage(stack, evidence, problems: Mismatches, role: str, schemas: list) -> None:
    usage = evidence.record(postgres_server.query(
        *stack.postgres(role), "SELECT nspname, has_schema_privilege(oid, 'USAGE') FROM pg_namespace "
        "WHERE nspname = ANY(%(schemas)s) ORDER BY 1", {"schemas": schemas}))
    for schema, may_use in usage.observed:
        problems.check(not may_use, f"{role} without USAGE on schema {schema}", "USAGE granted", usage)


REGISTRY = "service-registry"
# Every role whose password is in the env file: the registry must hold none of theirs but its own.
PASSWORD_ROLES = ["postgres", "monitor", "config_service", *DOMAIN_ROLES]


@then(parsers.parse('the registry probes PostgreSQL as "{role}", a role that runs its health query and holds '
                    'nothing more, and keeps no other role\'s password'))
def _registry_probe_role(stack, evidence, role):
    problems = Mismatches("the registry's PostgreSQL role", f"{role}: infra/postgres/init/01-init-schemas.sql, "
                          "the \"user\" of infrastructure.json, REGISTRY_POSTGRES_PASSWORD in docker-compose.yml")
    health = evidence.record(registry_api.health(stack.registry_port()))
    entry = next((s for s in http_api.json_object(health).get("services", []) if s.get("name") == "postgres"), {})
    probe = (entry.get("metadata", {}).get("probed_as"), entry.get("status"))
    problems.check(probe == (role, "healthy"), f"the registry's live probe of postgres as {role}, healthy",
                   probe, health)
    attributes = evidence.record(postgres_server.query(
        *stack.postgres(role), "SELECT 1, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, "
        "(SELECT count(*) FROM pg_auth_members WHERE member = r.oid) FROM pg_roles r WHERE rolname = current_user"))
    problems.check(attributes.observed == [(1, False, False, False, False, False, 0)],
                   f"{role} runs SELECT 1 and has no attribute or membership (superuser, createrole, createdb, "
                   "replication, bypassrls, roles such as pg_monitor)", attributes.observed, attributes)
    _check_no_schema_usage(stack, evidence, problems, role, [*DOMAIN_SCHEMAS, "config"])
    # Compared in the probe, never shown: the evidence says whose password it is, not what it is.
    path = evidence.record(container_state.environment_variable(stack.project, REGISTRY,
                                                                "REGISTRY_POSTGRES_PASSWORD_FILE"))
    if path.observed:
        roles = {r: stack.postgres_password(r) for r in [role, *PASSWORD_ROLES]}
        holds = evidence.record(secrets.whose_secret(stack.project, REGISTRY, path.observed, roles))
        problems.check(holds.observed == [role], f"the password of {role} only", holds.observed or "no role's password",
                       holds)
    else:
        problems.check(False, "REGISTRY_POSTGRES_PASSWORD_FILE naming its secret file", "unset", path)
    problems.raise_any()


CONFIG_SERVICE = "configuration-service"
WAIT_S = 2  # each long-poll of the cap step: long enough for all of them to be waiting at once (65 connect in ms)
# On swarm twice as many go through the gateway, a process forked for each and the replica looked up
# by name: all 129 were waiting within 0.2 s here; the margin is for a loaded machine.
SWARM_WAIT_S = 10


@then(parsers.parse("as many long-polls as one client may hold ({variable}) wait their whole timeout, and one "
                    "more is refused with 429 saying when to retry"))
def _long_polls_capped(stack, evidence, variable):
    setting = evidence.record(container_state.environment_variable(stack.project, CONFIG_SERVICE, variable))
    expect(str(setting.observed or "").isdigit(), f"{variable} of {CONFIG_SERVICE}", "a number", setting.observed,
           setting, f"set {variable} in docker-compose.yml")
    cap = int(setting.observed)
    if stack.on_swarm:
        # Each replica caps its own; connections reach them in turn.
        cap *= evidence.record(swarm_engine.replicas(stack.project, CONFIG_SERVICE)).observed["wanted"]
    wait = SWARM_WAIT_S if stack.on_swarm else WAIT_S
    answers = _long_polls_at_once(stack, cap + 1, wait)
    refused = [fact for fact, _ in answers if fact.observed["status"] == 429]
    waited = [seconds for fact, seconds in answers if fact.observed["status"] == 304]
    for fact in refused[:1] + [fact for fact, _ in answers if fact.observed["status"] != 429][:1]:
        evidence.record(fact)
    statuses = [fact.observed["status"] for fact, _ in answers]
    summary = {status: statuses.count(status) for status in set(statuses)}
    # Its workers share the cap, and connections need not reach them evenly: at least half wait.
    expect(bool(refused) and cap // 2 <= len(waited) <= cap and set(summary) <= {304, 429}
           and all(seconds >= wait - 0.25 for seconds in waited),
           f"{cap + 1} long-polls at once from one client ({variable}={setting.observed})",
           f"{cap // 2} to {cap} waiting {wait} s each (304), the rest 429",
           {"statuses": summary, "seconds waited": sorted(round(s, 2) for s in waited)},
           refused[0] if refused else answers[0][0], "configsvc.deps.ConfigState caps the waiting per client; "
           "a wait that is let in lasts until the change or the timeout")
    retry = refused[0].observed["headers"].get("retry-after", "")
    expect(retry.isdigit(), "429's Retry-After", "seconds", retry or "none", refused[0])


def _long_polls_at_once(stack, count: int, wait: float) -> list:
    """(answer, seconds it took) of `count` long-polls sent at once for a key nobody writes, from
    version 0: an accepted wait ends with 304 at its timeout."""
    key = f"acceptance.never_written_{uuid.uuid4().hex[:8]}"

    def timed(_):
        began = time.monotonic()
        fact = config_api.parameter(stack.config_port(), key, wait_version=0, timeout=wait)
        return fact, time.monotonic() - began

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(timed, range(count)))


@then(parsers.parse("a list asked for a page of {size:d} parameters answers that many, with where the next page "
                    "starts, and more than {most:d} per page is refused with 422"))
def _lists_paged(stack, evidence, size, most):
    port = stack.config_port()
    page = evidence.record(config_api.parameters(port, limit=size))
    body = http_api.json_object(page)
    expect(page.observed["status"] == 200 and body.get("count") == size == len(body.get("parameters", []))
           and body.get("next_offset") == size, f"GET {config_api.API}?limit={size}",
           f"{size} parameters and next_offset {size}", {k: body.get(k) for k in ("count", "next_offset", "total")},
           page, "the list answers in pages: limit, offset, next_offset")
    too_many = evidence.record(config_api.parameters(port, limit=most + 1))
    expect(too_many.observed["status"] == 422, f"GET {config_api.API}?limit={most + 1}", 422,
           too_many.observed["status"], too_many)


# The configuration service's log line for a backend error: servicekit.http.dependency_unavailable.
LOGGED_CAUSE = "request {rid}: {method} {path}: {dependency} is unavailable: "


@then(parsers.parse('a configuration read answers 503 with a request id and not the cause, which the '
                    'configuration service\'s log has under that id'))
def _backend_error_by_request_id(stack, evidence):
    key = f"acceptance.outage_{uuid.uuid4().hex[:8]}"

    def unavailable():
        fact = config_api.parameter(stack.config_port(), key)
        return fact if fact.observed["status"] == 503 else None

    fact = expect_eventually(unavailable, what="a configuration read with PostgreSQL stopped", expected=503,
                             timeout=15, interval=0.5, evidence=evidence)
    rid = fact.observed["headers"].get("x-request-id", "")
    body = http_api.json_object(fact)
    expect(bool(rid) and body.get("request_id") == rid and rid in str(body.get("detail")), "the 503's request id",
           "X-Request-ID, request_id and the detail naming the same id", {"header": rid, "body": body}, fact,
           "servicekit.http.RequestGuard gives every request an id")
    prefix = LOGGED_CAUSE.format(rid=rid, method="GET", path=f"{config_api.API}/{key}", dependency="PostgreSQL")
    log = container_state.logs(stack.project, CONFIG_SERVICE, lines=200)
    lines = [line for line in log.splitlines() if prefix in line]
    logged = evidence.record(Fact(f"docker logs {CONFIG_SERVICE} | grep 'request {rid}'", stack.project,
                                  lines[-1:] or "no line"))
    expect(bool(lines), f"the {CONFIG_SERVICE} log", f"a line '{prefix}<cause>'", log.splitlines()[-5:], logged,
           "dependency_unavailable logs the cause with the request id")
    cause = lines[-1].split(prefix, 1)[1].strip()
    expect(bool(cause) and cause not in fact.raw, "the 503's body", f"without the cause {cause!r}", fact.raw, fact,
           "the driver's message (addresses, roles) stays in the log")


@then(parsers.parse("the configuration service answers reads again within {seconds:d} s"))
def _config_reads_again(stack, evidence, seconds):
    if stack.on_swarm:
        _every_replica_reads_again(stack, evidence, seconds)
        return

    def answers():
        fact = config_api.parameters(stack.config_port(), limit=1)
        return fact if fact.observed["status"] == 200 else None

    expect_eventually(answers, what="configuration reads after PostgreSQL returned", expected=200, timeout=seconds,
                      interval=0.5, evidence=evidence)


def _every_replica_reads_again(stack, evidence, seconds):
    """Each replica reconnects on its own (psycopg_pool's backoff): one answering through the gateway
    says nothing of the others, which the next client may reach (measured: the second 2.5 s later)."""
    path = f"{config_api.API}?limit=1"
    answered, fact = every_replica_answers(stack, CONFIG_SERVICE, path, timeout=seconds)
    evidence.record(fact)
    expect(answered, f"configuration reads after PostgreSQL returned, within {seconds} s", f"200 to {path} from "
           "every replica", fact.observed, fact, "configsvc.store: the pool replaces connections PostgreSQL dropped")


# -- the Redis exporter -------------------------------------------------------------------------

def _url(stack, server: str) -> str:
    """How a caller on the network reaches `server` ("name:port"): over HTTPS in production mode."""
    return f"{'https' if stack.production else 'http'}://{server}"


EXPORTER = "redis-exporter:9121"
# A caller on the network (the registry's container) and a listener of ours posing as a Redis (in the
# configuration service's container): both only run a small Python program.
CALLER = "service-registry"
LISTENER, LISTENER_PORT = "configuration-service", 16379
EXPORTER_HINT = ("REDIS_EXPORTER_BASIC_AUTH_USERNAME/PASSWORD on redis-exporter (docker-compose.yml); the monitor "
                 "password in a password file naming the stack's Redis only (infra/redis-exporter/entrypoint.sh)")


def _foreign_scrape(stack, password=None) -> Fact:
    url = f"{_url(stack, EXPORTER)}/scrape?target=redis://{LISTENER}:{LISTENER_PORT}"
    return exporters.request_from(stack.project, LISTENER, url, password, listen_port=LISTENER_PORT)


@then("from inside the network, the Redis exporter answers 401 without Prometheus's credentials, to /metrics and "
      "to a /scrape of a listener of ours, which it does not reach")
def _exporter_closed(stack, evidence):
    problems = Mismatches("the Redis exporter without credentials", EXPORTER_HINT)
    metrics = evidence.record(exporters.request_from(stack.project, CALLER, f"{_url(stack, EXPORTER)}/metrics"))
    problems.check(metrics.observed["status"] == 401, "GET /metrics: 401", metrics.observed["status"], metrics)
    scrape = evidence.record(_foreign_scrape(stack))
    problems.check(scrape.observed["status"] == 401 and not scrape.observed["received"],
                   "GET /scrape?target=<our listener>: 401, and no connection to the listener",
                   scrape.observed, scrape)
    problems.raise_any()


PG_EXPORTER = "postgres-exporter:9187"
PG_EXPORTER_HINT = ("--web.config.file on postgres-exporter (docker-compose.yml): a bcrypt hash of Prometheus's "
                    "credential, made by the secrets service (infra/secrets/distribute)")


@then("from inside the network, the PostgreSQL exporter answers 401 without Prometheus's credentials, to /metrics "
      "and to a /probe of a listener of ours, which it does not reach, and 200 with them")
def _postgres_exporter_closed(stack, evidence):
    problems = Mismatches("the PostgreSQL exporter", PG_EXPORTER_HINT)
    metrics = evidence.record(exporters.request_from(stack.project, CALLER, f"{_url(stack, PG_EXPORTER)}/metrics"))
    problems.check(metrics.observed["status"] == 401, "GET /metrics: 401", metrics.observed["status"], metrics)
    url = f"{_url(stack, PG_EXPORTER)}/probe?target={LISTENER}:{LISTENER_PORT}/postgres?sslmode=disable"
    probe = evidence.record(exporters.request_from(stack.project, LISTENER, url, listen_port=LISTENER_PORT))
    problems.check(probe.observed["status"] == 401 and not probe.observed["received"],
                   "GET /probe?target=<our listener>: 401, and no connection to the listener", probe.observed, probe)
    signed_in = evidence.record(exporters.request_from(
        stack.project, CALLER, f"{_url(stack, PG_EXPORTER)}/metrics",
        stack.settings.secret("REDIS_EXPORTER_SCRAPE_PASSWORD")))
    problems.check(signed_in.observed["status"] == 200, "GET /metrics as prometheus: 200 (the 401s are the "
                   "credential's, not a broken exporter)", signed_in.observed["status"], signed_in)
    problems.raise_any()


@then("with Prometheus's credentials, its /scrape of a listener of ours sends that listener no password")
def _exporter_keeps_its_password(stack, evidence):
    scrape = _foreign_scrape(stack, stack.settings.secret("REDIS_EXPORTER_SCRAPE_PASSWORD"))
    received, password = scrape.observed["received"], stack.redis_password("monitor")
    # The evidence shows what the listener got, the password (if it came) replaced by its name.
    shown = Fact(scrape.probe, scrape.where, {"status": scrape.observed["status"],
                                              "received": received.replace(password, "<monitor's password>")})
    evidence.record(shown)
    expect(bool(received) and password not in received and "AUTH" not in received.upper(),
           "what the exporter sent a target of ours", "its commands (it did connect), no AUTH, no password",
           shown.observed["received"][:300] or "nothing: the exporter never connected", shown, EXPORTER_HINT)


SECRETS_HINT = ("a password reaches a service as a file: `secrets:` in docker-compose.yml, handed out by the secrets "
                "service (infra/secrets/handout) and named by a *_FILE variable, never the password itself")


def _passwords(stack) -> dict:
    """{variable: value} of every password of the env file."""
    return {name: value for name, value in stack.settings.values.items() if "PASSWORD" in name and value}


@then("no container of the stack holds a password of the env file in its environment, command, healthcheck or "
      "labels, nor shows one on a process's command line")
def _no_password_in_configuration(stack, evidence):
    problems = Mismatches("passwords in the containers' configuration and command lines", SECRETS_HINT)
    passwords = _passwords(stack)
    for service in [*stack.services, *sorted(stack.compose.one_shot_service_names)]:
        fact = evidence.record(secrets.exposed_passwords(stack.project, service, passwords))
        problems.check(not fact.observed, f"{service}: no password shows", fact.observed, fact)
    problems.raise_any()


# redis_exporter 1.69 takes its web password (Prometheus's credential) from a flag or a variable only:
# its entrypoint reads the file into the program's environment (docs/security.md, "Where secrets live").
ENVIRONMENT_EXCEPTION = ("redis-exporter", "REDIS_EXPORTER_SCRAPE_PASSWORD")


@then("no process of the stack holds a password of the env file in its environment, but the Redis exporter its web "
      "password")
def _no_password_in_process_environments(stack, evidence):
    problems = Mismatches("passwords in the processes' environments", SECRETS_HINT)
    passwords = _passwords(stack)
    for service in stack.services:
        fact = evidence.record(secrets.passwords_in_process_environments(stack.project, service, passwords))
        held = [(program, name) for program, name in fact.observed if (service, name) != ENVIRONMENT_EXCEPTION]
        problems.check(not held, f"{service}: no process holds a password in its environment", held, fact)
    problems.raise_any()


@then("every service's secrets are files of its own folder, read-only, mode 0400 and owned by the user its program "
      "runs as")
def _secret_files_private(stack, evidence):
    problems = Mismatches("the services' secret files", SECRETS_HINT)
    held = 0
    for service in stack.services:
        fact = evidence.record(secrets.secret_files(stack.project, service))
        mount, files = fact.observed["mount"], fact.observed["files"]
        if mount is None:
            problems.check(not files, f"{service}: no secret file without its mount", sorted(files), fact)
            continue
        if "swarm_secrets" in mount:
            # Swarm's form: the files are exactly the stack's secrets the service's spec names.
            own = {name: f"{stack.project}_{name}" for name in files}
            problems.check(mount["swarm_secrets"] == own, f"{service}: its files are the stack's secrets {own}",
                           mount, fact)
        else:
            problems.check(mount["subpath"] == service and mount["read_only"],
                           f"{service}: its own folder ({service}) of the secrets volume, read-only", mount, fact)
        users = {uid for _, uid in evidence.record(container_state.process_users(stack.project, service)).observed}
        for name, found in sorted(files.items()):
            problems.check(found["mode"] == "400" and {found["uid"]} == users,
                           f"{service}: {name} mode 400, owned by uid {', '.join(map(str, sorted(users)))} "
                           "(its processes' user)", found, fact)
        held += len(files)
    # A stack without a single secret file would pass every check above.
    problems.check(held > 0, "secret files handed out", "none in any service", None)
    problems.raise_any()


MONITORING = ["redis-exporter", "postgres-exporter", "alertmanager", "alert-receiver"]
# On both networks: Prometheus, to scrape the ecosystem's services, and the services it scrapes there.
SCRAPED = ["prometheus", "redis", "postgres", "service-registry", "configuration-service"]
MONITORING_HINT = ("networks: [monitoring] for the exporters, Alertmanager and the alert receiver in "
                   "docker-compose.yml; Prometheus and the services it scrapes on both networks")


def _monitoring_network(stack) -> str:
    return stack.compose.config["networks"]["monitoring"]["name"]


@then("the exporters, Alertmanager and the alert receiver are on the monitoring network only, Prometheus on it and "
      "on the ecosystem's network, with the services Prometheus scrapes")
def _monitoring_network_members(stack, evidence):
    problems = Mismatches("the monitoring network's members", MONITORING_HINT)
    monitoring = _monitoring_network(stack)
    for service in [*MONITORING, *SCRAPED]:
        fact = evidence.record(container_state.addresses(stack.project, service))
        networks = set(fact.observed)
        if service in MONITORING:
            problems.check(networks == {monitoring}, f"{service} on {monitoring} only", sorted(networks), fact)
        else:
            problems.check({monitoring, stack.settings.network_name} <= networks,
                           f"{service} on {monitoring} and {stack.settings.network_name}", sorted(networks), fact)
    problems.raise_any()


def _expect_no_route_into(stack, evidence, problems: Mismatches, subnet: str) -> None:
    """Neither a container on the ecosystem's network nor the host has a route into `subnet` other
    than their default route (which leads off the machine, not into an overlay)."""
    inside = evidence.record(scratch.routes_from_network(stack.settings.network_name, (stack.project, REGISTRY)))
    host = evidence.record(networks.host_routes())
    for fact in (inside, host):
        into = [route for route in fact.observed if route[1] != "0.0.0.0/0" and ipaddress.ip_network(route[1]).overlaps(
            ipaddress.ip_network(subnet))]
        problems.check(not into, f"no route into {subnet} but the default ({fact.where})", into, fact)


@then("from a container on the ecosystem's network, none of the exporters, Alertmanager and the alert receiver can be "
      "reached, by name or by address, while Redis, PostgreSQL and Prometheus can")
def _monitoring_unreachable(stack, evidence):
    problems = Mismatches("connections from the ecosystem's network", MONITORING_HINT)
    ports = {"redis-exporter": 9121, "postgres-exporter": 9187, "alertmanager": 9093, "alert-receiver": 9097}
    addresses = {service: evidence.record(container_state.addresses(stack.project, service)).observed.get(
        _monitoring_network(stack)) for service in MONITORING}
    closed = [(service, ports[service]) for service in MONITORING] + [
        (address, ports[service]) for service, address in addresses.items() if address]
    if stack.on_swarm:
        # An overlay's subnet has no route on the host: a connection to a monitoring address goes out
        # by the default route, off this machine (where something may answer). So by name only, and
        # the routes say there is no way to the addresses.
        closed = [(service, ports[service]) for service in MONITORING]
        _expect_no_route_into(stack, evidence, problems, stack.settings.values["TSE_MONITORING_SUBNET"])
    controls = [("redis", 6379), ("postgres", 5432), ("prometheus", 9090)]
    fact = evidence.record(scratch.connections_from_network(
        stack.settings.network_name, (stack.project, REGISTRY), closed + controls))
    reached = [(host, port) for host, port in closed if fact.observed[f"{host}:{port}"]]
    if reached:
        # Asked again from a new container: while another network is created on the same engine, Docker
        # rebuilds its isolation rules, and a connection at that instant can pass (seen once, with fault
        # runs side by side). A target the ecosystem can reach answers both times.
        again = evidence.record(scratch.connections_from_network(
            stack.settings.network_name, (stack.project, REGISTRY), reached))
        reached = [(host, port) for host, port in reached if again.observed[f"{host}:{port}"]]
    for host, port in closed:
        problems.check((host, port) not in reached, f"{host}:{port} not reached", "connected twice", fact)
    for host, port in controls:
        problems.check(fact.observed[f"{host}:{port}"], f"{host}:{port} connected (the probe works)", "not reached",
                       fact)
    problems.check(all(addresses.values()), "an address on the monitoring network for each", addresses, None)
    problems.raise_any()
