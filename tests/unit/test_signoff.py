"""A parallel run's controller merges what its workers ran (steps/report/signoff.py)."""
from __future__ import annotations

import pytest

from steps.report import signoff
from steps.report.checklist import NOT_RUN, PASSED


class FakeConfig:
    def __init__(self):
        self.stash = pytest.Stash()
        self.stash[signoff.RUN_KEY] = {"id": "run"}


def _record(results: dict, order: list, run: dict | None = None) -> dict:
    return {"order": order, "results": results, "evidence": {}, "not_run": {}, "run": run or {}}


def _result(outcome: str, reason: str = "") -> dict:
    return {"name": "a scenario", "tags": ["checklist_1_1"], "outcome": outcome, "reason": reason,
            "evidence": [["Then it holds", ["fact"]]]}


def test_a_scenario_that_ran_wins_over_its_deselection_reported_by_another_worker():
    config, order = FakeConfig(), ["t::deselected", "t::ran"]
    deselected = _result(NOT_RUN, "deselected in this run (-m / -k)")
    signoff.merge_worker_record(config, _record({"t::deselected": deselected, "t::ran": _result(NOT_RUN)}, order))
    signoff.merge_worker_record(config, _record({"t::deselected": deselected, "t::ran": _result(PASSED)}, order,
                                                {"mode": "attach", "images": "redis abc"}))
    results = config.stash[signoff.RESULTS_KEY]
    assert results["t::ran"].outcome == PASSED and results["t::ran"].evidence == [("Then it holds", ["fact"])]
    assert results["t::deselected"].outcome == NOT_RUN
    assert config.stash[signoff.RUN_KEY] == {"id": "run", "mode": "attach", "images": "redis abc"}


def test_results_come_in_collection_order_whatever_order_the_workers_finished_in():
    config, order = FakeConfig(), ["t::a", "t::b", "t::c"]
    signoff.merge_worker_record(config, _record({"t::c": _result(PASSED), "t::a": _result(PASSED)}, order))
    signoff.merge_worker_record(config, _record({"t::b": _result(PASSED)}, order))
    config.stash[signoff.RESULTS_KEY]["t::a"].name = "first"
    config.stash[signoff.RESULTS_KEY]["t::c"].name = "last"
    assert [r.name for r in signoff._in_collection_order(config)] == ["first", "a scenario", "last"]
