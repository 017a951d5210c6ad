"""Steps about the configuration service (section 6): its API on 127.0.0.1, its rows in PostgreSQL,
its change notifications on Redis and its startup validation."""
from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from urllib.parse import quote, urlsplit

import pytest
import yaml
from pytest_bdd import given, parsers, then, when

from steps.announcements import ANNOUNCEMENT_DELAY_S, first_read_that_agrees
from steps.expect import Mismatches, expect, expect_eventually
from steps.harness import scratch
from steps.parameters import EDITOR, ENVIRONMENT, OWNER_ROLE, forget_parameter
from steps.probes import (
    Fact,
    ProbeError,
    config_api,
    container_exec,
    container_state,
    http_api,
    postgres_server,
    redis_server,
)
from steps.probes.waiting import poll

API = "/api/v1/configuration"
SERVICE = "configuration-service"
ENVIRONMENTS_DIR = "infra/configuration-service/environments"
SEED_AUTHOR = "seed"  # configsvc.seed.SEED_AUTHOR: the author of the rows the seed wrote last
# The paths the sibling services' configuration clients call.
CLIENT_PATHS = ("/health", API, API + "/{key}", API + "/{key}/history", "/api/v1/endpoints", "/metrics")


def _read(stack, key: str, environment: str = ENVIRONMENT, service: str | None = None, headers=None) -> Fact:
    return config_api.parameter(stack.config_port(), key, environment, service, headers=headers)


def _environment_files(root) -> dict:
    """environment -> its parameters, as the repository's environment files declare them."""
    return {path.stem: yaml.safe_load(path.read_text())["parameters"]
            for path in sorted((root / ENVIRONMENTS_DIR).glob("*.yaml"))}


# -- storage ------------------------------------------------------------------------------------

@then(parsers.parse('the tables of the "{schema}" schema belong to the "{role}" role, which is not a superuser'))
def _schema_owner(stack, evidence, schema, role):
    tables = evidence.record(postgres_server.query(
        *stack.postgres("monitor"),
        "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = %(schema)s ORDER BY 1",
        {"schema": schema}))
    superuser = evidence.record(postgres_server.query(
        *stack.postgres("monitor"), "SELECT rolsuper FROM pg_roles WHERE rolname = %(role)s", {"role": role}))
    address = container_state.addresses(stack.project, SERVICE).observed.get(stack.settings.network_name)

    def service_sessions():
        fact = postgres_server.query(*stack.postgres("monitor"), "SELECT DISTINCT usename FROM pg_stat_activity "
                                     "WHERE client_addr = %(address)s", {"address": address})
        return fact if fact.observed else None

    # Its pool replaces a connection once an hour: on a long-running stack there may be none for a moment.
    sessions = evidence.record(poll(service_sessions, timeout=5, interval=0.25)
                               or Fact("pg_stat_activity", address, [], raw="no session within 5 s"))
    problems = Mismatches(f"the {schema} schema", f"the configuration service stores its data as {role}")
    owners = dict(tables.observed)
    problems.check({"parameters", "parameter_history"} <= set(owners), "tables parameters and parameter_history",
                   sorted(owners), tables)
    problems.check(set(owners.values()) == {role}, f"every table owned by {role}", owners, tables)
    problems.check(superuser.observed == [(False,)], f"{role} not a superuser", superuser.observed, superuser)
    problems.check(sessions.observed == [(role,)], f"the service's sessions (from {address}) logged in as {role}",
                   sessions.observed, sessions)
    problems.raise_any()


