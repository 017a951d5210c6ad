"""Docker networks and reachability from the host: a network's settings and members, the host's
routing table, whether a published port answers on 127.0.0.1."""
from __future__ import annotations

from pathlib import Path

from docker.errors import NotFound

from steps.probes.docker_engine import STACK_NAMESPACE, client
from steps.probes.facts import Fact, ProbeError


def network(name: str) -> Fact:
    """A docker network's driver, subnet, gateway and attached containers' addresses."""
    try:
        attrs = client().networks.get(name).attrs
    except NotFound:
        raise ProbeError(f"network {name} does not exist") from None
    ipam = (attrs.get("IPAM", {}).get("Config") or [{}])[0]
    observed = {
        "name": attrs["Name"],
        "driver": attrs.get("Driver"),
        "subnet": ipam.get("Subnet"),
        "gateway": ipam.get("Gateway"),
        "project": attrs.get("Labels", {}).get("com.docker.compose.project")
        or attrs.get("Labels", {}).get(STACK_NAMESPACE),
        "attachable": bool(attrs.get("Attachable")),
        "containers": {c["Name"]: c["IPv4Address"].split("/")[0] for c in attrs.get("Containers", {}).values()},
    }
    return Fact(f"docker network inspect {name}", name, observed)


def parse_routes(table: str) -> list[tuple[str, str]]:
    """[(interface, destination CIDR)] of a /proc/net/route table (little-endian hex fields)."""
    import ipaddress
    import socket
    import struct

    routes = []
    for line in table.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8:
            destination = socket.inet_ntoa(struct.pack("<L", int(fields[1], 16)))
            prefix = bin(int(fields[7], 16)).count("1")
            routes.append((fields[0], str(ipaddress.ip_network(f"{destination}/{prefix}", strict=False))))
    return routes


def host_routes() -> Fact:
    """The host's routing table (/proc/net/route)."""
    return Fact("cat /proc/net/route", "host", parse_routes(Path("/proc/net/route").read_text()))


def host_port_answers(port: int, timeout: float = 3.0) -> Fact:
    """Open a TCP connection from the host to 127.0.0.1:`port`; observed True when it connects."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            answered = True
    except OSError as error:
        answered = False
        return Fact(f"TCP connect 127.0.0.1:{port}", "host", answered, raw=str(error))
    return Fact(f"TCP connect 127.0.0.1:{port}", "host", answered)
