"""Driving the stack on Docker Swarm (`--stack=swarm`, `stackctl --swarm`): the same
docker-compose.yml, made into a stack file (swarm_file.py), deployed on this engine's swarm with its
secrets, reached from the host through a gateway container, and removed with everything it made.

A single-node swarm: this engine's, initialised here when it is in no swarm (and left again at the
end), or the swarm it already manages. The stack's stateful services run on the nodes labelled
swarm_file.DATA_NODE_LABEL: the node is labelled so when the swarm is initialised here; on a swarm
of an operator's, labelling the data node is the operator's choice.
"""
from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml
from docker.errors import APIError, NotFound
from docker.types import IPAMConfig, IPAMPool, LogConfig

from steps.harness.compose import ComposeStack, compose_for
from steps.harness.isolation import free_subnet
from steps.harness.settings import ROOT, StackSettings
from steps.harness.swarm_file import (
    DATA_NODE_LABEL,
    DEVELOPMENT_TLS_SETTINGS,
    SERVICE_NAME_LIMIT,
    acl_rules_path,
    read_handout,
    redis_acl,
    secret_name,
    secret_values,
    stack_file,
    start_waves,
)
from steps.probes import compose_model, docker_engine, swarm_engine
from steps.probes.facts import StackError
from steps.probes.waiting import WaitTimeout, wait_until

GATEWAY_IMAGE = "trading-ecosystem/swarm-gateway:local"
# The gateway's own bridge carries the host's published ports to it, and nothing between containers;
# its subnet one no network and no stack uses (Docker's pick could be one a stack's overlay declares).
GATEWAY_NETWORK_OPTIONS = {"com.docker.network.bridge.enable_icc": "false"}
GATEWAY_NETWORK_SUBNETS = tuple(f"192.168.{n}.0/24" for n in range(242, 250))
# One socat per route and one child per forwarded connection, at most 64 at once per route (forward's
# max-children): 7 routes take at most 7 x 65 processes.
GATEWAY_PIDS = 512


def gateway_limits() -> dict:
    """What bounds the gateway container: no capability, a read-only root, memory, processes, logs."""
    return {"read_only": True, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"], "mem_limit": "64m",
            "pids_limit": GATEWAY_PIDS,
            "log_config": LogConfig(type="json-file", config={"max-size": "1m", "max-file": "2"})}
GATEWAY_BRIDGE = "docker_gwbridge"
GATEWAY_BRIDGE_SUBNETS = ("172.18.0.0/16", "172.19.0.0/16", "192.168.240.0/24", "192.168.241.0/24")
# Failed tasks of one service after which waiting stops: swarm replaces a failed task for ever.
FAILED_TASKS = 3
OWNED = "org.trading-ecosystem.swarm"


def stack_label(project: str) -> dict:
    return {docker_engine.STACK_NAMESPACE: project}