@then("every parameter of the environment files is a row of config.parameters")
def _seeded_rows(stack, evidence, request):
    fact = evidence.record(postgres_server.query(
        *stack.postgres(OWNER_ROLE), "SELECT environment, service, key, type, updated_by FROM config.parameters"))
    stored = {(env, service or None, key): (kind, by) for env, service, key, kind, by in fact.observed}
    # The seed never overwrites a parameter changed through the API, nor brings back one deleted
    # through it: on a stack in use those are the users' own, and are listed, not held to the files.
    deleted = evidence.record(postgres_server.query(
        *stack.postgres(OWNER_ROLE), "SELECT DISTINCT environment, service, key FROM config.parameter_history "
                             "WHERE change = 'deleted' AND changed_by <> %(seed)s", {"seed": SEED_AUTHOR}))
    deleted_at_run_time = {(env, service or None, key) for env, service, key in deleted.observed}
    problems = Mismatches("seeded parameters", f"the service seeds {ENVIRONMENTS_DIR}/*.yaml at start")
    changed_at_run_time = []
    for environment, parameters in _environment_files(request.config.rootpath).items():
        for entry in parameters:
            where = (environment, entry.get("service"), entry["key"])
            kind, by = stored.get(where, (None, None))
            if (by is not None and by != SEED_AUTHOR) or (by is None and where in deleted_at_run_time):
                changed_at_run_time.append(where)
                continue
            problems.check(kind == entry["type"], f"{where} of type {entry['type']}", kind or "no row", fact)
    evidence.record(Fact("parameters of the files changed or deleted through the API since", "config.parameters",
                         changed_at_run_time))
    problems.raise_any()


# -- endpoints ----------------------------------------------------------------------------------

@pytest.fixture
def given_endpoints():
    return {}


@then(parsers.parse('the configuration service gives the "{environment}" endpoints of "{a}", "{b}", "{c}" and "{d}"'))
def _endpoints(stack, evidence, given_endpoints, environment, a, b, c, d):
    fact = evidence.record(config_api.endpoints(stack.config_port(), environment))
    endpoints = http_api.json_object(fact).get("endpoints", {})
    given_endpoints.update(endpoints)
    missing = [name for name in (a, b, c, d) if name not in endpoints]
    expect(fact.observed["status"] == 200 and not missing, f"{environment} endpoints",
           f"200 with {a}, {b}, {c} and {d}", {"status": fact.observed["status"], "missing": missing,
                                               "given": sorted(endpoints)}, fact)


@then("every endpoint it gives names a service of the stack on a port that service listens on")
def _endpoints_match_stack(stack, evidence, given_endpoints):
    # A service of the stack is reached inside the network by its service name on its container port.
    config = stack.compose.config
    ports = {name: {int(str(p.get("target"))) for p in service.get("ports", [])}
             for name, service in config["services"].items()}
    problems = Mismatches("endpoints", "endpoints name compose services and their container ports")
    # A service of a later milestone (observability) is not in this stack yet: not checked.
    ours = {name: urlsplit(url) for name, url in sorted(given_endpoints.items()) if urlsplit(url).hostname in ports}
    fact = evidence.record(container_exec.tcp_connects_from(
        stack.project, SERVICE, sorted({(parts.hostname, parts.port) for parts in ours.values()})))
    for name, parts in ours.items():
        error = fact.observed[f"{parts.hostname}:{parts.port}"]
        problems.check(parts.port in ports[parts.hostname] and error is None,
                       f"{name}: {parts.hostname}:{parts.port} answering",
                       f"{given_endpoints[name]} (ports of {parts.hostname}: {sorted(ports[parts.hostname])}, "
                       f"connect: {error or 'connected'})", fact)
    problems.check(len(given_endpoints) > 0, "at least one endpoint", "none")
    problems.raise_any()


@then("no endpoint it gives carries credentials")
def _endpoints_without_credentials(evidence, given_endpoints):
    with_credentials = {name: "***" for name, url in given_endpoints.items() if urlsplit(url).password
                        or urlsplit(url).username}
    fact = evidence.record(Fact("endpoints with user or password", "GET /api/v1/endpoints", sorted(with_credentials)))
    expect(not with_credentials, "endpoints", "no user or password in any URL", sorted(with_credentials), fact)


# -- parameters ---------------------------------------------------------------------------------

@given(parsers.parse('a parameter created through the configuration API with type "{kind}" and value "{value}"'),
       target_fixture="parameter")
