"""Facts about a stack deployed on Docker Swarm (--stack=swarm): its services' specs as swarm keeps
them, and the gateway container that publishes the stack's ports on 127.0.0.1."""
from __future__ import annotations

from docker.errors import NotFound

from steps.probes.docker_engine import client, swarm_containers
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


def replicated_services(stack: str) -> list[str]:
    """The stack's services that run more than one replica."""
    prefix = f"{stack}_"
    found = client().services.list(filters={"label": f"com.docker.stack.namespace={stack}"})
    return sorted(s.name.removeprefix(prefix) for s in found
                  if (s.attrs["Spec"].get("Mode", {}).get("Replicated") or {}).get("Replicas", 1) > 1)


def nodes() -> Fact:
    """The swarm's nodes that can run tasks: {node id: hostname}."""
    return Fact("docker node ls (active and ready)", "swarm",
                {n.id: n.attrs["Description"]["Hostname"] for n in client().nodes.list()
                 if n.attrs["Spec"].get("Availability") == "active" and n.attrs["Status"]["State"] == "ready"})


def replica_health(stack: str, name: str) -> Fact:
    """{container name: Docker health} of the service's running task containers."""
    observed = {c.name: (c.attrs["State"].get("Health") or {}).get("Status", "none")
                for c in swarm_containers(stack, name, running_only=True)}
    return Fact("docker ps --filter label=com.docker.swarm.service.name (health)", f"{name} (stack {stack})", observed)


def update_status(stack: str, name: str) -> Fact:
    """Where the service's last update stands: {"state": "updating" | "completed" | "paused" |
    "rollback_started" | "rollback_completed" | ... | None (never updated), "message": ...}."""
    status = service(stack, name).attrs.get("UpdateStatus") or {}
    return Fact("docker service inspect .UpdateStatus", f"{name} (stack {stack})",
                {"state": status.get("State"), "message": status.get("Message")})


def healthcheck(stack: str, name: str) -> Fact:
    """The healthcheck of the service's spec, as swarm keeps it (durations in nanoseconds)."""
    spec = service(stack, name).attrs["Spec"]["TaskTemplate"]["ContainerSpec"]
    return Fact("docker service inspect .Spec.TaskTemplate.ContainerSpec.Healthcheck", f"{name} (stack {stack})",
                spec.get("Healthcheck"))


def update_config(stack: str, name: str) -> Fact:
    """How swarm rolls out the service's updates (its spec's UpdateConfig; durations in ns)."""
    return Fact("docker service inspect .Spec.UpdateConfig", f"{name} (stack {stack})",
                service(stack, name).attrs["Spec"].get("UpdateConfig") or {})
