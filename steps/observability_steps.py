"""Steps about observability (section 7): Prometheus and its alerts on the running stack, the
telemetry profile's services when they run, and their configuration files in every run."""
from __future__ import annotations

import base64
import secrets
import time

import pytest
import yaml
from pytest_bdd import given, parsers, then, when

from steps.expect import Mismatches, expect, expect_eventually
from steps.harness.settings import TELEMETRY_PROFILE
from steps.phrases import listed
from steps.probes import (
    Fact,
    ProbeError,
    container_exec,
    container_state,
    docker_engine,
    http_api,
    prometheus_server,
    telemetry_files,
)
from steps.probes.telemetry_files import dig
from steps.probes.waiting import poll

PROMETHEUS_SERVICE = "prometheus"
COLLECTOR_FILE = "infra/otel-collector/config.yaml"
JAEGER_FILE = "infra/jaeger/config.yaml"
DATASOURCES_FILE = "infra/grafana/provisioning/datasources/datasources.yaml"
DASHBOARD_PROVIDERS_FILE = "infra/grafana/provisioning/dashboards/dashboards.yaml"
DASHBOARDS_DIR = "infra/grafana/dashboards"
PROMETHEUS_FILE = "infra/prometheus/prometheus.yml"
# First scrapes happen within one scrape interval (5 s) of Prometheus starting.
FIRST_SCRAPE_WAIT_S = 30


def _port(stack) -> int:
    return stack.settings.port("PROMETHEUS_HOST_PORT")


def _file(stack, relative: str):
    """A configuration file of the stack under test (beside its docker-compose.yml)."""
    return stack.settings.compose_file.parent / relative


def _yaml(stack, evidence, relative: str) -> dict:
    try:
        return evidence.record(telemetry_files.load_yaml(_file(stack, relative))).observed
    except ProbeError as error:
        raise AssertionError(str(error)) from None


def _service_model(stack, service: str) -> dict:
    """The service as `docker compose --profile '*' config` models it (profile services included)."""
    return stack.compose.config_all_profiles["services"][service]


def _raw_compose(stack) -> dict:
    """docker-compose.yml as written, before interpolation (to see which values come from the environment)."""
    return yaml.safe_load(stack.settings.compose_file.read_text())


def _published(stack, service: str, target: int) -> bool:
    return any(p.get("target") == target and p.get("host_ip") == "127.0.0.1"
               for p in _service_model(stack, service).get("ports") or [])


# -- Prometheus ---------------------------------------------------------------------------------

@then("Prometheus answers healthy and ready")
def _prometheus_healthy(stack, evidence):
    for path in ("/-/healthy", "/-/ready"):
        fact = evidence.record(http_api.call(_port(stack), "GET", path))
        status = fact.observed["status"]
        expect(status == 200, f"Prometheus {path}", 200, f"{status} {fact.raw[:80]}", fact)


def _by_job(fact: Fact, jobs: list[str]) -> dict:
    return {job: [t for t in fact.observed if t["job"] == job] for job in jobs}


def _targets_by_job(stack, evidence, jobs: list[str]) -> tuple[Fact, dict]:
    """Wait (bounded) until every target of `jobs` has been scraped up, or one has failed two scrapes
    in a row while we watched (down, not starting: Prometheus starts after every target is healthy);
    the last targets Fact and {job: [targets]}, up or not."""
    last, failed_scrapes = {}, {}

    def settled():
        last["fact"] = prometheus_server.targets(_port(stack))
        found = _by_job(last["fact"], jobs)
        for target in (t for targets in found.values() for t in targets):
            if target["health"] == "down":
                failed_scrapes.setdefault(target["url"], set()).add(target["last_scrape"])
            else:
                failed_scrapes.pop(target["url"], None)
        all_up = all(targets and all(t["health"] == "up" for t in targets) for targets in found.values())
        return all_up or any(len(scrapes) >= 2 for scrapes in failed_scrapes.values())

    # The mismatch the caller reports names each target that is not up, with Prometheus's error.
    poll(settled, timeout=FIRST_SCRAPE_WAIT_S, interval=0.5, transient=(ProbeError,))
    fact = evidence.record(last.get("fact") or prometheus_server.targets(_port(stack)))
    return fact, _by_job(fact, jobs)