@dataclass
class SwarmStack(ComposeStack):
    """One swarm stack. Compose still does what it does well here (the model of the file, building
    the images); `docker stack` deploys and removes; a gateway container publishes the ports the
    settings name on 127.0.0.1 and forwards them over the overlays."""

    settings: StackSettings | None = None
    # Whether this run initialised the swarm (then it leaves it at the end).
    initialised_swarm: bool = False
    _deployed_at: float | None = field(default=None, repr=False)
    _waves: list = field(default_factory=list, repr=False)

    @property
    def gateway_name(self) -> str:
        return swarm_engine.gateway_name(self.project)

    @cached_property
    def stack_file(self) -> dict:
        handout = read_handout((ROOT / "infra/secrets/handout").read_text())
        engine = docker_engine.client()
        images = {service["image"] for service in self.config["services"].values()}
        commands = {}
        for image in images:
            config = engine.images.get(image).attrs["Config"]
            commands[image] = (config.get("Entrypoint"), config.get("Cmd"))
        return stack_file(self.config, self.project, handout, commands)

    @property
    def service_names(self) -> list[str]:
        return sorted(self.stack_file["services"])

    @property
    def one_shot_service_names(self) -> set:
        return set()  # the secrets service's job is swarm's own secrets

    def docker(self, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, timeout=timeout)

    # -- start ---------------------------------------------------------------------------------------

    def ensure_images(self) -> None:
        super().ensure_images()
        # The Dockerfile holds BASE_IMAGE's default; the environment may name another.
        base = ["--build-arg", f"BASE_IMAGE={os.environ['BASE_IMAGE']}"] if os.environ.get("BASE_IMAGE") else []
        result = self.docker("build", "-q", *base, "-t", GATEWAY_IMAGE, str(ROOT / "infra/swarm-gateway"), timeout=600)
        if result.returncode != 0:
            raise StackError(f"building the swarm gateway failed:\n{result.stderr.strip()[-2000:]}") from None

    def _create_secrets(self) -> None:
        engine = docker_engine.client()
        values = secret_values(self.config, self.settings.values)
        values["exporter_web_config"] = self._exporter_web_config(values["redis_exporter_scrape_password"])
        values["users.acl"] = redis_acl(acl_rules_path(self.config).read_text(), values)
        # Swarm runs development mode only (settings.py): the servers' TLS settings are none.
        values.update({name: DEVELOPMENT_TLS_SETTINGS for service in self.stack_file["services"].values()
                       for name in (s["source"] for s in service.get("secrets") or []) if name.endswith(".tls.conf")})
        wanted = {name for service in self.stack_file["services"].values() for name in
                  (s["source"] for s in service.get("secrets") or [])}
        # Each Redis password is hashed into users.acl: none may be missing either.
        hashed = {name for name in self.config.get("secrets") or {} if name.startswith("redis_password_")}
        missing = sorted((wanted | hashed) - set(values))
        if missing:
            raise StackError(f"no value for the secrets {', '.join(missing)}: set "
                             f"{', '.join(m.upper() for m in missing)} in {self.settings.env_file}.")
        for name in sorted(wanted):
            full = secret_name(self.project, name)
            for old in engine.secrets.list(filters={"name": full}):
                if old.name == full:
                    old.remove()  # a run before this one left it: its value may be stale
            engine.secrets.create(name=full, data=values[name].encode(),
                                  labels={**stack_label(self.project), OWNED: "1"})

    def _exporter_web_config(self, scrape_password: str) -> str:
        """exporter-toolkit's web configuration with a bcrypt hash of Prometheus's scrape password,
        as infra/secrets/distribute makes it (htpasswd of the secrets image, password on stdin)."""
        image = self.config["services"]["secrets"]["image"]
        result = self.docker("run", "--rm", "-i", "--network", "none", "--entrypoint", "htpasswd", image,
                             "-niB", "-C", "10", "prometheus", stdin=scrape_password)
        if result.returncode != 0:
            raise StackError(f"hashing the exporters' scrape password failed: {result.stderr.strip()}")
        return f"basic_auth_users:\n  prometheus: {result.stdout.strip().removeprefix('prometheus:')}\n"

    def start_up(self) -> None:
        longest = max(self.service_names, key=len)
        if len(f"{self.project}_{longest}") > SERVICE_NAME_LIMIT:
            raise StackError(f"stack name {self.project} is too long for swarm: {self.project}_{longest} passes "
                             f"{SERVICE_NAME_LIMIT} characters. Hint: pass a shorter --project-name.")
        self._create_secrets()
        self._waves = start_waves(compose_model.declared_dependencies(self.config))
        self._deploy(self._waves[0])
        self._deployed_at = time.monotonic()

    def _deploy(self, services: list[str]) -> None:
        """`docker stack deploy` of the stack file with `services` only (and everything they use)."""
        chosen = {**self.stack_file, "services": {name: spec for name, spec in self.stack_file["services"].items()
                                                  if name in services}}
        result = self.docker("stack", "deploy", "--compose-file", "-", "--resolve-image", "never", "--prune",
                             "--detach=true", self.project, stdin=yaml.safe_dump(chosen, sort_keys=False),
                             timeout=300)
        if result.returncode != 0:
            raise StackError(f"docker stack deploy failed: {result.stderr.strip()[-2000:]}")

    def wait_up(self) -> None:
        """Wave after wave (compose's start order: swarm has none), until every service has its
        replicas running and healthy; then the gateway. StackError naming the services that are not,
        with their tasks' errors and last log lines."""
        if self._deployed_at is None:
            return
        deployed: list[str] = []
        try:
            for number, wave in enumerate(self._waves):
                deployed += wave
                if number:
                    self._deploy(deployed)
                left = self.wait_timeout - (time.monotonic() - self._deployed_at)
                wait_until(lambda up=tuple(deployed): self._all_healthy(up), timeout=max(left, 1), interval=0.5,
                           description=f"{', '.join(wave)} healthy")
        except WaitTimeout:
            raise StackError(self.describe_failure(f"not healthy within {self.wait_timeout} s")) from None
        finally:
            self._deployed_at = None
        self.start_gateway()

    def _all_healthy(self, services: list[str]) -> bool:
        states = {name: state for name, state in self.task_states().items() if name in services}
        failing = {s: errors for s, (_, _, errors) in states.items() if len(errors) >= FAILED_TASKS}
        if failing:
            raise StackError(self.describe_failure(
                "", headline="the stack cannot get healthy: " + "; ".join(
                    f"{s}: {len(e)} tasks failed ({e[-1]})" for s, e in sorted(failing.items()))))
        return all(healthy >= wanted for wanted, healthy, _ in states.values())

    def task_states(self) -> dict:
        """{service: (replicas wanted, healthy running containers, [errors of failed tasks])}."""
        engine = docker_engine.client()
        states = {}
        for name in self.service_names:
            full = f"{self.project}_{name}"
            found = [s for s in engine.services.list(filters={"name": full}) if s.name == full]
            if not found:
                states[name] = (1, 0, [])
                continue
            service = found[0]
            wanted = (service.attrs["Spec"].get("Mode", {}).get("Replicated") or {}).get("Replicas", 1)
            errors = [t["Status"].get("Err") or t["Status"].get("State") for t in service.tasks()
                      if t["Status"].get("State") in ("failed", "rejected")]
            healthy = len([c for c in docker_engine.swarm_containers(self.project, name)
                           if c.attrs["State"].get("Health", {}).get("Status") == "healthy"])
            states[name] = (wanted, healthy, errors)
        return states

    def start_gateway(self) -> None:
        """The gateway on a bridge of its own (no other container on it), publishing each declared
        127.0.0.1 port; then joined to the overlays (after it listens: it listens on its bridge
        address only)."""
        engine = docker_engine.client()
        self.remove_gateway()
        routes, ports = [], {}
        for service, declared in compose_model.declared_ports(self.config).items():
            for host_ip, published, target in declared:
                routes.append(f"{target}={service}:{target}")
                ports[f"{target}/tcp"] = (host_ip or "127.0.0.1", int(published))
        labels = {**stack_label(self.project), OWNED: "1"}
        subnet = free_subnet(GATEWAY_NETWORK_SUBNETS, avoid=[self.settings.subnet,
                                                             self.settings.values["TSE_MONITORING_SUBNET"]])
        if subnet is None:
            raise StackError(f"no free subnet for the swarm gateway among {', '.join(GATEWAY_NETWORK_SUBNETS)}. "
                             "Hint: remove unused docker networks (docker network prune).")
        engine.networks.create(self.gateway_name, driver="bridge", labels=labels, options=GATEWAY_NETWORK_OPTIONS,
                               ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)]))
        gateway = engine.containers.run(GATEWAY_IMAGE, command=routes, name=self.gateway_name, detach=True,
                                        ports=ports, network=self.gateway_name, labels=labels,
                                        **gateway_limits())
        def listening_or_exited() -> bool:
            gateway.reload()
            return gateway.status == "exited" or b"forward: listening" in gateway.logs()

        wait_until(listening_or_exited, timeout=30, interval=0.1, description="the gateway listening")
        if gateway.status == "exited":
            raise StackError(f"the swarm gateway exited: {gateway.logs().decode(errors='replace').strip()}")
        for network in self._overlay_names():
            engine.networks.get(network).connect(gateway)

    def _overlay_names(self) -> list[str]:
        return [network.get("name") or f"{self.project}_{key}" for key, network in self.stack_file["networks"].items()]

    def describe_failure(self, output: str, headline: str = "") -> str:
        lines = [headline or f"the swarm stack is not healthy ({output})."]
        for name, (wanted, healthy, errors) in sorted(self.task_states().items()):
            if healthy < wanted or errors:
                lines.append(f"  {name}: {healthy} of {wanted} healthy; failed tasks: {errors[-3:] or 'none'}")
                log = self.docker("service", "logs", "--raw", "--tail", "8", f"{self.project}_{name}").stdout
                lines.extend(f"    | {line}" for line in log.strip().splitlines())
        return "\n".join(lines)

    # -- stop ----------------------------------------------------------------------------------------

    def declared_replicas(self, service: str) -> int:
        return self.stack_file["services"][service].get("deploy", {}).get("replicas", 1)

    def _scale(self, replicas: dict) -> None:
        args = [f"{self.project}_{service}={count}" for service, count in replicas.items()]
        result = self.docker("service", "scale", "--detach", *args)
        if result.returncode != 0:
            raise StackError(f"docker service scale failed: {result.stderr.strip()}")

    def stop_services(self, *services: str) -> None:
        """Scaled to 0: the service and its volumes stay (swarm's `compose stop`)."""
        self._scale({service: 0 for service in services})
        wait_until(lambda: not any(docker_engine.swarm_containers(self.project, s, running_only=True)
                                   for s in services),
                   timeout=60, interval=0.25, description=f"{', '.join(services)} stopped")

    def start_services(self, *services: str) -> None:
        """Scaled back to the replicas the stack file declares; waits until every one is healthy."""
        self._scale({service: self.declared_replicas(service) for service in services})
        try:
            wait_until(lambda: all(healthy >= wanted for s, (wanted, healthy, _) in self.task_states().items()
                                   if s in services),
                       timeout=self.wait_timeout, interval=0.25, description=f"{', '.join(services)} healthy")
        except WaitTimeout as error:
            raise StackError(self.describe_failure(str(error))) from None

    def remove_stack(self) -> None:
        """`docker stack rm`, then wait until its containers and networks are gone (a deploy right
        after would find the networks still there)."""
        self.remove_gateway()
        self.docker("stack", "rm", self.project)
        engine = docker_engine.client()
        try:
            wait_until(lambda: not docker_engine.swarm_containers(self.project, None)
                       and not engine.networks.list(filters=self._labelled()),
                       timeout=120, interval=0.25, description=f"stack {self.project} removed")
        except WaitTimeout as error:
            raise StackError(str(error)) from None

    def _labelled(self) -> dict:
        """The engine's filter for what the stack made (swarm labels it with the stack's name)."""
        return {"label": f"{docker_engine.STACK_NAMESPACE}={self.project}"}

    def stop_keeping_volumes(self) -> None:
        self.remove_stack()

    def down_with_volumes(self) -> None:
        self.remove_stack()
        self._remove_volumes()

    def up(self) -> None:
        self.start_up()
        self.wait_up()

    def remove_gateway(self) -> None:
        """The gateway, then its bridge."""
        engine = docker_engine.client()
        for remove in (lambda: engine.containers.get(self.gateway_name).remove(force=True),
                       lambda: engine.networks.get(self.gateway_name).remove()):
            try:
                remove()
            except NotFound:
                pass

    def _remove_volumes(self) -> None:
        for volume in docker_engine.client().volumes.list(filters=self._labelled()):
            try:
                volume.remove(force=True)
            except APIError:
                pass

    def remove(self, volumes: bool) -> None:
        """The stack, its gateway and its secrets; its volumes too when `volumes` (`stackctl down`)."""
        try:
            self.remove_stack()
        finally:
            if volumes:
                self._remove_volumes()
            for secret in docker_engine.client().secrets.list(filters=self._labelled()):
                secret.remove()

    def down(self) -> None:
        """Everything this stack made: services, networks, volumes, secrets, gateway; the swarm too
        when this run initialised it (and the docker_gwbridge network swarm leaves behind)."""
        try:
            self.remove(volumes=True)
        except StackError:
            pass  # a removal that did not finish in time: leaving the swarm below ends it
        finally:
            if self.initialised_swarm:  # also after an unexpected error: the swarm this run made goes
                self.initialised_swarm = False
                leave_swarm()


