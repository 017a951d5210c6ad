"""The swarm stack file, made from docker-compose.yml: one source for both deployments.

`docker stack deploy` reads a compose file, but refuses or silently drops much of this one (read with
engine and CLI 26.1.5 here): it rejects the top-level `name`, depends_on conditions, the ipam gateway,
`secrets.*.environment`, profiles and `host_ip`; it drops `ipv4_address`, the service `tmpfs` key
(read-only containers would lose /tmp) and `volume.subpath` (every service would mount every other's
secrets); it turns `restart: "no"` into "restart always", and it cannot use bridge networks. An
override file cannot help (the CLI validates each file alone, before merging). So the model compose
makes of the file (`docker compose config --format json`: interpolated, profiles applied) goes
through `stack_file` here, a plain function, and the result to `docker stack deploy -c -`.

What changes, and why:
- secrets: swarm's own, one file per secret at /run/secrets/<name>, mode 0400, owned by the user of
  infra/secrets/handout (the one-shot secrets service and its volume are not needed);
- files bind-mounted from the repo: swarm configs, named by content hash (an edit rolls the service);
- networks: overlay and attachable (probes and sibling projects join them), subnet only;
- no published port: without IPVS (this kernel has none) there is no routing mesh, and swarm cannot
  bind 127.0.0.1; the host reaches the services through the gateway (steps/harness/swarm.py);
- endpoint_mode dnsrr: a service name resolves to its tasks' addresses (a VIP needs IPVS);
- the stateful services stay on the node that holds their volumes (a node label);
- each program starts under `setpriv --no-new-privs` (util-linux, in every Debian image): services
  cannot set no-new-privileges (moby/moby#41371), the kernel flag is inherited from the entrypoint.
"""
from __future__ import annotations

import hashlib
import re
import stat
from pathlib import Path

# Keys docker stack deploy refuses or would misread; what replaces each is said where it is made.
DROPPED_SERVICE_KEYS = ("build", "depends_on", "profiles", "container_name", "restart", "shm_size", "tmpfs",
                        "security_opt", "ports", "network_mode")
# Services that keep their data in a local volume: they run on the node labelled DATA_NODE_LABEL.
STATEFUL = ("redis", "postgres", "prometheus", "alertmanager")
# The stateless HTTP services run replicated: their state is in Redis and PostgreSQL, and the answers
# each replica keeps in memory follow the change events on Redis (servicekit/readcache.py).
REPLICAS = {"service-registry": 2, "configuration-service": 2}
# A rolling update replaces one task at a time, starting the new one first; a new task that is not
# healthy within the monitor window rolls the service back.
# Variables listing the Host names a service answers to: a task has any address of its networks, so
# their subnets join the list (a name still has to be listed).
ALLOWED_HOSTS = {"service-registry": "REGISTRY_ALLOWED_HOSTS",
                 "configuration-service": "CONFIG_ALLOWED_HOSTS"}
UPDATE_CONFIG = {"parallelism": 1, "order": "start-first", "monitor": "30s", "failure_action": "rollback"}
DATA_NODE_LABEL = "tse.data"
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
# Swarm object names: at most 64 of [a-zA-Z0-9-_.], starting and ending with a letter or digit.
NAME_LIMIT = 64
# A service's name (<stack>_<service>) is a DNS label: at most 63.
SERVICE_NAME_LIMIT = 63


def size_bytes(text: str | int) -> int:
    """Bytes in a compose size ("64m", "512mb", 1024)."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"(\d+)([kmg]?)b?", str(text).strip().lower())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    return int(match.group(1)) * SIZE_UNITS[match.group(2)]


def read_handout(text: str) -> dict:
    """{service: (uid, gid, [secret, ...])} from infra/secrets/handout's lines."""
    given = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            service, owner, names = line.split()
            uid, gid = owner.split(":")
            given[service] = (uid, gid, names.split(","))
    return given


def object_name(stack: str, label: str, content: bytes) -> str:
    """A swarm config's key: the file's name and a hash of its content, short enough that swarm's
    `<stack>_<key>` stays within its limit."""
    digest = hashlib.sha256(content).hexdigest()[:10]
    room = NAME_LIMIT - len(stack) - 1 - len(digest) - 1
    stem = re.sub(r"[^a-zA-Z0-9_.-]", "_", label)[-room:].strip("._-") or "file"
    return f"{stem}-{digest}"


def secret_name(stack: str, name: str) -> str:
    """The swarm secret holding `name` for `stack`: <stack>_<name>, shortened with a hash of the
    stack's name where that would pass swarm's limit."""
    full = f"{stack}_{name}"
    if len(full) <= NAME_LIMIT:
        return full
    digest = hashlib.sha256(stack.encode()).hexdigest()[:8]
    return f"{stack[:max(1, NAME_LIMIT - len(name) - len(digest) - 2)]}-{digest}_{name}"


