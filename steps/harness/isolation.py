"""Up mode runs under a compose project of its own and never touches another project's containers,
networks or volumes: when the documented ports, network name or subnet are taken by something
else, it moves to free ones (unless they were set explicitly, then it stops with a clear error)."""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import replace

from steps.harness.settings import PORT_VARIABLES, StackSettings
from steps.probes import docker_engine
from steps.probes.facts import StackError


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def used_subnets() -> list:
    """The subnets of every docker network on this engine."""
    subnets = []
    for net in docker_engine.client().networks.list():
        for config in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if config.get("Subnet"):
                subnets.append(ipaddress.ip_network(config["Subnet"], strict=False))
    return subnets


def monitoring_subnet(prefix: str) -> str:
    """The monitoring network's subnet that goes with the stack network's prefix "172.N": 172.16.N.0/24."""
    return f"172.16.{prefix.split('.')[1]}.0/24"


def free_subnet(candidates, avoid=()) -> str | None:
    """The first subnet of `candidates` that overlaps no docker network and none of `avoid`."""
    taken = used_subnets() + [ipaddress.ip_network(a, strict=False) for a in avoid]
    return next((c for c in candidates if not any(ipaddress.ip_network(c).overlaps(t) for t in taken)), None)


def free_subnet_prefix(candidates=range(21, 32)) -> str | None:
    """The first "172.N" (N from `candidates`) whose /16, and whose monitoring subnet, overlap no
    docker network; None when all do."""
    used = used_subnets()
    return next((f"172.{n}" for n in candidates
                 if not any(ipaddress.ip_network(f"172.{n}.0.0/16").overlaps(u)
                            or ipaddress.ip_network(monitoring_subnet(f"172.{n}")).overlaps(u) for u in used)), None)


def _move_taken_ports(settings: StackSettings, values: dict, notes: list, conflicts: list) -> None:
    """Each port something listens on moves to a free one, unless it was set explicitly."""
    for variable in PORT_VARIABLES:
        port = int(values[variable])
        if _port_is_free(port):
            continue
        if variable in settings.explicit:
            conflicts.append(f"127.0.0.1:{port} ({variable}) is in use")
        else:
            values[variable] = str(free_port())
            notes.append(f"127.0.0.1:{port} is in use, so {variable}={values[variable]}")


def _move_taken_network_name(settings: StackSettings, values: dict, notes: list, conflicts: list) -> None:
    """A network name another project holds becomes the compose project's, unless set explicitly."""
    if not docker_engine.client().networks.list(names=[values["TSE_NETWORK_NAME"]]):
        return
    if "TSE_NETWORK_NAME" in settings.explicit:
        conflicts.append(f"docker network {values['TSE_NETWORK_NAME']} exists (TSE_NETWORK_NAME)")
    else:
        values["TSE_NETWORK_NAME"] = settings.project
        notes.append(f"network trading-ecosystem exists, so TSE_NETWORK_NAME={settings.project}")


def _move_taken_subnet(settings: StackSettings, values: dict, notes: list, conflicts: list) -> None:
    """A stack subnet that overlaps a docker network moves to a free 172.N, unless set explicitly."""
    wanted = ipaddress.ip_network(f"{values['TSE_SUBNET_PREFIX']}.0.0/16")
    if not any(wanted.overlaps(u) for u in used_subnets()):
        return
    if "TSE_SUBNET_PREFIX" in settings.explicit:
        conflicts.append(f"subnet {wanted} overlaps a docker network (TSE_SUBNET_PREFIX)")
        return
    free = free_subnet_prefix()
    if free is None:
        conflicts.append("no free 172.21-31.0.0/16 subnet for an isolated stack")
    else:
        values["TSE_SUBNET_PREFIX"] = free
        notes.append(f"subnet {wanted} is in use, so TSE_SUBNET_PREFIX={free}")


def _move_taken_monitoring_subnet(settings: StackSettings, values: dict, notes: list, conflicts: list) -> None:
    """A monitoring subnet that overlaps a docker network moves to the one that goes with the stack's
    (possibly moved) prefix, unless set explicitly. Runs after _move_taken_subnet."""
    monitoring = ipaddress.ip_network(values["TSE_MONITORING_SUBNET"], strict=False)
    if not any(monitoring.overlaps(u) for u in used_subnets()):
        return
    if "TSE_MONITORING_SUBNET" in settings.explicit:
        conflicts.append(f"subnet {monitoring} overlaps a docker network (TSE_MONITORING_SUBNET)")
        return
    moved = monitoring_subnet(values["TSE_SUBNET_PREFIX"])
    if any(ipaddress.ip_network(moved).overlaps(u) for u in used_subnets()):
        conflicts.append(f"subnet {monitoring} and {moved} overlap docker networks (TSE_MONITORING_SUBNET)")
    else:
        values["TSE_MONITORING_SUBNET"] = moved
        notes.append(f"subnet {monitoring} is in use, so TSE_MONITORING_SUBNET={moved}")


def isolate(settings: StackSettings) -> tuple[StackSettings, list[str]]:
    """Move the stack off ports, network name and subnet that something else holds.

    Returns the settings to use and a note per change. Raises StackError when a taken resource was
    set explicitly, naming it and what to do.
    """
    values, notes, conflicts = dict(settings.values), [], []
    # In this order: the monitoring subnet follows the stack's subnet prefix, moved or not.
    for move in (_move_taken_ports, _move_taken_network_name, _move_taken_subnet, _move_taken_monitoring_subnet):
        move(settings, values, notes, conflicts)
    if conflicts:
        raise StackError(
            "cannot bring up an isolated stack: " + "; ".join(conflicts)
            + ". Hint: stop what holds them, choose other values, or test the running stack with --stack=attach."
        )
    return replace(settings, values=values), notes
