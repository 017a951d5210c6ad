"""Facts about containers, networks and volumes, read from the Docker engine.

Every function takes the compose project name and a service name, finds the service's container by
its compose labels (a swarm stack's: by swarm's labels, the stack's name as the project) and returns
a Fact. Commands that must run inside the docker network run inside
a container (`exec_in`), never from the host.
"""
from __future__ import annotations

import functools
import os
import shlex
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
from docker.errors import DockerException, ImageNotFound, NotFound

from steps.probes.facts import ExecResult, Fact, ProbeError, StackError

# The labels swarm puts on a stack's containers (compose's are com.docker.compose.*).
STACK_NAMESPACE = "com.docker.stack.namespace"
SWARM_SERVICE = "com.docker.swarm.service.name"
SWARM_TASK = "com.docker.swarm.task.id"

# A throwaway container a probe runs from a service's image: what it probes, and for which project.
PROBE = "org.trading-ecosystem.probe"
PROBE_OF = "org.trading-ecosystem.probe-of"
# Compose labels every image it builds with the project and service that built it, and a container
# inherits its image's labels: a probe's container would pass for one of that project's containers
# (another run's, perhaps), listed with its services and counted as its leftover. Docker cannot drop
# an inherited label, only override it: with an empty value.
IMAGE_COMPOSE_LABELS = ("com.docker.compose.project", "com.docker.compose.service", "com.docker.compose.version")


@functools.lru_cache(maxsize=1)
def client() -> docker.DockerClient:
    """The engine's client; raises StackError with one clear line when no engine answers."""
    try:
        engine = docker.from_env(timeout=60)
        engine.ping()
        return engine
    except DockerException as error:
        raise StackError(
            f"no Docker engine answers ({error.__class__.__name__}). "
            "Hint: run infra/host/ensure-docker, or start Docker and set DOCKER_HOST."
        ) from None


def engine_versions() -> dict:
    """The engine's version and API version."""
    version = client().version()
    return {"engine": version.get("Version"), "api": version.get("ApiVersion")}


def project_containers(project: str, *, all_states: bool = True) -> list:
    """The containers of compose project `project`, else of swarm stack `project`. (A swarm task's
    container may carry compose's labels too: an image compose built has them, and passes them on.)"""
    found = [c for c in client().containers.list(all=all_states,
                                                 filters={"label": f"com.docker.compose.project={project}"})
             if STACK_NAMESPACE not in c.labels]
    return found or client().containers.list(all=all_states, filters={"label": f"{STACK_NAMESPACE}={project}"})


def each_service(project: str, services, probe, *args) -> dict[str, Fact]:
    """`probe(project, service, *args)` for each of `services`, side by side (each call waits on the
    engine, not on this process: running nine healthchecks took 1.4 s one after another, 0.5 s so), in
    the services' order ({service: fact}). An error is raised as one after another would raise it: the
    first in order."""
    services = list(services)
    with ThreadPoolExecutor(max_workers=min(8, len(services) or 1), thread_name_prefix="probe") as pool:
        return dict(zip(services, pool.map(lambda service: probe(project, service, *args), services), strict=True))


def is_swarm_stack(project: str) -> bool:
    """Whether `project` names a swarm stack on this engine."""
    return bool(client().api.containers(all=True, filters={"label": f"{STACK_NAMESPACE}={project}"}))


# The engines of a multi-node swarm's other nodes, for a run on one of its managers: a task's
# container is seen (inspected, exec'd into) only through the engine of the node it runs on.
# "node-2=unix:///path/to/docker.sock,node-3=..." (infra/host/swarm-nodes sets it).
NODE_ENGINES = "TSE_SWARM_NODE_ENGINES"


@functools.lru_cache(maxsize=1)
def node_clients() -> tuple:
    """This engine's client, then one for each engine named in TSE_SWARM_NODE_ENGINES."""
    clients = [client()]
    for entry in filter(None, os.environ.get(NODE_ENGINES, "").split(",")):
        node, _, url = entry.partition("=")
        if not (node and url):
            raise StackError(f"{NODE_ENGINES}: {entry!r} is not node=engine-url, e.g. "
                             "node-2=unix:///run/node-2/docker.sock")
        try:
            engine = docker.DockerClient(base_url=url, timeout=60)
            engine.ping()
        except DockerException as error:
            raise StackError(f"{NODE_ENGINES}: the engine of node {node} at {url} does not answer "
                             f"({error.__class__.__name__}). Hint: infra/host/swarm-nodes status") from None
        clients.append(engine)
    return tuple(clients)


