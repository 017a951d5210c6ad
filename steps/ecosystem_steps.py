"""Steps of section E (extra): the ecosystem's services, as their code is today, connect to the
stack and are discovered. What each service runs is written in features/ecosystem.feature from its
repository's code; docs/registry.md "What each service of the ecosystem uses" lists the sources."""
from __future__ import annotations

import hashlib
import json
import time
import uuid

from pytest_bdd import parsers, then, when

from steps.expect import Mismatches, expect, expect_eventually, not_applicable_on_swarm
from steps.harness import scratch
from steps.probes import (
    Fact,
    ProbeError,
    container_exec,
    http_api,
    postgres_server,
    prometheus_server,
    redis_server,
    registry_api,
)
from steps.probes.waiting import poll
from steps.service_checks import STATIC_ADDRESSES

# SHA-256 of the development passwords the services default to: the original stack's compose
# (trading-ecosystem-orchestrator-docker, each service's REDIS_URL and POSTGRES_URL) and the Go
# adapters' .env.example. Hashes: the repository holds no password in plain text
# outside .env.example, which must hold these for a service started with its defaults to connect.
SERVICE_DEFAULT_SHA256 = {
    "redis": {
        "market-data-adapter": "5a4919621e0aeea03a0fba077091df004ca52b79d4c775458034ede2144ec508",
        "exchange-adapter": "6d3d06b2dc326010038713a753cfeed59fd59073e6221aa7d1a64ba779a9b09b",
        "custodian-adapter": "8f46b7ba5da306d827c4a21acf8fd08c9c232a74b0ad545eb0697ac15d3e5dc8",
        "risk-adapter": "7b51233bd1d54cfe902e88ac8caddba1309f1e0f722c001708ba00704d9991de",
        "trading-adapter": "7bcec756c3bd8079600299a587c20a398a274a6cbb5042514bb35f91e78b747c",
        "test-coordinator-adapter": "3cd1bedf5b322b68e9a761626139ae788536665e8ddf8b6aa14156046beca1cd",
        "audit-adapter": "0982e2720db5775568dfafe83e7374b56d946a8ef67308089d5341ec1a532b37",
    },
    "postgres": {
        "market_data_adapter": "0b715eea079de4b5b80f83162ceded5b05fce33539eb7ef295d410928b634684",
        "exchange_adapter": "c78beac4a17820a5c9883e5b4bba0b4f63a97484beaff825b04ca3c121359854",
        "custodian_adapter": "a769bb4558acfe8bcf534254d05a297dd6517734e34b967fdfa74901111c79fa",
        "risk_adapter": "ab106e6c3b306cbc6f2dae933e1f3905965695b1fd2819b748a8028f32473546",
        "trading_adapter": "90e4b17b57b56755fad7f573123cb03121c2ff48c0878eee57cacbb8298e976f",
        "test_coordinator_adapter": "87f9c4cc8f53f7159b0919a67ff2f6b34d6ea647e06fa8024e9d481ee83c46dc",
        "audit_adapter": "6905f9af780329c0e40ba1dd0b04b7f5f7c5151aae03552990b0e21c7eea66c4",
    },
}
# The name each service registers under (its settings' service_name).
REGISTRY_NAMES = {"risk-monitor-py": "risk-monitor", "trading-engine-py": "trading-system-engine"}
# The registry's read endpoints that show a service, by path.
REGISTRY_ENDPOINTS = {
    "/api/v1/services": lambda port, name: registry_api.services(port),
    "/api/v1/services/{name}": registry_api.service,
    "/health": lambda port, name: registry_api.health(port),
    "/health/{name}": registry_api.health_of,
}


def _commands(cell: str) -> list[str]:
    return [c.strip() for c in cell.split(",") if c.strip()]


def _check_default_password(problems: Mismatches, stack, evidence, kind: str, account: str, service: str) -> None:
    """The env file's password of `account` is the one `service` defaults to (compared as SHA-256;
    neither is shown)."""
    variable = ("REDIS_PASSWORD_" + account.upper().replace("-", "_")) if kind == "redis" \
        else "PG_PASSWORD_" + account.upper()
    password = stack.redis_password(account) if kind == "redis" else stack.postgres_password(account)
    same = hashlib.sha256(password.encode()).hexdigest() == SERVICE_DEFAULT_SHA256[kind][account]
    fact = evidence.record(Fact(f"sha256({variable}) == sha256(the password {service} defaults to)",
                                stack.settings.env_file.name, same))
    problems.check(same, f"{variable} = the password {service} defaults to",
                   "another password: the service started with its defaults is refused", fact)


