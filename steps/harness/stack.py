"""The stack a run of the acceptance suite tests: `Stack`, what the scenarios are handed (its
settings, its driver, the addresses and credentials they use), and `StackLauncher`, which starts it
(up and swarm modes) or checks it (attach mode), in the background while pytest collects, and takes
down only what it started. The pytest plugin that drives them is fixtures.py."""
from __future__ import annotations

import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from steps.harness.compose import ComposeStack, compose_for, new_workdir
from steps.harness.isolation import isolate
from steps.harness.settings import PRODUCTION, ROOT, TELEMETRY_PROFILE, StackSettings
from steps.harness.swarm import SwarmStack, join_swarm, leave_swarm, swarm_for
from steps.probes import StackError, container_state, docker_engine, transport
from steps.probes.start_order import StartRecord, StartRecorder, load_record, record_path

# The published ports that serve HTTPS in production mode.
HTTPS_PORTS = ("REGISTRY_HOST_PORT", "CONFIG_HOST_PORT", "PROMETHEUS_HOST_PORT", "ALERTMANAGER_HOST_PORT",
               "ALERT_RECEIVER_HOST_PORT")


def stack_for(settings: StackSettings, workdir: Path) -> ComposeStack:
    """The driver of the stack: docker compose, or docker stack on a swarm (--stack=swarm, or attach
    mode where the project is a swarm stack)."""
    on_swarm = settings.mode == "swarm" or (
        settings.mode == "attach" and docker_engine.is_swarm_stack(settings.project))
    return swarm_for(settings, workdir) if on_swarm else compose_for(settings, workdir)


@dataclass
class Stack:
    """The running stack the scenarios probe: its settings and its compose project."""

    settings: StackSettings
    compose: ComposeStack
    notes: list = field(default_factory=list)
    # The engine's start and health events, heard while the stack started (up mode: by this run;
    # attach mode: by `stackctl up`, when it started the stack); None when nobody heard them.
    start_record: StartRecord | None = None
    # The run's scratch folder (removed at its end): the stack's CA, in production mode.
    workdir: Path | None = None

    @property
    def project(self) -> str:
        return self.settings.project

    @property
    def on_swarm(self) -> bool:
        """Deployed on a swarm (--stack=swarm): some checks take swarm's form, some do not apply."""
        return isinstance(self.compose, SwarmStack)

    @property
    def production(self) -> bool:
        """Started in production mode (TSE_MODE): every server speaks TLS only."""
        return self.settings.values.get("TSE_MODE") == PRODUCTION

    def trust_its_ca(self) -> None:
        """In production mode, the host's probes verify every server against the CA the stack's own
        clients use (read again after a start that may have made a new one: `down -v` removes it)."""
        if self.production:
            https = {self.settings.port(variable) for variable in HTTPS_PORTS}
            transport.use(transport.Transport(str(transport.stack_ca(self.project, "redis", self.workdir)),
                                              frozenset(https)))

    @property
    def services(self) -> list[str]:
        return self.compose.service_names

    def redis_port(self) -> int:
        return self.settings.port("REDIS_HOST_PORT")

    def postgres_port(self) -> int:
        return self.settings.port("POSTGRES_HOST_PORT")

    def registry_port(self) -> int:
        return self.settings.port("REGISTRY_HOST_PORT")

    def config_port(self) -> int:
        return self.settings.port("CONFIG_HOST_PORT")

    def redis_password(self, user: str) -> str:
        return self.settings.secret("REDIS_PASSWORD_" + user.upper().replace("-", "_"))

    def postgres_password(self, role: str) -> str:
        if role == "postgres":
            return self.settings.secret("POSTGRES_PASSWORD")
        return self.settings.secret("PG_PASSWORD_" + role.upper())

    def signed_in_as(self, user: str) -> tuple:
        """(user, password) of a Redis ACL user: what a registry write signs in with (HTTP Basic)."""
        return user, self.redis_password(user)

    def redis(self, user: str | None) -> tuple:
        """(port, user, password) for a Redis probe signing in as `user` (None: no user)."""
        return self.redis_port(), user, self.redis_password(user) if user else None

    def postgres_superuser_on_socket(self) -> tuple:
        """(project, service, password, database) for a probe as the superuser, who signs in on the
        Unix socket inside the postgres container only."""
        return self.project, "postgres", self.postgres_password("postgres"), self.database

    def postgres(self, role: str, dbname: str | None = None) -> tuple:
        """(port, role, password, database) for a PostgreSQL probe signing in as `role`."""
        return self.postgres_port(), role, self.postgres_password(role), dbname or self.database

    @property
    def database(self) -> str:
        return self.settings.values["POSTGRES_DB"]


