"""The stack under test as session fixtures: settled once, brought up (or attached to) on first
use, and taken down at the end of the session, also after a failure, Ctrl-C or SIGTERM.

Any failure to get a healthy stack ends the session with one clear message instead of an error per
scenario.
"""
from __future__ import annotations

import os
import shutil
import signal
from dataclasses import dataclass, field

import pytest

from steps.probes import StackError, docker_engine
from steps.probes.stack import ComposeStack, StackSettings, compose_for, isolate, new_workdir


def attach_mode(config) -> bool:
    return (_setting(config, "stack", "TSE_STACK") or "up") == "attach"


def _setting(config, option: str, variable: str):
    value = config.getoption(option)
    return value if value is not None else os.environ.get(variable)


@pytest.fixture(scope="session")
def stack_settings(pytestconfig) -> StackSettings:
    """The settings from options, environment and env file (options win)."""
    keep = pytestconfig.getoption("keep_stack") or os.environ.get("TSE_KEEP_STACK") in ("1", "true", "yes")
    try:
        return StackSettings.resolve(
            mode=_setting(pytestconfig, "stack", "TSE_STACK") or "up",
            project=_setting(pytestconfig, "project_name", "TSE_PROJECT"),
            compose_file=_setting(pytestconfig, "compose_file", "TSE_COMPOSE_FILE"),
            env_file=_setting(pytestconfig, "env_file", "TSE_ENV_FILE"),
            keep=bool(keep),
            wait_timeout=int(_setting(pytestconfig, "wait_timeout", "TSE_WAIT_TIMEOUT") or 180),
        )
    except (StackError, ValueError) as error:
        pytest.exit(f"acceptance stack: {error}", returncode=4)


@dataclass
class Stack:
    """The running stack the scenarios probe: its settings and its compose project."""

    settings: StackSettings
    compose: ComposeStack
    notes: list = field(default_factory=list)

    @property
    def project(self) -> str:
        return self.settings.project

    @property
    def services(self) -> list[str]:
        return self.compose.service_names

    def redis_port(self) -> int:
        return self.settings.port("REDIS_HOST_PORT")

    def postgres_port(self) -> int:
        return self.settings.port("POSTGRES_HOST_PORT")

    def redis_password(self, user: str) -> str:
        return self.settings.secret("REDIS_PASSWORD_" + user.upper().replace("-", "_"))

    def postgres_password(self, role: str) -> str:
        if role == "postgres":
            return self.settings.secret("POSTGRES_PASSWORD")
        return self.settings.secret("PG_PASSWORD_" + role.upper())

    @property
    def database(self) -> str:
        return self.settings.values["POSTGRES_DB"]


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def stack(stack_settings: StackSettings, request) -> Stack:
    """Up mode: an isolated stack brought up with `docker compose up -d --wait`, removed with
    `down -v` at the end unless --keep-stack. Attach mode: the running stack, checked healthy."""
    settings = stack_settings
    workdir = new_workdir()
    started = False
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        docker_engine.client()
        notes: list = []
        if settings.mode == "up":
            if docker_engine.project_containers(settings.project):
                raise StackError(
                    f"compose project {settings.project} already has containers, and this run did not start them. "
                    f"Hint: test them with --stack=attach --project-name {settings.project}, or remove them with "
                    f"`docker compose -p {settings.project} down -v`, or pick another --project-name."
                )
            settings, notes = isolate(settings)
        compose = compose_for(settings, workdir)
        running = Stack(settings, compose, notes)
        if settings.mode == "up":
            compose.ensure_images()
            started = True
            compose.up()
        else:
            unhealthy = [s for s in compose.service_names if docker_engine.health(settings.project, s).observed != "healthy"]
            if unhealthy:
                raise StackError(compose.describe_failure(f"attach mode: not healthy: {', '.join(unhealthy)}"))
    except BaseException as error:  # noqa: BLE001 - one clear line instead of an error per scenario
        # Also on Ctrl-C or SIGTERM during `up`: nothing this run created may be left behind.
        if started and not settings.keep:
            compose.down()
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
        if not isinstance(error, Exception):
            raise
        pytest.exit(f"acceptance stack ({settings.mode} mode, project {settings.project}): {error}", returncode=3)
    request.config.stash[STACK_KEY] = running
    try:
        yield running
    finally:
        try:
            if settings.mode == "up" and not settings.keep:
                compose.down()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
            signal.signal(signal.SIGTERM, previous)


STACK_KEY = pytest.StashKey[Stack]()


def pytest_collection_modifyitems(config, items):
    """Scenarios that stop and start services run last, so they cannot disturb the others."""
    items.sort(key=lambda item: item.get_closest_marker("changes_stack") is not None)


def pytest_report_header(config):
    stack = config.stash.get(STACK_KEY, None)
    return None if stack is None else f"stack: {stack.settings.mode} mode, project {stack.project}"