def _run_as_service(problems: Mismatches, stack, evidence, user: str, keys: str, commands: list[str]) -> None:
    fact = evidence.record(redis_server.run_as_service(*stack.redis(user), keys,
                                                       commands))
    refused = {name: o.reply for name, o in fact.observed["outcomes"].items() if not o.allowed}
    problems.check(not refused, f"{user} runs {', '.join(commands)} on {fact.observed['key']}",
                   f"refused {refused}", fact)


def _refused_everything(problems: Mismatches, stack, evidence, user: str, keys: str) -> None:
    fact = evidence.record(redis_server.run_as_service(*stack.redis(user), keys,
                                                       ["SET", "GET", "HSET", "HGETALL"]))
    allowed = [name for name, o in fact.observed["outcomes"].items() if not o.refused_by_acl]
    problems.check(not allowed, f"{user} refused (NOPERM) every command on {fact.observed['key']}",
                   f"allowed {allowed}", fact)


def _lands_in(problems: Mismatches, stack, evidence, role: str, schema: str) -> None:
    fact = evidence.record(postgres_server.landing_schema(stack.postgres_port(), role, stack.postgres_password(role),
                                                          stack.database))
    observed = fact.observed
    ok = isinstance(observed, dict) and observed["current_schema"] == schema and observed["created_in"] == schema
    problems.check(ok, f"{role} signs in, its current schema and a new table's are {schema}", observed, fact)


@then(parsers.parse('Redis user "{user}" signs in with the password {service} defaults to'))
def _redis_default_password(stack, evidence, user, service):
    problems = Mismatches(f"{service}'s Redis user", "set the REDIS_PASSWORD_* of .env to what the service uses, "
                          "then docker compose up -d --force-recreate")
    _check_default_password(problems, stack, evidence, "redis", user, service)
    ping = evidence.record(redis_server.ping(*stack.redis(user)))
    problems.check(ping.observed == "PONG", f"{user} signs in and PINGs", ping.observed, ping)
    problems.raise_any()


@then(parsers.parse("Redis user \"{user}\" runs what {service}'s code runs on its own keys:"))
def _runs_what_its_code_runs(stack, evidence, datatable, user, service):
    problems = Mismatches(f"{service}'s Redis commands on its own keys",
                          f"{user}'s key patterns in infra/redis/users.acl")
    for keys, commands in datatable[1:]:
        _run_as_service(problems, stack, evidence, user, keys, _commands(commands))
    problems.raise_any()


@then(parsers.parse('Redis user "{user}" is refused the keys of another domain under "{first}" and "{second}"'))
def _refused_other_domain(stack, evidence, user, first, second):
    problems = Mismatches(f"{user} and another domain's keys", f"{user} has its own key patterns only")
    for prefix in (first, second):
        _refused_everything(problems, stack, evidence, user, prefix + ("*" if prefix.endswith(":") else ":*"))
    problems.raise_any()


@then(parsers.parse('PostgreSQL role "{role}" signs in with the password {service} defaults to, lands in schema '
                    '"{schema}" and creates a table there'))
def _postgres_role(stack, evidence, role, service, schema):
    problems = Mismatches(f"{service}'s PostgreSQL role", "PG_PASSWORD_* in .env (a changed password needs a new "
                          "volume: the init scripts run once); search_path in infra/postgres/init")
    _check_default_password(problems, stack, evidence, "postgres", role, service)
    _lands_in(problems, stack, evidence, role, schema)
    problems.raise_any()


@then(parsers.parse("each data adapter signs in to Redis and PostgreSQL with the passwords its repository defaults "
                    "to, and runs what its code runs on its own keys:"))
def _data_adapters(stack, evidence, datatable):
    problems = Mismatches("the Go data adapters", "their users and patterns in infra/redis/users.acl, their roles in "
                          "infra/postgres/init, the passwords in .env")
    checked = set()
    for adapter, user, keys, commands, role, schema in datatable[1:]:
        if adapter not in checked:
            checked.add(adapter)
            _check_default_password(problems, stack, evidence, "redis", user, adapter)
            _check_default_password(problems, stack, evidence, "postgres", role, adapter)
            _lands_in(problems, stack, evidence, role, schema)
        _run_as_service(problems, stack, evidence, user, keys, _commands(commands))
    problems.raise_any()


