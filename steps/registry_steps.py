"""Steps about the service registry (section 4), through its API on 127.0.0.1 and its Redis keys."""
from __future__ import annotations

import time
import uuid

from pytest_bdd import given, parsers, then, when

from steps.announcements import ANNOUNCEMENT_DELAY_S, first_read_that_agrees
from steps.expect import Mismatches, expect, expect_eventually
from steps.probes import Fact, http_api, redis_server, registry_api
from steps.probes.waiting import poll

# The registration a sibling service (risk-monitor) sends today, as it sends it.
SIBLING_PAYLOAD = {
    "name": "risk-monitor", "version": "0.1.0",
    "endpoints": {"http": "http://risk-monitor:8080", "grpc": "risk-monitor:50051",
                  "health": "http://risk-monitor:8080/api/v1/health", "metrics": "http://risk-monitor:8080/metrics"},
    "metadata": {"environment": "docker", "capabilities": ["http", "grpc"]},
}
# risk-monitor's Redis ACL user: its registrations sign in as it, as every registry write must.
SIBLING_USER = "risk-adapter"
STORED_FIELDS = ("name", "version", "host", "http_port", "grpc_port", "status", "metadata", "registered_at",
                 "last_heartbeat", "instance_id", "endpoints")


def _probe_instance(request, stack, **changes) -> dict:
    """A sibling-shaped registration with an instance id of its own, deregistered at the end."""
    payload = {**SIBLING_PAYLOAD, "instance_id": f"acceptance-{uuid.uuid4().hex[:10]}", **changes}
    request.addfinalizer(lambda: _deregister_quietly(stack, payload))
    return payload


def _deregister_quietly(stack, payload) -> None:
    try:
        registry_api.deregister(stack.registry_port(), payload["name"], payload["instance_id"], _sibling(stack))
    except Exception:  # noqa: BLE001 - already gone
        pass


def _sibling(stack) -> tuple:
    return stack.signed_in_as(SIBLING_USER)


def _register(stack, evidence, payload) -> Fact:
    return evidence.record(registry_api.register(stack.registry_port(), payload, _sibling(stack)))


@when("a sibling service registers with the payload it sends today", target_fixture="registration")
def _register_sibling(stack, evidence, request):
    payload = _probe_instance(request, stack)
    return {"payload": payload, "fact": _register(stack, evidence, payload)}


@given("a sibling service registered with the registry", target_fixture="registration")
def _registered_sibling(stack, evidence, request):
    registration = _register_sibling(stack, evidence, request)
    expect(registration["fact"].observed["status"] == 201, "registration", 201,
           registration["fact"].observed, registration["fact"])
    return registration


@then("the registry answers 201 with the stored instance")
def _answered_201(evidence, registration):
    fact, payload = registration["fact"], registration["payload"]
    body = http_api.json_object(fact)
    ok = (fact.observed["status"] == 201 and body.get("instance_id") == payload["instance_id"]
          and body.get("endpoints") == payload["endpoints"] and body.get("status") == "healthy")
    expect(ok, "POST /api/v1/services", "201 with the stored instance", fact.observed, fact)


@then("registering the same instance again answers 200")
def _answered_200(stack, evidence, registration):
    fact = _register(stack, evidence, registration["payload"])
    expect(fact.observed["status"] == 200, "registering again", 200, fact.observed["status"], fact)


@then("the registry forgets the instance when it deregisters: the next discovery of its name no longer returns "
      "it, and its name's index no longer holds it")