def _tmpfs_mounts(service: dict) -> list:
    """The service's `tmpfs` entries ("/tmp:size=64m") and shm_size as tmpfs mounts, which swarm keeps."""
    mounts = []
    for entry in service.get("tmpfs") or []:
        target, _, options = entry.partition(":")
        size = re.search(r"size=(\w+)", options)
        mounts.append({"type": "tmpfs", "target": target,
                       **({"tmpfs": {"size": size_bytes(size.group(1))}} if size else {})})
    if service.get("shm_size"):
        mounts.append({"type": "tmpfs", "target": "/dev/shm", "tmpfs": {"size": size_bytes(service["shm_size"])}})
    return mounts


def _files(source: Path) -> list[Path]:
    return [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())


NO_NEW_PRIVS = ["setpriv", "--no-new-privs", "--"]


def without_privilege_gain(declared: dict, image_command: tuple) -> dict:
    """entrypoint and command that run the service's program under NO_NEW_PRIVS. `image_command` is
    the image's (Entrypoint, Cmd); the declared entrypoint or command win over it, as in compose (an
    entrypoint set drops the image's Cmd)."""
    image_entrypoint, image_cmd = (list(part or []) for part in image_command)
    entrypoint = declared.get("entrypoint")
    command = declared.get("command")
    if entrypoint is None:
        entrypoint = image_entrypoint
        command = image_cmd if command is None else command
    entrypoint = [entrypoint] if isinstance(entrypoint, str) else list(entrypoint)
    command = [command] if isinstance(command, str) else list(command or [])
    if not entrypoint and not command:
        raise ValueError(f"{declared.get('image')}: no entrypoint or command to run")
    return {"entrypoint": NO_NEW_PRIVS + entrypoint, "command": command}


def _one_shot_services(model: dict) -> set:
    """The services others wait on to complete (the secrets hand-out): swarm secrets do their job."""
    return {dep for svc in model["services"].values() for dep, spec in (svc.get("depends_on") or {}).items()
            if (spec or {}).get("condition") == "service_completed_successfully"}


def _swarm_deploy(name: str, deploy: dict) -> None:
    """Fills the service's `deploy` with what swarm needs in place of compose's keys: DNS round robin,
    the restart policy, the data node for the stateful services, replicas for the stateless ones."""
    limits = deploy.get("resources", {}).get("limits", {})
    if "cpus" in limits:
        limits["cpus"] = str(limits["cpus"])
    deploy["endpoint_mode"] = "dnsrr"
    # Written out: swarm reads `restart: "no"` as "always", and has no unless-stopped.
    deploy["restart_policy"] = {"condition": "any", "delay": "5s"}
    if name in STATEFUL:
        deploy["placement"] = {"constraints": [f"node.labels.{DATA_NODE_LABEL} == true"]}
    if name in REPLICAS:
        deploy["replicas"] = REPLICAS[name]
        # One replica a node where the swarm has the nodes (spread by the scheduler anyway).
        deploy["placement"] = {"preferences": [{"spread": "node.id"}]}
        deploy["update_config"] = dict(UPDATE_CONFIG)


def _allow_network_addresses(name: str, service: dict, networks: dict) -> None:
    """Adds the subnets of the service's networks to the Host names it answers to (ALLOWED_HOSTS): a
    task has any address of its networks."""
    if name not in ALLOWED_HOSTS or ALLOWED_HOSTS[name] not in (service.get("environment") or {}):
        return
    subnets = [c["subnet"] for key in service["networks"]
               for c in (networks[key].get("ipam") or {}).get("config") or []]
    environment = dict(service["environment"])
    environment[ALLOWED_HOSTS[name]] = ",".join([environment[ALLOWED_HOSTS[name]], *subnets])
    service["environment"] = environment


def _bind_configs(stack: str, name: str, volume: dict, out_configs: dict) -> list:
    """The service's configs for a bind mount, one per file, each added to `out_configs` (the stack's):
    swarm has no bind mounts from the repository. An executable file stays executable."""
    configs = []
    source = Path(volume["source"])
    for path in _files(source):
        key = object_name(stack, f"{name}_{path.name}", path.read_bytes())
        out_configs[key] = {"file": str(path)}
        target = volume["target"] if path == source else f"{volume['target']}/{path.relative_to(source)}"
        executable = path.stat().st_mode & stat.S_IXUSR
        configs.append({"source": key, "target": target, "mode": 0o555 if executable else 0o444})
    return configs


def _mounts_and_configs(stack: str, name: str, declared: dict, out_configs: dict) -> tuple[list, list]:
    """The service's mounts (tmpfs and volumes) and its configs (from bind mounts)."""
    mounts, configs = _tmpfs_mounts(declared), []
    for volume in declared.get("volumes") or []:
        if volume["type"] == "volume" and (volume.get("volume") or {}).get("subpath"):
            continue  # the service's folder of the secrets volume: swarm secrets instead
        if volume["type"] == "bind":
            configs += _bind_configs(stack, name, volume, out_configs)
            continue
        mount = {k: v for k, v in volume.items() if k != "bind" and v != {}}
        mounts.append(mount)
    return mounts, configs