def swarm_for(settings: StackSettings, workdir: Path) -> SwarmStack:
    """A SwarmStack for `settings` (compose reads the same files and overrides as for compose_for)."""
    compose = compose_for(settings, workdir)
    return SwarmStack(compose.files, project=compose.project, wait_timeout=compose.wait_timeout, settings=settings)


def join_swarm(settings: StackSettings) -> bool:
    """This engine in a swarm, as a manager: initialised here when it is in none (then this node is
    labelled the data node, and True is returned: the caller leaves the swarm at the end)."""
    engine = docker_engine.client()
    state = engine.info().get("Swarm", {})
    initialised = False
    if state.get("LocalNodeState") == "inactive":
        _create_gateway_bridge(settings)
        result = subprocess.run(["docker", "swarm", "init", "--advertise-addr", "127.0.0.1"], capture_output=True,
                                text=True, timeout=120)
        if result.returncode != 0:
            raise StackError(f"docker swarm init failed: {result.stderr.strip()}")
        initialised = True
        state = engine.info().get("Swarm", {})
    if not state.get("ControlAvailable"):
        raise StackError("this engine is in a swarm but not a manager: `docker stack deploy` needs one. "
                         "Hint: run the suite on a manager node, or `docker swarm leave` first.")
    if initialised:
        node = engine.nodes.get(state["NodeID"])
        spec = node.attrs["Spec"]
        spec["Labels"] = {**spec.get("Labels", {}), DATA_NODE_LABEL: "true"}
        node.update(spec)
    return initialised


