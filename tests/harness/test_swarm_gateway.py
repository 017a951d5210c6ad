"""The swarm gateway (infra/swarm-gateway) takes a burst of connections without dropping one: the
suite's long-polls (129 at once on two replicas) and any client that opens many connections go
through it. With socat's default listen backlog of 5, a burst of 256 overflowed its queue 326 times
and a connection waited 16 s for the gateway to take it (a CI run's long-poll timed out so)."""
from __future__ import annotations

import socket
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from steps.harness.settings import ROOT
from steps.harness.swarm import gateway_limits
from steps.probes import docker_engine
from steps.probes.waiting import wait_until

pytestmark = pytest.mark.docker

IMAGE = "trading-ecosystem/swarm-gateway:burst-test"
BURST = 256


@pytest.fixture
def gateway():
    """The gateway's image, built from the repository, forwarding port 7000 to a closed port (each
    forwarded connection ends at once), published on a free port of 127.0.0.1."""
    subprocess.run([str(ROOT / "infra/host/ensure-base-image")], check=True, capture_output=True)
    subprocess.run(["docker", "build", "-q", "-t", IMAGE, str(ROOT / "infra/swarm-gateway")], check=True,
                   capture_output=True)
    engine = docker_engine.client()
    # The limits the stack's gateway runs with (pids, forks, logs): the burst is taken within them.
    container = engine.containers.run(IMAGE, command=["7000=localhost:9"], detach=True,
                                      ports={"7000/tcp": ("127.0.0.1", None)}, **gateway_limits())
    try:
        def listening() -> bool:
            container.reload()
            return b"forward: listening" in container.logs() or container.status == "exited"

        wait_until(listening, timeout=30, interval=0.1, description="the gateway listening")
        assert container.status == "running", container.logs().decode(errors="replace")
        yield container, int(container.attrs["NetworkSettings"]["Ports"]["7000/tcp"][0]["HostPort"])
    finally:
        container.remove(force=True)
        engine.images.remove(IMAGE)


def _listen_overflows(container) -> int:
    """TcpExt ListenOverflows of the gateway's network namespace: handshakes its full queue dropped."""
    header, values = container.exec_run(["cat", "/proc/net/netstat"]).output.decode().splitlines()[:2]
    return int(dict(zip(header.split(), values.split(), strict=True))["ListenOverflows"])


def test_a_burst_of_connections_is_taken_without_a_dropped_handshake(gateway):
    container, port = gateway

    def connect_until_closed(_) -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
            return "closed" if connection.recv(1) == b"" else "data"

    with ThreadPoolExecutor(max_workers=BURST) as pool:
        ends = list(pool.map(connect_until_closed, range(BURST)))
    assert ends == ["closed"] * BURST
    assert _listen_overflows(container) == 0