@then(parsers.parse("Prometheus scrapes the jobs {jobs}, every target up"))
def _every_target_up(stack, evidence, jobs):
    fact, found = _targets_by_job(stack, evidence, listed(jobs))
    problems = Mismatches(f"Prometheus scrape targets (waited up to {FIRST_SCRAPE_WAIT_S} s)",
                          "scrape only endpoints that serve the Prometheus text format: an exporter for Redis "
                          "and PostgreSQL, /metrics for the HTTP services (infra/prometheus/prometheus.yml)")
    for job, targets in found.items():
        problems.check(bool(targets), f"a target for job {job}", "none", fact)
        for target in targets:
            problems.check(target["health"] == "up", f"{target['url']} up", f"{target['health']}: {target['error']}",
                           fact)
    problems.raise_any()


@then("Prometheus refuses its admin and lifecycle APIs")
def _no_admin_api(stack, evidence):
    # Requests that would change nothing even where they are allowed: a reload of the same files and
    # a cleanup of tombstones that no delete created.
    problems = Mismatches("Prometheus's unauthenticated admin and lifecycle APIs",
                          "run Prometheus without --web.enable-admin-api and --web.enable-lifecycle")
    for path in ("/-/reload", "/api/v1/admin/tsdb/clean_tombstones"):
        fact = evidence.record(http_api.call(_port(stack), "POST", path))
        status = fact.observed["status"]
        problems.check(status >= 400 and ("not enabled" in fact.raw or "disabled" in fact.raw),
                       f"POST {path} refused as disabled", f"{status} {fact.raw[:80]}", fact)
    problems.raise_any()


@then("Prometheus holds series from every service:")
def _series_per_service(stack, evidence, datatable):
    header, *rows = datatable
    problems = Mismatches("series in Prometheus", "check the job's scrape target and what its endpoint serves")
    for row in rows:
        wanted = dict(zip(header, row, strict=False))
        expression = f'{wanted["series"]}{{job="{wanted["job"]}"}}'
        found = poll(_series_or_settled(stack, wanted["job"], expression), timeout=FIRST_SCRAPE_WAIT_S,
                     interval=0.5, transient=(ProbeError,))
        if found and found.observed:
            evidence.record(found)
        problems.check(bool(found and found.observed), f"series {expression}",
                       "none after two scrapes of the job" if found else f"none within {FIRST_SCRAPE_WAIT_S} s")
    problems.raise_any()


def _series_or_settled(stack, job: str, expression: str):
    """A poll condition: the query's Fact once it finds series, or once every target of `job` has been
    scraped twice more while we watched without them (a scrape adds its series at once: they will
    not come); else None."""
    scrapes: dict[str, set] = {}

    def condition():
        fact = prometheus_server.query(_port(stack), expression)
        if fact.observed:
            return fact
        for target in prometheus_server.targets(_port(stack)).observed:
            if target["job"] == job:
                scrapes.setdefault(target["url"], set()).add(target["last_scrape"])
        # The first scrape seen may be older than the wait; two more are the job's answer.
        return fact if scrapes and all(len(seen) >= 3 for seen in scrapes.values()) else None

    return condition


def _values(stack, evidence, expression: str) -> list:
    return evidence.record(prometheus_server.query(_port(stack), expression)).observed


@then(parsers.parse('the exporters are logged in: {series} are 1'))
def _exporters_logged_in(stack, evidence, series):
    problems = Mismatches("exporters' own view of their database",
                          "the exporter serves metrics but cannot log in: check the monitor user's password "
                          "in docker-compose.yml and .env")
    for name in listed(series):
        values = _values(stack, evidence, name)
        problems.check(bool(values) and all(v == 1 for _, v in values), f"{name} 1",
                       [v for _, v in values] or "no series")
    problems.raise_any()


@then(parsers.parse('the registry\'s probes of {services} are 1 in "{series}"'))
def _registry_probes(stack, evidence, services, series):
    values = {labels.get("service"): v for labels, v in _values(stack, evidence, series)}
    wanted = {name: 1.0 for name in listed(services)}
    observed = {name: values.get(name) for name in wanted}
    expect(observed == wanted, series, wanted, observed, hint="the registry sets it after each probe of a service "
           "declared in infra/service-registry/infrastructure.json")


# -- alerts -------------------------------------------------------------------------------------

@then(parsers.parse("Prometheus has loaded the alerts {names}"))
def _alerts_loaded(stack, evidence, names):
    fact = evidence.record(prometheus_server.alert_rules(_port(stack)))
    missing = [name for name in listed(names) if name not in fact.observed]
    expect(not missing, "alert rules Prometheus loaded", listed(names), sorted(fact.observed), fact,
           "add them to infra/prometheus/rules/ (missing: " + ", ".join(missing) + ")")


