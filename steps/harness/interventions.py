"""What scenarios do to a running service: pause and unpause its container, kill its program as a
crash would, roll out a swarm service again or with another healthcheck. Scenarios that use these
are tagged @changes_stack."""
from __future__ import annotations

from docker.errors import DockerException

from steps.harness.scratch import run_scratch
from steps.probes import swarm_engine
from steps.probes.container_state import pids_are_ours
from steps.probes.docker_engine import container
from steps.probes.facts import ProbeError


def pause(project: str, service: str) -> None:
    container(project, service).pause()


def unpause(project: str, service: str) -> None:
    container(project, service).unpause()


def kill_process(project: str, service: str, program: str) -> list[int]:
    """SIGKILL, from the host of the container's engine, the container's processes running `program`,
    as a crash would; returns their pids there. (Not `docker kill`, which Docker treats as a
    deliberate stop.)"""
    import os
    import signal

    target = container(project, service)
    top = target.top(ps_args="-eo pid,comm")
    pids = [int(row[0]) for row in top.get("Processes") or [] if row[1] == program]
    if not pids:
        raise ProbeError(f"service {service}: no {program} process is running")
    if pids_are_ours(target):
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids
    # An engine in another pid namespace (a swarm node of infra/host/swarm-nodes): a throwaway
    # container there, in that engine's host pid namespace, sends the signal.
    try:
        exit_code, output = run_scratch(target.image.id, project=project, probe="kill", engine=target.client,
                                        command=[str(pid) for pid in pids],
                                        entrypoint=["bash", "-c", 'kill -KILL "$@"', "kill"],
                                        pid_mode="host", network_mode="none", user="root")
    except DockerException as error:
        raise ProbeError(f"service {service}: could not kill {program} on its node: {error}") from error
    if exit_code != 0:
        raise ProbeError(f"service {service}: kill on its node exited {exit_code}: {output.decode(errors='replace')}")
    return pids


def force_update(stack: str, name: str) -> None:
    """`docker service update --force`: every replica replaced, as swarm's update_config says."""
    swarm_engine.service(stack, name).force_update()


def update_healthcheck(stack: str, name: str, healthcheck: dict) -> None:
    """A new version of the service whose only change is its healthcheck (Docker API form:
    {"Test": [...], "Interval": ns, ...}); rolled out as swarm's update_config says."""
    swarm_engine.service(stack, name).update(healthcheck=healthcheck, fetch_current_spec=True)
