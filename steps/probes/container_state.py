"""What the Docker engine says about a service's container: `docker inspect` (health, state,
healthcheck, addresses, ports, mounts, resources, privileges, environment), `docker top`, its logs,
and its swarm task's spec. Nothing runs inside the container here but the read of its main
process's status (privileges of a swarm task)."""
from __future__ import annotations

from pathlib import Path

from docker.errors import DockerException

from steps.probes.docker_engine import SWARM_TASK, client, container, swarm_containers, where
from steps.probes.facts import Fact, ProbeError


def health(project: str, service: str) -> Fact:
    """Docker's health status of the service's container, with its last healthcheck output."""
    attrs = container(project, service).attrs
    state = attrs["State"]
    status = state.get("Health", {}).get("Status", "none" if state.get("Running") else state.get("Status"))
    log = state.get("Health", {}).get("Log") or [{}]
    return Fact(
        "docker inspect .State.Health.Status",
        where(project, service),
        status,
        raw=(log[-1].get("Output") or "").strip(),
    )


def exit_code(project: str, service: str) -> int | None:
    """The exit code of the service's container once it has exited; None while it runs or when absent."""
    try:
        attrs = container(project, service).attrs
    except ProbeError:
        return None
    return None if attrs["State"].get("Running") else attrs["State"].get("ExitCode")


def running(project: str, service: str) -> Fact:
    """Whether the service has a running container (False when it has none)."""
    try:
        observed = bool(container(project, service).attrs["State"].get("Running"))
    except ProbeError:
        observed = False
    return Fact("docker inspect .State.Running", where(project, service), observed)


def state(project: str, service: str) -> Fact:
    """The container's run state: status, start time, restart count, main process id, health."""
    attrs = container(project, service).attrs
    s = attrs["State"]
    observed = {
        "status": s.get("Status"),
        "started_at": s.get("StartedAt"),
        "restart_count": attrs.get("RestartCount", 0),
        "pid": s.get("Pid"),
        "health": (s.get("Health") or {}).get("Status"),
    }
    return Fact("docker inspect .State", where(project, service), observed)


def healthcheck_command(project: str, service: str) -> Fact:
    """The healthcheck test of the running container, as Docker holds it."""
    test = container(project, service).attrs["Config"].get("Healthcheck", {}).get("Test") or []
    return Fact("docker inspect .Config.Healthcheck.Test", where(project, service), list(test))


def healthcheck_config(project: str, service: str) -> Fact:
    """The running container's healthcheck: test, and interval, timeout, start period and start
    interval in seconds, retries."""
    hc = container(project, service).attrs["Config"].get("Healthcheck") or {}
    observed = {
        "test": list(hc.get("Test") or []),
        "interval": _seconds(hc.get("Interval")),
        "timeout": _seconds(hc.get("Timeout")),
        "retries": hc.get("Retries"),
        "start_period": _seconds(hc.get("StartPeriod")),
        "start_interval": _seconds(hc.get("StartInterval")),
    }
    return Fact("docker inspect .Config.Healthcheck", where(project, service), observed)


def _seconds(nanoseconds) -> float:
    return (nanoseconds or 0) / 1e9


def addresses(project: str, service: str) -> Fact:
    """The container's IPv4 address on each network it is attached to."""
    networks = container(project, service).attrs["NetworkSettings"]["Networks"]
    observed = {name: info.get("IPAddress") for name, info in networks.items()}
    return Fact("docker inspect .NetworkSettings.Networks", where(project, service), observed)


def published_ports(project: str, service: str) -> Fact:
    """The container's published ports: {"6379/tcp": [("127.0.0.1", "6379")], ...}."""
    ports = container(project, service).attrs["NetworkSettings"].get("Ports") or {}
    observed = {
        port: sorted((b.get("HostIp"), b.get("HostPort")) for b in bindings)
        for port, bindings in ports.items()
        if bindings
    }
    return Fact("docker inspect .NetworkSettings.Ports", where(project, service), observed)


def mounts(project: str, service: str) -> Fact:
    """The container's mounts: {destination: {"type", "name", "source"}}."""
    observed = {
        m["Destination"]: {"type": m.get("Type"), "name": m.get("Name"), "source": m.get("Source")}
        for m in container(project, service).attrs.get("Mounts", [])
    }
    return Fact("docker inspect .Mounts", where(project, service), observed)


def host_config(project: str, service: str) -> Fact:
    """Resource settings of the running container: memory and CPU limits, shm size, restart policy."""
    target = container(project, service)
    hc = target.attrs["HostConfig"]
    observed = {
        "memory_bytes": hc.get("Memory") or 0,
        "nano_cpus": hc.get("NanoCpus") or 0,
        "shm_size_bytes": hc.get("ShmSize") or 0,
        "restart_policy": (hc.get("RestartPolicy") or {}).get("Name") or "no",
    }
    if SWARM_TASK in target.labels:
        # Swarm restarts a task as a new container (the engine's policy is "no"); a /dev/shm tmpfs
        # mount stands in for shm_size, which services cannot set.
        spec = swarm_task_spec(project, service)
        observed["restart_policy"] = "swarm: " + ((spec.get("RestartPolicy") or {}).get("Condition") or "any")
        shm = [m for m in spec["ContainerSpec"].get("Mounts") or [] if m.get("Target") == "/dev/shm"]
        if shm:
            observed["shm_size_bytes"] = (shm[0].get("TmpfsOptions") or {}).get("SizeBytes") or 0
        return Fact("docker inspect .HostConfig; docker inspect <task> .Spec", where(project, service), observed)
    return Fact("docker inspect .HostConfig", where(project, service), observed)