def _create_parameter(stack, evidence, request, kind, value):
    key = f"acceptance.p{uuid.uuid4().hex[:12]}"
    request.addfinalizer(lambda: forget_parameter(stack, key))
    fact = evidence.record(config_api.create(stack.config_port(), {
        "key": key, "type": kind, "value": value, "environment": ENVIRONMENT,
        "description": "written by the acceptance suite, removed at the end of its scenario"},
        stack.signed_in_as(EDITOR)))
    expect(fact.observed["status"] == 201, f"POST {API} {key}", "201 Created", fact.observed, fact)
    return {"key": key, "type": kind, "value": value, "version": http_api.json_object(fact).get("version")}


@when(parsers.parse('the parameter is changed to "{value}" with its current version'))
def _change_parameter(stack, evidence, parameter, value):
    fact = evidence.record(config_api.update(stack.config_port(), parameter["key"], ENVIRONMENT, value,
                                             stack.signed_in_as(EDITOR), if_match=parameter["version"]))
    expect(fact.observed["status"] == 200, f"PUT {parameter['key']} with If-Match {parameter['version']}", "200",
           fact.observed, fact)
    parameter["changed_at"] = time.monotonic()
    parameter.update(previous=parameter["value"], value=value, version=http_api.json_object(fact).get("version"))


@then(parsers.parse('reading the parameter gives value "{value}" at version {version:d}'))
def _reads(stack, evidence, parameter, value, version):
    wanted = {"key": parameter["key"], "value": value, "type": parameter["type"], "environment": ENVIRONMENT,
              "version": version}

    def fields(fact: Fact) -> dict:
        body = http_api.json_object(fact)
        return {k: body.get(k) for k in ("key", "value", "type", "environment", "version")}

    fact = evidence.record(first_read_that_agrees(lambda: _read(stack, parameter["key"]),
                                                  lambda f: fields(f) == wanted))
    observed = fields(fact)
    expect(fact.observed["status"] == 200 and observed == wanted, f"GET {parameter['key']}", wanted, observed, fact)


@then(parsers.parse('its history records "{old}" replaced by "{new}" at version {version:d}'))
def _history_change(stack, evidence, parameter, old, new, version):
    entries = _history(stack, evidence, parameter["key"])
    found = [e for e in entries
             if e.get("old_value") == old and e.get("new_value") == new and e.get("version") == version]
    expect(bool(found), f"history of {parameter['key']}", f"{old} -> {new} at version {version}", entries)
    rows = evidence.record(postgres_server.query(
        *stack.postgres(OWNER_ROLE), "SELECT old_value, new_value, version FROM config.parameter_history "
                             "WHERE key = %(key)s ORDER BY version", {"key": parameter["key"]}))
    expect((old, new, version) in [tuple(r) for r in rows.observed], "config.parameter_history rows",
           f"({old}, {new}, {version})", rows.observed, rows)


def _history(stack, evidence, key: str) -> list:
    fact = evidence.record(config_api.history(stack.config_port(), key, ENVIRONMENT))
    return http_api.json_object(fact).get("history", [])


@then(parsers.parse('a change sent with the old version is refused with 412, and the value stays "{value}"'))
def _stale_change(stack, evidence, parameter, value):
    stale = parameter["version"] - 1
    fact = evidence.record(config_api.update(stack.config_port(), parameter["key"], ENVIRONMENT, "-1",
                                             stack.signed_in_as(EDITOR), if_match=stale))
    after = evidence.record(_read(stack, parameter["key"]))
    observed = {"status": fact.observed["status"], "value after": http_api.json_object(after).get("value")}
    expect(observed == {"status": 412, "value after": value}, f"PUT with If-Match {stale} (stale)",
           {"status": 412, "value after": value}, observed, fact, "compare If-Match with the stored version")


