"""Driving the stack with docker compose: build what is stale, up in the background with a bounded
wait, stop and start services, down (with or without volumes), and why a start failed."""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from testcontainers.compose import DockerCompose

from steps.harness.settings import DEFAULT_WAIT_TIMEOUT, DEFAULTS, ROOT, StackSettings
from steps.probes import compose_model, container_state, docker_engine
from steps.probes.facts import StackError
from steps.probes.waiting import WaitTimeout, wait_until

# Restarts of one container after which waiting for the stack stops: every service's dependencies
# are healthy before it starts (depends_on: service_healthy), so a service that exits three times
# will not get healthy by waiting.
RESTART_LOOP = 3


# Compose labels each image it builds with the project that built it, and every container of the
# image inherits the label. The images are every project's on this machine (the same names), so they
# are built under one project name that no stack runs as: under a run's own, a build by another run
# (a fault run beside this one) would relabel them, and a container of one of them that compose did
# not start (a probe's, a swarm task's) would pass for that project's (its `down` would remove it).
IMAGE_PROJECT = "trading-ecosystem-images"
IMAGES_BUILT_VARIABLE = "TSE_IMAGES_BUILT"


@dataclass
class ComposeStack:
    """One compose project of the stack. testcontainers' DockerCompose holds the compose files and env
    files (its command line); this adds the project name, building only what is stale, a bounded
    `up --wait` in the background, stop/start/down, and one clear error naming the service that did
    not get healthy. DockerCompose's own start/stop are not used: they cannot name a project or
    bound the wait."""

    files: DockerCompose
    project: str = "tse-acceptance"
    wait_timeout: int = DEFAULT_WAIT_TIMEOUT
    # Anonymous volumes of containers that a `down` without -v let go (an image's VOLUME without
    # a named volume over it): the final `down -v` no longer sees them, so they are removed by name.
    released_volumes: set = field(default_factory=set)
    _starting: subprocess.Popen | None = field(default=None, repr=False)
    _started_at: float | None = field(default=None, repr=False)

    @property
    def context(self) -> str:
        """The folder compose runs in (the compose file's)."""
        return str(self.files.context)

    @cached_property
    def command(self) -> list[str]:
        """`docker compose -p <project> -f <file>... --env-file <file>...`"""
        return self.command_of(self.project)

    def command_of(self, project: str) -> list[str]:
        base = self.files.compose_command_property
        return [*base[:2], "-p", project, *base[2:]]

    def run(self, *args: str, timeout: float | None = None, project: str | None = None) -> subprocess.CompletedProcess:
        """Run `docker compose <args>` for this project (or `project`); never raises on a non-zero exit."""
        command = self.command_of(project) if project else self.command
        return subprocess.run([*command, *args], cwd=self.context, capture_output=True, text=True, timeout=timeout)

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
        """The long-running services (the ones the scenarios probe), one-shot services aside."""
        return sorted(set(self.config["services"]) - self.one_shot_service_names)

    @property
    def one_shot_service_names(self) -> set:
        """Services that run once at each `up` and exit (the secrets service)."""
        return compose_model.one_shot_services(self.config)

    def ensure_images(self) -> None:
        """Build the base image if missing, then the service images: a `docker compose build`, which
        BuildKit's cache makes about a second when no file changed. (An image's creation time cannot
        tell which are stale: an image from the cache keeps the time it was first built.) With
        TSE_IMAGES_BUILT=1 (the fault suite's runs that share the images it built before they
        started) nothing is built while every image is there."""
        if os.environ.get(IMAGES_BUILT_VARIABLE) == "1" and self._images_present():
            return
        # The script and the Dockerfiles hold BASE_IMAGE's default; the environment may name another.
        base = subprocess.run([str(ROOT / "infra/host/ensure-base-image")], capture_output=True, text=True)
        if base.returncode != 0:
            raise StackError(f"base image: {base.stderr.strip()}")
        services = self.config["services"]
        built = [name for name, service in services.items() if "build" in service]
        unnamed = [name for name in built if not services[name].get("image")]
        if unnamed:  # compose would name it after the project, which differs between build and run
            raise StackError(f"{', '.join(unnamed)}: built without an image name. Hint: give each service "
                             "that builds an `image:` (trading-ecosystem/<service>:${TSE_IMAGE_TAG:-local})")
        if built:
            result = self.run("build", *built, project=IMAGE_PROJECT)
            if result.returncode != 0:
                raise StackError(f"building {', '.join(built)} failed:\n{result.stderr.strip()[-3000:]}")

    def _images_present(self) -> bool:
        names = [service["image"] for service in self.config["services"].values() if "build" in service]
        return bool(names) and all(docker_engine.image_present(name).observed for name in names)

    def start_up(self) -> None:
        """Start `up -d --wait` in the background (its own session, so a Ctrl-C reaches us, not it);
        `wait_up` collects it. The caller can do other work while the services start."""
        self._starting = subprocess.Popen(
            [*self.command, "up", "-d", "--wait", "--wait-timeout", str(self.wait_timeout)],
            cwd=self.context, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self._started_at = time.monotonic()

    def wait_up(self) -> None:
        """Wait for `start_up`; on failure a StackError naming each unhealthy service, its last
        health output and log lines."""
        starting, self._starting = self._starting, None
        if starting is None:
            return
        # `up --wait` waits out its whole timeout for a service that exits at every start (its restart
        # policy starts it again): the engine's restart count says so within seconds.
        try:
            while starting.poll() is None:
                looping = {s: n for s, n in docker_engine.restart_counts(self.project).items() if n >= RESTART_LOOP}
                if looping:
                    starting.terminate()
                    starting.communicate()
                    names = ", ".join(f"{service} ({count} restarts)" for service, count in sorted(looping.items()))
                    raise StackError(self.describe_failure(
                        "", headline=f"the stack cannot get healthy: {names}, exiting at every start."))
                # `--wait-timeout` bounds compose's last wait only: a service that waits for a dependency
                # that never gets healthy holds `up` until that one is declared unhealthy (start period,
                # then interval x retries: about a minute here). The timeout is the whole start's.
                if self._started_at is not None and time.monotonic() - self._started_at > self.wait_timeout:
                    starting.terminate()
                    starting.communicate()
                    raise StackError(self.describe_failure("a service's dependency is still not healthy"))
                try:
                    starting.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass
        except BaseException:
            # Interrupted while waiting (Ctrl-C, SIGTERM): `up` stops before the caller's `down`, or it
            # would go on creating and starting containers that `down` has removed already.
            if starting.poll() is None:
                starting.terminate()
                starting.communicate()
            raise
        _, stderr = starting.communicate()
        if starting.returncode != 0:
            raise StackError(self.describe_failure(stderr.strip()))

    def up(self) -> None:
        self.start_up()
        self.wait_up()

    def describe_failure(self, compose_output: str, headline: str = "") -> str:
        lines = [headline or f"the stack is not healthy (waited up to {self.wait_timeout} s)."]
        for service in self.service_names:
            found = container_state.service_state(self.project, service, 8)
            if found["health"] != "healthy":
                lines.append(f"  {service}: {found['health']}; last health output: {found['last_health_output']}")
                lines.extend(f"    | {line}" for line in found["log_tail"].strip().splitlines())
        for service in sorted(self.one_shot_service_names):
            exit_code = container_state.exit_code(self.project, service)
            if exit_code not in (0, None):
                lines.append(f"  {service}: exited with {exit_code}")
                log = container_state.logs(self.project, service, 8)
                lines.extend(f"    | {line}" for line in log.strip().splitlines())
        if not headline:
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
            wait_until(lambda: all(container_state.health(self.project, s).observed == "healthy" for s in services),
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
        self.remove_released_volumes()

    def remove_released_volumes(self) -> None:
        """The anonymous volumes of the containers `stop_keeping_volumes` removed: `down -v` no
        longer knows them (Docker labels them with no project)."""
        for name in self.released_volumes:
            try:
                docker_engine.client().volumes.get(name).remove()
            except Exception:  # noqa: BLE001 - already gone, or still used by another container
                pass
        self.released_volumes.clear()

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
    files = DockerCompose(context=str(settings.compose_file.parent), compose_file_name=[str(settings.compose_file)],
                          env_file=[str(settings.env_file), str(overrides)])
    return ComposeStack(files, project=settings.project, wait_timeout=settings.wait_timeout)


def new_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="tse-stack-"))