@then("promtool, inside the Prometheus container, finds its configuration valid and passes the alert rules' unit tests")
def _promtool(stack, evidence):
    for command in (["promtool", "check", "config", "/etc/prometheus/prometheus.yml"],
                    ["promtool", "test", "rules", "/etc/prometheus/tests/alerts_test.yml"]):
        fact = evidence.record(container_exec.exec_in(stack.project, PROMETHEUS_SERVICE, command))
        expect(fact.observed.exit_code == 0, " ".join(command), "exit 0",
               f"exit {fact.observed.exit_code}: {fact.observed.output[-600:]}", fact,
               "fix the rule or its test in infra/prometheus/")


@then(parsers.parse('no alert but "{always}" is pending or firing for the healthy stack\'s own services'))
def _nothing_firing(stack, evidence, always):
    # Pending counts too: its condition holds now, and only the stack's age (the rule's `for`)
    # would decide whether it is firing yet. `always` fires by design (the dead man's switch).
    # The alerts of what registers with the registry (label registered="true": E.8) are its own:
    # other scenarios register services that never answer (the registry's tests).
    fact = evidence.record(prometheus_server.alerts(_port(stack)))
    active = [f"{a['name']} ({a['state']}) {a['labels']}" for a in fact.observed
              if a["state"] in ("pending", "firing") and a["name"] != always
              and a["labels"].get("registered") != "true"]
    expect(not active, f"alerts pending or firing, {always} aside", "none", active, fact)


def _await_alerts(stack, evidence, name: str, label: str, value: str, present: bool, seconds: int,
                  hint: str = "") -> list:
    """Poll Prometheus's alerts until the alert `name` with `label`=`value` is there (or gone);
    record the alerts seen then, and return the matching ones; fail after `seconds`."""
    def seen():
        fact = prometheus_server.alerts(_port(stack))
        matching = [a for a in fact.observed if a["name"] == name and a["labels"].get(label) == value]
        return (fact, matching) if bool(matching) == present else None

    fact, matching = expect_eventually(seen, what=f"alert {name} for {label}={value}",
                                       expected="pending or firing" if present else "gone", timeout=seconds,
                                       interval=1, transient=(ProbeError,), hint=hint)
    evidence.record(fact)
    return matching


@then(parsers.parse('Prometheus shows the "{name}" alert for {label} "{value}" pending or firing within {seconds:d} s'))
def _alert_fires(stack, evidence, name, label, value, seconds):
    found = _await_alerts(stack, evidence, name, label, value, True, seconds,
                          hint="check the rule's expression in infra/prometheus/rules/")
    expect(found[0]["state"] in ("pending", "firing"), f"state of {name}", "pending or firing", found[0]["state"])


@then(parsers.parse('the "{name}" alert for {label} "{value}" is gone within {seconds:d} s'))
def _alert_clears(stack, evidence, name, label, value, seconds):
    _await_alerts(stack, evidence, name, label, value, False, seconds)


# -- configuration files (every run) ------------------------------------------------------------

def _listen_port_of_prometheus(stack) -> int:
    """The container port docker-compose.yml publishes Prometheus's UI and API from."""
    return _service_model(stack, PROMETHEUS_SERVICE)["ports"][0]["target"]


def _jaeger_query_port(jaeger: dict) -> int:
    return telemetry_files.endpoint_port(dig(jaeger, "extensions", "jaeger_query", "http", "endpoint")) or 16686


@then(parsers.parse('Grafana\'s provisioned datasources point at the stack\'s services: "{prometheus}" at '
                    '"{prometheus_host}" on the port Prometheus listens on, "{jaeger}" at "{jaeger_host}" on '
                    'Jaeger\'s query port'))
def _datasources(stack, evidence, prometheus, prometheus_host, jaeger, jaeger_host):
    sources = {s.get("name"): s for s in _yaml(stack, evidence, DATASOURCES_FILE).get("datasources") or []}
    wanted = {
        prometheus: f"http://{prometheus_host}:{_listen_port_of_prometheus(stack)}",
        jaeger: f"http://{jaeger_host}:{_jaeger_query_port(_yaml(stack, evidence, JAEGER_FILE))}",
    }
    services = set(stack.compose.config_all_profiles["services"])
    problems = Mismatches(f"datasources in {DATASOURCES_FILE}",
                          "use the compose service name and the port the service listens on inside the network")
    for name, url in wanted.items():
        observed = dig(sources, name, "url")
        problems.check(observed == url, f"{name} at {url}", observed)
    problems.check({prometheus_host, jaeger_host} <= services, "services of docker-compose.yml", sorted(services))
    problems.raise_any()