def _create_gateway_bridge(settings: StackSettings) -> None:
    """docker_gwbridge (the overlays' way out), made before the swarm makes it: swarm takes the next
    free local subnet, which can be one the stack's overlays declare (then every task fails with "Pool
    overlaps with other one on this address space"). Here it gets one no network and no stack uses."""
    engine = docker_engine.client()
    if engine.networks.list(names=[GATEWAY_BRIDGE]):
        return
    subnet = free_subnet(GATEWAY_BRIDGE_SUBNETS, avoid=[settings.subnet, settings.values["TSE_MONITORING_SUBNET"]])
    if subnet is None:
        raise StackError(f"no free subnet for {GATEWAY_BRIDGE} among {', '.join(GATEWAY_BRIDGE_SUBNETS)}. "
                         "Hint: remove unused docker networks (docker network prune).")
    engine.networks.create(GATEWAY_BRIDGE, driver="bridge", ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=subnet)]),
                           options={"com.docker.network.bridge.name": GATEWAY_BRIDGE,
                                    "com.docker.network.bridge.enable_icc": "false",
                                    "com.docker.network.bridge.enable_ip_masquerade": "true"})


def leave_swarm() -> None:
    """Leave the swarm this run initialised, and remove the docker_gwbridge network it leaves behind."""
    subprocess.run(["docker", "swarm", "leave", "--force"], capture_output=True, text=True, timeout=120)
    for network in docker_engine.client().networks.list(names=[GATEWAY_BRIDGE]):
        try:
            network.remove()
        except APIError:
            pass