@then("each data adapter's Redis user is refused another domain's keys:")
def _data_adapters_refused(stack, evidence, datatable):
    problems = Mismatches("the data adapters and other domains' keys", "each user has its own key patterns only")
    for user, keys in datatable[1:]:
        _refused_everything(problems, stack, evidence, user, keys)
    problems.raise_any()


def _service_hash(name: str, now: float) -> dict:
    """ServiceDiscovery.register_service() of risk-monitor-py and trading-engine-py: HSET of
    asdict(ServiceInfo) with str() on each value, metadata as JSON text, host its settings' default."""
    host, http_port, grpc_port = "0.0.0.0", 8080, 50051
    metadata = {"environment": "docker", "capabilities": ["http", "grpc", "metrics", "health"],
                "protocols": {"http": f"http://{host}:{http_port}", "grpc": f"{host}:{grpc_port}"}}
    return {"name": name, "version": "0.1.0", "host": host, "http_port": str(http_port), "grpc_port": str(grpc_port),
            "status": "healthy", "metadata": json.dumps(metadata), "registered_at": str(now),
            "last_heartbeat": str(now)}


def _registry_payload(name: str) -> dict:
    """ServiceRegistryClient.register() of risk-monitor-py: POST /api/v1/services."""
    base = f"http://{name}:8080"
    return {"name": name, "version": "0.1.0",
            "endpoints": {"http": base, "grpc": f"{name}:50051", "health": f"{base}/api/v1/health",
                          "metrics": f"{base}/metrics"},
            "metadata": {"environment": "docker"}}


def _clean_up(stack, key: str, name: str, user: str, via_api: bool) -> None:
    try:
        redis_server.run(*stack.redis("admin"), "DEL", key)
        if via_api:
            registry_api.deregister(stack.registry_port(), name, name, stack.signed_in_as(user))
    except Exception:  # noqa: BLE001 - already gone
        pass


@when(parsers.re(r'(?P<service>\S+) registers as its code does: its own hash in Redis as "(?P<user>[^"]+)"'
                 r'(?P<post>, and a POST to the registry signed in as that user)?$'),
      target_fixture="ecosystem_registration")
def _registers(stack, evidence, request, service, user, post):
    name = f"{REGISTRY_NAMES[service]}-acceptance-{uuid.uuid4().hex[:8]}"
    key = f"registry:services:{name}"
    request.addfinalizer(lambda: _clean_up(stack, key, name, user, bool(post)))
    stored = evidence.record(redis_server.write_hash(*stack.redis(user), key,
                                                     _service_hash(name, time.time()), 90))
    expect(stored.observed.allowed, f"{service} writing {key} as {user}", "stored", stored.observed.reply, stored,
           f"~registry:services:<its name>* for {user} in infra/redis/users.acl")
    via = ["redis"]
    if post:
        posted = evidence.record(registry_api.register(stack.registry_port(), _registry_payload(name),
                                                       stack.signed_in_as(user)))
        expect(posted.observed["status"] in (200, 201), f"{service}'s POST /api/v1/services", "200 or 201",
               posted.observed, posted)
        via.append("api")
    return {"service": service, "user": user, "name": name, "key": key, "via": sorted(via)}


# A hash a service wrote into Redis itself is discovered by name at once (read by its key); listings
# show it once the registry's background reconciliation found it: a pause of 1 s between passes, a
# pass over this stack's few thousand keys well under a second (registry/reconcile.py).
LISTING_BOUND_S = 10


def _listed_with(stack, name: str, count: int):
    """A check for expect_eventually: the GET /api/v1/services Fact once it lists `name` with `count`
    instances, else None."""
    def check():
        fact = registry_api.services(stack.registry_port())
        services = http_api.json_object(fact).get("services", [])
        return fact if any(s.get("name") == name and s.get("instances") == count for s in services) else None
    return check


def _every_endpoint(stack, evidence, name: str) -> dict:
    """GET each registry endpoint that shows `name`; {path template: Fact}."""
    port = stack.registry_port()
    return {path: evidence.record(read(port, name)) for path, read in REGISTRY_ENDPOINTS.items()}


@then("the registry lists it, returns its registrations by name and reports it in its health, every endpoint "
      "answering 200")
