"""Every scenario can fail: each fault of tests/faults/faults.py, applied to a copy of the stack, makes the
scenarios it names fail, and the run leaves nothing behind."""
from __future__ import annotations

import pytest

from tests.acceptance_copy import assert_project_gone, feature_scenarios, stack_changing_only_tags, volumes
from tests.faults.faults import FAULTS, Fault
from tests.faults.runs import FaultRuns, fault_jobs, shard
from tests.faults.scope import fault_scope, scenario_problems
from tests.faults.timings import write_timings

pytestmark = [pytest.mark.faults, pytest.mark.docker]


def test_every_scenario_has_a_fault():
    """A scenario is proven by a fault naming one of its tags; a stack-changing scenario, by a fault
    naming a tag only stack-changing scenarios carry (other faults run without them). Scenarios of
    the `telemetry` profile need upstream images no registry here can supply: they are reported "not
    run" with that reason (test_harness checks it), and their configuration files have scenarios
    and faults of their own."""
    caught = set().union(*(f.fails for f in FAULTS if not f.aborts))
    stack_only = stack_changing_only_tags()
    unproven = []
    for name, tags in feature_scenarios().items():
        if "telemetry" in tags:
            continue
        own = tags & stack_only if "changes_stack" in tags else tags
        if not own & caught:
            unproven.append(name)
    assert not unproven, f"scenarios no fault proves can fail: {unproven}"


@pytest.fixture(scope="session")
def fault_runs(request, tmp_path_factory):
    """The selected faults' runs, started side by side when the first fault test asks; after the last
    one, or an interrupt, none is left running."""
    selected = [item.callspec.params["fault"] for item in request.session.items
                if item.originalname == "test_fault_is_caught"]
    selected += [OVERREACHING for item in request.session.items
                 if item.originalname == "test_a_fault_that_breaks_more_than_it_names_is_refused"]
    volumes_before = volumes()
    scope = fault_scope(request.config.getoption("fault_scope"))
    # The overreaching fault's run must be refused: it runs alone, failing no partner.
    runs = FaultRuns(selected, tmp_path_factory.mktemp("faults"), fault_jobs(), scope, alone={OVERREACHING})
    try:
        yield runs
    finally:
        runs.close()
        write_timings(runs.timings())
    # Anonymous volumes carry no project label: whatever run made one, none may be left.
    assert volumes() - volumes_before == set(), "the fault runs left volumes behind"


@pytest.mark.parametrize("fault", shard(FAULTS), ids=lambda f: f.name)
def test_fault_is_caught(fault, fault_runs):
    outcome = fault_runs.result(fault)
    run = outcome.run
    partners = tuple(other for other in outcome.faults if other != fault)
    if fault.aborts:
        assert run.exit_code == 3, f"{fault.name}: expected the run to stop (exit 3), got {run.exit_code}"
        # One message naming the service; tracebacks may appear only in the service's own log lines.
        ours = [line for line in run.output.splitlines() if not line.startswith("    | ")]
        assert f"  {fault.aborts}: " in run.output, run.output[-3000:]
        assert not any("Traceback" in line for line in ours), run.output[-3000:]
        _assert_nothing_left(outcome)
        return
    assert run.scenarios, f"{fault.name}: the acceptance run reported no scenario:\n{run.output[-3000:]}"
    assert run.exit_code == 1, f"{fault.name}: expected pytest exit 1 (scenarios failed), got {run.exit_code}"
    problems = scenario_problems(fault, run.scenarios, partners)
    shared = f" (its run shared with {', '.join(p.name for p in partners)}: `-k {fault.name}` runs it alone)" \
        if partners else ""
    assert not problems, f"{fault.name} ({fault.why}){shared}: {'; '.join(problems)}:\n{run.output[-3000:]}"
    _checklist_shows_the_fault(outcome.copy, outcome.run.reports, fault, partners)
    _assert_nothing_left(outcome)


def _named(name: str) -> Fault:
    return next(f for f in FAULTS if f.name == name)


# Redis without its append-only file (1.2 catches it), and, unnamed, a Redis healthcheck failing
# since the start: the proof of 1.2 it claims to be must be refused, because a sentinel fails too.
OVERREACHING = Fault("overreaching", "Redis without its append-only file, and a failing healthcheck it does not name",
                     _named("redis-appendonly-off").edits + _named("redis-health-degraded").edits,
                     frozenset({"checklist_1_2"}))


def test_a_fault_that_breaks_more_than_it_names_is_refused(fault_runs):
    """The scoped runs' guard, on a real stack: a fault breaking more than its scenarios is no proof."""
    outcome = fault_runs.result(OVERREACHING)
    assert outcome.run.failed_tags() >= {"checklist_1_2"}, outcome.run.output[-3000:]
    problems = scenario_problems(OVERREACHING, outcome.run.scenarios)
    refused = [p for p in problems if "beyond those named" in p and "good health" in p]
    assert refused, (problems, outcome.run.output[-3000:])
    _assert_nothing_left(outcome)


def _assert_nothing_left(outcome) -> None:
    assert_project_gone(outcome.project, outcome.leftovers, outcome.images_left)


def _checklist_shows_the_fault(copy, reports, fault, partners=()) -> None:
    """The run's checklist marks failed exactly the items of the scenarios the fault (and the partners
    sharing its run) name, with the failure as the reason; no other item is failed."""
    import json

    from steps.report import checklist

    declared = checklist.declared_scenarios(copy / "features")
    mapping = checklist.load_mapping(copy / "features/checklist.yaml")

    def items_of(tags: frozenset) -> set:
        named = set().union(*(t for t in declared.values() if t & tags))
        return {item.id for item in checklist.mapped_items(mapping) if set(item.tags) & named}

    expected = items_of(fault.fails)
    report = json.loads((reports / "checklist.json").read_text())
    failed = {item["id"] for item in report["items"] if item["verdict"] == "failed"}
    assert expected <= failed, f"{fault.name}: checklist items not marked failed: {sorted(expected - failed)}"
    if fault.exact:
        beyond = failed - expected - items_of(fault.may_fail.union(*(p.fails | p.may_fail for p in partners)))
        assert not beyond, f"{fault.name}: checklist items failed beyond the fault's: {sorted(beyond)}"
    assert all(item["reason"] for item in report["items"] if item["verdict"] == "failed")