@then("Grafana reads its admin password from its secret file and downloads nothing at start")
def _grafana_environment(stack, evidence):
    environment = _raw_compose(stack)["services"]["grafana"].get("environment") or {}
    evidence.record(Fact("services.grafana.environment of docker-compose.yml (as written)",
                         str(stack.settings.compose_file), sorted(environment)))
    problems = Mismatches("Grafana's environment in docker-compose.yml")
    problems.check("GF_SECURITY_ADMIN_PASSWORD" not in environment, "no GF_SECURITY_ADMIN_PASSWORD (a password "
                   "in the environment)", environment.get("GF_SECURITY_ADMIN_PASSWORD"))
    password_file = environment.get("GF_SECURITY_ADMIN_PASSWORD__FILE")
    problems.check(password_file == "/run/secrets/grafana_admin_password",
                   "GF_SECURITY_ADMIN_PASSWORD__FILE /run/secrets/grafana_admin_password (handed out by the "
                   "secrets service from GRAFANA_ADMIN_PASSWORD)", password_file or "unset")
    problems.check(not environment.get("GF_INSTALL_PLUGINS"), "GF_INSTALL_PLUGINS empty",
                   environment.get("GF_INSTALL_PLUGINS"))
    problems.check(str(environment.get("GF_PLUGINS_PREINSTALL_DISABLED")).lower() == "true",
                   "GF_PLUGINS_PREINSTALL_DISABLED true", environment.get("GF_PLUGINS_PREINSTALL_DISABLED"))
    problems.raise_any()


def _pipeline_references(stack, evidence, relative: str, who: str):
    problems = telemetry_files.undefined_references(_yaml(stack, evidence, relative))
    expect(not problems, f"{who}'s configuration ({relative})", "every name defined", problems)


@then("Jaeger's pipelines name only components its configuration defines")
def _jaeger_references(stack, evidence):
    _pipeline_references(stack, evidence, JAEGER_FILE, "Jaeger")


@then("the collector's pipelines name only components its configuration defines")
def _collector_references(stack, evidence):
    _pipeline_references(stack, evidence, COLLECTOR_FILE, "the collector")


@then("Jaeger receives OTLP over gRPC and HTTP and serves queries on the port docker-compose.yml publishes")
def _jaeger_ports(stack, evidence):
    jaeger = _yaml(stack, evidence, JAEGER_FILE)
    problems = Mismatches(f"Jaeger's endpoints ({JAEGER_FILE})")
    ports = telemetry_files.otlp_ports(jaeger)
    problems.check(set(ports) == {"grpc", "http"}, "OTLP receiver with grpc and http", ports)
    problems.check("otlp" in dig(jaeger, "service", "pipelines", "traces", "receivers", default=[]),
                   "the traces pipeline receiving otlp", "not receiving otlp")
    query_port = _jaeger_query_port(jaeger)
    problems.check(_published(stack, "jaeger", query_port), f"query port {query_port} published on 127.0.0.1",
                   _service_model(stack, "jaeger").get("ports"))
    problems.raise_any()


@then(parsers.parse('the collector sends traces over OTLP to "{host}" on the port Jaeger receives OTLP gRPC on'))
def _collector_to_jaeger(stack, evidence, host):
    collector = _yaml(stack, evidence, COLLECTOR_FILE)
    jaeger_grpc = telemetry_files.otlp_ports(_yaml(stack, evidence, JAEGER_FILE)).get("grpc")
    exporters = dig(collector, "service", "pipelines", "traces", "exporters", default=[])
    endpoints = [dig(collector, "exporters", name, "endpoint") for name in exporters if name.split("/")[0] == "otlp"]
    expect(f"{host}:{jaeger_grpc}" in endpoints, "the collector's OTLP trace exporter", f"{host}:{jaeger_grpc}",
           endpoints or "no otlp exporter in the traces pipeline", hint=f"see {COLLECTOR_FILE}")


