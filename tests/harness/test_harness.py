"""The acceptance harness's promises: one clear error when there is no engine or the stack never
gets healthy; nothing left behind after a failure, a Ctrl-C or a CI's SIGTERM. (Its promises about a
stack someone else started are in test_users_stack.py.)"""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from steps.probes import docker_engine
from steps.probes.waiting import wait_until
from tests.acceptance_copy import assert_nothing_left, isolated_environment, run_acceptance, volumes

pytestmark = pytest.mark.docker


def test_no_engine_is_one_clear_line(copy):
    env = isolated_environment("tse-no-engine", DOCKER_HOST="unix:///nonexistent/docker.sock")
    run = run_acceptance(copy, env, timeout=120)
    assert run.exit_code == 3, run.output
    assert run.output.count("no Docker engine answers") == 1, run.output
    assert "Hint: run infra/host/ensure-docker" in run.output
    assert "Traceback" not in run.output and "Error" not in run.output.replace("StackError", "")


def test_a_stack_that_never_gets_healthy_is_one_error_naming_the_service(copy):
    project, before = "tse-never-healthy", volumes()
    # The healthcheck's user turned off in the copy: it cannot sign in, Redis never becomes healthy.
    acl = copy / "infra/redis/users.acl"
    acl.write_text(acl.read_text().replace("user healthcheck on ", "user healthcheck off "))
    env = isolated_environment(project, TSE_WAIT_TIMEOUT="8")
    run = run_acceptance(copy, env, timeout=300)
    assert run.exit_code == 3, run.output[:3000]
    assert "the stack is not healthy (waited up to 8 s)" in run.output
    assert "redis: starting; last health output:" in run.output or "redis: unhealthy" in run.output, run.output
    assert "Traceback" not in run.output
    assert_nothing_left(project, before)


def test_production_mode_with_the_published_passwords_starts_nothing(copy):
    """The harness names every refused password before anything starts; with plain compose the secrets
    service, which every service waits for to complete, refuses by the same rule."""
    project, before = "tse-production-refused", volumes()
    env = isolated_environment(project, TSE_MODE="production")
    run = run_acceptance(copy, env, timeout=120)
    assert run.exit_code == 4, run.output[-3000:]
    assert "production mode refuses these passwords" in run.output and "REDIS_PASSWORD_ADMIN (its .env.example" \
        in run.output and "infra/host/make-env --production > .env" in run.output, run.output[-3000:]
    assert not any(docker_engine.leftovers(project).values())
    # Plain compose: the secrets service, which every other service waits for, refuses by itself.
    command = ["docker", "compose", "-p", project, "--env-file", ".env.example"]
    try:
        up = subprocess.run([*command, "up", "--build", "--exit-code-from", "secrets", "secrets"], cwd=copy, env=env,
                            capture_output=True, text=True, timeout=600)
        said = subprocess.run([*command, "logs", "secrets"], cwd=copy, env=env, capture_output=True, text=True).stdout
    finally:
        subprocess.run([*command, "down", "-v"], cwd=copy, env=env, capture_output=True, timeout=300)
    assert up.returncode == 1, up.stdout[-2000:] + up.stderr[-2000:]
    assert "production mode refuses these passwords" in said and "POSTGRES_PASSWORD" in said, said
    assert_nothing_left(project, before)


def test_a_malformed_waiver_file_is_one_error_before_any_stack_starts(copy, tmp_path):
    project = "tse-waivers-malformed"
    bad = tmp_path / "waivers.yaml"
    bad.write_text('waivers:\n  - item: "1.3"\n    justification: x\n    accepted_by: y\n    expires: next week\n')
    run = run_acceptance(copy, isolated_environment(project, TSE_WAIVERS=str(bad)), timeout=120)
    assert run.exit_code == 4, run.output[-3000:]
    assert f"{bad}:5: field 'expires': 'next week' is not a date (write it as YYYY-MM-DD)" in run.output
    assert "Traceback" not in run.output
    assert not any(docker_engine.leftovers(project).values()), "no stack was started"


def _signal_once_started(copy, env: dict, pytest_args: list, project: str, signum: int) -> tuple[int, str]:
    """Run pytest with `pytest_args` in the copy, send it `signum` (it alone) once `project` has
    containers, and wait for it to end: (exit code, output)."""
    process = subprocess.Popen([sys.executable, "-m", "pytest", *pytest_args, "-q", "-p", "no:cacheprovider"],
                               cwd=copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: docker_engine.project_containers(project), timeout=180, interval=0.2,
                   description=f"containers of {project}")
        process.send_signal(signum)
        output, _ = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, output


def test_ctrl_c_during_a_run_leaves_nothing_behind(copy):
    project, before = "tse-interrupted", volumes()
    exit_code, output = _signal_once_started(copy, isolated_environment(project), ["features/"], project,
                                             signal.SIGINT)
    assert exit_code != 0, output
    assert_nothing_left(project, before)


def test_sigterm_to_the_suites_own_tests_stops_their_child_runs(copy):
    """A CI cancel sends SIGTERM to the parent pytest alone: the fault run it started (a child pytest
    in a session of its own) is stopped in turn and takes its stack down; nothing is left behind."""
    fault = "redis-lru"
    project, before = f"tse-fault-{fault}", volumes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TSE_", "PYTEST_"))}
    test = f"tests/faults/test_faults.py::test_fault_is_caught[{fault}]"
    exit_code, output = _signal_once_started(copy, env, [test], project, signal.SIGTERM)
    assert exit_code == pytest.ExitCode.INTERRUPTED, output[-3000:]
    assert_nothing_left(project, before)
