"""The milestone checklist: every item of the milestone document is mapped, and the verdicts are
computed from the scenarios' outcomes, never assumed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from steps.report import checklist
from steps.report.checklist import FAILED, NOT_COVERED, NOT_RUN, PARTLY_RUN, PASSED, ScenarioResult

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ROOT / "features"


@pytest.fixture(scope="module")
def mapping() -> dict:
    return checklist.load_mapping(FEATURES / "checklist.yaml")


def test_every_item_of_the_milestone_document_has_an_entry(mapping):
    documented = checklist.milestone_items((FEATURES / "TSE-0001.3a.md").read_text())
    mapped = {(item.id, item.title) for item in checklist.mapped_items(mapping) if item.section != "BDD"}
    assert len(documented) == 49
    missing = [item for item in documented if item not in mapped]
    assert not missing, f"milestone items without an entry in features/checklist.yaml: {missing}"


def test_every_scenario_counts_for_some_item(mapping):
    mapped_tags = {tag for item in checklist.mapped_items(mapping) for tag in item.tags}
    orphans = [name for name, tags in checklist.declared_scenarios(FEATURES).items() if not tags & mapped_tags]
    assert not orphans, f"scenarios no checklist item lists: {orphans}"


def test_the_milestone_copy_in_the_repository_is_the_users_document():
    shared = ROOT.parent / "shared/milestone/TSE-0001.3a.md"
    if not shared.exists():
        pytest.skip(f"{shared} is not on this machine: nothing to compare the copy with")
    assert (FEATURES / "TSE-0001.3a.md").read_text() == shared.read_text()


DECLARED = {"a": {"checklist_1_1"}, "b": {"checklist_1_2"}, "c": {"checklist_1_2", "changes_stack"}}


@pytest.mark.parametrize("outcomes, expected", [
    ({"b": PASSED, "c": PASSED}, PASSED),
    ({"b": PASSED, "c": FAILED}, FAILED),
    ({"b": FAILED, "c": NOT_RUN}, FAILED),
    ({"b": PASSED, "c": NOT_RUN}, PARTLY_RUN),
    ({"b": NOT_RUN, "c": NOT_RUN}, NOT_RUN),
    ({"b": PASSED}, PARTLY_RUN),             # c never collected: not run, not passed
])
def test_an_items_verdict_comes_from_all_its_scenarios(outcomes, expected):
    results = [ScenarioResult(name, DECLARED[name], outcome, "attach mode" if outcome == NOT_RUN else "")
               for name, outcome in outcomes.items()]
    verdict, reason, scenarios = checklist.verdict(["checklist_1_2"], DECLARED, results)
    assert verdict == expected
    assert {s.name for s in scenarios} == {"b", "c"}
    if expected in (NOT_RUN, PARTLY_RUN):
        assert reason


def test_an_item_no_scenario_carries_is_reported_as_not_covered():
    assert checklist.verdict(["checklist_7_1"], DECLARED, [])[:2] == (NOT_COVERED, "no scenario covers this item")


def test_the_criterion_passes_only_when_every_part_passed(mapping):
    items = checklist.mapped_items(mapping)
    parts = [i for i in items if i.section == "BDD"]
    for item in parts:
        item.verdict = PASSED
    assert checklist.criterion_verdict(items) == PASSED
    parts[1].verdict = NOT_RUN
    assert checklist.criterion_verdict(items) == PARTLY_RUN
    parts[0].verdict = FAILED
    assert checklist.criterion_verdict(items) == FAILED


def test_history_keeps_the_last_verdicts_and_survives_a_torn_line(tmp_path, mapping):
    path = tmp_path / "history.jsonl"
    items = checklist.compute(mapping, checklist.declared_scenarios(FEATURES), [], [])
    for run in range(7):
        checklist.append_history(path, {"id": f"r{run}", "started": "t"}, items)
    with path.open("a") as file:
        file.write('{"run": "torn"')
    history = checklist.read_history(path)
    assert len(history) == 7 * len(items)
    again = checklist.compute(mapping, checklist.declared_scenarios(FEATURES), [], history)
    assert len(again[0].history) == checklist.HISTORY_SHOWN


def test_renderings_carry_every_item_and_the_verdict(mapping):
    results = [ScenarioResult("Redis Docker service definition", {"checklist_1_1"}, FAILED,
                              "redis address: expected 172.20.0.10, observed 172.20.0.11")]
    items = checklist.compute(mapping, checklist.declared_scenarios(FEATURES), results, [])
    run = {"id": "x", "started": "2026-11-26T00:00:00+00:00", "mode": "up"}
    markdown = checklist.render_markdown(mapping, items, run)
    page = checklist.render_html(mapping, items, run)
    for item in items:
        assert f"| {item.id} " in markdown
        assert f"data-item='{item.id}'" in page
    assert "id='verdict'" in page and "id='checklist'" in page
    assert "## E. The ecosystem's services connect (extra, beyond the milestone)" in markdown
    assert "E (extra, beyond the milestone)" in page
    assert "expected 172.20.0.10, observed 172.20.0.11" in page  # failures first, one line each
    assert json.loads(json.dumps(checklist.as_json(mapping, items, run)))["items"][5]["verdict"] == FAILED
