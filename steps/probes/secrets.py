"""Facts about the secrets a container holds and where a password shows: the files handed out to it,
its configuration as Docker keeps it (`docker inspect`), its processes' command lines. No fact carries
a password: each names the env file's variable whose value it found."""
from __future__ import annotations

from steps.probes import container_exec, container_state, docker_engine
from steps.probes.facts import Fact, ProbeError

SECRETS_DIR = "/run/secrets"


def secret_files(project: str, service: str) -> Fact:
    """The container's secret files and the mount they come from: {"mount": {"volume", "subpath",
    "read_only"} or None, "files": {name: {"mode": "400", "uid": n, "gid": n}}} (stat, run inside)."""
    target = docker_engine.container(project, service)
    mounts = [m for m in target.attrs["HostConfig"].get("Mounts") or [] if m.get("Target") == SECRETS_DIR]
    mount = None
    if docker_engine.SWARM_TASK in target.labels:
        # A swarm task's secrets: one read-only file each, named in its spec (no volume).
        spec = container_state.swarm_task_spec(project, service)["ContainerSpec"]
        mount = {"swarm_secrets": {s["File"]["Name"]: s["SecretName"] for s in spec.get("Secrets") or []},
                 "read_only": True}
    elif mounts:
        options = mounts[0].get("VolumeOptions") or {}
        mount = {"volume": mounts[0].get("Source"), "subpath": options.get("Subpath"),
                 "read_only": bool(mounts[0].get("ReadOnly"))}
    listing = container_exec.exec_in(project, service, [
        "sh", "-c", f"for f in {SECRETS_DIR}/*; do [ -e \"$f\" ] && stat -c '%n %a %u %g' \"$f\"; done; true"])
    if listing.observed.exit_code != 0:
        raise ProbeError(f"service {service}: cannot list {SECRETS_DIR}: {listing.observed.output[-300:]}")
    files = {}
    for line in listing.observed.output.splitlines():
        path, mode, uid, gid = line.rsplit(" ", 3)
        files[path.removeprefix(SECRETS_DIR + "/")] = {"mode": mode, "uid": int(uid), "gid": int(gid)}
    return Fact(f"docker inspect .HostConfig.Mounts {SECRETS_DIR}; docker exec stat -c '%n %a %u %g' "
                f"{SECRETS_DIR}/*", docker_engine.where(project, service), {"mount": mount, "files": files})


def whose_secret(project: str, service: str, path: str, known: dict) -> Fact:
    """Whose password the file at `path` in the container holds: the names in `known` ({variable:
    value}) whose value is its content; compared here, never shown."""
    read = container_exec.exec_in(project, service, ["cat", path]).observed
    if read.exit_code != 0:
        raise ProbeError(f"service {service}: cannot read {path}: {read.output[-200:]}")
    content = read.output
    return Fact(f"docker exec cat {path}, compared with the env file's {', '.join(sorted(known))} (values not shown)",
                docker_engine.where(project, service),
                sorted(name for name, value in known.items() if value and value == content))


def _found_in(text: str, passwords: dict) -> list[str]:
    return sorted(name for name, value in passwords.items() if value and value in text)


def exposed_passwords(project: str, service: str, passwords: dict) -> Fact:
    """Where a password of `passwords` ({variable: value}) shows in the container: its configuration
    as `docker inspect` gives it to anyone with Docker access (environment, entrypoint, command,
    healthcheck, labels) and the command lines of its processes (`docker top`, what `ps` shows on the
    host). Observed: [(where, variable)], empty when none shows."""
    target = docker_engine.container(project, service)
    config = target.attrs["Config"]
    places = {
        "environment": config.get("Env") or [],
        "entrypoint": config.get("Entrypoint") or [],
        "command": config.get("Cmd") or [],
        "healthcheck": (config.get("Healthcheck") or {}).get("Test") or [],
        "labels": [f"{k}={v}" for k, v in (config.get("Labels") or {}).items()],
    }
    found = [(place, name) for place, items in places.items() for item in items for name in _found_in(item, passwords)]
    if target.attrs["State"].get("Running"):
        top = target.top(ps_args="-eo pid,args")
        column = [t.upper() for t in top.get("Titles") or []].index("COMMAND")
        for row in top.get("Processes") or []:
            found += [(f"process {row[0]}'s command line", name) for name in _found_in(row[column], passwords)]
    return Fact("docker inspect .Config (Env, Entrypoint, Cmd, Healthcheck, Labels) and docker top -eo pid,args, "
                "compared with the env file's passwords (values not shown)", docker_engine.where(project, service),
                sorted(set(found)))


# Each process's environment, read inside the container as the process's own user (the programs run
# as their own unprivileged users, without capabilities: only that user, or root with CAP_SYS_PTRACE,
# may read it): a line "<MARK> <comm>" before each process's variables, one a line. The container's
# own processes only: PID 1 and its descendants; a `docker exec`'s process (a probe's, this reader
# included) has its parent outside the container (PPid 0).
MARK = "@@tse-process@@"
ENVIRONMENTS = ('for d in /proc/[0-9]*; do [ -r "$d/environ" ] || continue; '
                '[ "$d" = /proc/1 ] || [ "$(sed -n "s/^PPid:[[:space:]]*//p" "$d/status")" != 0 ] || continue; '
                'echo "' + MARK + ' $(cat "$d/comm")"; '
                'tr "\\000" "\\n" < "$d/environ"; echo; done')


def passwords_in_process_environments(project: str, service: str, passwords: dict) -> Fact:
    """Which password of `passwords` ({variable: value}) a running process of the container holds in
    its environment (/proc/<pid>/environ, what its own user and root can read). Observed:
    [(program, variable)], empty when none; the values are compared here, never shown."""
    target = docker_engine.container(project, service)
    top = target.top(ps_args="-o pid,uid")   # docker top needs the pid column
    column = [t.upper() for t in top.get("Titles") or []].index("UID")
    uids = sorted({row[column] for row in top.get("Processes") or []})
    found, read = set(), 0
    for uid in uids:
        output = (target.exec_run(["sh", "-c", ENVIRONMENTS], user=uid).output or b"").decode(errors="replace")
        for block in output.split(MARK + " ")[1:]:
            program, _, environment = block.partition("\n")
            read += 1
            found |= {(program, name) for name in _found_in(environment, passwords)}
    if not read:
        raise ProbeError(f"service {service}: no process environment could be read (users {uids})")
    return Fact(f"/proc/<pid>/environ of every process, read as its user ({read} read), compared with the env "
                "file's passwords (values not shown)", docker_engine.where(project, service), sorted(found))
