"""Up mode's wait for a healthy stack (steps/harness/compose.py): a service that exits at every start
ends the wait within seconds, named, instead of after the whole timeout."""
from __future__ import annotations

import subprocess
import time

import pytest

from steps.harness import compose
from steps.probes import StackError


def _stack(monkeypatch, restarts: dict) -> compose.ComposeStack:
    stack = compose.ComposeStack(files=None, project="tse-unit", wait_timeout=180)
    stack.__dict__["config"] = {"services": {name: {} for name in restarts}}  # no `docker compose config`
    monkeypatch.setattr(compose.docker_engine, "restart_counts", lambda project: dict(restarts))
    monkeypatch.setattr(compose.container_state, "service_state", lambda project, service, lines: {
        "health": "starting", "last_health_output": "", "log_tail": f"{service} exits: role is a superuser"})
    return stack


def test_a_service_exiting_at_every_start_ends_the_wait_naming_it(monkeypatch):
    stack = _stack(monkeypatch, {"redis": 0, "configuration-service": compose.RESTART_LOOP})
    stack._starting = up = subprocess.Popen(["sleep", "60"])  # stands in for `up --wait`, still waiting
    started = time.monotonic()
    with pytest.raises(StackError) as failure:
        stack.wait_up()
    assert time.monotonic() - started < 5
    assert up.poll() is not None, "the waiting `up` was left running"
    message = str(failure.value)
    assert message.startswith("the stack cannot get healthy: configuration-service (3 restarts), exiting at every "
                              "start.")
    assert "  configuration-service: starting" in message and "role is a superuser" in message


def test_a_few_restarts_do_not_end_the_wait(monkeypatch):
    stack = _stack(monkeypatch, {"configuration-service": compose.RESTART_LOOP - 1})
    stack._starting = subprocess.Popen(["true"])  # `up --wait` that succeeds
    stack.wait_up()


def test_a_dependency_that_never_gets_healthy_ends_the_wait_at_the_timeout(monkeypatch):
    """compose's --wait-timeout bounds only its last wait; `up` itself waits for a dependency's health
    until that one is declared unhealthy. The timeout is the whole start's."""
    stack = _stack(monkeypatch, {"redis": 0})
    stack.wait_timeout = 1
    stack._starting = up = subprocess.Popen(["sleep", "60"])  # `up` still waiting for Redis to be healthy
    stack._started_at = started = time.monotonic()
    with pytest.raises(StackError) as failure:
        stack.wait_up()
    assert 1 <= time.monotonic() - started < 5
    assert up.poll() is not None, "the waiting `up` was left running"
    assert str(failure.value).startswith("the stack is not healthy (waited up to 1 s).")
    assert "  redis: starting" in str(failure.value)



def test_an_interrupt_during_the_wait_stops_up_before_anything_else(monkeypatch):
    """A Ctrl-C (or a SIGTERM, which the harness turns into one) while `up` is still starting the
    stack: `up` is stopped before the interrupt goes on to the caller's `down`, so it cannot start
    containers that `down` removed (a fault run stopped during its start left some behind)."""
    stack = _stack(monkeypatch, {"redis": 0})
    stack._starting = up = subprocess.Popen(["sleep", "60"])  # `up --wait` still starting

    def interrupted(project):
        raise KeyboardInterrupt("signal 15")

    monkeypatch.setattr(compose.docker_engine, "restart_counts", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stack.wait_up()
    assert up.poll() is not None, "the interrupted wait left `up` running"
