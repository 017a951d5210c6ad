"""Steps of section E (extra) for the ecosystem's services deployed as its orchestrator deploys them
(sk-quantfidential/trading-ecosystem-orchestrator-docker): docker-compose.ecosystem.yml beside the
stack (E.5) and the configuration reads the simulators send to CONFIG_SERVICE_URL, the registry's
address (E.6)."""
from __future__ import annotations

import urllib.parse
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from pytest_bdd import parsers, then, when

from steps.expect import Mismatches, expect, not_applicable_on_swarm
from steps.harness import scratch
from steps.harness.settings import read_env_file
from steps.phrases import listed
from steps.probes import compose_model, http_api
from steps.service_checks import STATIC_ADDRESSES

ECOSYSTEM_FILE = "docker-compose.ecosystem.yml"
TELEMETRY_PROFILE = "telemetry"
# The configuration service's types, as custodian-simulator-go's ConfigValueType numbers them.
TYPE_NUMBERS = {"string": 0, "number": 1, "boolean": 2, "json": 3}
REGISTRY = "service-registry"


def _address_in(model: dict, service: str) -> str | None:
    networks = model["services"].get(service, {}).get("networks") or {}
    return (networks.get("trading-ecosystem") or {}).get("ipv4_address")


def _ecosystem_services(stack, model: dict) -> set:
    """The services docker-compose.ecosystem.yml adds to `model` (those the stack's own file does not declare)."""
    return set(model["services"]) - set(stack.compose.config_all_profiles["services"])


def _model(stack):
    folder = stack.settings.compose_file.parent
    return compose_model.model_as_users_run_it(folder, [stack.settings.compose_file.name, ECOSYSTEM_FILE],
                                               ".env.example", [TELEMETRY_PROFILE])


@then(parsers.parse(f"docker-compose.yml with {ECOSYSTEM_FILE} and .env.example makes a valid compose model that "
                    "holds every service of the orchestrator's compose at its address and host ports:"),
      target_fixture="ecosystem_model")
def _ecosystem_model(stack, evidence, datatable):
    fact = evidence.record(_model(stack))
    expect(fact.observed["exit_code"] == 0, "docker compose config of both files", "a valid model",
           fact.observed["errors"], fact, hint=f"docker compose -f docker-compose.yml -f {ECOSYSTEM_FILE} config")
    model = fact.observed["model"]
    prefix = read_env_file(stack.settings.compose_file.parent / ".env.example")["TSE_SUBNET_PREFIX"]
    header, *rows = datatable
    problems = Mismatches(f"the orchestrator's services in {ECOSYSTEM_FILE}",
                          "the orchestrator's compose gives each its address and host ports")
    for row in rows:
        wanted = dict(zip(header, row, strict=False))
        service = model["services"].get(wanted["service"])
        problems.check(service is not None, f"service {wanted['service']}", "absent", fact)
        if service is None:
            continue
        address = f"{prefix}.0.{wanted['address']}"
        problems.check(_address_in(model, wanted["service"]) == address, f"{wanted['service']} at {address}",
                       _address_in(model, wanted["service"]), fact)
        ports = sorted(published for _, published, _ in compose_model.published_host_ports(service))
        problems.check(ports == sorted(listed(wanted["host ports"])),
                       f"{wanted['service']} publishing host ports {wanted['host ports']}", ports, fact)
    problems.raise_any()
    return model


@then(parsers.parse("in that model, telemetry profile included, no address and no host port is named twice, "
                    "and the stack publishes neither port the milestone document gives audit-correlator: "
                    "{ports}"))
def _no_collision(stack, evidence, ecosystem_model, ports):
    holders = defaultdict(list)
    for name, service in ecosystem_model["services"].items():
        for network, attached in (service.get("networks") or {}).items():
            if (attached or {}).get("ipv4_address"):
                holders[f"address {attached['ipv4_address']} on {network}"].append(name)
        for host_ip, published, protocol in compose_model.published_host_ports(service):
            holders[f"host port {host_ip}:{published}/{protocol}"].append(name)
    problems = Mismatches("addresses and host ports of the stack and the ecosystem's services",
                          "move the stack's default (docker-compose.yml and .env.example), never the ecosystem's")
    for what, names in sorted(holders.items()):
        problems.check(len(names) == 1, f"{what} held once", f"held by {', '.join(sorted(names))}")
    ecosystem = _ecosystem_services(stack, ecosystem_model)
    for port in listed(ports):
        taken = sorted(name for name, service in ecosystem_model["services"].items() if name not in ecosystem
                       and any(published == port for _, published, _ in compose_model.published_host_ports(service)))
        problems.check(not taken, f"host port {port} left to audit-correlator", f"published by {', '.join(taken)}")
    problems.raise_any()


def _endpoint(url: str) -> tuple:
    parsed = urllib.parse.urlsplit(url)
    return parsed.hostname, parsed.port