def _deregisters(stack, evidence, registration):
    payload = registration["payload"]
    where = (stack.registry_port(), payload["name"], payload["instance_id"], _sibling(stack))
    # Discovered first: an answer the registry keeps in memory must be forgotten by the deregistration.
    # Others may hold instances of the same name (the ecosystem's own service on a shared stack,
    # another scenario of a parallel run): only this one must be gone.
    before = _instances(stack, evidence, payload["name"])
    gone = evidence.record(registry_api.deregister(*where))

    def without_it(fact: Fact) -> bool:
        return fact.observed["status"] == 404 or (
            fact.observed["status"] == 200 and payload["instance_id"] not in _instance_ids(fact))

    # The next discovery, which may reach another worker (another replica on swarm): it may take
    # ANNOUNCEMENT_DELAY_S to hear the deregistration (steps/announcements.py).
    after = evidence.record(first_read_that_agrees(
        lambda: registry_api.service(stack.registry_port(), payload["name"]), without_it))
    again = evidence.record(registry_api.deregister(*where))
    observed = (before.observed["status"], gone.observed["status"],
                "gone" if without_it(after) else f"{after.observed['status']} with it", again.observed["status"])
    expected = (200, 204, "gone", 404)
    expect(observed == expected, "GET, DELETE, GET, DELETE", expected, observed, after,
           f"a deregistration is announced on registry:changes; every worker forgets what it kept, "
           f"within {ANNOUNCEMENT_DELAY_S} s (infra/servicekit/servicekit/readcache.py)")
    # A member left behind is read (and skipped) by every discovery of the name until its TTL lapses:
    # discovery would cost what the name's churn wrote, not what it holds.
    left = evidence.record(redis_server.sorted_set_score(
        stack.redis_port(), stack.redis_password("admin"), f"registry:index:{payload['name']}", payload["instance_id"]))
    expect(left.observed is None, f"registry:index:{payload['name']} after the deregistration",
           "no member for the instance", left.observed, left,
           "DELETE removes the instance id from its name's index (registry/routes.py, Index.remove)")


@then("the registry lists that service with its instance count and healthy count")
def _listed(stack, evidence, registration):
    fact = evidence.record(registry_api.services(stack.registry_port()))
    name = registration["payload"]["name"]
    entry = next((s for s in http_api.json_object(fact).get("services", []) if s.get("name") == name), None)
    expect(entry is not None and entry["instances"] >= 1 and entry["healthy"] >= 1, f"{name} in the list",
           "instances >= 1, healthy >= 1", entry, fact)


def _instances(stack, evidence, name, status=None) -> Fact:
    return evidence.record(registry_api.service(stack.registry_port(), name, status))


def _instance_ids(fact: Fact) -> list:
    return [i.get("instance_id") for i in http_api.json_object(fact).get("instances", [])]


@then("the registry returns its instance with its endpoints")
def _returned(stack, evidence, registration):
    payload = registration["payload"]
    fact = _instances(stack, evidence, payload["name"])
    mine = [i for i in http_api.json_object(fact).get("instances", [])
            if i.get("instance_id") == payload["instance_id"]]
    expect(fact.observed["status"] == 200 and mine and mine[0]["endpoints"] == payload["endpoints"],
           f"GET /api/v1/services/{payload['name']}", "its instance with its endpoints", fact.observed, fact)


@then("asking for its healthy instances returns it but not an unhealthy one, and an unknown service answers 404")
def _filtered(stack, evidence, request, registration):
    payload = registration["payload"]
    sick = _probe_instance(request, stack, status="unhealthy")
    _register(stack, evidence, sick)
    healthy = _instance_ids(_instances(stack, evidence, payload["name"], "healthy"))
    unknown = _instances(stack, evidence, f"no-such-service-{uuid.uuid4().hex[:6]}")
    observed = (payload["instance_id"] in healthy, sick["instance_id"] in healthy, unknown.observed["status"])
    expect(observed == (True, False, 404), "?status=healthy and an unknown service",
           "(healthy listed, unhealthy not, 404)", observed, unknown)


# A paused machine (CI's load on two cores) can hold a request past the TTL: the instance then lapses
# without any fault. Redis renews the TTL somewhere between a heartbeat's sending and its answer, so
# the instance is sure to be there until the last heartbeat's sending plus the TTL ("alive_until"):
# not finding it before that is the fault; after it, the try proves nothing and is made again.
PAUSED_TRIES = 3