def _discovered(stack, evidence, ecosystem_registration):
    name, via = ecosystem_registration["name"], ecosystem_registration["via"]
    problems = Mismatches(f"discovery of {ecosystem_registration['service']}", "the registry reads "
                          "registry:services:{name} hashes (infra/service-registry/registry/models.py read_entry)")
    expect_eventually(_listed_with(stack, name, len(via)), what=f"GET /api/v1/services listing {name}",
                      expected=f"{len(via)} instance(s)", timeout=LISTING_BOUND_S, evidence=evidence,
                      hint="the registry's reconciliation indexes hashes written into Redis directly "
                           "(infra/service-registry/registry/reconcile.py)")
    answers = _every_endpoint(stack, evidence, name)
    for path, fact in answers.items():
        problems.check(fact.observed["status"] == 200, f"{path} answers 200", fact.observed["status"], fact)

    def body(path: str) -> dict:
        return http_api.json_object(answers[path])

    listed = next((s for s in body("/api/v1/services").get("services", []) if s.get("name") == name), None)
    problems.check(listed and listed.get("instances") == len(via), f"{name} listed with {len(via)} instance(s)",
                   listed, answers["/api/v1/services"])
    instances = body("/api/v1/services/{name}").get("instances", [])
    problems.check(sorted(i.get("registered_via") for i in instances) == via, f"{name}'s registrations via {via}",
                   [(i.get("registered_via"), i.get("endpoints")) for i in instances],
                   answers["/api/v1/services/{name}"])
    problems.check(any(s.get("name") == name for s in body("/health").get("services", [])), f"{name} in /health",
                   "absent", answers["/health"])
    problems.check(body("/health/{name}").get("status") == "healthy", f"/health/{name} healthy",
                   body("/health/{name}").get("status"), answers["/health/{name}"])
    problems.raise_any()


def _unreadable_entries_from_now(stack, evidence) -> float | None:
    """registry_unreadable_entries as counted by a read of every key that began after this call: the
    count a pass begun earlier left may hold a key written and deleted since (a step before this one
    does that). None when no such count came within LISTING_BOUND_S."""
    since = time.time()

    def counted_since():
        fact = registry_api.metrics(stack.registry_port())
        began = http_api.metric_value(fact, "registry_unreadable_entries_read_began_timestamp_seconds")
        return fact if began is not None and began >= since else None

    fact = poll(counted_since, timeout=LISTING_BOUND_S, interval=0.2)
    return http_api.metric_value(evidence.record(fact), "registry_unreadable_entries") if fact else None


@when(parsers.parse('its heartbeat leaves behind a hash with only "{field}" after the entry expired'))
def _heartbeat_after_expiry(stack, evidence, ecosystem_registration, field):
    # risk-monitor-py's heartbeat loop: HSET last_heartbeat, EXPIRE; after the key expired (a pause
    # longer than its TTL) that HSET creates a hash holding nothing else.
    registration, user = ecosystem_registration, ecosystem_registration["user"]
    registration["unreadable_before"] = _unreadable_entries_from_now(stack, evidence)
    evidence.record(redis_server.run(*stack.redis(user), "DEL", registration["key"]))
    stored = evidence.record(redis_server.write_hash(*stack.redis(user),
                                                     registration["key"], {field: str(time.time())}, 90))
    expect(stored.observed.allowed, f"HSET {field} as {user}", "stored", stored.observed.reply, stored)


@then("every registry endpoint still answers 200, the registry stays healthy and counts the entry unreadable")
def _malformed_harmless(stack, evidence, ecosystem_registration):
    name = ecosystem_registration["name"]
    problems = Mismatches("the registry with a malformed entry", "a key the registry cannot read is skipped and "
                          "counted (store.listing), never a 5xx")
    for path, fact in _every_endpoint(stack, evidence, name).items():
        # By name, only the HTTP registration is left: 200 while it lives.
        problems.check(fact.observed["status"] == 200, f"{path} answers 200", fact.observed["status"], fact)
    health = evidence.record(container_exec.run_healthcheck(stack.project, "service-registry"))
    problems.check(health.observed.exit_code == 0, "the registry's container healthcheck passes",
                   health.observed, health)
    # Counted by the reconciliation's next pass, one begun after the entry was written.
    before, after = ecosystem_registration["unreadable_before"], _unreadable_entries_from_now(stack, evidence)
    problems.check(before is not None and after == before + 1,
                   "registry_unreadable_entries one more from a pass begun after the entry was written than from "
                   "one begun before", f"{before} then {after}", None)
    problems.raise_any()


