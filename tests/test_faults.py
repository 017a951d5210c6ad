"""Every scenario can fail: each fault of tests/faults.py, applied to a copy of the stack, makes the
scenarios it names fail, and the run leaves nothing behind."""
from __future__ import annotations

import pytest

from steps.probes import docker_engine
from tests.acceptance_copy import changes_stack_tags, copy_repository, isolated_environment, run_acceptance, volumes
from tests.faults import FAULTS

pytestmark = pytest.mark.faults


@pytest.fixture(scope="module")
def scenario_tags() -> set:
    """The checklist and criterion tags of every scenario of features/."""
    from tests.acceptance_copy import ROOT
    import re

    tags = set()
    for feature in (ROOT / "features").glob("*.feature"):
        tags.update(re.findall(r"@((?:checklist|bdd)_\w+)", feature.read_text()))
    return tags - {"bdd_criterion"}


def test_every_scenario_has_a_fault(scenario_tags):
    caught = set().union(*(f.fails for f in FAULTS if not f.aborts))
    assert scenario_tags - caught == set(), f"scenarios no fault proves can fail: {sorted(scenario_tags - caught)}"


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_fault_is_caught(fault, tmp_path):
    copy = copy_repository(tmp_path / "stack")
    fault.apply(copy)
    project = f"tse-fault-{fault.name}"[:60]
    volumes_before = volumes()
    # Scenarios that stop and start services are slow: they run only when the fault names one.
    selection = [] if fault.fails & changes_stack_tags() else ["-m", "not changes_stack"]
    if fault.external_volume:
        docker_engine.client().volumes.create(fault.external_volume)
    try:
        run = run_acceptance(copy, isolated_environment(project), *selection)
    finally:
        if fault.external_volume:
            docker_engine.client().volumes.get(fault.external_volume).remove(force=True)

    if fault.aborts:
        assert run.exit_code == 3, f"{fault.name}: expected the run to stop (exit 3), got {run.exit_code}"
        # One message naming the service; tracebacks may appear only in the service's own log lines.
        ours = [line for line in run.output.splitlines() if not line.startswith("    | ")]
        assert f"  {fault.aborts}: " in run.output, run.output[-3000:]
        assert not any("Traceback" in line for line in ours), run.output[-3000:]
        _nothing_left(project, volumes_before)
        return
    assert run.scenarios, f"{fault.name}: the acceptance run reported no scenario:\n{run.output[-3000:]}"
    assert run.exit_code == 1, f"{fault.name}: expected pytest exit 1 (scenarios failed), got {run.exit_code}"
    missed = fault.fails - run.failed_tags()
    assert not missed, f"{fault.name} ({fault.why}) not caught by {sorted(missed)}:\n{run.output[-3000:]}"
    if fault.exact:
        checked = {t for t in run.failed_tags() if t.startswith(("checklist_", "bdd_")) and t != "bdd_criterion"}
        collateral = checked - fault.fails
        assert not collateral, f"{fault.name}: scenarios failed beyond those named: {sorted(collateral)}"
    _nothing_left(project, volumes_before)


def _nothing_left(project: str, volumes_before: set) -> None:
    assert docker_engine.leftovers(project) == {"containers": [], "networks": [], "volumes": []}
    assert volumes() - volumes_before == set(), f"{project}: volumes left behind"