def _register_with_ttl(stack, evidence, registration, again: bool = False) -> Fact:
    sent = time.monotonic()
    fact = _register(stack, evidence, registration["payload"])
    expected = (200, 201) if again else (201,)  # again: after a pause, it may or may not have lapsed
    expect(fact.observed["status"] in expected, "registration with a TTL", expected, fact.observed, fact)
    registration.update(fact=fact, alive_until=sent + registration["payload"]["ttl_seconds"],
                        last_heartbeat=time.monotonic())
    return fact


@given(parsers.parse("a sibling service registered with a TTL of {ttl:d} s"), target_fixture="registration")
def _registered_with_ttl(stack, evidence, request, ttl):
    registration = {"payload": _probe_instance(request, stack, ttl_seconds=ttl)}
    _register_with_ttl(stack, evidence, registration)
    return registration


def _heartbeat(stack, evidence, payload) -> Fact:
    return evidence.record(registry_api.heartbeat(stack.registry_port(), payload["name"], payload["instance_id"],
                                                  _sibling(stack)))


def _paused(evidence, registration, fact: Fact) -> bool:
    """Whether `fact`, which did not find the instance, was answered after it could have lapsed."""
    paused = time.monotonic() > registration["alive_until"]
    if paused:
        evidence.record(Fact("a pause past the TTL", "client", f"{fact.probe} answered after the instance could "
                             "lapse: the try proves nothing and is made again"))
    return paused


def _keep_alive(stack, evidence, registration) -> bool:
    """Heartbeats every half TTL, as clients send them, for the scenario's seconds, ending with one.
    False when one found the instance gone after a pause past the TTL."""
    payload = registration["payload"]
    deadline = time.monotonic() + registration["heartbeat_seconds"]
    while True:
        sent = time.monotonic()
        fact = _heartbeat(stack, evidence, payload)
        if fact.observed["status"] == 404 and _paused(evidence, registration, fact):
            return False
        expect(fact.observed["status"] == 200, "heartbeat", 200, fact.observed, fact)
        registration.update(alive_until=sent + payload["ttl_seconds"], last_heartbeat=time.monotonic())
        if time.monotonic() >= deadline:
            return True
        time.sleep(payload["ttl_seconds"] / 2)


def _kept_alive(stack, evidence, registration) -> None:
    for _ in range(PAUSED_TRIES):
        if _keep_alive(stack, evidence, registration):
            return
        _register_with_ttl(stack, evidence, registration, again=True)
    expect(False, "heartbeats", "one try without a pause past the TTL", f"{PAUSED_TRIES} tries paused",
           hint="the machine is too loaded to tell; run again when it is not")


@when(parsers.parse("it sends heartbeats for {seconds:d} s"))
def _heartbeats(stack, evidence, registration, seconds):
    registration["heartbeat_seconds"] = seconds
    _kept_alive(stack, evidence, registration)


@then("the registry still returns it")
def _still_there(stack, evidence, registration):
    payload = registration["payload"]
    for attempt in range(PAUSED_TRIES):
        if attempt:
            _register_with_ttl(stack, evidence, registration, again=True)
            _kept_alive(stack, evidence, registration)
        fact = _instances(stack, evidence, payload["name"])
        if payload["instance_id"] in _instance_ids(fact) or not _paused(evidence, registration, fact):
            break
    else:
        expect(False, "discovery after heartbeats", "one try without a pause past the TTL",
               f"{PAUSED_TRIES} tries paused", fact, "the machine is too loaded to tell; run again when it is not")
    expect(payload["instance_id"] in _instance_ids(fact), "an instance kept alive by heartbeats past its TTL",
           "still registered", _instance_ids(fact), fact, "a heartbeat renews the TTL (EXPIRE)")


@when("it sends no more heartbeats")
def _silence(evidence, registration):
    evidence.record(Fact("no more heartbeats", "client", "silent"))


# Redis expires a key within about 100 ms of its TTL (its active expiry cycle runs 10 times a second);
# the margins allow that, the poll period and a busy machine, and are far below the TTL itself.
TTL_MARGIN_S = 1.5
EARLY_MARGIN_S = 0.5


