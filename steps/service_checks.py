"""Checks that several features' steps share, over the stack's services: every service probed side
by side and judged once, connections opened by name from inside the network, named volumes, ports
published on swarm through the gateway, and a service's healthcheck budget. Not step definitions:
step modules import these, never each other."""
from __future__ import annotations

from steps.expect import Mismatches, expect
from steps.probes import compose_model, container_exec, container_state, docker_engine, swarm_engine

STATIC_ADDRESSES = ("swarm gives a task any address of the subnet (ipv4_address is ignored); services are found "
                    "by name")


def check_every_service(stack, evidence, what: str, hint: str, probe, judge) -> None:
    """`probe(project, service)` for every service of the stack, each fact recorded; `judge(service,
    observed)` gives (ok, expected, observed shown); fail once, listing every service that is not."""
    problems = Mismatches(what, hint)
    for service, fact in docker_engine.each_service(stack.project, stack.services, probe).items():
        evidence.record(fact)
        ok, expected, shown = judge(service, fact.observed)
        problems.check(ok, expected, shown, fact)
    problems.raise_any()


def check_connections_by_name(stack, evidence, what: str, connections) -> None:
    """Open each (source, target, port) connection from inside the source's container, by the
    target's name; fail once, listing every one that did not connect."""
    problems = Mismatches(what)
    by_source: dict[str, list] = {}
    for source, target, port in connections:
        by_source.setdefault(source, []).append((target, port))
    for source, targets in by_source.items():
        fact = evidence.record(container_exec.tcp_connects_from(stack.project, source, targets))
        for target, port in targets:
            error = fact.observed[f"{target}:{port}"]
            problems.check(error is None, f"{source} -> {target}:{port}", error, fact)
    problems.raise_any()


def expect_named_volume(stack, evidence, service: str, path: str, volume: str) -> None:
    """`path` in the service's container is the stack's named volume `volume`."""
    fact = evidence.record(container_state.mounts(stack.project, service))
    mount = fact.observed.get(path, {})
    wanted = {"type": "volume", "name": f"{stack.project}_{volume}"}
    observed = {"type": mount.get("type"), "name": mount.get("name")}
    expect(observed == wanted, f"{service} mount at {path}", wanted, observed, fact,
           f"mount the named volume {volume} at {path} in docker-compose.yml")


def expect_published_through_gateway(stack, evidence, declared: dict) -> None:
    """Swarm's form of "published on 127.0.0.1 only": no service publishes a port (swarm would bind
    every interface), and the gateway publishes each declared port on 127.0.0.1 only, at its host port.
    `declared` is {service: [(host_ip, published, target)]}."""
    problems = Mismatches("ports on swarm", "publish no port in the stack file; the gateway publishes on 127.0.0.1")
    gateway = evidence.record(swarm_engine.gateway_ports(stack.project))
    for service, ports in declared.items():
        fact = evidence.record(swarm_engine.service_published_ports(stack.project, service))
        problems.check(fact.observed == [], f"{service}: no port published by swarm", fact.observed, fact)
        for host_ip, published, target in ports:
            wanted = [("127.0.0.1", published)]
            problems.check(host_ip == "127.0.0.1" and gateway.observed.get(f"{target}/tcp") == wanted,
                           f"gateway: {target}/tcp for {service} on {wanted}", gateway.observed.get(f"{target}/tcp"),
                           gateway)
    problems.raise_any()


def healthcheck_budget(stack, service: str) -> float:
    """Seconds a restarted container may take to be healthy: its start period, then its retries."""
    declared = compose_model.declared_healthcheck(stack.compose.config, service)
    return declared["start_period"] + (declared["retries"] or 3) * (declared["interval"] + declared["timeout"])