@then("values that do not parse as their type are refused with 422 naming the problem:")
def _invalid_values(stack, evidence, datatable):
    problems = Mismatches("invalid parameters", "validate key, type and value before storing")
    for key, kind, value in datatable[1:]:
        fact = evidence.record(config_api.create(stack.config_port(), {"key": key, "type": kind, "value": value,
                                                                        "environment": ENVIRONMENT},
                                                 stack.signed_in_as(EDITOR)))
        named = key in fact.raw or kind in fact.raw or "value" in fact.raw.lower()
        problems.check(fact.observed["status"] == 422 and named, f"{key} ({kind} {value!r}): 422 naming the problem",
                       f"{fact.observed['status']} {fact.raw[:200]}", fact)
        if fact.observed["status"] in (200, 201):
            forget_parameter(stack, key)
    problems.raise_any()


@when("the parameter is deleted")
def _delete(stack, evidence, parameter):
    fact = evidence.record(config_api.delete(stack.config_port(), parameter["key"], ENVIRONMENT,
                                             stack.signed_in_as(EDITOR)))
    expect(fact.observed["status"] == 204, f"DELETE {parameter['key']}", 204, fact.observed, fact)


@then("reading the parameter answers 404 and its history records the deletion")
def _deleted(stack, evidence, parameter):
    fact = evidence.record(first_read_that_agrees(lambda: _read(stack, parameter["key"]),
                                                  lambda f: f.observed["status"] == 404))
    expect(fact.observed["status"] == 404, f"GET {parameter['key']} after DELETE", 404, fact.observed, fact)
    entries = _history(stack, evidence, parameter["key"])
    expect(any(e.get("change") == "deleted" and e.get("old_value") == parameter["value"] for e in entries),
           f"history of {parameter['key']}", f"a deletion of {parameter['value']!r}", entries)


# -- the API ------------------------------------------------------------------------------------

@then("the configuration service's OpenAPI document lists the paths sibling services call")
def _openapi(stack, evidence):
    fact = evidence.record(config_api.openapi(stack.config_port()))
    paths = set(http_api.json_object(fact).get("paths", {}))
    documented = {p for p in CLIENT_PATHS if p in paths or p == "/metrics"}
    missing = sorted(set(CLIENT_PATHS) - documented)
    expect(not missing, "OpenAPI paths", list(CLIENT_PATHS), {"missing": missing, "documented": sorted(paths)}, fact)
    metrics = evidence.record(config_api.metrics(stack.config_port()))
    expect(metrics.observed["status"] == 200 and "# TYPE" in metrics.raw, "GET /metrics", "Prometheus text",
           metrics.raw[:200], metrics)


@then(parsers.parse('"{key}" reads the same by path and by query, with its value as a string'))
def _path_and_query(stack, evidence, key):
    by_path = evidence.record(_read(stack, key))
    by_query = evidence.record(config_api.parameter_by_query(stack.config_port(), key, ENVIRONMENT))
    body = http_api.json_object(by_path)
    fields = {"key", "value", "type", "environment", "service", "version", "last_updated"}
    problems = Mismatches(f"{key} read as sibling clients read it")
    problems.check(by_path.observed["status"] == 200 and fields <= set(body), f"200 with {sorted(fields)}",
                   by_path.observed, by_path)
    problems.check(http_api.json_object(by_query) == body, "the same object by query", by_query.observed["body"],
                   by_query)
    problems.check(isinstance(body.get("value"), str) and isinstance(body.get("version"), int),
                   "value a string, version an integer", {k: body.get(k) for k in ("value", "version")}, by_path)
    problems.check(_is_rfc3339(body.get("last_updated")), "last_updated in RFC 3339", body.get("last_updated"), by_path)
    problems.raise_any()


def _is_rfc3339(text) -> bool:
    try:
        return isinstance(text, str) and "T" in text and datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo
    except ValueError:
        return False


@then("the configuration service's health reports PostgreSQL and Redis healthy")
def _config_health(stack, evidence):
    fact = evidence.record(config_api.health(stack.config_port()))
    body = http_api.json_object(fact)
    observed = {"status": fact.observed["status"], "postgres": (body.get("postgres") or {}).get("status"),
                "redis": (body.get("redis") or {}).get("status")}
    wanted = {"status": 200, "postgres": "healthy", "redis": "healthy"}
    expect(observed == wanted, "GET /health", wanted, observed, fact)


