"""Facts about a stack deployed on Docker Swarm (--stack=swarm): its services' specs as swarm keeps
them, and the gateway container that publishes the stack's ports on 127.0.0.1."""
from __future__ import annotations

from docker.errors import NotFound

from steps.probes.docker_engine import client
from steps.probes.facts import Fact, ProbeError


def gateway_name(stack: str) -> str:
    """The gateway container of swarm stack `stack` (a plain container: swarm cannot bind 127.0.0.1)."""
    return f"{stack}-gateway"


def service(stack: str, name: str):
    """The swarm service `name` of `stack`; ProbeError when absent."""
    full = f"{stack}_{name}"
    found = [s for s in client().services.list(filters={"name": full}) if s.name == full]
    if not found:
        raise ProbeError(f"service {name}: no swarm service {full}")
    return found[0]


def service_published_ports(stack: str, name: str) -> Fact:
    """The ports swarm publishes for the service (ingress or host mode): [(published, target, mode)]."""
    endpoint = service(stack, name).attrs.get("Endpoint", {}).get("Spec", {})
    observed = sorted((p.get("PublishedPort"), p.get("TargetPort"), p.get("PublishMode"))
                      for p in endpoint.get("Ports") or [])
    return Fact("docker service inspect .Endpoint.Spec.Ports", f"{name} (stack {stack})", observed)


def gateway_ports(stack: str) -> Fact:
    """The gateway's published ports: {"6379/tcp": [("127.0.0.1", "6379")], ...}."""
    try:
        gateway = client().containers.get(gateway_name(stack))
    except NotFound:
        raise ProbeError(f"stack {stack}: no gateway container {gateway_name(stack)}") from None
    ports = gateway.attrs["NetworkSettings"].get("Ports") or {}
    observed = {port: sorted((b.get("HostIp"), b.get("HostPort")) for b in bindings)
                for port, bindings in ports.items() if bindings}
    return Fact("docker inspect .NetworkSettings.Ports", gateway_name(stack), observed)


def replicas(stack: str, name: str) -> Fact:
    """Replicas wanted and the tasks' states: {"wanted": n, "tasks": {task id: (state, node id)}} of the
    tasks swarm wants running."""
    found = service(stack, name)
    wanted = (found.attrs["Spec"].get("Mode", {}).get("Replicated") or {}).get("Replicas", 1)
    running = found.tasks(filters={"desired-state": "running"})
    tasks = {t["ID"]: (t["Status"]["State"], t.get("NodeID")) for t in running}
    return Fact("docker service ps", f"{name} (stack {stack})", {"wanted": wanted, "tasks": tasks})
