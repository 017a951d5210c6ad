"""Waivers (features/waivers.yaml): a malformed file is one error naming its line and field; a live
waiver turns its item's verdict into "waived", an expired one no longer applies and says so, one on a
passing item is reported as no longer needed; the reports carry all of it."""
from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from steps.report import checklist, waivers
from steps.report.checklist import FAILED, NOT_RUN, PASSED, WAIVED, ScenarioResult

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2026, 12, 7)
KNOWN = {"1.1", "1.2", "6.3", "BDD.1"}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waivers.yaml"
    path.write_text(text)
    return path


def _waiver(item: str, expires: str = "2027-01-31") -> str:
    return (f'  - item: "{item}"\n    justification: accepted gap\n    accepted_by: Jane Doe\n'
            f"    expires: {expires}\n")


def test_the_repositorys_waiver_file_is_valid():
    mapping = checklist.load_mapping(ROOT / "features/checklist.yaml")
    waivers.load(ROOT / "features/waivers.yaml", set(checklist.item_tags(mapping)))


def test_no_file_and_an_empty_list_mean_no_waivers(tmp_path):
    assert waivers.load(tmp_path / "absent.yaml", KNOWN) == []
    assert waivers.load(_write(tmp_path, "waivers: []\n"), KNOWN) == []
    assert waivers.load(_write(tmp_path, "# nothing yet\nwaivers:\n"), KNOWN) == []


def test_a_waiver_is_read_with_its_line(tmp_path):
    found = waivers.load(_write(tmp_path, "waivers:\n" + _waiver("1.2") + _waiver("6.3", "2026-12-01")), KNOWN)
    assert [(w.item, w.line, w.expires) for w in found] == [("1.2", 2, date(2027, 1, 31)),
                                                            ("6.3", 6, date(2026, 12, 1))]
    assert found[0].accepted_by == "Jane Doe" and found[0].justification == "accepted gap"


@pytest.mark.parametrize("text, line, field", [
    ("waivers:\n" + _waiver("1.2", "next week"), 5, "expires"),
    ("waivers:\n" + _waiver("9.9"), 2, "item"),
    ("waivers:\n" + _waiver("1.2").replace("    accepted_by: Jane Doe\n", ""), 2, "accepted_by"),
    ("waivers:\n" + _waiver("1.2") + "    approved: yes\n", 6, "approved"),
    ("waivers:\n" + _waiver("1.2").replace("accepted gap", '""'), 3, "justification"),
    ("waivers:\n" + _waiver("1.2") + _waiver("1.2"), 6, "item"),
])
def test_a_malformed_waiver_is_one_error_naming_its_line_and_field(tmp_path, text, line, field):
    path = _write(tmp_path, text)
    with pytest.raises(waivers.WaiverError) as raised:
        waivers.load(path, KNOWN)
    message = str(raised.value)
    assert f"{path}:{line}: field '{field}'" in message, message
    assert "Each waiver reads" in message, "the error shows the remedy: what a waiver looks like"


@pytest.mark.parametrize("text", ["waivers: {item: 1.2}\n", "- item: 1.2\n", "waivers: [\n"])
def test_a_file_of_another_shape_says_what_it_must_hold(tmp_path, text):
    with pytest.raises(waivers.WaiverError, match=r"waivers.yaml:\d+: "):
        waivers.load(_write(tmp_path, text), KNOWN)


def _items(outcomes: dict, accepted: list, today: date = TODAY) -> dict:
    mapping = checklist.load_mapping(ROOT / "features/checklist.yaml")
    declared = {f"scenario {item}": {f"checklist_{item.replace('.', '_')}"} for item in outcomes}
    results = [ScenarioResult(name, tags, outcomes[name.split()[1]], "observed otherwise")
               for name, tags in declared.items()]
    items = checklist.compute(mapping, declared, results, [], accepted, today)
    return {item.id: item for item in items}


def _accepted(item: str, expires: date) -> waivers.Waiver:
    return waivers.Waiver(item, "accepted gap", "Jane Doe", expires, 2)


