"""Throwaway ("scratch") containers run from a service's image, as built for the stack, to see what
the image does apart from the running service: its healthcheck with no server, its start with other
files, what a container on the stack's network reaches. Each is labelled for what it is for and the
project (docker_engine.PROBE, PROBE_OF) and removed once it ends. Not probes: they start containers."""
from __future__ import annotations

import json
from pathlib import Path

from docker.errors import DockerException

from steps.probes.container_state import pids_are_ours
from steps.probes.docker_engine import PROBE, PROBE_OF, client, container
from steps.probes.facts import ExecResult, Fact, ProbeError
from steps.probes.networks import parse_routes

# Compose labels every image it builds with the project and service that built it, and a container
# inherits its image's labels: a probe's container would pass for one of that project's containers
# (another run's, perhaps), listed with its services and counted as its leftover. Docker cannot drop
# an inherited label, only override it: with an empty value.
IMAGE_COMPOSE_LABELS = ("com.docker.compose.project", "com.docker.compose.service", "com.docker.compose.version")


def scratch_labels(project: str, probe: str) -> dict:
    """The labels of a probe's throwaway container: the probe and the project it probes, none of
    compose's (see IMAGE_COMPOSE_LABELS)."""
    return {**dict.fromkeys(IMAGE_COMPOSE_LABELS, ""), PROBE: probe, PROBE_OF: project}


def run_scratch(image: str, *, project: str, probe: str, timeout: float = 60, engine=None, stderr: bool = True,
                **options) -> tuple[int | None, bytes]:
    """Run a throwaway container of `image` (docker-py's create options) until it exits, at most
    `timeout` s, and remove it with its anonymous volumes whatever happens, also when it could not
    start. Returns its exit code (None when it was still running at `timeout`) and its log (its
    standard output only when not `stderr`)."""
    import requests

    scratch = (engine or client()).containers.create(image, labels=scratch_labels(project, probe), **options)
    try:
        scratch.start()
        try:
            exit_code = scratch.wait(timeout=timeout)["StatusCode"]
        except requests.exceptions.RequestException:  # the wait's read timed out: still running
            exit_code = None
        return exit_code, scratch.logs(stdout=True, stderr=stderr)
    finally:
        scratch.remove(force=True, v=True)


def run_healthcheck_without_server(project: str, service: str) -> Fact:
    """Run the service's healthcheck in a fresh container of its image in which the service never
    started (no network, entrypoint replaced). A healthcheck that passes there proves nothing.
    Observed is an ExecResult."""
    target = container(project, service)
    test = target.attrs["Config"].get("Healthcheck", {}).get("Test") or []
    if not test or test[0] == "NONE":
        raise ProbeError(f"service {service}: has no healthcheck")
    entrypoint, command = (["/bin/sh", "-c"], [test[1]]) if test[0] == "CMD-SHELL" else ([test[1]], test[2:])
    try:
        exit_code, output = run_scratch(target.image.id, project=project, probe="healthcheck-without-server",
                                        command=command, entrypoint=entrypoint, network_mode="none",
                                        environment=target.attrs["Config"].get("Env"))
    except DockerException as error:
        raise ProbeError(f"service {service}: could not run its healthcheck in a scratch container: {error}") from error
    text = output.decode(errors="replace").strip()
    return Fact(f"docker run --rm --network none {service}-image {' '.join(test[1:])[:120]}",
                f"{service} image, no server", ExecResult(exit_code, text), raw=text)


def run_image_with_files(project: str, service: str, files: dict, target_dir: str, timeout: float = 60) -> Fact:
    """Start the service's image, as built for the stack, in a scratch container with no network and
    `files` ({name: text}) as the only content of `target_dir`; wait for it to exit. Observed: an
    ExecResult with its exit code (None when it was still running after `timeout` s) and its log."""
    import tempfile

    target = container(project, service)
    with tempfile.TemporaryDirectory(prefix="tse-probe-") as folder:
        for name, text in files.items():
            (Path(folder) / name).write_text(text)
            (Path(folder) / name).chmod(0o644)
        Path(folder).chmod(0o755)
        volume = None
        try:
            # An engine that runs in a container (a swarm node of infra/host/swarm-nodes) does not see
            # this host's folders: the files go into a volume of its own instead.
            source = (folder if pids_are_ours(target)
                      else (volume := _volume_with_files(target.image.id, folder, project)))
            exit_code, output = run_scratch(
                target.image.id, project=project, probe="image-with-files", timeout=timeout, network_mode="none",
                environment=target.attrs["Config"].get("Env"), volumes={source: {"bind": target_dir, "mode": "ro"}})
        except DockerException as error:
            raise ProbeError(f"service {service}: could not start its image in a scratch container: {error}") from error
        finally:
            if volume:
                client().volumes.get(volume).remove(force=True)
    text = output.decode(errors="replace").strip()
    return Fact(f"docker run --network none -v <{', '.join(files)}>:{target_dir} {service}-image",
                f"{service} image, scratch container", ExecResult(exit_code, text), raw=text)