@then("the collector's health extension listens on the port docker-compose.yml publishes")
def _collector_health_port(stack, evidence):
    collector = _yaml(stack, evidence, COLLECTOR_FILE)
    health = dig(collector, "extensions", "health_check")
    port = telemetry_files.endpoint_port(dig(health, "endpoint")) or 13133
    enabled = "health_check" in dig(collector, "service", "extensions", default=[])
    expect(health is not None and enabled, "the collector's health_check extension", "defined and enabled",
           {"defined": health is not None, "enabled": enabled})
    expect(_published(stack, "otel-collector", port), f"port {port} published on 127.0.0.1", port,
           _service_model(stack, "otel-collector").get("ports"))


@then("Prometheus is configured to scrape the collector's own metrics port")
def _collector_scraped(stack, evidence):
    collector = _yaml(stack, evidence, COLLECTOR_FILE)
    readers = dig(collector, "service", "telemetry", "metrics", "readers", default=[])
    own = [dig(reader, "pull", "exporter", "prometheus", "port") for reader in readers]
    jobs = _yaml(stack, evidence, PROMETHEUS_FILE).get("scrape_configs") or []
    # "host:port" of every target, found by DNS or listed.
    scraped = {f"{name}:{config.get('port')}" for job in jobs for config in job.get("dns_sd_configs") or []
               for name in config.get("names") or []}
    scraped |= {target for job in jobs for static in job.get("static_configs") or []
                for target in static.get("targets") or []}
    wanted = [f"otel-collector:{port}" for port in own if port]
    expect(bool(wanted) and set(wanted) <= scraped, "Prometheus scrape of the collector's own metrics",
           wanted or "a telemetry.metrics prometheus reader", sorted(scraped),
           hint=f"see {PROMETHEUS_FILE} and {COLLECTOR_FILE}")


def _dashboards(stack, evidence) -> dict:
    """{title: dashboard} of the JSON files in the dashboards folder."""
    found = {}
    for path in sorted(_file(stack, DASHBOARDS_DIR).glob("*.json")):
        try:
            dashboard = evidence.record(telemetry_files.load_json(path)).observed
        except ProbeError as error:
            raise AssertionError(str(error)) from None
        found[dashboard.get("title")] = dashboard
    return found


@then(parsers.parse('Grafana provisions the "{title}" dashboard from the folder docker-compose.yml mounts'))
def _dashboard_provisioned_from_files(stack, evidence, title):
    providers = _yaml(stack, evidence, DASHBOARD_PROVIDERS_FILE).get("providers") or []
    paths = [dig(p, "options", "path") for p in providers]
    mounts = {v.get("target"): v.get("source") for v in _service_model(stack, "grafana").get("volumes") or []}
    folder = str(_file(stack, DASHBOARDS_DIR).resolve())
    expect(any(mounts.get(path) == folder for path in paths), "Grafana's dashboard provider path",
           f"the mount of {DASHBOARDS_DIR}", {"provider paths": paths, "mounts": mounts})
    titles = sorted(t for t in _dashboards(stack, evidence) if t)
    expect(title in titles, f"dashboards in {DASHBOARDS_DIR}", title, titles)


@then(parsers.parse("the dashboard has panels for {titles}"))
def _dashboard_panels(stack, evidence, titles):
    dashboard = _dashboards(stack, evidence).get("Infrastructure overview") or {}
    have = {title for title, _ in telemetry_files.dashboard_queries(dashboard)}
    missing = [t for t in listed(titles) if t not in have]
    expect(not missing, "panels with a query", listed(titles), sorted(have), hint=f"missing: {missing}")


@then("every query of the dashboard names only series that Prometheus holds, and Prometheus evaluates it")
def _dashboard_queries_work(stack, evidence):
    # Prometheus knows a series once it has scraped its target: on a stack started a moment ago
    # (or this scenario run first, as a parallel run may), wait until none is left unscraped.
    poll(lambda: all(t["health"] != "unknown" for t in prometheus_server.targets(_port(stack)).observed),
         timeout=FIRST_SCRAPE_WAIT_S, interval=0.5, transient=(ProbeError,))
    known = evidence.record(prometheus_server.metric_names(_port(stack))).observed
    problems = Mismatches("dashboard queries against this Prometheus",
                          "name series the exporters and services really export "
                          "(see Prometheus's /api/v1/label/__name__/values)")
    for dashboard in _dashboards(stack, evidence).values():
        for panel, expression in telemetry_files.dashboard_queries(dashboard):
            unknown = sorted(telemetry_files.metric_names_in(expression) - known)
            problems.check(not unknown, f"{panel}: {expression} naming known series", f"unknown {unknown}")
            try:
                prometheus_server.query(_port(stack), expression)
            except ProbeError as error:
                problems.check(False, f"{panel}: {expression} evaluated", str(error))
    problems.raise_any()