@then("the registry stops returning it once its TTL lapses, and its heartbeat answers 404")
def _expired(stack, evidence, registration):
    payload, ttl = registration["payload"], registration["payload"]["ttl_seconds"]
    silent_since = registration["last_heartbeat"]

    def gone():
        fact = registry_api.service(stack.registry_port(), payload["name"])
        return fact if payload["instance_id"] not in _instance_ids(fact) else None

    fact = expect_eventually(gone, what="an instance silent for longer than its TTL", expected="no longer returned",
                             timeout=ttl + TTL_MARGIN_S - (time.monotonic() - silent_since), interval=0.2,
                             hint="instances are stored with EXPIRE <ttl_seconds>, renewed by each heartbeat",
                             evidence=evidence)
    # Counted from the last heartbeat's sending: Redis renewed the TTL after it, never before.
    lasted = time.monotonic() - (registration["alive_until"] - ttl)
    expect(lasted >= ttl - EARLY_MARGIN_S, "an instance after its last heartbeat", f"kept for its TTL of {ttl} s",
           f"gone after {lasted:.1f} s", fact, "the TTL is the one registered, counted from the last heartbeat")
    late = _heartbeat(stack, evidence, payload)
    expect(late.observed["status"] == 404, "a heartbeat after the TTL lapsed", 404, late.observed["status"], late,
           "a lapsed instance must register again")


def _infrastructure(stack, evidence) -> dict:
    fact = evidence.record(registry_api.health(stack.registry_port()))
    body = http_api.json_object(fact)
    return {s["name"]: s for s in body.get("services", []) if (s.get("metadata") or {}).get("role") == "infrastructure"}


@given(parsers.parse('the registry\'s latest probes of "{a}", "{b}" and "{c}"'), target_fixture="latest_probes")
def _latest_probes(stack, evidence, a, b, c):
    names = (a, b, c)
    first = _infrastructure(stack, evidence)
    return {"at": time.monotonic(),
            "probed_at": {n: (first.get(n) or {}).get("metadata", {}).get("probed_at") for n in names}}


@then(parsers.parse('the registry has probed "{a}", "{b}" and "{c}" again within {seconds:d} s of those probes and '
                    'reports them healthy'))
def _probed_again(stack, evidence, latest_probes, a, b, c, seconds):
    names, before = (a, b, c), latest_probes["probed_at"]

    def reprobed():
        now = _infrastructure(stack, evidence)
        fresh = {n: now.get(n) for n in names
                 if now.get(n) and now[n]["metadata"].get("probed_at") != before[n]}
        return now if len(fresh) == len(names) else None

    # The scenario's own steps take longer than a probe round: usually no wait is left.
    now = expect_eventually(reprobed, what="registry's infrastructure status", expected=f"{names} probed again",
                            timeout=max(0.0, latest_probes["at"] + seconds - time.monotonic()), interval=0.5,
                            hint="the registry must probe, not write once")
    statuses = {n: now[n]["status"] for n in names}
    expect(set(statuses.values()) == {"healthy"}, "infrastructure status", "healthy", statuses)


def _status_of(stack, evidence, name) -> str | None:
    return (_infrastructure(stack, evidence).get(name) or {}).get("status")


@then(parsers.parse('the registry reports "{name}" {status} within {seconds:d} s'))
def _reports_status(stack, evidence, name, status, seconds):
    expect_eventually(lambda: _status_of(stack, evidence, name) == status, what=f"registry status of {name}",
                      expected=status, timeout=seconds, interval=0.5, transient=(Exception,))


# How the scenarios name the services they stop and start.
SERVICE_LABELS = {"PostgreSQL": "postgres", "Redis": "redis", "the configuration service": "configuration-service"}


@when(parsers.parse("{service_label} is stopped"), target_fixture="stopped_at")
def _stop(stack, evidence, request, service_label) -> float:
    """Stops the service; the epoch second it was asked to stop (alerts measure their delay from it)."""
    service = SERVICE_LABELS[service_label]
    asked = time.time()
    stack.compose.stop_services(service)
    request.addfinalizer(lambda: stack.compose.start_services(service))  # never leave it stopped
    evidence.record(Fact(f"docker compose stop {service}", stack.project, "stopped"))
    return asked