@then(parsers.parse("the configuration reads of {service} answer with the fields its client parses:"))
def _configuration_reads(stack, evidence, datatable, service):
    problems = Mismatches(f"{service}'s configuration reads", "environments and aliases in "
                          "infra/configuration-service/configsvc/model.py")
    for request, fields in datatable[1:]:
        method, path = request.split(" ", 1)
        # Sent as the service's client sends it, path and query as written in the scenario.
        fact = evidence.record(http_api.call(stack.config_port(), method, path))
        body = http_api.json_object(fact)
        missing = [f for f in _commands(fields) if f not in body]
        typed = isinstance(body.get("value"), str) and body.get("type") in ("string", "number", "boolean", "json") \
            and (body.get("type") != "boolean" or body.get("value") in ("true", "false"))
        problems.check(fact.observed["status"] == 200 and not missing and typed,
                       f"{request}: 200 with {fields} (value a string of its type)",
                       f"{fact.observed['status']} {body or fact.raw[:200]}", fact)
    problems.raise_any()


# What each Go service's own code SETs to register (JSON, with a TTL), by layout; `{id}` is the
# scenario's own instance id. Read from audit-data-adapter-go (internal/redis/service_discovery.go),
# custodian-simulator-go and market-data-simulator-go (internal/infrastructure/service_discovery.go)
# and exchange-data-adapter-go (pkg/adapters/redis_service_discovery.go).
def _go_entry(service: str, layout: str, instance_id: str, now: str) -> dict:
    if layout == "services:{name}:{id}" and service == "market-data-simulator":
        return {"service_name": service, "service_version": "1.0.0", "instance_id": instance_id,
                "address": "acceptance-probe", "port": 8080, "grpc_port": 50051, "http_port": 8080,
                "health": "healthy", "status": "active", "registered_at": now, "last_heartbeat": now,
                "metadata": {"environment": "docker"}, "tags": ["market-data", "simulator"]}
    if layout == "services:{name}:{id}":
        return {"id": instance_id, "name": service, "version": "1.0.0", "host": "acceptance-probe",
                "grpc_port": 50051, "http_port": 8080, "status": "healthy", "metadata": {"environment": "docker"},
                "last_seen": now, "registered_at": now}
    if layout == "services:{name}:{host}:{grpc port}":
        return {"name": service, "version": "1.0.0", "host": "acceptance-probe", "grpc_port": 50051,
                "http_port": 8080, "status": "healthy", "last_seen": now}
    return {"ServiceName": service, "ServiceID": instance_id, "Address": "acceptance-probe", "Port": 8080,
            "Version": "1.0.0", "Metadata": {}, "RegisteredAt": now, "LastHeartbeat": now}


def _go_key(service: str, layout: str, instance_id: str) -> str:
    return (layout.replace("{name}", service).replace("{host}:{grpc port}", f"{instance_id}:50051")
            .replace("{id}", instance_id).replace("{namespace}", service.split("-")[0]))