def _volume_with_files(image: str, folder: str, project: str) -> str:
    """A new volume on the engine holding the files of `folder` (copied in through a container that
    never starts); its name."""
    import io
    import tarfile

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for path in sorted(Path(folder).iterdir()):
            tar.add(path, arcname=path.name)
    volume = client().volumes.create(labels={PROBE: "image-with-files", PROBE_OF: project})
    try:
        carrier = client().containers.create(image, network_mode="none", volumes={volume.name: {"bind": "/files"}},
                                             labels=scratch_labels(project, "image-with-files"))
        try:
            carrier.put_archive("/files", archive.getvalue())
        finally:
            carrier.remove(force=True)
    except DockerException:
        volume.remove(force=True)
        raise
    return volume.name


def connections_from_network(network: str, image_of: tuple, targets: list, timeout_s: int = 2) -> Fact:
    """From a throwaway container on `network` alone (the image of `image_of` = (project, service),
    no capability), open a TCP connection to each (host, port) of `targets`, by name or address, all
    at once, each given `timeout_s` seconds: what a service of the ecosystem on that network reaches.
    Observed: {"host:port": True when it connected}."""
    project, service = image_of
    attempts = " ".join(
        f"(timeout {timeout_s} bash -c 'exec 3<>/dev/tcp/{host}/{port}' 2>/dev/null "
        f"&& echo '{host}:{port} connected' || echo '{host}:{port} not reached') &"
        for host, port in targets)
    try:
        _, output = run_scratch(
            container(project, service).image.id, project=project, probe="connections-from-network",
            timeout=timeout_s * 10 + 30, entrypoint=["bash", "-c"], command=[f"{attempts} wait"], network=network,
            cap_drop=["ALL"], security_opt=["no-new-privileges:true"], read_only=True, user="nobody")
    except DockerException as error:
        raise ProbeError(f"could not run a container on network {network}: {error}") from error
    lines = output.decode(errors="replace").splitlines()
    observed = {f"{host}:{port}": f"{host}:{port} connected" in lines for host, port in targets}
    return Fact(f"docker run --network {network} --cap-drop ALL {service}-image bash /dev/tcp to "
                f"{len(targets)} targets ({timeout_s} s each)", f"network {network}", observed,
                raw="\n".join(lines))


def output_from_network(network: str, image_of: tuple, entrypoint: list, probe: str, address: str | None = None) -> str:
    """What `entrypoint` prints in a throwaway container on `network` alone (the image of `image_of`
    = (project, service), no capability, read-only, as nobody), at `address` when given, removed once
    it ends."""
    project, service = image_of
    engine = client()
    at_address = {"networking_config": {network: engine.api.create_endpoint_config(ipv4_address=address)}} \
        if address else {}
    try:
        exit_code, output = run_scratch(
            container(project, service).image.id, project=project, probe=probe, entrypoint=entrypoint,
            network=network, stderr=False, cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
            read_only=True, user="nobody", engine=engine, **at_address)
    except DockerException as error:
        raise ProbeError(f"could not run a container on network {network}: {error}") from error
    if exit_code != 0:
        raise ProbeError(f"{' '.join(entrypoint)} on network {network} exited {exit_code}: "
                         f"{output.decode(errors='replace').strip()[-500:]}")
    return output.decode(errors="replace")


def routes_from_network(network: str, image_of: tuple) -> Fact:
    """The routing table of a throwaway container on `network` alone (the image of `image_of`):
    where its traffic can go. Read from /proc/net/route; no packet is sent."""
    output = output_from_network(network, image_of, ["cat", "/proc/net/route"], "routes-from-network")
    return Fact(f"docker run --network {network} cat /proc/net/route", f"network {network}",
                parse_routes(output))