def _swarm_service(model: dict, name: str, declared: dict, image_command: tuple, stack: str,
                   out_configs: dict) -> dict:
    """The service as swarm takes it, without its secrets; the configs it mounts go to `out_configs`."""
    service = {k: v for k, v in declared.items() if k not in DROPPED_SERVICE_KEYS and v is not None}
    service.update(without_privilege_gain(declared, image_command))
    _swarm_deploy(name, service.setdefault("deploy", {}))
    service["networks"] = {key: None for key in declared.get("networks") or {}}  # no static address
    _allow_network_addresses(name, service, model["networks"])
    service["volumes"], configs = _mounts_and_configs(stack, name, declared, out_configs)
    if configs:
        service["configs"] = configs
    return service


def _overlay_networks(model: dict) -> dict:
    """The networks as overlays, attachable (probes and sibling projects join them), subnet only."""
    networks = {}
    for key, network in model["networks"].items():
        subnets = [{"subnet": c["subnet"]} for c in (network.get("ipam") or {}).get("config") or []]
        overlay = {"driver": "overlay", "attachable": True, "ipam": {"config": subnets}}
        if network.get("name") and not network["name"].startswith(f"{model.get('name')}_"):
            overlay["name"] = network["name"]  # named on purpose: sibling projects join it by that name
        networks[key] = overlay
    return networks


def stack_file(model: dict, stack: str, handout: dict, image_commands: dict) -> dict:
    """The stack file for `docker stack deploy` from compose's model of docker-compose.yml.

    `handout` is read_handout()'s: which service gets which secret, as which user; `image_commands`
    {image: (Entrypoint, Cmd)} of each service's image."""
    one_shot = _one_shot_services(model)
    out = {"services": {}, "networks": {}, "volumes": {}, "secrets": {}, "configs": {}}
    for name, declared in model["services"].items():
        if name in one_shot:
            continue  # the secrets hand-out: swarm secrets do its job
        service = _swarm_service(model, name, declared, image_commands[declared["image"]], stack, out["configs"])
        if name in handout:
            uid, gid, names = handout[name]
            names = [n for n in names if n not in PRODUCTION_ONLY_SECRETS]
            service["secrets"] = [{"source": n, "target": n, "uid": uid, "gid": gid, "mode": 0o400} for n in names]
            # Made by the deployer from the env file (secret_values), before the deploy.
            out["secrets"].update({n: {"external": True, "name": secret_name(stack, n)} for n in names})
        out["services"][name] = service
    out["networks"] = _overlay_networks(model)
    out["volumes"] = {key: {} for key in model.get("volumes") or {} if key != "secrets"}
    return out


def start_waves(dependencies: dict) -> list[list[str]]:
    """The services in the order compose starts them: each wave's dependencies are all in earlier
    waves. `dependencies` is {service: {dependency: condition}} (compose_model.declared_dependencies).
    Swarm has no start order; deploying wave after wave, each healthy first, gives it compose's."""
    waves, placed = [], set()
    while len(placed) < len(dependencies):
        wave = sorted(s for s, deps in dependencies.items() if s not in placed and set(deps) <= placed)
        if not wave:
            raise ValueError(f"a dependency cycle among {sorted(set(dependencies) - placed)}")
        waves.append(wave)
        placed |= set(wave)
    return waves


def secret_values(model: dict, environment: dict) -> dict:
    """{secret: value} for every secret compose declares from an environment variable."""
    values = {}
    for name, secret in (model.get("secrets") or {}).items():
        variable = secret.get("environment")
        if variable and environment.get(variable):
            values[name] = environment[variable]
    return values


# The certificates the secrets service makes in production mode, which swarm does not run (swarm.py).
PRODUCTION_ONLY_SECRETS = ("ca.crt", "tls.crt")
# The servers' TLS settings as the secrets service writes them in development mode: none.
DEVELOPMENT_TLS_SETTINGS = "# Written for swarm: TLS settings of mode development (none).\n"

ACL_RULES_TARGET = "/etc/secrets/users.acl"   # where the secrets service reads Redis's users and rules


def acl_rules_path(model: dict) -> Path:
    """infra/redis/users.acl as the compose model mounts it into the secrets service."""
    for volume in model["services"]["secrets"].get("volumes") or []:
        if volume.get("target") == ACL_RULES_TARGET:
            return Path(volume["source"])
    raise ValueError(f"the secrets service mounts nothing at {ACL_RULES_TARGET}: Redis's users and rules")


def redis_acl(rules: str, secrets: dict) -> str:
    """Redis's ACL as infra/secrets/distribute makes it for compose: the rules without comments, and
    `#<sha256 of the password>` after `on` for each user with a secret redis_password_<user>."""
    lines = []
    for line in rules.splitlines():
        if not line or line.startswith("#"):
            continue
        user = line.removeprefix("user ").split(" ")[0]
        password = secrets.get(f"redis_password_{user.replace('-', '_')}")
        head = f"user {user} on"
        if password is not None and (line == head or line.startswith(head + " ")):
            line = f"{head} #{hashlib.sha256(password.encode()).hexdigest()}{line[len(head):]}"
        lines.append(line)
    return "\n".join(lines) + "\n"
