"""The operator commands (infra/host/stackctl): clear failures without Docker or a stack, and the
whole up / status / logs / validate / down cycle on an isolated copy of the stack (its fixture,
`operator_stack`, is in conftest.py)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import stackctl
from steps.probes import docker_engine
from tests.acceptance_copy import copy_repository, isolated_environment, run_stackctl

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.docker


def test_status_table_lines_up_its_columns():
    table = stackctl.format_table(("SERVICE", "HEALTH"), [("redis", "healthy"), ("postgres", "starting")])
    assert table.splitlines() == ["SERVICE   HEALTH", "redis     healthy", "postgres  starting"]


def test_checklist_summary_gives_each_item_its_verdict_and_names_failures():
    report = {"criterion": "failed", "items": [
        {"id": "1.1", "title": "Redis Docker service definition", "verdict": "passed", "reason": "",
         "scenarios": [{"name": "x", "outcome": "passed", "reason": ""}]},
        {"id": "5.6", "title": "Health check validation script", "verdict": "failed",
         "reason": "redis health: expected healthy",
         "scenarios": [{"name": "y", "outcome": "failed", "reason": "redis health: expected healthy"}]},
        {"id": "7.1", "title": "Prometheus metrics collection", "verdict": "no scenario",
         "reason": "no scenario covers this item", "scenarios": []},
    ]}
    rows, failures = stackctl.checklist_summary(report)
    assert rows == [("1.1 Redis Docker service definition", "passed"),
                    ("5.6 Health check validation script", "failed (redis health: expected healthy)"),
                    ("7.1 Prometheus metrics collection", "no scenario (no scenario covers this item)")]
    assert failures == [("y", "redis health: expected healthy")]


def test_commands_say_clearly_when_there_is_no_engine(tmp_path):
    copy = copy_repository(tmp_path / "stack")
    env = isolated_environment("tse-operator", DOCKER_HOST="unix:///nonexistent/docker.sock")
    for command in ("status", "validate", "logs", "down"):
        result = run_stackctl(copy, env, command)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.startswith(f"stackctl {command}: no Docker engine answers"), result.stderr
        assert "Traceback" not in result.stderr


def test_commands_say_clearly_when_there_is_no_stack(tmp_path):
    copy = copy_repository(tmp_path / "stack")
    env = isolated_environment("tse-operator-absent")
    result = run_stackctl(copy, env, "--project-name=tse-operator-absent", "status")
    assert result.returncode == 2
    assert "no stack is running under compose project tse-operator-absent" in result.stderr


def test_up_status_logs_validate_on_an_isolated_copy(operator_stack):
    stack, env = operator_stack, operator_stack.env
    up = stack.up_result()  # started with the session's first harness test (conftest.py)
    assert up.returncode == 0, up.stderr
    assert stack.start_record.exists(), "stackctl up keeps the start record for attach mode"
    status = stack.run("status")
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "STATE", "HEALTH", "ADDRESS", "PORTS"]
    redis_row = next(line for line in lines if line.startswith("redis"))
    assert f"{env['TSE_SUBNET_PREFIX']}.0.10" in redis_row
    assert f"127.0.0.1:{env['REDIS_HOST_PORT']}->6379/tcp" in redis_row
    assert "healthy" in redis_row
    logs = stack.run("logs", "redis", "--tail", "5")
    assert logs.returncode == 0 and "redis" in logs.stdout
    validate = stack.run("validate", f"--reports-dir={stack.tmp_path / 'reports-fresh'}")
    assert validate.returncode == 0, validate.stdout[-3000:]
    assert re.search(r"^1\.5 Redis caching configuration\s+passed$", validate.stdout, flags=re.M), validate.stdout
    # Attach mode: the crash half of 3.7 never runs, so the item is only partly run, and says why.
    assert re.search(r"^3\.7 Restart policies\s+partly run \(1 of 2 scenarios not run: attach mode",
                     validate.stdout, flags=re.M), validate.stdout
    assert "validate: passed" in validate.stdout


def _health_logs_rotated(project: str) -> bool:
    """Whether every container's health log has lost its first checks (Docker keeps five); the
    one-shot secrets service has none."""
    from steps.probes.start_order import container_run, health_log_first_healthy

    runs = [container_run(project, c.labels["com.docker.compose.service"])
            for c in docker_engine.project_containers(project) if c.attrs["Config"].get("Healthcheck")]
    return all(not health_log_first_healthy(run)[0] for run in runs)


def _start_order_sources(cucumber: Path) -> set:
    """The sources the start-order step used, read from its evidence in the Cucumber JSON."""
    import json

    return {re.match(r"start order \(([^)]*)\)", line).group(1)
            for feature in json.loads(cucumber.read_text()) for element in feature["elements"]
            for step in element["steps"] for line in step.get("output", []) if line.startswith("start order (")}


def test_validate_gives_the_same_verdict_on_a_stack_up_for_minutes(operator_stack):
    """Issue 12, the operator's case: the stack `stackctl up` started, left running until every health
    log has rotated (and a registry probe round and a few Prometheus scrapes have passed), then
    `stackctl validate` several times in a row: every run passes, with the same verdicts."""
    from steps.probes.waiting import wait_until
    from tests.acceptance_copy import read_cucumber

    stack = operator_stack
    assert stack.up_result().returncode == 0, "the cycle's stack came up"
    # 5 checks 10 s apart: about 55 s from the start. A condition, not a sleep; bounded.
    wait_until(lambda: _health_logs_rotated(stack.project), timeout=240, interval=2,
               description="health logs rotated")
    verdicts, sources = [], []
    for attempt in range(3):
        if attempt == 1:
            stack.start_record.unlink()  # a stack started by someone else: no start record
        reports = stack.tmp_path / f"reports-{attempt}"
        validate = stack.run("validate", f"--reports-dir={reports}")
        assert validate.returncode == 0, f"run {attempt + 1}:\n{validate.stdout[-3000:]}"
        verdicts.append({name: s["status"] for name, s in read_cucumber(reports / "cucumber.json").items()})
        sources.append(_start_order_sources(reports / "cucumber.json"))
    assert verdicts[0] == verdicts[1] == verdicts[2]
    assert sources[0] == {"start record"}, sources
    # The runs before flushed the engine's event buffer; the health logs had rotated.
    assert sources[1] <= {"engine events", "depends_on label"} and sources[2] == {"depends_on label"}, sources


def test_down_keeps_the_volumes_and_down_volumes_removes_them(operator_stack):
    stack = operator_stack
    # `up` on the running stack (the test before removed its start record) keeps a record again.
    assert stack.run("up").returncode == 0
    assert stack.start_record.exists()
    down = stack.run("down")
    assert down.returncode == 0
    assert docker_engine.leftovers(stack.project)["volumes"], "down without --volumes keeps the volumes"
    assert docker_engine.leftovers(stack.project)["containers"] == []
    removed = stack.run("down", "--volumes")
    assert removed.returncode == 0, removed.stderr
    assert docker_engine.leftovers(stack.project)["volumes"] == []
    assert not stack.start_record.exists(), "down removes the start record"


def test_a_fresh_start_record_replaces_the_saved_one_and_a_partial_one_extends_it(tmp_path):
    """`stackctl up` on an empty project starts everything anew; on a running one, the containers it
    left alone started under the record saved before."""
    from steps.probes.start_order import StartRecord, load_record

    path = tmp_path / ".stack" / "p.start-record.json"
    first = StartRecord("p", 100, [{"id": "a", "service": "redis", "action": "start", "time_ns": 101}], "stackctl up",
                        True)
    stackctl.save_start_record(first, path)
    partial = StartRecord("p", 500, [{"id": "b", "service": "prometheus", "action": "start", "time_ns": 501}],
                          "stackctl up", False)
    stackctl.save_start_record(partial, path)
    merged = load_record(path)
    assert (merged.since_ns, merged.fresh, [e["id"] for e in merged.events]) == (100, True, ["a", "b"])
    anew = StartRecord("p", 900, [{"id": "c", "service": "redis", "action": "start", "time_ns": 901}], "stackctl up",
                       True)
    stackctl.save_start_record(anew, path)
    assert [e["id"] for e in load_record(path).events] == ["c"]
