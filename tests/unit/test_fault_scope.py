"""What a fault's run takes in each scope, what its outcome must be (tests/faults/scope.py), and
which faults build images of their own (tests/acceptance_copy.copied_files_differ)."""
from __future__ import annotations

import shutil

import pytest

from tests.acceptance_copy import ROOT, copied_files_differ, feature_scenarios, stack_changing_only_tags
from tests.faults.faults import fault
from tests.faults.scope import SENTINELS, WITHOUT_SENTINEL, fault_scope, scenario_problems, selection

LRU = fault("lru", "LRU", [("infra/redis/redis.conf", r"^maxmemory-policy allkeys-lfu",
                            "maxmemory-policy allkeys-lru")], {"checklist_1_5"})


def test_the_scope_is_scoped_unless_asked(monkeypatch):
    monkeypatch.delenv("TSE_FAULT_SCOPE", raising=False)
    assert fault_scope(None) == "scoped"
    monkeypatch.setenv("TSE_FAULT_SCOPE", "full")
    assert fault_scope(None) == "full"
    assert fault_scope("scoped") == "scoped"  # the option wins over the environment


def test_a_bad_scope_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TSE_FAULT_SCOPE", "most")
    with pytest.raises(ValueError, match="TSE_FAULT_SCOPE=most: it must be one of scoped, full"):
        fault_scope(None)


def test_a_scoped_run_takes_the_named_the_racing_and_the_sentinels():
    racing = fault("x", "x", [], {"checklist_6_7", "checklist_5_3"}, may_fail={"checklist_6_3"})
    _, expression = selection(racing, "scoped", stack_changing_only_tags())
    taken, guard = expression.split(") and (")
    assert set(taken.strip("(").split(" or ")) == {"checklist_6_7", "checklist_5_3", "checklist_6_3", *SENTINELS}
    # 5.3's stack-changing half is selected by its own tag only: @paused_databases is not named here.
    assert guard.rstrip(")") == "not changes_stack"


def test_a_stack_changing_scenario_runs_when_its_own_tag_is_named():
    crash = fault("x", "x", [], {"checklist_3_7", "redis_crash"})
    assert selection(crash, "scoped", stack_changing_only_tags())[1].endswith("(not changes_stack or redis_crash)")
    assert selection(crash, "full", stack_changing_only_tags()) == ["-m", "not changes_stack or redis_crash"]


def test_a_swarm_fault_takes_section_w_and_what_it_names_in_either_scope():
    gateway = fault("x", "x", [], {"checklist_3_3", "checklist_W_1"}, stack="swarm")
    for scope in ("scoped", "full"):
        assert selection(gateway, scope, set()) == ["--stack=swarm", "-m", "(section_W or checklist_3_3) and "
                                                                           "(not changes_stack)"]


def _scenarios(**statuses: str) -> dict:
    return {tag: {"tags": {tag}, "status": status} for tag, status in statuses.items()}


def test_a_fault_caught_by_its_scenarios_with_the_sentinels_passing_is_proof():
    assert scenario_problems(LRU, _scenarios(checklist_1_5="failed", bdd_healthy="passed")) == []


def test_a_fault_that_fails_a_sentinel_too_is_refused():
    """A fault that breaks more than it names (here the stack's health) proves nothing of its scenario."""
    problems = scenario_problems(LRU, _scenarios(checklist_1_5="failed", bdd_healthy="failed"))
    assert problems == ["scenarios failed beyond those named: ['bdd_healthy']"]


def test_a_fault_its_scenarios_miss_is_refused():
    problems = scenario_problems(LRU, _scenarios(checklist_1_5="passed", bdd_healthy="passed"))
    assert problems == ["not caught by ['checklist_1_5']"]


def test_a_racing_scenario_may_fail_and_an_inexact_fault_names_only_what_must():
    racing = fault("x", "x", [], {"checklist_6_7"}, may_fail={"checklist_6_3"})
    assert scenario_problems(racing, _scenarios(checklist_6_7="failed", checklist_6_3="failed")) == []
    inexact = fault("x", "x", [], {"checklist_5_7"}, exact=False)
    assert scenario_problems(inexact, _scenarios(checklist_5_7="failed", bdd_healthy="failed")) == []


def test_the_sentinels_are_read_only_scenarios_one_in_every_feature():
    scenarios = feature_scenarios()
    sentinels = [tags for tags in scenarios.values() if tags & SENTINELS]
    assert all(any(tag in tags for tags in sentinels) for tag in SENTINELS), "a sentinel names no scenario"
    assert not [tags for tags in sentinels if tags & {"changes_stack", "telemetry", "swarm_only"}]
    features = {tag for tags in scenarios.values() for tag in tags
                if tag.startswith("section_") or tag == "bdd_criterion"}
    assert features - set(WITHOUT_SENTINEL) <= set().union(*sentinels), "a feature without a sentinel"


@pytest.mark.docker  # `docker compose config` reads the builds
def test_only_a_file_an_image_copies_builds_images_of_its_own(tmp_path):
    """A change to a file an image copies (its Dockerfile, a COPY source) builds images of its own; the
    bind-mounted configuration files (redis.conf here) need none."""
    copy = tmp_path / "stack"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "reports", "__pycache__", ".stack"))
    assert copied_files_differ(copy) == []
    LRU.apply(copy)
    assert copied_files_differ(copy) == [], "redis.conf is bind-mounted, not copied into an image"
    (copy / "infra/redis/Dockerfile").write_text((copy / "infra/redis/Dockerfile").read_text() + "\n# changed\n")
    (copy / "infra/servicekit/servicekit/http.py").write_text("# changed\n")
    assert copied_files_differ(copy) == ["infra/redis/Dockerfile", "infra/servicekit/servicekit"]