def _set_go_entries(stack, evidence, registrations: list, ttl_s: int, problems: Mismatches) -> None:
    """SET each registration's entry as its own Redis user, with a TTL of `ttl_s`; `written_at` is
    when Redis answered."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
    for registration in registrations:
        value = json.dumps(_go_entry(registration["service"], registration["layout"], registration["id"], now))
        fact = evidence.record(redis_server.run(*stack.redis(registration["redis user"]), "SET", registration["key"],
                                                value, "EX", str(ttl_s)))
        registration["written_at"] = time.monotonic()
        problems.check(fact.observed.allowed, f"{registration['redis user']} SET {registration['key']}",
                       fact.observed.reply[:120], fact)


@when("each Go service registers as its code does, a JSON entry with a TTL, signed in to Redis as its own user:",
      target_fixture="go_registrations")
def _go_services_register(stack, evidence, datatable):
    header, *rows = datatable
    registrations, problems = [], Mismatches("the Go services' own registrations", "~<their keys> for each in "
                                                                                  "infra/redis/users.acl")
    for row in rows:
        wanted = dict(zip(header, row, strict=False))
        instance_id = f"acceptance-{uuid.uuid4().hex[:10]}"
        key = _go_key(wanted["service"], wanted["layout"], instance_id)
        registrations.append({**wanted, "key": key, "id": instance_id, "instance_id": key.removeprefix(
            f"services:{wanted['service']}:") if key.startswith("services:") else instance_id})
    _set_go_entries(stack, evidence, registrations, 60, problems)
    problems.raise_any()
    yield registrations
    for registration in registrations:  # the scenario's own keys, whatever happened
        redis_server.run(*stack.redis(registration["redis user"]), "DEL", registration["key"])


def _instance_ids(stack, name: str) -> set:
    fact = registry_api.service(stack.registry_port(), name)
    body = http_api.json_object(fact)
    return {i.get("instance_id") for i in body.get("instances") or []}


# Redis's keyspace notifications (infra/redis/redis.conf) the registry needs: keyspace channels (K),
# key commands (g: DEL), strings ($: SET), hashes (h) and expiries (x).
KEYSPACE_CLASSES = "Kg$hx"


@then("Redis announces every change of those keys to the registry, which listens")
def _changes_announced(stack, evidence):
    problems = Mismatches("the changes the registry hears", "infra/redis/redis.conf's notify-keyspace-events; "
                                                          "registry/keyspace.py and its user's channel in users.acl")
    admin = stack.redis_password("admin")
    setting = evidence.record(redis_server.config(stack.redis_port(), admin, "notify-keyspace-events"))
    # Redis writes the setting back in its own order, "A" for "g$lshzxetd".
    classes = set(setting.observed.replace("A", "g$lshzxetd"))
    problems.check(set(KEYSPACE_CLASSES) <= classes, f"notify-keyspace-events with at least {KEYSPACE_CLASSES}",
                   repr(setting.observed), setting)
    subscribers = evidence.record(redis_server.pattern_subscribers(stack.redis_port(), admin))
    problems.check(subscribers.observed.get("registry-service", 0) >= 1, "a pattern subscription of registry-service",
                   f"pattern subscriptions by user: {subscribers.observed}", subscribers)
    problems.raise_any()


def _watch_registry(stack, registrations: list, until: float, interval: float = 0.05) -> dict:
    """Ask the registry for each registration's name every `interval` until each is gone after its
    `lapses_at`, or `until` (monotonic): {key: [(asked_at, returned)]} as each answer came."""
    answers: dict = {r["key"]: [] for r in registrations}
    while True:
        for registration in registrations:
            asked_at = time.monotonic()
            returned = registration["instance_id"] in _instance_ids(stack, registration["service"])
            answers[registration["key"]].append((asked_at, returned))
        lapsed = all(asked[-1][0] >= r["lapses_at"] and not asked[-1][1]
                     for r, asked in ((r, answers[r["key"]]) for r in registrations))
        if lapsed or time.monotonic() >= until:
            return answers
        time.sleep(interval)


@then(parsers.parse("the registry returns each by name within {seconds:d} s of its write, the age its answers may "
                    "have"))
def _go_services_discovered(stack, evidence, go_registrations, seconds):
    problems = Mismatches("the Go services' registrations in the registry",
                          "registry/models.py reads each layout; registry/keyspace.py hears each write")
    found_after = {}

    def all_found():
        for registration in go_registrations:
            if registration["key"] not in found_after and \
                    registration["instance_id"] in _instance_ids(stack, registration["service"]):
                found_after[registration["key"]] = round(time.monotonic() - registration["written_at"], 2)
        return len(found_after) == len(go_registrations)

    poll(all_found, timeout=seconds + 2, interval=0.05, transient=(ProbeError,))
    for registration in go_registrations:
        name, wanted = registration["service"], registration["instance_id"]
        delay = found_after.get(registration["key"])
        evidence.record(Fact(f"GET /api/v1/services/{name} until {wanted} is listed", "registry",
                             {"found": delay is not None, "seconds_after_the_write": delay}))
        problems.check(delay is not None and delay <= seconds,
                       f"{name} instance {wanted} ({registration['layout']}) within {seconds} s of its write",
                       "not returned" if delay is None else f"returned {delay} s after it")
    problems.raise_any()


@when(parsers.parse("each registers again with a TTL of {ttl:d} s, left to run out"))
def _go_services_lapse(stack, evidence, go_registrations, ttl):
    problems = Mismatches("the Go services' registrations again", "~<their keys> for each in infra/redis/users.acl")
    _set_go_entries(stack, evidence, go_registrations, ttl, problems)
    for registration in go_registrations:
        registration["lapses_at"] = registration["written_at"] + ttl
    problems.raise_any()


@then(parsers.parse("the registry stops returning each within {seconds:d} s of its TTL's end, having returned it "
                    "before"))
def _go_services_lapsed(stack, evidence, go_registrations, seconds):
    """Redis's clock starts the TTL before SET answers (`written_at`): the delay measured from
    `lapses_at` is at most a few milliseconds long."""
    problems = Mismatches("registrations whose TTL ran out", "discovery reads each entry's key; registry/keyspace.py "
                                                             "hears each expiry")
    answers = _watch_registry(stack, go_registrations, max(r["lapses_at"] for r in go_registrations) + seconds + 0.2)
    for registration in go_registrations:
        name, wanted, lapses_at = registration["service"], registration["instance_id"], registration["lapses_at"]
        asked = answers[registration["key"]]
        returned_before = any(returned for asked_at, returned in asked if asked_at < lapses_at)
        # Gone once asked after its TTL's end and never returned since (the watch ends with every one gone).
        gone_at = next((asked_at for asked_at, returned in asked if asked_at >= lapses_at and not returned and
                        not any(r for a, r in asked if a > asked_at)), None)
        delay = None if gone_at is None else round(gone_at - lapses_at, 2)
        evidence.record(Fact(f"GET /api/v1/services/{name} every 50 ms around {wanted}'s TTL end", "registry",
                             {"returned_before_its_ttl_ended": returned_before, "gone_seconds_after_it": delay}))
        problems.check(returned_before, f"{name} instance {wanted} returned before its TTL ended", "never returned")
        problems.check(delay is not None and delay <= seconds,
                       f"{name} instance {wanted} ({registration['layout']}) gone within {seconds} s of its TTL's end",
                       "still returned" if delay is None else f"gone {delay} s after it")
    problems.raise_any()


@then("each of those Redis users is refused the registration keys of the others")
def _go_users_confined(stack, evidence, go_registrations):
    problems = Mismatches("the Go services' Redis users", "each user's ~services:<its service>:* only")
    for registration in go_registrations:
        for other in go_registrations:
            if other is registration:
                continue
            key = f"{other['key']}-by-{registration['redis user']}"
            fact = evidence.record(redis_server.run(*stack.redis(registration["redis user"]), "SET", key, "{}", "EX",
                                                    "5"))
            problems.check(fact.observed.refused_by_acl, f"{registration['redis user']} refused SET {key}",
                           fact.observed.reply[:120], fact)
            if fact.observed.allowed:
                redis_server.run(*stack.redis(registration["redis user"]), "DEL", key)
    problems.raise_any()


@when("each deletes its own entry", target_fixture="deleted_at")
def _go_services_deregister(stack, evidence, go_registrations):
    for registration in go_registrations:
        evidence.record(redis_server.run(*stack.redis(registration["redis user"]), "DEL", registration["key"]))
    return time.monotonic()


@then(parsers.parse("the registry stops returning each within {seconds:d} s, the age its answers may have"))
def _go_services_gone(stack, evidence, go_registrations, deleted_at, seconds):
    """An answer may be up to `seconds` old: one asked for once that much time has passed since the DEL
    must not show the entry (those asked before may)."""
    problems = Mismatches("deregistration by DEL", "discovery reads each entry's key: a deleted one is gone")
    for registration in go_registrations:
        name, wanted = registration["service"], registration["instance_id"]
        while True:
            asked_at = time.monotonic()
            gone = wanted not in _instance_ids(stack, name)
            if gone or asked_at - deleted_at >= seconds:
                break
            time.sleep(0.1)
        evidence.record(Fact(f"GET /api/v1/services/{name} until {wanted} is gone", "registry",
                             {"gone": gone, "asked_seconds_after_the_delete": round(asked_at - deleted_at, 2)}))
        problems.check(gone, f"{name} instance {wanted} gone from answers asked {seconds} s after its DEL",
                       "still returned")
    problems.raise_any()


# -- E.8: Prometheus scrapes what registers -----------------------------------------------------

STAND_IN_IMAGE = "service-registry"  # an image of the stack with python3, for the stand-ins


def _stand_in_key(row: dict) -> str:
    if row["layout"] == "registry:services:{name}":
        return f"registry:services:{row['service']}"
    return _go_key(row["service"], row["layout"], row["id"])


def _register_stand_in(stack, row: dict) -> Fact:
    """The registration of `row`'s service in its own layout, as its Redis user, at its address."""
    user, key = stack.redis(row["redis user"]), row["key"]
    if row["layout"] == "registry:services:{name}":
        # Its host stays its code's default, 0.0.0.0: the registry then offers its name (the stand-in's alias).
        return redis_server.write_hash(*user, key, _service_hash(row["service"], time.time()), 60)
    entry = _go_entry(row["service"], row["layout"], row["id"], time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z",
                                                                              time.gmtime()))
    entry.update({"Address": row["address"], "Port": scratch.STAND_IN_PORT} if "Address" in entry else
                 {"address": row["address"], "port": scratch.STAND_IN_PORT} if "address" in entry else
                 {"host": row["address"], "http_port": scratch.STAND_IN_PORT})
    return redis_server.run(*user, "SET", key, json.dumps(entry), "EX", "60")


