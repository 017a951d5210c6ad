"""Steps about the stack's containers, network, published ports, volumes and Docker health."""
from __future__ import annotations

from pytest_bdd import given, parsers, then

from steps.expect import Mismatches, expect, not_applicable_on_swarm
from steps.probes import container_exec, container_state, docker_engine, networks
from steps.service_checks import (
    STATIC_ADDRESSES,
    check_connections_by_name,
    expect_named_volume,
    expect_published_through_gateway,
)


@given("the trading-ecosystem stack is up")
def _stack_is_up(stack, evidence):
    """Brings the stack up on first use (session fixture); the scenario probes it as it is."""
    for service in stack.services:
        evidence.record(container_state.health(stack.project, service))


@then(parsers.parse('the services "{first}" and "{second}" each run one container of the stack\'s compose project'))
def _services_run(stack, evidence, first, second):
    problems = Mismatches("services brought up with Docker", "see `docker compose ps -a` for the project")
    for service in (first, second):
        fact = evidence.record(docker_engine.running_containers(stack.project, service))
        problems.check(len(fact.observed) == 1, f"one running {service} container", fact.observed, fact)
    problems.raise_any()


@then("the stack network is a bridge network with the declared subnet and gateway")
def _network_declared(stack, evidence):
    settings = stack.settings
    fact = evidence.record(networks.network(settings.network_name))
    net = fact.observed
    expected = {"driver": "bridge", "subnet": settings.subnet, "gateway": settings.gateway, "project": stack.project}
    if stack.on_swarm:
        # Swarm's form: an overlay network, which the ecosystem's services and probes may join.
        expected.update(driver="overlay", attachable=True)
    observed = {k: net[k] for k in expected}
    expect(observed == expected, f"network {settings.network_name}", expected, observed, fact,
           "see networks: in docker-compose.yml")


@then(parsers.parse('the "{service}" service is at address {suffix} on the stack network'))
def _service_address(stack, evidence, service, suffix):
    not_applicable_on_swarm(stack, STATIC_ADDRESSES)
    fact = evidence.record(container_state.addresses(stack.project, service))
    wanted = stack.settings.address(suffix)
    observed = fact.observed.get(stack.settings.network_name)
    expect(observed == wanted, f"{service} address on {stack.settings.network_name}", wanted,
           fact.observed, fact, f"set ipv4_address of {service} in docker-compose.yml")


@then(parsers.parse('the "{service}" service publishes port {port:d} on 127.0.0.1 only, at host port {variable}'))
def _published_port(stack, evidence, service, port, variable):
    if stack.on_swarm:
        expect_published_through_gateway(stack, evidence, {service: [("127.0.0.1", str(stack.settings.port(variable)),
                                                                       port)]})
        return
    fact = evidence.record(container_state.published_ports(stack.project, service))
    wanted = {f"{port}/tcp": [("127.0.0.1", str(stack.settings.port(variable)))]}
    expect(fact.observed == wanted, f"{service} published ports", wanted, fact.observed, fact,
           'publish as "127.0.0.1:${' + variable + '}:' + str(port) + '", never on all interfaces')


@then(parsers.parse('the "{service}" service keeps {path} on the named volume "{volume}"'))
def _named_volume(stack, evidence, service, path, volume):
    expect_named_volume(stack, evidence, service, path, volume)


@then(parsers.parse('the "{service}" service has at least {mib:d} MiB of shared memory'))
def _shm_size(stack, evidence, service, mib):
    fact = evidence.record(container_state.host_config(stack.project, service))
    observed = fact.observed["shm_size_bytes"] // 2**20
    expect(observed >= mib, f"{service} /dev/shm size", f">= {mib} MiB", f"{observed} MiB", fact,
           "set shm_size in docker-compose.yml (Docker's default is 64 MiB)")


@then(parsers.parse('the "{service}" service reports Docker health status "{status}"'))
def _service_health(stack, evidence, service, status):
    fact = evidence.record(container_state.health(stack.project, service))
    expect(fact.observed == status, f"{service} health", status, f"{fact.observed} (last output: {fact.raw!r})",
           fact, "a service without a healthcheck reports none")


@then(parsers.parse('every service of the stack reports Docker health status "{status}"'))
def _every_service_health(stack, evidence, status):
    problems = Mismatches("health of every service", "docker inspect shows each healthcheck's last output")
    for service in stack.services:
        fact = evidence.record(container_state.health(stack.project, service))
        problems.check(fact.observed == status, f"{service} {status}", f"{fact.observed} ({fact.raw!r})", fact)
    problems.raise_any()


@then(parsers.parse('inside the network, "{first}" on port {first_port:d} and "{second}" on port {second_port:d} '
                    'answer by name'))
def _reachable_by_name(stack, evidence, first, first_port, second, second_port):
    # Each service is reached from the *other* service's container, through docker's DNS.
    check_connections_by_name(stack, evidence, "name resolution and TCP inside the network",
                              [(second, first, first_port), (first, second, second_port)])


@then("every service's own healthcheck passes when run now")
def _every_healthcheck_now(stack, evidence):
    # Docker's status can lag a degraded service by interval x retries; running the check now cannot.
    problems = Mismatches("healthchecks run now")
    for service, fact in docker_engine.each_service(stack.project, stack.services,
                                                    container_exec.run_healthcheck).items():
        evidence.record(fact)
        problems.check(fact.observed.exit_code == 0, f"{service} healthcheck exit 0", fact.observed, fact)
    problems.raise_any()