@when(parsers.parse("{service_label} is started again"), target_fixture="started_at")
def _start(stack, evidence, service_label) -> float:
    """Starts the service and waits until it is healthy; the epoch second it was asked to start."""
    service = SERVICE_LABELS[service_label]
    asked = time.time()
    stack.compose.start_services(service)
    evidence.record(Fact(f"docker compose start {service}", stack.project, "healthy"))
    return asked


@then("the registry's health answers 503 naming Redis")
def _health_503(stack, evidence):
    def unhealthy():
        fact = registry_api.health(stack.registry_port())
        return fact if fact.observed["status"] == 503 else None

    fact = expect_eventually(unhealthy, what="registry /health with Redis stopped", expected=503, timeout=10,
                             interval=0.5, hint="/health must ask Redis, not answer 200 regardless", evidence=evidence)
    expect("redis" in fact.raw.lower(), "the 503's reason", "names Redis", fact.observed["body"], fact)


@then(parsers.parse("the registry's health answers 200 within {seconds:d} s"))
def _health_back(stack, evidence, seconds):
    def healthy():
        fact = registry_api.health(stack.registry_port())
        return fact if fact.observed["status"] == 200 else None

    expect_eventually(healthy, what="registry /health after Redis returned", expected=200, timeout=seconds,
                      interval=0.5, evidence=evidence)


@then(parsers.parse('the "{service}" service waits for "{dependency}" to be healthy before it starts'))
def _waits_for(stack, evidence, service, dependency):
    from steps.probes import compose_model

    declared = compose_model.declared_dependencies(stack.compose.config).get(service, {})
    fact = evidence.record(Fact(f"depends_on of {service}", "docker compose config", declared))
    expect(declared.get(dependency) == "service_healthy", f"{service} depends_on {dependency}", "service_healthy",
           declared, fact)


@then(parsers.parse('its instance is a Redis hash under "{prefix}" with a TTL, found with SCAN as "{user}"'))
def _stored_hash(stack, evidence, registration, prefix, user):
    payload = registration["payload"]
    key = f"{prefix}{payload['name']}:{payload['instance_id']}"
    fact = evidence.record(redis_server.stored_instance(*stack.redis(user), key))
    observed = fact.observed
    missing = [f for f in STORED_FIELDS if f not in observed.get("fields", {})]
    expect(observed.get("found_by_scan") and observed.get("ttl", -1) > 0 and not missing,
           f"{key} as {user}", "found by SCAN, TTL > 0, every field sibling services read", observed, fact)


@then(parsers.parse('the "{first}" and "{second}" users are refused that instance\'s key'))
def _others_refused(stack, evidence, registration, first, second):
    payload = registration["payload"]
    key = f"registry:services:{payload['name']}:{payload['instance_id']}"
    problems = Mismatches("other users reading a registry entry")
    for user in (first, second):
        fact = evidence.record(redis_server.run(*stack.redis(user), "HGETALL", key))
        problems.check(fact.observed.refused_by_acl, f"{user} refused", fact.observed.reply, fact)
    problems.raise_any()


@then(parsers.parse('each domain user may write its own services\' entries and nothing else under "{prefix}":'))
def _domain_registry_rights(stack, evidence, datatable, prefix):
    problems = Mismatches("domain users under registry:", "~registry:services:<domain>* for each domain user")
    for user, own, other in datatable[1:]:
        password = stack.redis_password(user)
        mine = evidence.record(redis_server.write_and_read_back(stack.redis_port(), user, password,
                                                                f"{prefix}services:{own}:"))
        problems.check(mine.observed.allowed, f"{user} writes {own}'s entries", mine.observed.reply, mine)
        theirs = evidence.record(redis_server.write_and_read_back(stack.redis_port(), user, password,
                                                                  f"{prefix}services:{other}:"))
        problems.check(theirs.observed.refused_by_acl, f"{user} refused {other}'s", theirs.observed.reply, theirs)
        config = evidence.record(redis_server.write_and_read_back(stack.redis_port(), user, password,
                                                                  f"{prefix}config:"))
        problems.check(config.observed.refused_by_acl, f"{user} refused elsewhere under {prefix}",
                       config.observed.reply, config)
    problems.raise_any()


