"""The Docker engine's client, and finding a compose project's or swarm stack's containers.

Every probe that takes the compose project name and a service name finds the service's container
here (`container`), by its compose labels (a swarm stack's: by swarm's labels, the stack's name as
the project). What the containers say is in container_state.py, commands run inside them in
container_exec.py, networks and reachability in networks.py.
"""
from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import docker
from docker.errors import DockerException, ImageNotFound, NotFound

from steps.probes.facts import Fact, ProbeError, StackError

# The labels swarm puts on a stack's containers (compose's are com.docker.compose.*).
STACK_NAMESPACE = "com.docker.stack.namespace"
SWARM_SERVICE = "com.docker.swarm.service.name"
SWARM_TASK = "com.docker.swarm.task.id"

# A throwaway container the harness runs from a service's image (steps/harness/scratch.py): what
# it is for, and for which project (leftovers counts what it left).
PROBE = "org.trading-ecosystem.probe"
PROBE_OF = "org.trading-ecosystem.probe-of"


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


def service_of(container) -> str:
    """The stack's service a container runs: its swarm service without the stack's prefix, else its
    compose service, else the container's name (a container started some other way)."""
    labels = container.labels
    if SWARM_SERVICE in labels and STACK_NAMESPACE in labels:
        return labels[SWARM_SERVICE].removeprefix(labels[STACK_NAMESPACE] + "_")
    return labels.get("com.docker.compose.service") or container.name


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


def where(project: str, service: str) -> str:
    """Where a fact about a service's container was read, as the evidence names it."""
    return f"{service} (project {project})"


def running_containers(project: str, service: str) -> Fact:
    """Names of the service's running containers in the compose project (or swarm stack)."""
    found = client().containers.list(
        filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}",
                           "com.docker.compose.oneoff=False"], "status": "running"},
    )
    if found:
        return Fact(f"docker ps --filter label=com.docker.compose.service={service} --filter status=running",
                    where(project, service), sorted(c.name for c in found))
    return Fact(f"docker ps --filter label={SWARM_SERVICE}={project}_{service} --filter status=running",
                where(project, service), sorted(c.name for c in swarm_containers(project, service, running_only=True)))


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
