"""The acceptance harness beside a stack someone else started (plain `docker compose`, not the
harness): attach mode tests it without changing it, and catches a start out of order; up mode
isolates itself from it and leaves it alone."""
from __future__ import annotations

import json
import subprocess

import pytest

from steps.harness.settings import PORT_VARIABLES
from steps.probes import docker_engine
from tests.acceptance_copy import (
    assert_nothing_left,
    copy_repository,
    feature_scenarios,
    isolated_environment,
    report_digest,
    run_acceptance,
    stack_changing_scenarios,
    volumes,
)

pytestmark = pytest.mark.docker


def _start_users_stack(copy, project: str, *then: list) -> dict:
    """Start the copy's stack as a user would (plain `docker compose`, not the harness), on the values
    the copy's .env documents, then run the compose commands `then`. Returns the environment."""
    env = isolated_environment(project)
    documented = {k: env.pop(k) for k in ("TSE_NETWORK_NAME", "TSE_SUBNET_PREFIX", "TSE_MONITORING_SUBNET",
                                          *PORT_VARIABLES)}
    env.pop("TSE_PROJECT")
    example = (copy / ".env.example").read_text()
    (copy / ".env").write_text(example + "".join(f"{k}={v}\n" for k, v in documented.items()))
    compose = ["docker", "compose", "-p", project]
    subprocess.run([str(copy / "infra/host/ensure-base-image")], check=True)
    for command in [["up", "-d", "--wait", "--build"], *then]:
        done = subprocess.run([*compose, *command], cwd=copy, env=env, capture_output=True, text=True)
        assert done.returncode == 0, (command, done.stderr)
    return env


@pytest.fixture(scope="module")
def users_stack(tmp_path_factory):
    """A stack started by someone else (not by the acceptance harness), from a copy of the repository,
    for the tests below that must leave it as it was (each checks); removed at the end."""
    copy, project = copy_repository(tmp_path_factory.mktemp("users") / "stack"), "tse-users-stack"
    try:
        yield copy, project, _start_users_stack(copy, project)
    finally:
        subprocess.run(["docker", "compose", "-p", project, "down", "-v"], cwd=copy, capture_output=True)


def _state(project: str) -> dict:
    return {c.name: (c.id, c.attrs["State"]["StartedAt"], c.status) for c in docker_engine.project_containers(project)}


def test_attach_mode_tests_a_running_stack_without_changing_it(users_stack):
    copy, project, env = users_stack
    before = _state(project)
    run = run_acceptance(copy, env, "--stack=attach", f"--project-name={project}")
    assert run.exit_code == 0, run.output[-3000:]
    stack_changing = [s for s in run.scenarios.values() if "changes_stack" in s["tags"]]
    assert len(stack_changing) == len(stack_changing_scenarios())
    assert {s["status"] for s in stack_changing} == {"skipped"}
    # The telemetry profile's images cannot be pulled here: those scenarios are "not run", with why.
    telemetry = [s for s in run.scenarios.values() if "telemetry" in s["tags"]]
    assert telemetry and {s["status"] for s in telemetry} == {"skipped"}
    # Section W proves what swarm adds: on a compose stack it is "not run", with why.
    # (The tag is the feature's: the run's Cucumber JSON gives each scenario its own tags only.)
    swarm_only = [run.scenarios[name] for name, tags in feature_scenarios().items()
                  if "swarm_only" in tags and "changes_stack" not in tags]
    assert swarm_only and {s["status"] for s in swarm_only} == {"skipped"}
    # Production mode's own promises (S.12): "not run" in development mode, with why.
    production_only = [run.scenarios[name] for name, tags in feature_scenarios().items() if "production_only" in tags]
    assert production_only and {s["status"] for s in production_only} == {"skipped"}
    assert "development mode: nothing is encrypted (run with --mode=production)" in run.output
    skipped = len(stack_changing) + len(telemetry) + len(swarm_only) + len(production_only)
    assert f"{skipped} skipped" in run.output
    assert "swarm only: run the suite with --stack=swarm" in run.output
    assert "attach mode: scenarios that stop and start services never run" in run.output
    assert _state(project) == before
    # The checklist says so: the lifecycle part of the criterion did not run, and why.
    report = json.loads((copy / "reports/checklist.json").read_text())
    lifecycle = next(item for item in report["items"] if item["id"] == "BDD.2")
    assert lifecycle["verdict"] == "not run" and "attach mode" in lifecycle["reason"], lifecycle
    grafana = next(item for item in report["items"] if item["id"] == "7.2")
    assert grafana["verdict"] == "partly run" and "not on this machine" in grafana["reason"], grafana
    assert report["run"]["mode"] == "attach"
    # Run side by side by default; one after another (-n 0), the same verdicts and the same reports.
    assert "bringing up nodes" in run.output, run.output[-2000:]
    parallel = report_digest(copy / "reports")
    serial = run_acceptance(copy, env, "--stack=attach", f"--project-name={project}", "-n", "0")
    assert serial.exit_code == 0, serial.output[-3000:]
    assert report_digest(copy / "reports") == parallel
    assert _state(project) == before


def test_up_mode_beside_a_users_stack_isolates_itself_and_leaves_that_stack_alone(users_stack):
    copy, users_project, env = users_stack
    before, volumes_before = _state(users_project), volumes()
    project = "tse-beside-users-stack"
    # Every way the scenarios stop, kill, pause or remove services runs: stop and start, down and up,
    # down with the volumes, a kill (3.7), a pause (5.3), a broken healthcheck (5.6). Not the alert,
    # outage and backend scenarios, which take the same steps (a stop, a pause) and then wait, for
    # notifications (about 100 s), a lapse or a reconnection, which isolation does not need.
    run = run_acceptance(copy, {**env, "TSE_PROJECT": project},
                         "-m", "not (alert_fires or registry_outage or backend_outage)")
    assert run.exit_code == 0, run.output[-3000:]
    # On parallel workers (the default), which joined the stack this run started: the stack-changing
    # scenarios ran after the others, alone (tests/unit/test_parallel_scheduling.py), and passed.
    assert "bringing up nodes" in run.output, run.output[-2000:]
    assert _state(users_project) == before
    assert_nothing_left(project, volumes_before)


def test_attach_mode_catches_a_dependent_started_before_its_dependencies(copy):
    """3.4 and 5.4 on a stack restarted out of order by hand: Redis stopped, its exporter recreated
    without it (`--no-deps`), Redis started again. Every depends_on is declared right, the start was
    not; the engine still holds the events."""
    project, before = "tse-out-of-order", volumes()
    try:
        env = _start_users_stack(copy, project, ["stop", "redis"],
                                 ["up", "-d", "--no-deps", "--force-recreate", "redis-exporter"],
                                 ["start", "redis"], ["up", "-d", "--wait", "--no-recreate"])
        run = run_acceptance(copy, env, "--stack=attach", f"--project-name={project}",
                             "-m", "checklist_3_4 or checklist_5_4")
        assert run.failed_tags() >= {"checklist_3_4", "checklist_5_4"}, run.output[-3000:]
        assert "redis was not running (stopped at" in run.output and "(source: engine events)" in run.output, \
            run.output[-3000:]
    finally:
        subprocess.run(["docker", "compose", "-p", project, "down", "-v"], cwd=copy, capture_output=True)
    assert_nothing_left(project, before)