# -- environments -------------------------------------------------------------------------------

def _stored_rows(stack, evidence, environment: str, key: str) -> dict:
    """{service ('' = environment-wide): (value, updated_by)} of a key's rows in one environment."""
    fact = evidence.record(postgres_server.query(
        *stack.postgres(OWNER_ROLE), "SELECT service, value, updated_by FROM config.parameters "
                             "WHERE environment = %(environment)s AND key = %(key)s",
        {"environment": environment, "key": key}))
    return {service: (value, by) for service, value, by in fact.observed}


def _held_to_files(rows: dict, declared: dict) -> dict:
    """What each row must hold: the file's value (as a string) while the seed wrote it last; a value
    changed through the API since (which the seed never overwrites) is the row's own."""
    return {service: str(declared[service]) if by == SEED_AUTHOR and service in declared else value
            for service, (value, by) in rows.items()}


@then(parsers.parse('"{key}" is different in "{first}" and "{second}"'))
def _differs(stack, evidence, request, key, first, second):
    files = _environment_files(request.config.rootpath)
    served, wanted, seeded = {}, {}, True
    for environment in (first, second):
        values = [p["value"] for p in files[environment] if p["key"] == key and not p.get("service")]
        declared = {"": values[-1]} if values else {}
        rows = _stored_rows(stack, evidence, environment, key)
        wanted[environment] = _held_to_files(rows, declared).get("")
        seeded = seeded and (rows.get("", (None, None))[1] == SEED_AUTHOR)
        fact = evidence.record(_read(stack, key, environment))
        served[environment] = http_api.json_object(fact).get("value") if fact.observed["status"] == 200 else None
    # Seeded in both, the files' values differ; changed through the API since, each environment's own
    # row is what it serves.
    expect(served[first] is not None and served == wanted and (served[first] != served[second] or not seeded),
           f"{key} per environment", f"each environment's value {wanted} (the files' while seeded), as strings",
           served)


@then(parsers.parse('the environments "{a}", "{b}" and "{c}" are read as "{full_a}", "{full_b}" and "{full_c}"'))
def _aliases(stack, evidence, a, b, c, full_a, full_b, full_c):
    problems = Mismatches("environment aliases")
    for alias, full in ((a, full_a), (b, full_b), (c, full_c)):
        fact = evidence.record(config_api.parameters(stack.config_port(), alias))
        body = http_api.json_object(fact)
        problems.check(fact.observed["status"] == 200 and body.get("environment") == full, f"{alias} -> {full}",
                       {"status": fact.observed["status"], "environment": body.get("environment")}, fact)
    problems.raise_any()


@then(parsers.parse('a service-specific parameter of "{environment}" overrides the environment-wide one for that '
                    'service only'))
def _service_override(stack, evidence, request, environment):
    files = _environment_files(request.config.rootpath)[environment]
    overridden = [(p["key"], p["service"], p["value"]) for p in files
                  if p.get("service") and any(q["key"] == p["key"] and not q.get("service") for q in files)]
    expect(bool(overridden), f"{environment} file", "a parameter overridden for one service", "none")
    key, service, value = overridden[0]
    wide = next(q["value"] for q in files if q["key"] == key and not q.get("service"))
    held = _held_to_files(_stored_rows(stack, evidence, environment, key), {service: value, "": wide})
    value, wide = held.get(service), held.get("")
    results = {
        "by header": evidence.record(_read(stack, key, environment, headers={"X-Service-Name": service})),
        "by query": evidence.record(_read(stack, key, environment, service=service)),
        "another service": evidence.record(_read(stack, key, environment, service="acceptance-other-service")),
        "no service": evidence.record(_read(stack, key, environment)),
    }
    served = {label: http_api.json_object(fact).get("value") for label, fact in results.items()}
    wanted = {"by header": str(value), "by query": str(value), "another service": str(wide), "no service": str(wide)}
    expect(served == wanted, f"{key} for {service} in {environment}", wanted, served)