@then("the payload sibling services send registers as it is, with the fields they read")
def _sibling_schema(stack, evidence, request):
    payload = _probe_instance(request, stack)
    fact = _register(stack, evidence, payload)
    body = http_api.json_object(fact)
    wanted = {"name": "risk-monitor", "version": "0.1.0", "host": "risk-monitor", "http_port": 8080,
              "grpc_port": 50051, "status": "healthy", "metadata": payload["metadata"]}
    observed = {k: body.get(k) for k in wanted}
    expect(fact.observed["status"] == 201 and observed == wanted and body.get("registered_at")
           and body.get("last_heartbeat"), "the sibling payload's stored instance", wanted, observed, fact)


@then("a registration with a bad name, a bad TTL and a bad endpoint is refused with 422 naming each field")
def _bad_payload(stack, evidence):
    bad = {"name": "Risk Monitor!", "ttl_seconds": 0, "endpoints": {"http": 42}}
    fact = evidence.record(registry_api.register(stack.registry_port(), bad, _sibling(stack)))
    named = " ".join(str(d) for d in http_api.json_object(fact).get("detail", [])) or fact.raw
    missing = [f for f in ("name", "ttl_seconds", "endpoints.http") if f not in named]
    expect(fact.observed["status"] == 422 and not missing, "a bad registration", "422 naming name, ttl_seconds, "
           "endpoints.http", fact.observed, fact)


@then("a registration body over 64 KiB is refused with 413")
def _too_large(stack, evidence):
    payload = {**SIBLING_PAYLOAD, "metadata": {"padding": "x" * (65 * 1024)}}
    fact = evidence.record(registry_api.register(stack.registry_port(), payload, _sibling(stack)))
    expect(fact.observed["status"] == 413, "a 65 KiB registration", 413, fact.observed["status"], fact)


@then("the registry's OpenAPI document lists its REST endpoints")
def _openapi(stack, evidence):
    fact = evidence.record(registry_api.openapi(stack.registry_port()))
    paths = http_api.json_object(fact).get("paths", {})
    wanted = {"/api/v1/services": {"get", "post"}, "/api/v1/services/{name}": {"get"},
              "/api/v1/services/{name}/instances/{instance_id}": {"delete"},
              "/api/v1/services/{name}/instances/{instance_id}/heartbeat": {"put"},
              "/health": {"get"}, "/health/{name}": {"get"}}
    missing = {p: sorted(m - set(paths.get(p, {}))) for p, m in wanted.items() if m - set(paths.get(p, {}))}
    expect(not missing, "OpenAPI paths", sorted(wanted), f"missing {missing}", fact)


@then("an unknown path answers 404 in JSON")
def _unknown_path(stack, evidence):
    fact = evidence.record(http_api.call(stack.registry_port(), "GET", "/api/v1/no-such-thing"))
    expect(fact.observed["status"] == 404 and isinstance(fact.observed["body"], dict), "an unknown path",
           "404 with a JSON body", fact.observed, fact)


