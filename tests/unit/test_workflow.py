"""The GitHub Actions workflow (.github/workflows/acceptance.yml): actionlint finds nothing wrong, and
it runs the README's acceptance command nightly, on pull requests and by hand, uploading the reports
even when the run fails."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "acceptance.yml"


def actionlint_binary() -> str:
    """The binary the dev extra installs next to the venv's python, else one on PATH."""
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.is_file() else shutil.which("actionlint")
    assert found, "no actionlint binary: install the dev extra (pip install -e '.[dev]')"
    return found


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow: dict) -> list[dict]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_actionlint_passes():
    result = subprocess.run([actionlint_binary(), "-no-color", str(WORKFLOW)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"actionlint exit {result.returncode}:\n{result.stdout}{result.stderr}"


def test_triggers(workflow):
    # YAML 1.1 reads the bare key `on` as the boolean True.
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict), f"the triggers should be a mapping, got {triggers!r}"
    assert {"schedule", "pull_request", "workflow_dispatch"} <= set(triggers), sorted(triggers)
    assert triggers["schedule"] and all("cron" in entry for entry in triggers["schedule"]), triggers["schedule"]


def test_runs_the_acceptance_command(workflow):
    runs = [step.get("run", "") for step in steps(workflow)]
    assert any("infra/host/run-pytest features/" in run for run in runs), runs


def test_uploads_the_reports_always(workflow):
    uploads = [step for step in steps(workflow) if str(step.get("uses", "")).startswith("actions/upload-artifact@")]
    assert uploads, "no actions/upload-artifact step"
    for step in uploads:
        assert str(step.get("if", "")).replace("${{", "").replace("}}", "").strip() == "always()", step
        assert str(step.get("with", {}).get("path", "")).rstrip("/") == "reports", step


def test_read_only_token_and_bounded_run(workflow):
    assert workflow.get("permissions") == {"contents": "read"}, workflow.get("permissions")
    assert "concurrency" in workflow, "two runs of the suite could overlap"
    assert all("timeout-minutes" in job for job in workflow["jobs"].values()), "a job without timeout-minutes"


def test_the_fault_shards_cover_every_fault(workflow):
    """Shard k of n for each k of the matrix, n its length: together they run every fault once."""
    job = workflow["jobs"]["faults"]
    shards = job["strategy"]["matrix"]["shard"]
    run = next(step for step in job["steps"] if "TSE_FAULT_SHARD" in step.get("env", {}))
    assert run["run"] == "infra/host/run-pytest tests/faults"
    assert run["env"]["TSE_FAULT_SHARD"] == "${{ matrix.shard }}/" + str(len(shards))
    assert shards == list(range(1, len(shards) + 1))


def test_the_faults_take_the_full_scope_nightly_and_by_hand(workflow):
    """Pull requests run the scoped faults; the nightly run, and a hand-started one unless asked
    otherwise, the full scope (docs/faults.md)."""
    job = workflow["jobs"]["faults"]
    run = next(step for step in job["steps"] if "TSE_FAULT_SHARD" in step.get("env", {}))
    assert run["env"]["TSE_FAULT_SCOPE"] == ("${{ (github.event_name == 'schedule' || inputs.fault_scope == 'full') "
                                             "&& 'full' || 'scoped' }}")
    dispatch = workflow.get("on", workflow.get(True))["workflow_dispatch"]
    assert dispatch["inputs"]["fault_scope"]["default"] == "full"