# -- startup validation -------------------------------------------------------------------------

@then("the running configuration service's environment files pass its own startup check")
def _files_pass(stack, evidence):
    fact = evidence.record(container_exec.exec_in(stack.project, SERVICE, ["python3", "-m", "configsvc", "--check"]))
    expect(fact.observed.exit_code == 0, "configsvc --check on the mounted environment files", "exit 0",
           fact.observed, fact)


@then(parsers.parse('the configuration service refuses to start on each of these "{environment}" files, logging '
                    'file, key and reason:'))
def _refuses_bad_files(stack, evidence, environment, datatable):
    problems = Mismatches("startup validation", "validate every environment file before serving; exit non-zero")
    file_name = f"{environment}.yaml"

    def start_on(row) -> Fact:
        key, kind, value, _ = row
        text = yaml.safe_dump({"parameters": [{"key": key, "type": kind, "value": value}]})
        return scratch.run_image_with_files(stack.project, SERVICE, {file_name: text}, "/app/environments",
                                            timeout=45)

    # One throwaway container per file, all at once: each only starts, reads its file and exits.
    with ThreadPoolExecutor(max_workers=len(datatable) - 1) as pool:
        runs = list(pool.map(start_on, datatable[1:]))
    for (key, kind, value, reason), run in zip(datatable[1:], runs, strict=True):
        fact = evidence.record(run)
        log = fact.observed.output.lower()
        named = all(word.lower() in log for word in (file_name, key, reason))
        problems.check(fact.observed.exit_code not in (0, None) and named,
                       f"{key} ({kind} {value!r}): exit non-zero, log naming {file_name}, {key} and {reason!r}",
                       f"exit {fact.observed.exit_code}, log: {fact.observed.output[-300:]}", fact)
    problems.raise_any()


# -- runtime updates ----------------------------------------------------------------------------

@given("a client waiting for the parameter's next version", target_fixture="waiter")
def _waiting_client(stack, evidence, parameter):
    path = f"{API}/{quote(parameter['key'])}?environment={ENVIRONMENT}&wait_version={parameter['version']}&timeout=4"
    waiter = {"path": path, "fact": None, "error": None, "answered_at": None}

    def wait():
        try:
            waiter["fact"] = config_api.parameter(stack.config_port(), parameter["key"], ENVIRONMENT,
                                                  wait_version=parameter["version"], timeout=4)
        except ProbeError as error:
            waiter["error"] = str(error)
        waiter["answered_at"] = time.monotonic()

    waiter["thread"] = threading.Thread(target=wait, daemon=True)
    already = _waiting_clients(stack)  # sibling services' own long polls
    waiter["thread"].start()
    # The change must come after the request is parked, or the test would not prove the wake-up.
    waiting = expect_eventually(lambda: max(_waiting_clients(stack) - already, 0), interval=0.05, timeout=5,
                                what="the configuration service's waiting clients", expected=f"more than {already}")
    evidence.record(Fact(f"GET {path} (in the background)", f"127.0.0.1:{stack.config_port()}",
                         f"waiting ({already + waiting} waiting clients in /metrics, {already} before)"))
    return waiter


def _waiting_clients(stack) -> int:
    waiting = http_api.metric_value(config_api.metrics(stack.config_port()), "config_waiting_clients")
    return int(waiting or 0)


@given(parsers.parse('a subscriber to the Redis channel "{channel}" as "{user}"'), target_fixture="listener")
def _subscriber(stack, request, channel, user):
    listener = redis_server.ChannelListener(*stack.redis(user), channel)
    request.addfinalizer(listener.close)
    return listener