def swarm_containers(stack: str, service: str | None, *, running_only: bool = False) -> list:
    """The containers of the tasks of `service` (every service: None) in swarm stack `stack`, on every
    node whose engine the run knows, the running ones first, newest first (a replaced task's container
    lingers, exited)."""
    labels = [f"{STACK_NAMESPACE}={stack}"] + ([f"{SWARM_SERVICE}={stack}_{service}"] if service else [])
    found = []
    # Listed, then read one by one: swarm removes a replaced or stopped task's container at any time,
    # so one listed may be gone when it is read (docker's containers.list would raise NotFound).
    for engine in node_clients():
        for listed in engine.api.containers(all=not running_only, filters={"label": labels}):
            try:
                found.append(engine.containers.get(listed["Id"]))
            except NotFound:
                continue
    return sorted(found, key=lambda c: (c.status == "running", c.attrs.get("Created", "")), reverse=True)


def restart_counts(project: str) -> dict:
    """service -> how many times Docker has restarted its container (its restart policy, after exits)."""
    return {c.labels.get("com.docker.compose.service"): c.attrs.get("RestartCount", 0)
            for c in project_containers(project)}


def container(project: str, service: str):
    """The container of `service` in compose project `project`; raises ProbeError when absent."""
    found = client().containers.list(
        all=True,
        filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}",
                           "com.docker.compose.oneoff=False"]},
    )
    if not found:
        found = swarm_containers(project, service)
    if not found:
        raise ProbeError(f"service {service}: no container in compose project or swarm stack {project}")
    return found[0]


def _where(project: str, service: str) -> str:
    return f"{service} (project {project})"


def health(project: str, service: str) -> Fact:
    """Docker's health status of the service's container, with its last healthcheck output."""
    attrs = container(project, service).attrs
    state = attrs["State"]
    status = state.get("Health", {}).get("Status", "none" if state.get("Running") else state.get("Status"))
    log = state.get("Health", {}).get("Log") or [{}]
    return Fact(
        "docker inspect .State.Health.Status",
        _where(project, service),
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


def healthcheck_command(project: str, service: str) -> Fact:
    """The healthcheck test of the running container, as Docker holds it."""
    test = container(project, service).attrs["Config"].get("Healthcheck", {}).get("Test") or []
    return Fact("docker inspect .Config.Healthcheck.Test", _where(project, service), list(test))


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
    return Fact(f"docker exec {shown}", _where(project, service), ExecResult(exit_code, text), raw=text)


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


def addresses(project: str, service: str) -> Fact:
    """The container's IPv4 address on each network it is attached to."""
    networks = container(project, service).attrs["NetworkSettings"]["Networks"]
    observed = {name: info.get("IPAddress") for name, info in networks.items()}
    return Fact("docker inspect .NetworkSettings.Networks", _where(project, service), observed)


def published_ports(project: str, service: str) -> Fact:
    """The container's published ports: {"6379/tcp": [("127.0.0.1", "6379")], ...}."""
    ports = container(project, service).attrs["NetworkSettings"].get("Ports") or {}
    observed = {
        port: sorted((b.get("HostIp"), b.get("HostPort")) for b in bindings)
        for port, bindings in ports.items()
        if bindings
    }
    return Fact("docker inspect .NetworkSettings.Ports", _where(project, service), observed)


def mounts(project: str, service: str) -> Fact:
    """The container's mounts: {destination: {"type", "name", "source"}}."""
    observed = {
        m["Destination"]: {"type": m.get("Type"), "name": m.get("Name"), "source": m.get("Source")}
        for m in container(project, service).attrs.get("Mounts", [])
    }
    return Fact("docker inspect .Mounts", _where(project, service), observed)


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
        return Fact("docker inspect .HostConfig; docker inspect <task> .Spec", _where(project, service), observed)
    return Fact("docker inspect .HostConfig", _where(project, service), observed)


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


def environment_variable(project: str, service: str, name: str) -> Fact:
    """One variable the container was started with (None when unset). One only: the others may be
    passwords, which evidence never shows."""
    env = container(project, service).attrs["Config"].get("Env") or []
    found = [item.partition("=")[2] for item in env if item.partition("=")[0] == name]
    return Fact(f"docker inspect .Config.Env {name}", _where(project, service), found[0] if found else None)


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
    return Fact("docker inspect .HostConfig", _where(project, service), observed)


def process_users(project: str, service: str) -> Fact:
    """(program, user id) of every process running in the container (`docker top`, read from the
    host: works for images without a shell)."""
    top = container(project, service).top(ps_args="-o pid,uid,comm")
    titles = [t.upper() for t in top.get("Titles") or []]
    uid, command = titles.index("UID"), titles.index("COMMAND")
    observed = sorted({(row[command], int(row[uid])) for row in top.get("Processes") or []})
    return Fact("docker top -o pid,uid,comm", _where(project, service), observed)


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


def leftovers(project: str) -> dict:
    """Containers, networks and volumes still labelled with the compose project or the swarm stack
    of that name; and, while the engine is in a swarm, the stack's services, secrets and configs."""
    engine = client()
    found = {"containers": set(), "networks": set(), "volumes": set()}
    for label in (f"com.docker.compose.project={project}", f"{STACK_NAMESPACE}={project}", f"{PROBE_OF}={project}"):
        labelled = {"label": label}
        # Names from the listing itself: a container being removed now cannot make this fail.
        found["containers"] |= {c["Names"][0].lstrip("/") for c in engine.api.containers(all=True, filters=labelled)}
        found["networks"] |= {n.name for n in engine.networks.list(filters=labelled)}
        found["volumes"] |= {v.name for v in engine.volumes.list(filters=labelled)}
    if engine.info().get("Swarm", {}).get("ControlAvailable"):
        labelled = {"label": f"{STACK_NAMESPACE}={project}"}
        swarm = [found.name for kind in (engine.services, engine.secrets, engine.configs)
                 for found in kind.list(filters=labelled)]
        if swarm:
            found["swarm objects"] = set(swarm)
    return {kind: sorted(names) for kind, names in found.items()}


def running_containers(project: str, service: str) -> Fact:
    """Names of the service's running containers in the compose project (or swarm stack)."""
    found = client().containers.list(
        filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}",
                           "com.docker.compose.oneoff=False"], "status": "running"},
    )
    if found:
        return Fact(f"docker ps --filter label=com.docker.compose.service={service} --filter status=running",
                    _where(project, service), sorted(c.name for c in found))
    return Fact(f"docker ps --filter label={SWARM_SERVICE}={project}_{service} --filter status=running",
                _where(project, service), sorted(c.name for c in swarm_containers(project, service, running_only=True)))