def test_a_live_waiver_turns_a_failed_item_into_waived_and_says_what_it_covers():
    items = _items({"1.1": FAILED, "1.2": PASSED}, [_accepted("1.1", TODAY)])
    assert items["1.1"].verdict == WAIVED and items["1.1"].waiver.status == waivers.LIVE
    assert items["1.1"].waiver.verdict == FAILED
    assert "waived (failed): accepted gap (accepted by Jane Doe, until 2026-12-07)" in items["1.1"].waiver.describe()
    assert items["1.2"].verdict == PASSED and items["1.2"].waiver is None


def test_an_expired_waiver_no_longer_applies_and_says_so():
    items = _items({"1.1": FAILED}, [_accepted("1.1", date(2026, 12, 6))])
    assert items["1.1"].verdict == FAILED
    assert items["1.1"].waiver.status == waivers.EXPIRED
    assert items["1.1"].waiver.describe().startswith("waiver expired on 2026-12-06")


def test_a_waiver_of_a_passing_item_is_no_longer_needed():
    items = _items({"1.1": PASSED}, [_accepted("1.1", TODAY)])
    assert items["1.1"].verdict == PASSED and items["1.1"].waiver.status == waivers.UNNEEDED


def test_a_waiver_covers_an_item_not_run():
    items = _items({"1.1": NOT_RUN}, [_accepted("1.1", TODAY)])
    assert items["1.1"].verdict == WAIVED and items["1.1"].waiver.verdict == NOT_RUN


def test_the_verdict_line_says_passed_with_n_waivers():
    parts = {f"BDD.{n}": PASSED for n in range(1, 6)}
    mapping = checklist.load_mapping(ROOT / "features/checklist.yaml")
    tags = checklist.item_tags(mapping)
    declared = {item: set(tags[item]) for item in parts}
    results = [ScenarioResult(item, declared[item], PASSED) for item in parts]
    results[0].outcome = FAILED
    items = checklist.compute(mapping, declared, results, [], [_accepted("BDD.1", TODAY)], TODAY)
    assert checklist.criterion_verdict(items) == PASSED
    assert checklist.criterion_line(items) == "PASSED WITH 1 WAIVER"
    report = checklist.as_json(mapping, items, {"id": "r"})
    assert report["criterion_line"] == "PASSED WITH 1 WAIVER" and report["waivers"] == 1
    waived = next(i for i in report["items"] if i["id"] == "BDD.1")
    assert waived["verdict"] == WAIVED and waived["waiver"]["accepted_by"] == "Jane Doe"


def test_the_reports_show_each_waiver_and_what_it_did():
    mapping = checklist.load_mapping(ROOT / "features/checklist.yaml")
    accepted = [_accepted("1.1", TODAY), _accepted("1.2", TODAY), _accepted("6.3", date(2026, 1, 1))]
    items = list(_items({"1.1": FAILED, "1.2": PASSED, "6.3": FAILED}, accepted).values())
    page = checklist.render_html(mapping, items, {})
    markdown = checklist.render_markdown(mapping, items, {})
    for text in (page, markdown):
        assert "waived (failed): accepted gap" in text
        assert "waiver no longer needed (the item passed)" in text
        assert "waiver expired on 2026-01-01" in text
    assert "<a href='#item-1-1'>" in page and "id='item-1-1'" in page, "the first screen links to the item's row"


def test_a_scenarios_failure_is_waived_only_when_every_item_it_proves_is_waived():
    tags = {"1.1": ["checklist_1_1"], "1.2": ["checklist_1_2", "bdd_x"]}
    live = {"1.1": _accepted("1.1", TODAY)}
    assert waivers.scenario_waiver({"checklist_1_1"}, tags, live).startswith("waived: 1.1: accepted gap")
    assert waivers.scenario_waiver({"checklist_1_1", "bdd_x"}, tags, live) is None
    assert waivers.scenario_waiver({"unmapped"}, tags, live) is None


def test_an_item_whose_verdict_changed_over_the_last_runs_stands_out():
    item = checklist.Item("1.1", "t", [], "1", PASSED, history=[PASSED, FAILED, PASSED])
    steady = checklist.Item("1.2", "t", [], "1", PASSED, history=[PASSED, PASSED])
    assert item.flapping and not steady.flapping
    mapping = checklist.load_mapping(ROOT / "features/checklist.yaml")
    page = checklist.render_html(mapping, [item, steady], {})
    assert "id='flapping'" in page and "#item-1-1" in page.split("id='flapping'")[1].split("</p>")[0]