@then("in that model every ecosystem service's settings name this stack: REDIS_URL Redis's address, POSTGRES_URL "
      "PostgreSQL's, SERVICE_REGISTRY_URL and CONFIG_SERVICE_URL the registry's, OTEL_EXPORTER_ENDPOINT Jaeger's")
def _settings_name_the_stack(stack, evidence, ecosystem_model):
    targets = {"REDIS_URL": ("redis", 6379), "POSTGRES_URL": ("postgres", 5432),
               "SERVICE_REGISTRY_URL": (REGISTRY, 8080), "CONFIG_SERVICE_URL": (REGISTRY, 8080),
               "OTEL_EXPORTER_ENDPOINT": ("jaeger", 4317)}
    problems = Mismatches("the ecosystem's settings against the stack's addresses",
                          "a service's address and port in docker-compose.yml, where the orchestrator put it")
    ecosystem = sorted(_ecosystem_services(stack, ecosystem_model))
    problems.check(bool(ecosystem), f"services in {ECOSYSTEM_FILE}", "none")
    for name in ecosystem:
        environment = ecosystem_model["services"][name].get("environment") or {}
        for variable in ("REDIS_URL", "POSTGRES_URL"):
            problems.check(variable in environment, f"{name} sets {variable}", "unset")
        for variable, (target, port) in targets.items():
            if variable in environment:
                where = (_address_in(ecosystem_model, target), port)
                problems.check(_endpoint(environment[variable]) == where, f"{name} {variable} at {target} {where}",
                               _endpoint(environment[variable]))
    problems.raise_any()


@when(parsers.parse("each service reads a parameter as its code does, from its own address on the ecosystem's "
                    "network, at CONFIG_SERVICE_URL, the registry's address:"), target_fixture="configuration_reads")
def _configuration_reads(stack, evidence, datatable):
    not_applicable_on_swarm(stack, STATIC_ADDRESSES)
    header, *rows = datatable
    base = f"http://{stack.settings.address('0.30')}:8080"
    wanted = [dict(zip(header, row, strict=False)) for row in rows]
    for read in wanted:
        name, _, value = read["header"].partition(":")
        read["headers"] = {name.strip(): value.strip()} if read["header"] else {}

    def from_its_address(read: dict):
        return scratch.http_gets_from_address(
            stack.settings.network_name, (stack.project, REGISTRY), stack.settings.address(f"0.{read['from']}"),
            [(base + read["request"], read["headers"])])

    # Each service's container at once: they are independent, and one after another costs seconds.
    with ThreadPoolExecutor(max_workers=len(wanted) or 1) as pool:
        facts = list(pool.map(from_its_address, wanted))
    return [{**read, "answer": evidence.record(fact).observed[0], "fact": fact} for read, fact in zip(wanted, facts,
                                                                                                       strict=True)]


def _key(request: str) -> str:
    parsed = urllib.parse.urlsplit(request)
    return urllib.parse.parse_qs(parsed.query).get("key", [parsed.path.rsplit("/", 1)[-1]])[0]


def _own_answer(stack, evidence, read: dict) -> dict:
    """The configuration service's own answer to the same read (asked from the host, flat)."""
    parsed = urllib.parse.urlsplit(read["request"])
    path = parsed.path.replace("/configuration", "/api/v1/configuration") if parsed.path == "/configuration" \
        else parsed.path
    fact = evidence.record(http_api.call(stack.settings.port("CONFIG_HOST_PORT"), "GET",
                                         path + (f"?{parsed.query}" if parsed.query else ""), headers=read["headers"]))
    return http_api.json_object(fact)


@then("every read is answered 200 in the shape that service's client parses, with the value the configuration "
      "service itself answers")
def _reads_in_their_shapes(stack, evidence, configuration_reads):
    problems = Mismatches("configuration reads at the registry's address",
                          "the registry forwards them to the configuration service (registry/configuration_route.py)")
    for read in configuration_reads:
        answer, service, key = read["answer"], read["service"], _key(read["request"])
        body = answer["body"] if isinstance(answer["body"], dict) else {}
        own = _own_answer(stack, evidence, read)
        problems.check(answer["status"] == 200, f"{service}: GET {read['request']} answered 200",
                       f"{answer['status']} {str(answer['body'])[:160]}", read["fact"])
        if answer["status"] != 200:
            continue
        shape = read["answer shape"]
        if shape == "envelope":
            data = body.get("data") if isinstance(body.get("data"), list) else []
            found = data[0] if data and isinstance(data[0], dict) else {}
            problems.check(body.get("success") is True and found.get("key") == key
                           and found.get("value") == own.get("value"),
                           f"{service}: success true, data[0] {key} = {own.get('value')!r}", body, read["fact"])
            continue
        wanted_type = TYPE_NUMBERS.get(own.get("type")) if shape == "flat, type as a number" else own.get("type")
        problems.check(body.get("key") == key and body.get("value") == own.get("value")
                       and body.get("type") == wanted_type,
                       f"{service}: key {key}, value {own.get('value')!r}, type {wanted_type!r}",
                       {k: body.get(k) for k in ("key", "value", "type")}, read["fact"])
    problems.raise_any()
