"""The fault runs side by side (tests/faults/runs.py): how many at once, and that runs in flight are
never given the same subnet or port."""
from __future__ import annotations

import pytest

from steps.harness.settings import PORT_VARIABLES
from tests import acceptance_copy
from tests.acceptance_copy import stack_changing_only_tags
from tests.faults import runs
from tests.faults.faults import FAULTS
from tests.faults.timings import LONGEST_FIRST, fault_kind, start_rank


def test_jobs_from_the_environment(monkeypatch):
    monkeypatch.setenv("TSE_FAULT_JOBS", "3")
    assert runs.fault_jobs() == 3


def test_jobs_below_one_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TSE_FAULT_JOBS", "0")
    with pytest.raises(ValueError, match="TSE_FAULT_JOBS=0: it must be 1 or more"):
        runs.fault_jobs()


def test_jobs_capped_by_cores_and_memory(monkeypatch):
    monkeypatch.delenv("TSE_FAULT_JOBS", raising=False)
    monkeypatch.setattr(runs.os, "cpu_count", lambda: 2)
    pages = {"SC_PAGE_SIZE": 4096}
    monkeypatch.setattr(runs.os, "sysconf", lambda name: pages.get(name, pages["available"]))
    pages["available"] = 8 * runs.STACK_MEMORY // 4096
    assert runs.fault_jobs() == 2  # the cores
    pages["available"] = runs.STACK_MEMORY // 4096 + 1
    assert runs.fault_jobs() == 1  # memory for one stack
    pages["available"] = 1
    assert runs.fault_jobs() == 1  # never none


def test_runs_in_flight_get_their_own_subnet_and_ports_until_they_end(monkeypatch):
    # As if no docker network existed: the reservations alone keep the runs apart.
    monkeypatch.setattr(acceptance_copy, "stack_free_subnet_prefix", lambda candidates: f"172.{list(candidates)[0]}")
    reservations = acceptance_copy.Reservations()
    first = reservations.environment("tse-fault-a")
    second = reservations.environment("tse-fault-b")
    assert first["TSE_SUBNET_PREFIX"] != second["TSE_SUBNET_PREFIX"]
    # The monitoring network's subnet goes with the prefix (172.N -> 172.16.N.0/24): apart too.
    assert first["TSE_MONITORING_SUBNET"] == f"172.16.{first['TSE_SUBNET_PREFIX'].split('.')[1]}.0/24"
    assert first["TSE_MONITORING_SUBNET"] != second["TSE_MONITORING_SUBNET"]
    first_ports = {first[v] for v in PORT_VARIABLES}
    assert len(first_ports) == len(PORT_VARIABLES)
    assert not first_ports & {second[v] for v in PORT_VARIABLES}
    reservations.release(first)
    assert reservations.environment("tse-fault-c")["TSE_SUBNET_PREFIX"] == first["TSE_SUBNET_PREFIX"]


def test_shards_split_the_faults_between_them(monkeypatch):
    faults = list(range(10))
    monkeypatch.delenv("TSE_FAULT_SHARD", raising=False)
    assert runs.shard(faults) == faults
    shards = []
    for k in (1, 2, 3):
        monkeypatch.setenv("TSE_FAULT_SHARD", f"{k}/3")
        shards.append(runs.shard(faults))
    assert sorted(sum(shards, [])) == faults and all(shards)


@pytest.mark.parametrize("value", ["3", "0/2", "3/2", "a/b"])
def test_a_bad_shard_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("TSE_FAULT_SHARD", value)
    with pytest.raises(ValueError, match=f"TSE_FAULT_SHARD={value}: it must be k/n"):
        runs.shard([1, 2])


def test_compose_faults_start_longest_kind_first():
    stack_only = stack_changing_only_tags()
    kinds = [fault_kind(fault, stack_only) for fault in sorted(
        (f for f in FAULTS if f.stack != "swarm"), key=lambda f: start_rank(f, stack_only))]
    assert set(kinds) == set(LONGEST_FIRST), kinds
    assert kinds == sorted(kinds, key=LONGEST_FIRST.index), kinds
    plain = sorted((f for f in FAULTS if f.stack != "swarm" and fault_kind(f, stack_only) == "plain"),
                   key=lambda f: start_rank(f, stack_only))
    assert any(t.startswith("checklist_7_") for t in plain[0].fails), plain[0].name
