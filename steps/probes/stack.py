"""The compose stack under test: its settings, and bringing it up, attaching to it, taking it down.

Up mode runs under a compose project of its own and never touches another project's containers,
networks or volumes: when the documented ports, network name or subnet are taken by something
else, it moves to free ones (unless they were set explicitly, then it stops with a clear error).
Attach mode only reads.
"""
from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from testcontainers.compose import DockerCompose

from steps.probes import docker_engine
from steps.probes.facts import StackError
from steps.probes.waiting import WaitTimeout, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {
    "TSE_NETWORK_NAME": "trading-ecosystem",
    "TSE_SUBNET_PREFIX": "172.20",
    "REDIS_HOST_PORT": "6379",
    "POSTGRES_HOST_PORT": "5432",
    "REGISTRY_HOST_PORT": "8080",
    "CONFIG_HOST_PORT": "8090",
    "PROMETHEUS_HOST_PORT": "9090",
    # The `telemetry` profile's ports (used only when it runs).
    "GRAFANA_HOST_PORT": "3000",
    "JAEGER_UI_HOST_PORT": "16686",
    "OTEL_GRPC_HOST_PORT": "4317",
    "OTEL_HTTP_HOST_PORT": "4318",
    "OTEL_HEALTH_HOST_PORT": "13133",
    "POSTGRES_DB": "trading_ecosystem",
}
PORT_VARIABLES = tuple(variable for variable in DEFAULTS if variable.endswith("_HOST_PORT"))


def read_env_file(path: Path) -> dict:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


@dataclass(frozen=True)
class StackSettings:
    """Where the stack is described and which host resources it claims.

    `values` are the variables compose interpolates: the env file, then the defaults, with the
    process environment taking precedence as compose itself does. `explicit` names the variables
    the user set (environment or options), which up mode must not move.
    """

    mode: str = "up"
    project: str = "tse-acceptance"
    compose_file: Path = ROOT / "docker-compose.yml"
    env_file: Path = ROOT / ".env.example"
    keep: bool = False
    wait_timeout: int = 180
    values: dict = field(default_factory=dict)
    explicit: frozenset = frozenset()

    @classmethod
    def resolve(cls, mode="up", project=None, compose_file=None, env_file=None, keep=False,
                wait_timeout=180, overrides=None) -> "StackSettings":
        compose_file = Path(compose_file or ROOT / "docker-compose.yml").resolve()
        if env_file is None:
            env_file = compose_file.parent / ".env"
            if not env_file.exists():
                env_file = compose_file.parent / ".env.example"
        env_file = Path(env_file).resolve()
        if not compose_file.exists():
            raise StackError(f"compose file {compose_file} does not exist. Hint: pass --compose-file.")
        if not env_file.exists():
            raise StackError(f"env file {env_file} does not exist. Hint: copy .env.example to .env.")
        values = {**DEFAULTS, **read_env_file(env_file)}
        explicit = {k for k in values if k in os.environ}
        values.update({k: os.environ[k] for k in explicit})
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = str(value)
                explicit.add(key)
        if project is None:
            # Up mode runs a project of its own; attach mode tests the stack compose users started,
            # under the COMPOSE_PROJECT_NAME they set (environment or env file), as compose itself does.
            project = "tse-acceptance" if mode == "up" else (
                os.environ.get("COMPOSE_PROJECT_NAME") or values.get("COMPOSE_PROJECT_NAME") or "trading-ecosystem")
        return cls(mode, project, compose_file, env_file, keep, wait_timeout, values, frozenset(explicit))

    @property
    def network_name(self) -> str:
        return self.values["TSE_NETWORK_NAME"]

    @property
    def subnet(self) -> str:
        return f"{self.values['TSE_SUBNET_PREFIX']}.0.0/16"

    @property
    def gateway(self) -> str:
        return f"{self.values['TSE_SUBNET_PREFIX']}.0.1"

    def address(self, last_two: str) -> str:
        """The static address ending in `last_two` (e.g. "0.10") on the stack's subnet."""
        return f"{self.values['TSE_SUBNET_PREFIX']}.{last_two}"

    def port(self, variable: str) -> int:
        return int(self.values[variable])

    def secret(self, variable: str) -> str:
        if variable not in self.values:
            raise StackError(f"{variable} is not set in {self.env_file}. Hint: copy it from .env.example.")
        return self.values[variable]


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def used_subnets() -> list:
    """The subnets of every docker network on this engine."""
    subnets = []
    for net in docker_engine.client().networks.list():
        for config in (net.attrs.get("IPAM") or {}).get("Config") or []:
            if config.get("Subnet"):
                subnets.append(ipaddress.ip_network(config["Subnet"], strict=False))
    return subnets