def memory_limit_bytes(project: str, service: str) -> int:
    """The container's memory limit in bytes (0 when unlimited)."""
    return host_config(project, service).observed["memory_bytes"]


def _seconds(nanoseconds) -> float:
    return (nanoseconds or 0) / 1e9


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
    return Fact("docker inspect .Config.Healthcheck", _where(project, service), observed)


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
    return Fact("docker inspect .State", _where(project, service), observed)


def container_name(project: str, service: str) -> Fact:
    """The container's name and its compose container number (a swarm task's: its slot and task id)."""
    target = container(project, service)
    if SWARM_TASK in target.labels:
        task = client().api.inspect_task(target.labels[SWARM_TASK])
        return Fact("docker inspect .Name; docker inspect <task> .Slot", _where(project, service),
                    (target.name, f"{task.get('Slot')}.{task['ID']}"))
    return Fact("docker inspect .Name", _where(project, service),
                (target.name, target.labels.get("com.docker.compose.container-number")))


def swarm_task_spec(project: str, service: str) -> dict:
    """The swarm task's spec of the service's container (its ContainerSpec, RestartPolicy...)."""
    target = container(project, service)
    if SWARM_TASK not in target.labels:
        raise ProbeError(f"service {service}: its container is not a swarm task")
    return client().api.inspect_task(target.labels[SWARM_TASK])["Spec"]


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
            source = (folder if _pids_are_ours(target)
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


def pause(project: str, service: str) -> None:
    container(project, service).pause()


def unpause(project: str, service: str) -> None:
    container(project, service).unpause()


def _pids_are_ours(target) -> bool:
    """Whether the pids the container's engine reports are this host's: its main process, looked up
    in our /proc, is in the container's cgroup. (Not so for an engine that runs in a container.)"""
    pid = target.attrs["State"].get("Pid")
    try:
        return bool(pid) and target.id in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


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
    if _pids_are_ours(target):
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


def output_from_network(network: str, image_of: tuple, entrypoint: list, probe: str) -> str:
    """What `entrypoint` prints in a throwaway container on `network` alone (the image of `image_of`
    = (project, service), no capability, read-only, as nobody), removed once it ends."""
    project, service = image_of
    try:
        exit_code, output = run_scratch(
            container(project, service).image.id, project=project, probe=probe, entrypoint=entrypoint,
            network=network, stderr=False, cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
            read_only=True, user="nobody")
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


def parse_time(text: str):
    """A Docker or ISO timestamp ("2026-11-26T17:10:40.894529506Z") as an aware datetime (µs)."""
    from datetime import datetime

    text = text.replace("Z", "+00:00")
    main, _, zone = text.partition("+")
    if "." in main:
        whole, fraction = main.split(".")
        main = f"{whole}.{fraction[:6].ljust(6, '0')}"
    return datetime.fromisoformat(f"{main}+{zone or '00:00'}")


def image_present(image: str) -> Fact:
    """Whether `image` (name:tag) is in the engine's local images."""
    try:
        client().images.get(image)
        present = True
    except ImageNotFound:
        present = False
    except DockerException as error:
        raise ProbeError(f"image {image}: the engine did not answer: {error}") from error
    return Fact(f"docker image inspect {image}", "engine", present)


def running(project: str, service: str) -> Fact:
    """Whether the service has a running container (False when it has none)."""
    try:
        observed = bool(container(project, service).attrs["State"].get("Running"))
    except ProbeError:
        observed = False
    return Fact("docker inspect .State.Running", _where(project, service), observed)