def failure_line(settings: StackSettings, error: BaseException) -> str:
    """The one line a run ends with when it cannot get a healthy stack."""
    return f"acceptance stack ({settings.mode} mode, project {settings.project}): {error}"


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class StackLauncher:
    """Starts the stack (up mode) or checks it (attach mode), and takes down only what it started.
    A parallel run's worker joins the stack its controller started (`joined`: what the controller
    handed over), and never starts or stops it."""

    def __init__(self, settings: StackSettings, joined: dict | None = None):
        self.settings = settings
        self.joined = joined
        self.workdir = new_workdir()
        self.stack: Stack | None = None
        self.started = False
        self.telemetry = False
        self.recorder: StartRecorder | None = None
        self.previous_sigterm = signal.signal(signal.SIGTERM, _terminate_as_interrupt)

    def start(self) -> None:
        """Preflight, images and `up` started in the background (up mode); checks only (attach)."""
        if self.stack is not None:
            return
        settings, notes = self.settings, []
        docker_engine.client()
        if self.joined is not None:
            record = self.joined["start_record"]
            self.stack = Stack(settings, stack_for(settings, self.workdir), list(self.joined["notes"]),
                               StartRecord.from_json(record) if record else None)
            return
        if settings.mode in ("up", "swarm"):
            if docker_engine.project_containers(settings.project):
                remove = (f"docker stack rm {settings.project}" if settings.mode == "swarm"
                          else f"docker compose -p {settings.project} down -v")
                raise StackError(
                    f"project {settings.project} already has containers, and this run did not start them. "
                    f"Hint: test them with --stack=attach --project-name {settings.project}, remove them with "
                    f"`{remove}`, or pick another --project-name."
                )
            # Before isolation: joining a swarm may make the docker_gwbridge network, whose subnet
            # isolation must see.
            initialised_swarm = settings.mode == "swarm" and join_swarm(settings)
            try:
                settings, notes = isolate(settings)
            except BaseException:
                if initialised_swarm:
                    leave_swarm()
                raise
        compose = stack_for(settings, self.workdir)
        self.stack = Stack(settings, compose, notes)
        if settings.mode == "swarm":
            compose.initialised_swarm = initialised_swarm
            self.started = True
            notes.append(f"{TELEMETRY_PROFILE} profile not deployed: the swarm stack holds the default services")
            compose.ensure_images()
            compose.start_up()
        elif settings.mode == "up":
            compose.ensure_images()
            self.telemetry = self._telemetry_images_present(compose, notes)
            self.recorder = StartRecorder(settings.project, "the acceptance run (up mode)").start()
            self.stack.start_record = self.recorder.record
            self.started = True
            compose.start_up()
        else:
            self.stack.start_record = self._saved_record(settings.project, notes)

    @staticmethod
    def _saved_record(project: str, notes: list) -> StartRecord | None:
        """The start record `stackctl up` saved for this project, if any (each use checks that it
        covers the running containers' starts)."""
        path = record_path(ROOT, project)
        record = load_record(path) if path.exists() else None
        if record is not None and record.project == project:
            notes.append(f"start record of {record.recorded_by} read from {path.relative_to(ROOT)}")
            return record
        notes.append("no start record (the stack was not started by stackctl up): start order from what the engine "
                     "still holds")
        return None

    def ready(self) -> Stack:
        """Wait until every service is healthy; StackError naming the ones that are not."""
        if self.stack is None:
            self.start()
        compose = self.stack.compose
        if self.started:
            compose.wait_up()
        # Docker's own word, whatever `up --wait` returned (seen here: compose 2.26 once returned 0
        # with a service still starting) and in attach mode.
        unhealthy = [s for s in compose.service_names
                     if container_state.health(self.stack.project, s).observed != "healthy"]
        if unhealthy:
            raise StackError(compose.describe_failure(f"not healthy: {', '.join(unhealthy)}"))
        self.stack.workdir = self.workdir
        self.stack.trust_its_ca()
        if self.telemetry:
            self.telemetry = False
            compose.start_profile(TELEMETRY_PROFILE)
        return self.stack

    def handover(self) -> dict:
        """What a parallel run's workers need to join the ready stack: its settings (ports and subnet
        as isolated), the notes, and the engine's start events heard so far (the healthy ones included)."""
        record = None
        if self.recorder is not None:
            missing = self.recorder.hear_every_healthy()
            if missing:
                self.stack.notes.append(f"{missing}: the start record may not prove the start order")
            record = self.recorder.record.to_json()
        elif self.stack.start_record is not None:
            record = self.stack.start_record.to_json()
        return {"settings": self.stack.settings.as_dict(), "notes": list(self.stack.notes), "start_record": record}

    @staticmethod
    def _telemetry_images_present(compose, notes: list) -> bool:
        """Whether every image of the telemetry profile is on this machine (nothing is pulled); a note
        says which are missing. Its scenarios report "not run" when it does not start."""
        images = compose.profile_images(TELEMETRY_PROFILE)
        missing = sorted(image for image in images.values() if not docker_engine.image_present(image).observed)
        if missing:
            notes.append(f"{TELEMETRY_PROFILE} profile not started: {', '.join(missing)} not on this machine")
        return bool(images) and not missing

    def stop(self) -> None:
        """Idempotent: `down -v` of what this run started (unless --keep-stack), then tidy up."""
        if self.recorder is not None:
            self.recorder.stop()
        try:
            if self.started and not self.settings.keep:
                self.started = False
                self.stack.compose.down()
            elif self.joined is not None and self.stack is not None:
                # A worker that ran a scenario taking the stack down and up again: the old containers'
                # anonymous volumes are known here only (the controller takes down the rest).
                self.stack.compose.remove_released_volumes()
        finally:
            transport.use(transport.Transport())
            shutil.rmtree(self.workdir, ignore_errors=True)
            signal.signal(signal.SIGTERM, self.previous_sigterm)

    def fail(self, error: BaseException):
        """Take down what was started; end the session with one line for an ordinary error."""
        self.stop()
        if not isinstance(error, Exception):
            raise error
        pytest.exit(failure_line(self.settings, error), returncode=3)