@then(parsers.parse('the waiting client is woken within {seconds:d} s with value "{value}" at version {version:d}'))
def _woken(stack, evidence, waiter, parameter, seconds, value, version):
    changed_at = parameter["changed_at"]
    waiter["thread"].join(timeout=10)
    fact = waiter["fact"]
    if fact:
        evidence.record(fact)
    delay = None if waiter["answered_at"] is None else round(waiter["answered_at"] - changed_at, 2)
    body = http_api.json_object(fact) if fact else {}
    observed = {"status": fact.observed["status"] if fact else waiter["error"], "value": body.get("value"),
                "version": body.get("version"), "seconds after the change": delay}
    expect(fact is not None and fact.observed["status"] == 200 and body.get("value") == value
           and body.get("version") == version and delay is not None and delay <= seconds,
           f"GET {waiter['path']}", f"200 with {value!r} at version {version}, within {seconds} s of the change",
           observed, fact, "wake waiting clients on every change, not only at their timeout")


@then(parsers.parse('"{channel}" announces the parameter\'s key, environment and version {version:d}'))
def _announced(evidence, listener, parameter, channel, version):
    fact = evidence.record(listener.messages(timeout=3))
    decoded = []
    for message in fact.observed:
        try:
            decoded.append(json.loads(message))
        except ValueError:
            decoded.append(message)
    wanted = {"key": parameter["key"], "environment": ENVIRONMENT, "version": version}
    found = [m for m in decoded if isinstance(m, dict) and {k: m.get(k) for k in wanted} == wanted]
    expect(bool(found), f"messages on {channel}", wanted, decoded, fact, "PUBLISH every committed change")


# -- reads kept in memory ------------------------------------------------------------------------

def _reads_of(stack, key: str, service: str) -> dict:
    """The parameter as `service` reads it, in each form the siblings' clients use: {form: Fact}."""
    port = stack.config_port()
    return {"by path": config_api.parameter(port, key, ENVIRONMENT, service),
            "by query": config_api.parameter_by_query(port, key, ENVIRONMENT, service),
            "with X-Service-Name": config_api.parameter(port, key, ENVIRONMENT, headers={"X-Service-Name": service})}


READS_BEFORE = 3  # each form read a few times: what the service keeps in memory is what is asked again


@given(parsers.parse('"{service}" has read the parameter by path, by query and with X-Service-Name: "{value}"'))
def _has_read(stack, evidence, parameter, service, value):
    problems = Mismatches(f"{service}'s reads of {parameter['key']}", "GET /api/v1/configuration/{key}")
    for _ in range(READS_BEFORE):
        for form, fact in _reads_of(stack, parameter["key"], service).items():
            problems.check(http_api.json_object(fact).get("value") == value, f"{form}: {value!r}",
                           fact.observed, evidence.record(fact))
    problems.raise_any()


@then(parsers.parse('"{service}"\'s next reads, by path, by query and with X-Service-Name, give "{value}" at '
                    'version {version:d}'))
def _next_reads(stack, evidence, parameter, service, value, version):
    # The reads may take ANNOUNCEMENT_DELAY_S to agree (steps/announcements.py); a worker that never
    # forgets keeps the old answer for 1 s, counted from the reads before the change, and still fails.
    last: dict = {}

    def all_agree() -> bool:
        last["facts"] = _reads_of(stack, parameter["key"], service)
        bodies = {form: http_api.json_object(fact) for form, fact in last["facts"].items()}
        last["seen"] = {form: (body.get("value"), body.get("version")) for form, body in bodies.items()}
        return all(seen == (value, version) for seen in last["seen"].values())

    poll(all_agree, timeout=ANNOUNCEMENT_DELAY_S, interval=0.02)
    problems = Mismatches(f"{service}'s next reads of {parameter['key']}", "the configuration service forgets "
                          "the reads it kept when a change is announced on config:changes")
    for form, fact in last["facts"].items():
        evidence.record(fact)
        problems.check(last["seen"][form] == (value, version), f"{form}: {value!r} at version {version} within "
                       f"{ANNOUNCEMENT_DELAY_S} s", last["seen"][form], fact)
    problems.raise_any()