def free_subnet_prefix(candidates=range(21, 32)) -> str | None:
    """The first "172.N" (N from `candidates`) whose /16 overlaps no docker network; None when all do."""
    used = used_subnets()
    return next((f"172.{n}" for n in candidates
                 if not any(ipaddress.ip_network(f"172.{n}.0.0/16").overlaps(u) for u in used)), None)


def isolate(settings: StackSettings) -> tuple[StackSettings, list[str]]:
    """Move the stack off ports, network name and subnet that something else holds.

    Returns the settings to use and a note per change. Raises StackError when a taken resource was
    set explicitly, naming it and what to do.
    """
    values, notes, conflicts = dict(settings.values), [], []
    for variable in PORT_VARIABLES:
        port = int(values[variable])
        if not _port_is_free(port):
            if variable in settings.explicit:
                conflicts.append(f"127.0.0.1:{port} ({variable}) is in use")
            else:
                values[variable] = str(free_port())
                notes.append(f"127.0.0.1:{port} is in use, so {variable}={values[variable]}")
    engine = docker_engine.client()
    if engine.networks.list(names=[values["TSE_NETWORK_NAME"]]):
        if "TSE_NETWORK_NAME" in settings.explicit:
            conflicts.append(f"docker network {values['TSE_NETWORK_NAME']} exists (TSE_NETWORK_NAME)")
        else:
            values["TSE_NETWORK_NAME"] = settings.project
            notes.append(f"network trading-ecosystem exists, so TSE_NETWORK_NAME={settings.project}")
    wanted = ipaddress.ip_network(f"{values['TSE_SUBNET_PREFIX']}.0.0/16")
    if any(wanted.overlaps(u) for u in used_subnets()):
        if "TSE_SUBNET_PREFIX" in settings.explicit:
            conflicts.append(f"subnet {wanted} overlaps a docker network (TSE_SUBNET_PREFIX)")
        else:
            free = free_subnet_prefix()
            if free is None:
                conflicts.append("no free 172.21-31.0.0/16 subnet for an isolated stack")
            else:
                values["TSE_SUBNET_PREFIX"] = free
                notes.append(f"subnet {wanted} is in use, so TSE_SUBNET_PREFIX={free}")
    if conflicts:
        raise StackError(
            "cannot bring up an isolated stack: " + "; ".join(conflicts)
            + ". Hint: stop what holds them, choose other values, or test the running stack with --stack=attach."
        )
    return replace(settings, values=values), notes