@then(parsers.parse('a cross-origin request from "{origin}" is allowed'))
def _cors(stack, evidence, origin):
    fact = evidence.record(http_api.call(stack.registry_port(), "OPTIONS", "/health", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET"}))
    allowed = fact.observed["headers"].get("access-control-allow-origin")
    expect(fact.observed["status"] == 200 and allowed in (origin, "*"), "a CORS preflight", f"allowed for {origin}",
           fact.observed, fact, "REGISTRY_CORS_ORIGINS")


@then("the registry serves Prometheus metrics of its registrations and heartbeats")
def _metrics(stack, evidence):
    fact = evidence.record(registry_api.metrics(stack.registry_port()))
    text = http_api.text(fact)
    names = ("registry_registrations_total", "registry_heartbeats_total", "registry_expiries_total",
             "registry_request_seconds", "registry_redis_errors_total")
    missing = [n for n in names if n not in text]
    expect(fact.observed["status"] == 200 and not missing, "/metrics", list(names), f"missing {missing}", fact)


@then(parsers.parse('the registry reports "{first}" and "{second}" healthy, with their endpoints'))
def _discoverable_infrastructure(stack, evidence, first, second):
    problems = Mismatches("discovery of the infrastructure")
    for name in (first, second):
        def discovered(name=name):
            fact = registry_api.service(stack.registry_port(), name)
            instances = http_api.json_object(fact).get("instances", [])
            # Other instances may share the name (a sibling's own Redis); the stack's is instance `name`.
            own = next((i for i in instances if i.get("instance_id") == name), None)
            return fact, (fact.observed["status"] == 200 and own is not None and own["status"] == "healthy"
                          and bool(own["endpoints"]))

        # The registry reports what its last probe saw: just after start, a probe from before the
        # service answered, until the next round (every 5 s).
        fact, ok = poll(lambda: (lambda seen: seen if seen[1] else None)(discovered()), timeout=12,
                        interval=0.5) or discovered()
        evidence.record(fact)
        problems.check(ok, f"{name} (instance {name}) healthy with endpoints", fact.observed, fact)
    problems.raise_any()


CACHE_USER = "trading-adapter"   # a domain whose cache shares Redis with the registry
DISCOVERIES = 25


@then(parsers.parse("its discovery still answers its instance beside {count:d} keys a domain's cache wrote, and walks "
                    "none of them: fewer SCANs than discoveries"))
def _discovery_independent_of_the_keyspace(stack, evidence, request, registration, count):
    name, port = registration["payload"]["name"], stack.registry_port()
    problems = Mismatches("discovery beside a domain's cache", "discovery by name reads the index registry:index:"
                          "<name> and the writer's own hash by its key (infra/service-registry/registry/store.py); "
                          "SCAN walks every key Redis holds")
    own = registration["payload"]["instance_id"]
    before = _instance_ids(_instances(stack, evidence, name))
    keys = [f"trading:acceptance-cache:{uuid.uuid4().hex[:8]}:{n}" for n in range(count)]
    request.addfinalizer(lambda: redis_server.delete_keys(*stack.redis(CACHE_USER), keys))
    evidence.record(redis_server.write_keys(*stack.redis(CACHE_USER), keys))
    after = _instance_ids(_instances(stack, evidence, name))
    # Its own instance: others of the name may come and go meanwhile (a shared stack, a parallel run).
    problems.check(own in before and own in after, f"{own} among the instances of {name}, before and after",
                   {"before": before, "after": after}, None)
    # SCANs counted over two bursts of discoveries: the registry's background reconciliation SCANs
    # too (a few calls a pass, a pass a second on this keyspace), never 25 in one burst.
    admin_password = stack.redis_password("admin")
    scans = []
    for _ in range(2):
        start = redis_server.command_calls(stack.redis_port(), admin_password, "scan")
        # Each with a query of its own: none is answered from the registry's read cache, every one is
        # computed from Redis (an unknown query parameter changes nothing else).
        answers = [http_api.call(port, "GET", f"/api/v1/services/{name}?probe={uuid.uuid4().hex[:8]}")
                   .observed["status"] for _ in range(DISCOVERIES)]
        scans.append(redis_server.command_calls(stack.redis_port(), admin_password, "scan") - start)
        problems.check(answers == [200] * DISCOVERIES, f"{DISCOVERIES} discoveries answered 200", answers, None)
    fact = evidence.record(Fact(f"INFO commandstats cmdstat_scan calls, over 2 x {DISCOVERIES} GET /api/v1/services/"
                                f"{name}?probe=<a query of its own> beside {count} keys of {CACHE_USER}",
                                f"redis 127.0.0.1:{stack.redis_port()}",
                                scans))
    problems.check(min(scans) < DISCOVERIES, f"fewer SCANs than the {DISCOVERIES} discoveries in one burst at least",
                   scans, fact)
    problems.raise_any()