@when("stand-ins of the ecosystem's services serve their health and metrics paths at their addresses and register "
      "as their code does:", target_fixture="stand_ins")
def _stand_ins_register(stack, evidence, datatable):
    not_applicable_on_swarm(stack, STATIC_ADDRESSES)
    header, *rows = datatable
    stand_ins = [dict(zip(header, row, strict=False)) for row in rows]
    problems = Mismatches("the stand-ins' registrations", "~<their keys> for each in infra/redis/users.acl")
    try:
        for row in stand_ins:
            row["address"] = stack.settings.address(f"0.{row['address'].lstrip('.')}")
            row["id"] = f"acceptance-{uuid.uuid4().hex[:10]}"
            row["key"] = _stand_in_key(row)
            row["container"] = scratch.start_stand_in(
                stack.settings.network_name, (stack.project, STAND_IN_IMAGE), row["address"], [row["metrics path"]],
                f"stand-in-{row['service']}", aliases=[row["service"]])
            fact = evidence.record(_register_stand_in(stack, row))
            problems.check(fact.observed.allowed, f"{row['redis user']} writing {row['key']}",
                           fact.observed.reply[:120], fact)
        problems.raise_any()
        yield stand_ins
    finally:
        for row in stand_ins:
            if row.get("container") is not None:
                scratch.remove_stand_in(row["container"])
            if row.get("key"):
                redis_server.run(*stack.redis("admin"), "DEL", row["key"])