def replica_answers(network: str, image_of: tuple, name: str, port: int, path: str) -> Fact:
    """From a throwaway container on `network` (the image of `image_of`, which has python3): GET
    http://<address>:`port``path` of every address tasks.`name` resolves to (one per running
    replica). Observed: {address: HTTP status, or the error}."""
    script = (
        "import json, socket, urllib.request, urllib.error\n"
        f"addresses = sorted({{a[4][0] for a in socket.getaddrinfo('tasks.{name}', {port}, socket.AF_INET)}})\n"
        "answers = {}\n"
        "for address in addresses:\n"
        "    try:\n"
        f"        answers[address] = urllib.request.urlopen(f'http://{{address}}:{port}{path}', timeout=5).status\n"
        "    except urllib.error.HTTPError as error:\n"
        "        answers[address] = error.code\n"
        "    except OSError as error:\n"
        "        answers[address] = str(error)\n"
        "print(json.dumps(answers))\n")
    output = output_from_network(network, image_of, ["python3", "-c", script], "replica-answers")
    return Fact(f"docker run --network {network} python3: GET {path} of every address of tasks.{name}",
                f"network {network}", json.loads(output.strip().splitlines()[-1]))


def http_gets_from_address(network: str, image_of: tuple, address: str, requests: list[tuple[str, dict]]) -> Fact:
    """From a throwaway container at `address` on `network` (the image of `image_of`, which has
    python3), as a service of the ecosystem there: GET each (url, headers) of `requests`, one after
    another. Observed: [{"url", "status", "body"}], the body parsed when it is JSON (status None and
    the error when nothing answered)."""
    script = (
        "import json, sys, urllib.request, urllib.error\n"
        "answers = []\n"
        "for url, headers in json.loads(sys.argv[1]):\n"
        "    try:\n"
        "        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:\n"
        "            status, text = r.status, r.read().decode()\n"
        "    except urllib.error.HTTPError as error:\n"
        "        status, text = error.code, error.read().decode()\n"
        "    except OSError as error:\n"
        "        status, text = None, str(error)\n"
        "    try:\n"
        "        body = json.loads(text)\n"
        "    except ValueError:\n"
        "        body = text[:500]\n"
        "    answers.append({'url': url, 'status': status, 'body': body})\n"
        "print(json.dumps(answers))\n")
    output = output_from_network(network, image_of, ["python3", "-c", script, json.dumps(requests)],
                                 "http-gets-from-address", address=address)
    return Fact(f"docker run --network {network} --ip {address} python3: GET {len(requests)} URLs",
                f"{address} on network {network}", json.loads(output.strip().splitlines()[-1]))



# A stand-in of an ecosystem service: answers GET of its health path and of its metrics paths (a
# one-line exposition), 404 for anything else, on port 8080 as the siblings do.
STAND_IN_PORT = 8080
_STAND_IN = (
    "import http.server, json, sys\n"
    "metrics = set(json.loads(sys.argv[1]))\n"
    "class Handler(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        if self.path == '/api/v1/health':\n"
    "            body, kind = b'{\"status\": \"healthy\"}', 'application/json'\n"
    "        elif self.path in metrics:\n"
    "            body, kind = b'# TYPE stand_in_up gauge\\nstand_in_up 1\\n', 'text/plain; version=0.0.4'\n"
    "        else:\n"
    "            self.send_error(404)\n"
    "            return\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Type', kind)\n"
    "        self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(body)\n"
    "    def log_message(self, *args):\n"
    "        pass\n"
    f"http.server.ThreadingHTTPServer(('0.0.0.0', {STAND_IN_PORT}), Handler).serve_forever()\n")


def start_stand_in(network: str, image_of: tuple, address: str, metrics_paths: list[str], probe: str,
                   aliases: list[str] = ()):
    """Start a stand-in at `address` on `network`, also named `aliases` there (the image of `image_of`,
    which has python3; no capability, read-only, as nobody) serving /api/v1/health and `metrics_paths`
    on STAND_IN_PORT; returns the container, running. The caller removes it (remove_stand_in)."""
    project, service = image_of
    engine = client()
    try:
        stand_in = engine.containers.create(
            container(project, service).image.id, entrypoint=["python3", "-c", _STAND_IN, json.dumps(metrics_paths)],
            labels=scratch_labels(project, probe), network=network, cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"], read_only=True, user="nobody",
            networking_config={network: engine.api.create_endpoint_config(ipv4_address=address,
                                                                           aliases=list(aliases))})
    except DockerException as error:
        raise ProbeError(f"could not create a stand-in at {address} on network {network}: {error}") from error
    try:
        stand_in.start()
    except DockerException as error:
        remove_stand_in(stand_in)
        raise ProbeError(f"could not start a stand-in at {address} on network {network}: {error}") from error
    return stand_in


def remove_stand_in(stand_in) -> None:
    """Remove a stand-in (gone already is fine)."""
    try:
        stand_in.remove(force=True, v=True)
    except DockerException:
        pass
