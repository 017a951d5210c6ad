"""Steps about the compose orchestration (section 3), checked over every declared service."""
from __future__ import annotations

from pytest_bdd import parsers, then, when

from steps.expect import Mismatches, expect, not_applicable_on_swarm
from steps.harness import interventions
from steps.probes import Fact, compose_model, container_state, networks, start_order
from steps.probes.waiting import poll
from steps.service_checks import (
    STATIC_ADDRESSES,
    check_connections_by_name,
    check_every_service,
    expect_published_through_gateway,
    healthcheck_budget,
)

RESTARTING_POLICIES = {"always", "unless-stopped", "on-failure", "swarm: any", "swarm: on-failure"}


@then(parsers.parse('docker-compose.yml validates with "docker compose config" without a warning'))
def _compose_validates(stack, evidence):
    fact = evidence.record(compose_model.validation(stack.compose.command, stack.compose.context))
    code, said = fact.observed
    expect(code == 0 and not said, "docker compose config", "exit 0, nothing printed", fact.observed, fact)


@then(parsers.parse('docker-compose.yml names its project "{name}" and has no "{key}" key'))
def _compose_v2_form(stack, evidence, name, key):
    keys = evidence.record(compose_model.top_level_keys(stack.settings.compose_file))
    expect(key not in keys.observed and "name" in keys.observed, "top-level keys",
           f"'name' and no '{key}'", keys.observed, keys, "Compose v2 files have no version key")
    declared = stack.settings.compose_file.read_text()
    expect(f"name: {name}\n" in declared, "the project name", name, "another name or none", keys)


@then("every service of the stack network is at its declared address there")
def _declared_addresses(stack, evidence):
    not_applicable_on_swarm(stack, STATIC_ADDRESSES)
    # The exporters and Alertmanager are on the monitoring network only (section S.11).
    problems = Mismatches("service addresses", "every service on the stack network sets its ipv4_address there")
    declared = compose_model.declared_addresses(stack.compose.config, "trading-ecosystem")
    on_network = [s for s, keys in compose_model.declared_networks(stack.compose.config).items()
                  if "trading-ecosystem" in keys and s in stack.services]
    problems.check(bool(on_network), "services on the stack network", "none", None)
    for service in on_network:
        fact = evidence.record(container_state.addresses(stack.project, service))
        observed = fact.observed.get(stack.settings.network_name)
        problems.check(declared[service] is not None and observed == declared[service],
                       f"{service} at {declared[service]}", fact.observed, fact)
    problems.raise_any()


@then("every service reaches every other service it shares a network with, by name")
def _mesh_by_name(stack, evidence):
    ports = compose_model.declared_ports(stack.compose.config)
    networks = compose_model.declared_networks(stack.compose.config)
    check_connections_by_name(stack, evidence, "service-to-service connections by name",
                              [(source, target, port) for source in stack.services for target in stack.services
                               if target != source and networks[source] & networks[target]
                               for _, _, port in ports[target]])


@then("every published port is bound to 127.0.0.1 only, at its declared host port")
def _ports_loopback(stack, evidence):
    problems = Mismatches("published ports", 'publish as "127.0.0.1:<host port>:<port>", never on all interfaces')
    declared = compose_model.declared_ports(stack.compose.config)
    if stack.on_swarm:
        expect_published_through_gateway(stack, evidence, {s: declared[s] for s in stack.services})
        return
    for service in stack.services:
        fact = evidence.record(container_state.published_ports(stack.project, service))
        wanted = {f"{target}/tcp": [("127.0.0.1", published)] for _, published, target in declared[service]}
        problems.check(all(ip == "127.0.0.1" for ip, _, _ in declared[service]) and fact.observed == wanted,
                       f"{service} {wanted}", fact.observed, fact)
    problems.raise_any()


@then("every published port answers on 127.0.0.1")
def _ports_answer(stack, evidence):
    problems = Mismatches("published ports answering")
    for service, ports in compose_model.declared_ports(stack.compose.config).items():
        for _, published, _ in ports:
            fact = evidence.record(networks.host_port_answers(int(published)))
            problems.check(fact.observed, f"{service} on 127.0.0.1:{published}", fact.raw or "no answer", fact)
    problems.raise_any()


