"""Which faults share a scoped run (tests/faults/sharing.py): only those whose verdicts cannot come
from each other."""
from __future__ import annotations

from tests.acceptance_copy import ROOT, feature_scenarios, stack_changing_only_tags
from tests.faults.faults import COMPOSE, FAULTS, fault
from tests.faults.scope import SENTINELS, scenario_problems, selection
from tests.faults.sharing import (
    SHARED_RUN_SIZE,
    apply_together,
    compose_block,
    edit_services,
    named_scenarios,
    shared_runs,
)


def _runs(scope="scoped", alone=frozenset()):
    return shared_runs(FAULTS, scope, stack_changing_only_tags(), alone)


def test_every_fault_runs_once():
    runs = _runs()
    assert sorted(f.name for run in runs for f in run) == sorted(f.name for f in FAULTS)
    assert any(len(run) > 1 for run in runs), "no two faults share a run"
    assert all(len(run) <= SHARED_RUN_SIZE for run in runs)


def test_faults_share_a_run_only_apart_and_plain():
    scenarios, stack_only = feature_scenarios(), stack_changing_only_tags()
    sentinel_scenarios = {name for name, tags in scenarios.items() if tags & SENTINELS}
    for run in (run for run in _runs() if len(run) > 1):
        assert apply_together(run), [f.name for f in run]
        for index, one in enumerate(run):
            assert one.exact and not one.may_fail and one.stack == "up" and one.mode == "development"
            assert not one.aborts and not one.fails & stack_only and "alert_fires" not in one.fails
            assert not named_scenarios(one, scenarios) & sentinel_scenarios, one.name
            for other in run[index + 1:]:
                assert not edit_services(one) & edit_services(other), (one.name, other.name)
                assert not named_scenarios(one, scenarios) & named_scenarios(other, scenarios), (one.name, other.name)


def test_the_full_scope_and_the_faults_kept_alone_run_alone():
    assert all(len(run) == 1 for run in _runs("full"))
    lonely = next(run for run in _runs() if len(run) > 1)[0]
    assert (lonely,) in _runs(alone={lonely})


def test_an_edit_reaches_the_services_that_copy_or_mount_its_file():
    by_name = {f.name: f for f in FAULTS}
    assert edit_services(by_name["redis-lru"]) == {"redis"}  # redis.conf: its build context and a mount
    # users.acl: Redis's folder, and the secrets service that adds the passwords' hashes to it.
    assert edit_services(by_name["redis-default-user-on"]) == {"redis", "secrets"}
    # The code both Python services share.
    assert edit_services(by_name["body-limit-by-content-length-only"]) >= {"service-registry", "configuration-service"}
    # The env file reaches every service.
    assert edit_services(by_name["ecosystem-default-passwords-changed"]) is None


def test_a_compose_edit_reaches_the_block_it_is_in():
    text = (ROOT / COMPOSE).read_text()
    redis = text.index("ipv4_address: ${TSE_SUBNET_PREFIX:-172.20}.0.10")
    assert compose_block(text, redis, redis + 10) == "redis"
    hardened = text.index("cap_drop: [ALL]")  # x-hardened: every service's
    assert compose_block(text, hardened, hardened + 5) is None
    registry = text.index("  service-registry:\n")
    assert compose_block(text, registry, text.index("  configuration-service:\n") + 5) is None  # two blocks


def test_edits_that_no_longer_match_together_keep_faults_apart():
    lfu = fault("a", "a", [("infra/redis/redis.conf", r"^maxmemory-policy allkeys-lfu", "maxmemory-policy x")],
                {"checklist_1_5"})
    assert apply_together([lfu])
    assert not apply_together([lfu, lfu])


def test_a_shared_run_selects_every_faults_scenarios_and_the_sentinels():
    run = next(run for run in _runs() if len(run) == SHARED_RUN_SIZE)
    _, expression = selection(run, "scoped", stack_changing_only_tags())
    taken = set(expression.split(") and (")[0].strip("(").split(" or "))
    assert taken == set().union(*(f.fails for f in run)) | SENTINELS


def _scenarios(**statuses: str) -> dict:
    return {tag: {"tags": {tag}, "status": status} for tag, status in statuses.items()}


def test_a_partners_scenarios_may_fail_a_sentinel_may_not():
    lru = fault("lru", "x", [], {"checklist_1_5"})
    partner = fault("p", "x", [], {"checklist_6_3"})
    assert scenario_problems(lru, _scenarios(checklist_1_5="failed", checklist_6_3="failed"), (partner,)) == []
    assert scenario_problems(lru, _scenarios(checklist_1_5="failed", checklist_6_3="failed")) != []
    problems = scenario_problems(lru, _scenarios(checklist_1_5="failed", bdd_healthy="failed"), (partner,))
    assert problems == ["scenarios failed beyond those named: ['bdd_healthy']"]
    # A partner's failure never counts as the fault's own.
    assert scenario_problems(lru, _scenarios(checklist_1_5="passed", checklist_6_3="failed"), (partner,)) == [
        "not caught by ['checklist_1_5']"]
