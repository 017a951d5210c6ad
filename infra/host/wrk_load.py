"""The benchmarks' load: wrk (infra/loadgen), run in a throwaway container on the stack's network,
and the ceilings each benchmark measures beside its service in the same run: a minimal ASGI app in
the service's own image with the service's own limits, and Redis filled as a domain's cache would.
Every container here is removed when its phase ends, Ctrl-C included."""
from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from pathlib import Path

from steps.harness import scratch
from steps.probes import container_exec, docker_engine

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "trading-ecosystem/loadgen:local"
LABEL = {"org.trading-ecosystem.benchmark": "loadgen"}

# The HTTP stack's own ceiling: uvicorn as the services run it (uvloop and httptools, found installed),
# answering every request with the bytes the service answered.
MINIMAL_APP = """
import os, uvicorn
body = os.environb[b"BENCH_BODY"]
headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="0.0.0.0", port=8080, lifespan="off", log_level="warning")
"""


def ensure_image(base_image: str) -> None:
    """Build the load generator's image FROM the stack's Debian base (cached after the first run)."""
    subprocess.run(["docker", "build", "-q", "--build-arg", f"BASE_IMAGE={base_image}", "-t", IMAGE,
                    str(ROOT / "infra/loadgen")], check=True, stdout=subprocess.DEVNULL)


def wrk(network: str, url: str, seconds: float, connections: int, script: str = "get.lua",
        env: dict | None = None, threads: int = 2) -> dict:
    """wrk's figures for `seconds` of load on `url` from `connections` connections (report.lua's JSON)."""
    container = docker_engine.client().containers.run(
        IMAGE, ["-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--timeout", "5s",
                "-s", f"/loadgen/{script}", url],
        network=network, environment=env or {}, detach=True, read_only=True, cap_drop=["ALL"],
        security_opt=["no-new-privileges"], labels=LABEL)
    try:
        exit_code = container.wait(timeout=seconds + 60)["StatusCode"]
        output = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    figures = [line for line in output.splitlines() if line.startswith("{")]
    if exit_code != 0 or not figures:
        raise RuntimeError(f"wrk on {url} exited {exit_code}: {output.strip()[-500:]}")
    return json.loads(figures[-1])


@contextlib.contextmanager
def minimal_asgi_app(project: str, service: str, network: str, body: bytes):
    """The service's image with its CPU and memory limits, its user and read-only root, serving `body`
    on port 8080 of the network; yields its base URL."""
    target = docker_engine.container(project, service)
    host = target.attrs["HostConfig"]
    name = f"{project}-ceiling-{uuid.uuid4().hex[:8]}"
    app = docker_engine.client().containers.run(
        target.image.id, ["python3", "-c", MINIMAL_APP], name=name, network=network,
        environment={"BENCH_BODY": body.decode()}, user=target.attrs["Config"].get("User") or "nobody",
        nano_cpus=host.get("NanoCpus") or None, mem_limit=host.get("Memory") or None, read_only=True,
        cap_drop=["ALL"], security_opt=["no-new-privileges"], detach=True,
        labels={**scratch.scratch_labels(project, "minimal-asgi-app"), **LABEL})
    try:
        ready = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/', timeout=1)"
        deadline = time.monotonic() + 30
        while app.exec_run(["python3", "-c", ready]).exit_code != 0:
            if time.monotonic() > deadline:
                app.reload()
                raise RuntimeError(f"the minimal ASGI app did not answer within 30 s ({app.status}): "
                                   f"{app.logs().decode(errors='replace')[-500:]}")
            time.sleep(0.2)
        yield f"http://{name}:8080"
    finally:
        app.remove(force=True)


def fill_cache(port: int, user: str, password: str, prefix: str, count: int, ttl_s: int = 900) -> dict:
    """SET `count` keys `prefix`0.. as `user` on 127.0.0.1:`port`, as a domain's cache would: small
    values, a TTL so they go away even if the run is stopped; pipelined in batches."""
    import redis

    started = time.monotonic()
    with redis.Redis(port=port, username=user, password=password) as connection:
        for first in range(0, count, BATCH):
            with connection.pipeline(transaction=False) as pipe:
                for index in range(first, min(first + BATCH, count)):
                    pipe.set(f"{prefix}{index}", "price=101.25;qty=3;venue=sim", ex=ttl_s)
                pipe.execute()
        return {"keys": count, "seconds": round(time.monotonic() - started, 1), "dbsize": connection.dbsize()}


def empty_cache(port: int, user: str, password: str, prefix: str, count: int) -> None:
    import redis

    with redis.Redis(port=port, username=user, password=password) as connection:
        for first in range(0, count, BATCH):
            connection.unlink(*(f"{prefix}{index}" for index in range(first, min(first + BATCH, count))))


BATCH = 10_000


def redis_benchmark(project: str, admin_password: str, command: str, connections: int = 32) -> str:
    """redis-benchmark's summary line for `command`, inside the Redis container: the storage ceiling."""
    fact = container_exec.exec_in(project, "redis", [
        "sh", "-c", f'redis-benchmark --user admin -a "$PW" -q -n 100000 -c {connections} -P 1 {command} '
                    '2>/dev/null | tail -n 1'], {"PW": admin_password})
    # redis-benchmark redraws its progress line with \r: the summary is the last segment.
    return fact.observed.output.strip().split("\r")[-1].strip()


def deregister(port: int, name: str, instances: int, sign_in: str) -> None:
    """DELETE the benchmark's instances bench-0.. through the registry on 127.0.0.1 (404s ignored)."""
    import urllib.error
    import urllib.request

    for index in range(instances):
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/services/{name}/instances/bench-{index}",
                                         method="DELETE", headers={"Authorization": f"Basic {sign_in}"})
        try:
            urllib.request.urlopen(request, timeout=5).close()
        except urllib.error.HTTPError:
            pass
