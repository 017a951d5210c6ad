"""Commands run inside a service's running container (`docker exec`): any command, the container's
own healthcheck, TCP connections to other services by name. Commands that must run inside the
docker network run here, never from the host."""
from __future__ import annotations

import shlex

from docker.errors import DockerException

from steps.probes.container_state import healthcheck_command
from steps.probes.docker_engine import container, where
from steps.probes.facts import ExecResult, Fact, ProbeError


def exec_in(project: str, service: str, command: list[str], env: dict | None = None) -> Fact:
    """Run `command` inside the service's container; the Fact's value is an ExecResult."""
    target = container(project, service)
    try:
        exit_code, output = target.exec_run(command, environment=env or {}, demux=False)
    except DockerException as error:
        raise ProbeError(f"service {service}: exec failed: {error}") from error
    text = (output or b"").decode(errors="replace").strip()
    shown = " ".join(shlex.quote(part) for part in command)
    if env:
        shown = " ".join(f"{k}=…" for k in env) + " " + shown
    return Fact(f"docker exec {shown}", where(project, service), ExecResult(exit_code, text), raw=text)


def run_healthcheck(project: str, service: str, env: dict | None = None, secrets: dict | None = None) -> Fact:
    """Run the container's own healthcheck command inside it, optionally with a changed environment
    and other secrets:
    `secrets` ({name: value}) are written to files on the container's /tmp, which the command reads
    instead of /run/secrets/<name> (a read-only mount). The values reach the shell through the exec's
    environment, never its command line.

    The Fact's value is the ExecResult: exit code 0 means the healthcheck passes.
    """
    test = healthcheck_command(project, service).observed
    if not test or test[0] == "NONE":
        raise ProbeError(f"service {service}: has no healthcheck")
    if not secrets:
        return exec_in(project, service, ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else test[1:], env)
    script, env = test[1] if test[0] == "CMD-SHELL" else None, dict(env or {})
    if script is None:
        raise ProbeError(f"service {service}: its healthcheck is not a shell command; other secrets cannot be given")
    writes = []
    for number, (name, value) in enumerate(sorted(secrets.items())):
        if f"/run/secrets/{name}" not in script:
            raise ProbeError(f"service {service}: its healthcheck does not read /run/secrets/{name}")
        script = script.replace(f"/run/secrets/{name}", f"/tmp/probe-secret-{number}")
        env[f"PROBE_SECRET_{number}"] = value
        writes.append(f"printf '%s' \"$PROBE_SECRET_{number}\" > /tmp/probe-secret-{number}")
    cleanup = "; rm -f /tmp/probe-secret-*"
    return exec_in(project, service, ["/bin/sh", "-c", f"umask 077; {' && '.join(writes)} && ({script}); "
                                      f"status=$?{cleanup}; exit $status"], env)


def tcp_connects_from(project: str, source: str, targets: list[tuple[str, int]]) -> Fact:
    """From inside the `source` service's container, resolve each (host, port) of `targets` through
    docker's DNS and open a TCP connection to it (bash's /dev/tcp: every image here is Debian-based),
    one after another in a single `docker exec` (an exec costs the engine far more than a connection).
    Observed: {"host:port": None when it connected, else bash's error}."""
    fact = exec_in(project, source, ["bash", "-c", tcp_connect_script(targets)])
    observed = tcp_connect_results(targets, fact.observed)
    return Fact(f"docker exec bash /dev/tcp to {', '.join(observed)}", fact.where, observed, raw=fact.raw)


def tcp_connect_script(targets: list[tuple[str, int]]) -> str:
    """A bash script that connects to each (host, port) in turn and prints one line for each:
    "host:port connected" or "host:port failed: <bash's error, on one line>"."""
    return "; ".join(
        f"if out=$({{ exec 3<>/dev/tcp/{host}/{port}; }} 2>&1); then echo '{host}:{port} connected'; "
        f"else echo \"{host}:{port} failed: ${{out//$'\\n'/ }}\"; fi" for host, port in targets)


def tcp_connect_results(targets: list[tuple[str, int]], result: ExecResult) -> dict:
    """{"host:port": None when the script connected to it, else why not} from its output."""
    answers = dict(line.partition(" ")[::2] for line in result.output.splitlines() if " " in line)
    observed = {}
    for host, port in targets:
        answer = answers.get(f"{host}:{port}")
        observed[f"{host}:{port}"] = None if answer == "connected" else (
            answer.removeprefix("failed: ").strip() if answer else f"no answer (exit {result.exit_code})")
    return observed