def _scraped(stack, stand_ins: list) -> tuple:
    """Prometheus's targets now, and for each stand-in its target's health ("up", "down", "unknown"),
    or None when Prometheus has no target at its address and metrics path."""
    fact = prometheus_server.targets(stack.settings.port("PROMETHEUS_HOST_PORT"))
    found = {}
    for row in stand_ins:
        host = row["service"] if row["layout"] == "registry:services:{name}" else row["address"]
        url = f"http://{host}:{scratch.STAND_IN_PORT}{row['metrics path']}"
        found[row["service"]] = next((t["health"] for t in fact.observed if t["url"] == url and
                                      t["job"] == row["service"]), None)
    return fact, found


@then(parsers.parse("Prometheus scrapes each at its address and metrics path, its job the service's name, within "
                    "{seconds:d} s"))
def _stand_ins_scraped(stack, evidence, stand_ins, seconds):
    def all_up():
        fact, found = _scraped(stack, stand_ins)
        return (fact, found) if all(health == "up" for health in found.values()) else None

    seen = poll(all_up, timeout=seconds, interval=1, transient=(ProbeError,))
    fact, found = seen or _scraped(stack, stand_ins)
    evidence.record(fact)
    problems = Mismatches("Prometheus's targets from the registry's discovery",
                          "the ecosystem job's http_sd_configs in infra/prometheus/prometheus.yml; "
                          "registry/prometheus_sd.py; Prometheus on the ecosystem's network")
    for service, health in found.items():
        problems.check(health == "up", f"{service} scraped and up", health or "no such target", fact)
    problems.raise_any()


@when(parsers.parse('the stand-in of "{service}" stops answering, its registration left in place'))
def _stand_in_stops(stand_ins, service):
    row = next(row for row in stand_ins if row["service"] == service)
    scratch.remove_stand_in(row["container"])
    row["container"] = None


@when("every stand-in deregisters")
def _stand_ins_deregister(stack, evidence, stand_ins):
    for row in stand_ins:
        evidence.record(redis_server.run(*stack.redis(row["redis user"]), "DEL", row["key"]))


@then(parsers.parse("Prometheus scrapes none of them within {seconds:d} s"))
def _stand_ins_dropped(stack, evidence, stand_ins, seconds):
    def none_left():
        fact, found = _scraped(stack, stand_ins)
        return (fact, found) if all(health is None for health in found.values()) else None

    seen = poll(none_left, timeout=seconds, interval=1, transient=(ProbeError,))
    fact, found = seen or _scraped(stack, stand_ins)
    evidence.record(fact)
    left = {service: health for service, health in found.items() if health is not None}
    expect(not left, "Prometheus's targets once every stand-in deregistered", "none of theirs", left, fact,
           "registry/prometheus_sd.py lists what is registered now")