# -- the telemetry profile, when it runs --------------------------------------------------------

@given(parsers.parse('the "{service}" service of the telemetry profile is running'))
def _telemetry_running(stack, evidence, service):
    if evidence.record(container_state.running(stack.project, service)).observed:
        return
    image = _service_model(stack, service).get("image")
    if not evidence.record(docker_engine.image_present(image)).observed:
        pytest.skip(f"{service} is not running: its image {image} is not on this machine, and runs never pull. "
                    f"`docker pull {image}` where a registry is reachable: up mode then starts the "
                    f"{TELEMETRY_PROFILE} profile")
    pytest.skip(f"{service} is not running in this stack although its image {image} is present; start it with "
                f"`docker compose --profile {TELEMETRY_PROFILE} up -d`")


def _grafana(stack, path: str) -> Fact:
    """GET `path` from Grafana's API as its admin (basic auth, the password from the env file)."""
    credentials = base64.b64encode(f"admin:{stack.settings.secret('GRAFANA_ADMIN_PASSWORD')}".encode()).decode()
    return http_api.call(stack.settings.port("GRAFANA_HOST_PORT"), "GET", path,
                         headers={"Authorization": f"Basic {credentials}"})


@then("Grafana's health API answers ok on 127.0.0.1 at host port GRAFANA_HOST_PORT")
def _grafana_health(stack, evidence):
    fact = evidence.record(_grafana(stack, "/api/health"))
    expect(fact.observed["status"] == 200 and (fact.observed["body"] or {}).get("database") == "ok",
           "Grafana /api/health", "200 with database ok", fact.observed, fact)


@then(parsers.parse('Grafana reports the "{uid}" datasource healthy'))
def _grafana_datasource(stack, evidence, uid):
    fact = evidence.record(_grafana(stack, f"/api/datasources/uid/{uid}/health"))
    expect(fact.observed["status"] == 200 and str((fact.observed["body"] or {}).get("status")).upper() == "OK",
           f"Grafana datasource {uid} health", "200 with status OK", fact.observed, fact)


@then(parsers.parse('Grafana lists the "{title}" dashboard'))
def _grafana_dashboard(stack, evidence, title):
    fact = evidence.record(_grafana(stack, "/api/search?type=dash-db"))
    titles = [d.get("title") for d in fact.observed["body"] or []] if isinstance(fact.observed["body"], list) else []
    expect(title in titles, "Grafana's dashboards", title, titles, fact)


@when("a span is sent to the collector over OTLP/HTTP", target_fixture="sent_trace")
def _send_span(stack, evidence):
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    now = time.time_ns()
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "tse-acceptance"}}]},
        "scopeSpans": [{"scope": {"name": "tse-acceptance"}, "spans": [{
            "traceId": trace_id, "spanId": span_id, "name": "acceptance-probe", "kind": 1,
            "startTimeUnixNano": str(now - 1_000_000), "endTimeUnixNano": str(now)}]}]}]}
    fact = evidence.record(http_api.call(stack.settings.port("OTEL_HTTP_HOST_PORT"), "POST", "/v1/traces", json=body))
    expect(fact.observed["status"] == 200, "OTLP/HTTP export to the collector", 200, fact.observed["status"], fact)
    return trace_id


@then(parsers.parse("Jaeger's query API finds the span's trace within {seconds:d} s"))
def _trace_found(stack, evidence, sent_trace, seconds):
    port = stack.settings.port("JAEGER_UI_HOST_PORT")

    def found():
        fact = http_api.call(port, "GET", f"/api/traces/{sent_trace}")
        return fact if fact.observed["status"] == 200 and (fact.observed["body"] or {}).get("data") else None

    expect_eventually(found, what=f"trace {sent_trace}", expected="in Jaeger", timeout=seconds, interval=1,
                      transient=(ProbeError,), evidence=evidence)


@then("the collector's health extension answers on 127.0.0.1 at host port OTEL_HEALTH_HOST_PORT")
def _collector_health(stack, evidence):
    fact = evidence.record(http_api.call(stack.settings.port("OTEL_HEALTH_HOST_PORT"), "GET", "/"))
    expect(fact.observed["status"] == 200, "the collector's health extension", 200, fact.observed, fact)