def memory_limit_bytes(project: str, service: str) -> int:
    """The container's memory limit in bytes (0 when unlimited)."""
    return host_config(project, service).observed["memory_bytes"]


def _main_process_no_new_privs(target) -> bool:
    """A swarm task's main process holds the kernel's no_new_privs flag (its entrypoint sets it: swarm
    services cannot set no-new-privileges, moby/moby#41371): /proc/1/status read inside the container
    (the host's /proc has a task's pid only when the task runs on this engine)."""
    if SWARM_TASK not in target.labels or target.status != "running":
        return False
    try:
        exit_code, output = target.exec_run(["cat", "/proc/1/status"])
    except DockerException:
        return False
    lines = output.decode(errors="replace").splitlines() if exit_code == 0 else []
    return any(line.split() == ["NoNewPrivs:", "1"] for line in lines)


def privileges(project: str, service: str) -> Fact:
    """What the container may do beyond its program: capabilities dropped and added, whether a
    process may gain privileges (no-new-privileges), a read-only root filesystem, the pids limit and
    the log driver with its options."""
    target = container(project, service)
    hc = target.attrs["HostConfig"]
    log = hc.get("LogConfig") or {}
    observed = {
        "cap_drop": sorted(hc.get("CapDrop") or []),
        "cap_add": sorted(hc.get("CapAdd") or []),
        "no_new_privileges": any(o.replace("=", ":") in ("no-new-privileges", "no-new-privileges:true")
                                 for o in hc.get("SecurityOpt") or []) or _main_process_no_new_privs(target),
        "read_only_rootfs": bool(hc.get("ReadonlyRootfs")),
        "pids_limit": hc.get("PidsLimit") or 0,
        "log_driver": log.get("Type"),
        "log_options": dict(log.get("Config") or {}),
    }
    return Fact("docker inspect .HostConfig", where(project, service), observed)


def process_users(project: str, service: str) -> Fact:
    """(program, user id) of every process running in the container (`docker top`, read from the
    host: works for images without a shell)."""
    top = container(project, service).top(ps_args="-o pid,uid,comm")
    titles = [t.upper() for t in top.get("Titles") or []]
    uid, command = titles.index("UID"), titles.index("COMMAND")
    observed = sorted({(row[command], int(row[uid])) for row in top.get("Processes") or []})
    return Fact("docker top -o pid,uid,comm", where(project, service), observed)


def environment_variable(project: str, service: str, name: str) -> Fact:
    """One variable the container was started with (None when unset). One only: the others may be
    passwords, which evidence never shows."""
    env = container(project, service).attrs["Config"].get("Env") or []
    found = [item.partition("=")[2] for item in env if item.partition("=")[0] == name]
    return Fact(f"docker inspect .Config.Env {name}", where(project, service), found[0] if found else None)


def container_name(project: str, service: str) -> Fact:
    """The container's name and its compose container number (a swarm task's: its slot and task id)."""
    target = container(project, service)
    if SWARM_TASK in target.labels:
        task = client().api.inspect_task(target.labels[SWARM_TASK])
        return Fact("docker inspect .Name; docker inspect <task> .Slot", where(project, service),
                    (target.name, f"{task.get('Slot')}.{task['ID']}"))
    return Fact("docker inspect .Name", where(project, service),
                (target.name, target.labels.get("com.docker.compose.container-number")))


def swarm_task_spec(project: str, service: str) -> dict:
    """The swarm task's spec of the service's container (its ContainerSpec, RestartPolicy...)."""
    target = container(project, service)
    if SWARM_TASK not in target.labels:
        raise ProbeError(f"service {service}: its container is not a swarm task")
    return client().api.inspect_task(target.labels[SWARM_TASK])["Spec"]


def service_state(project: str, service: str, log_lines: int) -> dict:
    """What to show of a service when something failed: {"health", "last_health_output", "log_tail"}
    (the health as an error text when it could not be read)."""
    try:
        fact = health(project, service)
        state, output = fact.observed, (fact.raw or "").strip()
    except Exception as error:  # noqa: BLE001 - describing a failure, not deciding it
        state, output = str(error), ""
    return {"health": state, "last_health_output": output.splitlines()[-1] if output else "(none)",
            "log_tail": logs(project, service, log_lines)}


def logs(project: str, service: str, lines: int = 20) -> str:
    """The last log lines of the service's container (empty when it has none); of each of its running
    replicas' on a swarm, one after another."""
    try:
        target = container(project, service)
        replicas = swarm_containers(project, service, running_only=True) if SWARM_TASK in target.labels else [target]
        return "".join(c.logs(tail=lines).decode(errors="replace") for c in replicas)
    except (ProbeError, DockerException):
        return ""


def pids_are_ours(target) -> bool:
    """Whether the pids the container's engine reports are this host's: its main process, looked up
    in our /proc, is in the container's cgroup. (Not so for an engine that runs in a container.)"""
    pid = target.attrs["State"].get("Pid")
    try:
        return bool(pid) and target.id in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


def parse_time(text: str):
    """A Docker or ISO timestamp ("2026-11-26T17:10:40.894529506Z") as an aware datetime (µs)."""
    from datetime import datetime

    text = text.replace("Z", "+00:00")
    main, _, zone = text.partition("+")
    if "." in main:
        whole, fraction = main.split(".")
        main = f"{whole}.{fraction[:6].ljust(6, '0')}"
    return datetime.fromisoformat(f"{main}+{zone or '00:00'}")