@dataclass
class ComposeStack(DockerCompose):
    """testcontainers' DockerCompose under a project name of our own, with a bounded wait and one
    clear error naming the service that did not get healthy."""

    project: str = "tse-acceptance"
    wait_timeout: int = 180
    # Anonymous volumes of containers that a `down` without -v let go (an image's VOLUME without
    # a named volume over it): the final `down -v` no longer sees them, so they are removed by name.
    released_volumes: set = field(default_factory=set)
    _starting: subprocess.Popen | None = field(default=None, repr=False)

    @cached_property
    def compose_command_property(self) -> list[str]:
        base = DockerCompose.compose_command_property.func(self)
        return [*base[:2], "-p", self.project, *base[2:]]

    def run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        """Run `docker compose <args>` for this project; never raises on a non-zero exit."""
        return subprocess.run(
            [*self.compose_command_property, *args], cwd=self.context, capture_output=True, text=True,
            timeout=timeout,
        )

    @cached_property
    def config(self) -> dict:
        """The compose model after interpolation (`docker compose config`)."""
        result = self.run("config", "--format", "json")
        if result.returncode != 0:
            raise StackError(f"docker compose config failed: {result.stderr.strip()}")
        return json.loads(result.stdout)

    @cached_property
    def config_all_profiles(self) -> dict:
        """The compose model with the services of every profile too (`--profile '*'`)."""
        result = self.run("--profile", "*", "config", "--format", "json")
        if result.returncode != 0:
            raise StackError(f"docker compose --profile '*' config failed: {result.stderr.strip()}")
        return json.loads(result.stdout)

    def profile_images(self, profile: str) -> dict:
        """{service: image} of the services only `profile` starts (upstream images, not built here)."""
        return {name: service.get("image") for name, service in self.config_all_profiles["services"].items()
                if profile in (service.get("profiles") or [])}

    def start_profile(self, profile: str) -> None:
        """Start the services of `profile` beside the running stack and wait for them; StackError
        naming the ones that did not start."""
        result = self.run("--profile", profile, "up", "-d", "--wait", "--wait-timeout", str(self.wait_timeout),
                          timeout=self.wait_timeout + 60)
        if result.returncode != 0:
            raise StackError(f"the {profile} profile did not start: {result.stderr.strip()[-1500:]}")

    @property
    def service_names(self) -> list[str]:
        return sorted(self.config["services"])

    def ensure_images(self) -> None:
        """Build the base image if missing, then each service image that is missing or older than
        its build context (a cached image costs one inspect, not a build)."""
        base = subprocess.run([str(ROOT / "infra/host/ensure-base-image")], capture_output=True, text=True,
                              env={**os.environ, "BASE_IMAGE": os.environ.get("BASE_IMAGE", "debian:trixie-slim")})
        if base.returncode != 0:
            raise StackError(f"base image: {base.stderr.strip()}")
        stale = [name for name, service in self.config["services"].items()
                 if "build" in service and self._image_is_stale(name, service)]
        if stale:
            result = self.run("build", *stale)
            if result.returncode != 0:
                raise StackError(f"building {', '.join(stale)} failed:\n{result.stderr.strip()[-3000:]}")

    def _image_is_stale(self, name: str, service: dict) -> bool:
        image = service.get("image") or f"{self.project}-{name}"
        try:
            created = docker_engine.client().images.get(image).attrs["Created"]
        except Exception:  # noqa: BLE001 - any lookup failure means "build it"
            return True
        built = docker_engine.parse_time(created).timestamp()
        context = Path(service["build"]["context"])
        newest = max((p.stat().st_mtime for p in context.rglob("*") if p.is_file()), default=0)
        return newest > built

    def start_up(self) -> None:
        """Start `up -d --wait` in the background (its own session, so a Ctrl-C reaches us, not it);
        `wait_up` collects it. The caller can do other work while the services start."""
        self._starting = subprocess.Popen(
            [*self.compose_command_property, "up", "-d", "--wait", "--wait-timeout", str(self.wait_timeout)],
            cwd=self.context, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )

    def wait_up(self) -> None:
        """Wait for `start_up`; on failure a StackError naming each unhealthy service, its last
        health output and log lines."""
        starting, self._starting = self._starting, None
        if starting is None:
            return
        _, stderr = starting.communicate()
        if starting.returncode != 0:
            raise StackError(self.describe_failure(stderr.strip()))

    def up(self) -> None:
        self.start_up()
        self.wait_up()

    def describe_failure(self, compose_output: str) -> str:
        lines = [f"the stack is not healthy (waited up to {self.wait_timeout} s)."]
        for service in self.service_names:
            try:
                fact = docker_engine.health(self.project, service)
            except Exception as error:  # noqa: BLE001 - describing, not deciding
                lines.append(f"  {service}: {error}")
                continue
            if fact.observed != "healthy":
                last = (fact.raw or "").strip().splitlines()
                lines.append(f"  {service}: {fact.observed}; last health output: {last[-1] if last else '(none)'}")
                tail = docker_engine.logs(self.project, service, 8).strip().splitlines()
                lines.extend(f"    | {line}" for line in tail)
        lines.append(f"  compose said: {compose_output.splitlines()[-1] if compose_output else '(nothing)'}")
        return "\n".join(lines)

    def stop_services(self, *services: str) -> None:
        """`docker compose stop`: the containers stay, stopped, with their data."""
        result = self.run("stop", "--timeout", "10", *services)
        if result.returncode != 0:
            raise StackError(f"docker compose stop failed: {result.stderr.strip()}")

    def start_services(self, *services: str) -> None:
        """`docker compose start`, then wait (bounded) until each service is healthy again."""
        result = self.run("start", *services)
        if result.returncode != 0:
            raise StackError(f"docker compose start failed: {result.stderr.strip()}")
        try:
            wait_until(lambda: all(docker_engine.health(self.project, s).observed == "healthy" for s in services),
                       timeout=self.wait_timeout, interval=0.25, description=f"{', '.join(services)} healthy")
        except WaitTimeout as error:
            raise StackError(self.describe_failure(str(error))) from None

    def stop_keeping_volumes(self) -> None:
        """`down` without -v: containers and network go, the named volumes and their data stay."""
        self.released_volumes |= self._anonymous_volumes()
        result = self.run("down", "--timeout", "10")
        if result.returncode != 0:
            raise StackError(f"docker compose down failed: {result.stderr.strip()}")

    def down_with_volumes(self) -> None:
        """`down -v` in the middle of a run (a scenario's action); `up` brings the stack back."""
        result = self.run("down", "-v", "--timeout", "10")
        if result.returncode != 0:
            raise StackError(f"docker compose down -v failed: {result.stderr.strip()}")

    def down(self) -> None:
        """`down -v --remove-orphans` for this project only; the volumes it removes are the
        project's own (named <project>_...). An `up` still running is stopped first."""
        starting, self._starting = self._starting, None
        if starting is not None and starting.poll() is None:
            starting.terminate()
            try:
                starting.wait(timeout=30)
            except subprocess.TimeoutExpired:
                starting.kill()
                starting.wait()
        self.run("down", "-v", "--remove-orphans", "--timeout", "10")
        for name in self.released_volumes:
            try:
                docker_engine.client().volumes.get(name).remove()
            except Exception:  # noqa: BLE001 - already gone, or still used by another container
                pass

    def _anonymous_volumes(self) -> set:
        """Anonymous volumes (Docker labels them com.docker.volume.anonymous) mounted by the
        project's containers; named and external volumes are never among them."""
        names = {
            mount["Name"]
            for container in docker_engine.project_containers(self.project)
            for mount in container.attrs.get("Mounts", [])
            if mount.get("Type") == "volume"
        }
        engine = docker_engine.client()
        return {name for name in names
                if "com.docker.volume.anonymous" in (engine.volumes.get(name).attrs.get("Labels") or {})}


def compose_for(settings: StackSettings, workdir: Path) -> ComposeStack:
    """A ComposeStack for `settings`; the resolved values go to an env file in `workdir` that is
    read after the user's, so isolation overrides never touch the user's files."""
    overrides = workdir / "stack.env"
    overrides.write_text("".join(f"{k}={v}\n" for k, v in settings.values.items() if k in DEFAULTS))
    return ComposeStack(
        context=str(settings.compose_file.parent),
        compose_file_name=[str(settings.compose_file)],
        env_file=[str(settings.env_file), str(overrides)],
        project=settings.project,
        wait_timeout=settings.wait_timeout,
    )


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="tse-stack-"))