@then("every dependency between services waits for the dependency to be healthy")
def _dependencies_healthy(stack, evidence):
    declared = compose_model.declared_dependencies(stack.compose.config)
    fact = evidence.record(Fact("depends_on conditions", "docker compose config", declared))
    wrong = {f"{s} -> {d}": c for s, deps in declared.items() for d, c in deps.items() if c != "service_healthy"}
    expect(not wrong, "depends_on conditions", "service_healthy for every dependency", wrong, fact,
           "write depends_on: {<service>: {condition: service_healthy}}")


@then("no service started before the services it depends on were healthy")
def _started_after_healthy(stack, evidence):
    not_applicable_on_swarm(stack, "swarm has no start order (depends_on is ignored): a task starts when it is "
                                   "scheduled and is replaced until it is healthy")
    problems = Mismatches("start order", "depends_on with condition: service_healthy")
    declared = compose_model.declared_dependencies(stack.compose.config)
    for fact in start_order.start_orders(stack.project, declared, stack.start_record):
        order = evidence.record(fact).observed
        problems.check(order["ok"], f"{order['dependent']} started ({order['dependent_started']}) after "
                       f"{order['dependency']} was healthy",
                       f"{order['detail']} (source: {order['source']})", fact)
    problems.raise_any()


@then("every container is named after its compose project, service and number")
def _container_names(stack, evidence):
    problems = Mismatches("container names",
                          "leave container_name out: compose names containers <project>-<service>-<n>")
    for service in stack.services:
        fact = evidence.record(container_state.container_name(stack.project, service))
        name, number = fact.observed
        # Swarm's form: <stack>_<service>.<slot>.<task id>.
        wanted = f"{stack.project}_{service}.{number}" if stack.on_swarm else f"{stack.project}-{service}-{number}"
        problems.check(name == wanted, wanted, name, fact)
    problems.raise_any()


@then("no service fixes its container name")
def _no_fixed_names(stack, evidence):
    fixed = {s: c["container_name"] for s, c in stack.compose.config["services"].items() if c.get("container_name")}
    fact = evidence.record(Fact("container_name of every service", "docker compose config", fixed))
    expect(not fixed, "fixed container names", "none (two copies of the stack must coexist)", fixed, fact)


@then("every running container has a memory limit and a CPU limit")
def _limits(stack, evidence):
    def judge(service, config):
        limits = {k: config[k] for k in ("memory_bytes", "nano_cpus")}
        return all(limits.values()), f"{service} memory and CPU limited", limits

    check_every_service(stack, evidence, "resource limits", "set deploy.resources.limits.memory and .cpus",
                        container_state.host_config, judge)


@then("every running container restarts unless stopped by hand")
def _restart_policies(stack, evidence):
    check_every_service(stack, evidence, "restart policies", "restart: unless-stopped", container_state.host_config,
                        lambda service, config: (config["restart_policy"] in RESTARTING_POLICIES,
                                                 f"{service}: one of {sorted(RESTARTING_POLICIES)}",
                                                 config["restart_policy"]))


@when("the Redis server process is killed", target_fixture="killed")
def _kill_redis(stack, evidence):
    before = evidence.record(container_state.state(stack.project, "redis")).observed
    pids = interventions.kill_process(stack.project, "redis", "redis-server")
    evidence.record(Fact(f"kill -KILL {' '.join(map(str, pids))} (redis-server)", "host", "sent"))
    return {"service": "redis", "before": before}


@then(parsers.parse('Docker restarts the "{service}" container and it is healthy again within its healthcheck budget'))
def _restarted_healthy(stack, evidence, killed, service):
    budget = healthcheck_budget(stack, service)
    before = killed["before"]

    def restarted_and_healthy():
        now = container_state.state(stack.project, service).observed
        # Swarm replaces the task: a new container, started after the kill.
        again = now["started_at"] != before["started_at"] if stack.on_swarm else \
            now["restart_count"] > before["restart_count"]
        return now if again and now["health"] == "healthy" else None

    after = poll(restarted_and_healthy, timeout=budget, interval=0.25)
    if after is None:
        after = container_state.state(stack.project, service).observed
        fact = evidence.record(Fact("docker inspect .State", service, after))
        expect(False, f"{service} after its process was killed", f"restarted and healthy within {budget:.0f} s",
               after, fact, "restart: unless-stopped")
    evidence.record(Fact("docker inspect .State", service, after))
