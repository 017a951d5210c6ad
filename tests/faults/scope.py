"""How much of the acceptance suite a fault's run takes, and what its outcome must be.

`scoped` (the default): the scenarios the fault names, those it `may_fail`, and the sentinels: one
cheap read-only scenario per feature, together touching every service of the stack. The named ones
must fail; for an `exact` fault every other scenario that ran (the sentinels) must pass, so a fault
that breaks more than it names (a service down, the network gone) is still refused as proof.

Scoped runs are shared: up to three faults of different services, naming different scenarios,
in one copy (tests/faults/sharing.py says which may).

`full`: every read-only scenario, and the stack-changing ones the fault names; for an `exact` fault
every scenario beyond those named must pass, which documents the fault's whole reach. Run nightly
and on demand (`--fault-scope=full`); each fault runs alone.

A swarm fault takes section W (the swarm's own sentinels) and the scenarios it names in both scopes.
"""
from __future__ import annotations

import os

from tests.faults.faults import Fault

SCOPES = ("scoped", "full")
SCOPE_VARIABLE = "TSE_FAULT_SCOPE"

# The BDD criterion's read-only scenarios and one cheap read-only scenario per checklist feature,
# together reaching every service; what each reaches is in its comment. About 5 s one after another
# on a fresh stack. Section 7 has none: each of its scenarios that asks a running service waits for
# Prometheus's first scrapes (it discovers its targets about 4.5 s after it starts, then scrapes every
# 5 s: 8 s more per run, a quarter of a plain fault's run); Prometheus, Alertmanager and the alert
# receiver are reached by their healthchecks (bdd_healthy).
SENTINELS = frozenset({
    "bdd_brought_up",   # the compose project's Redis and PostgreSQL containers
    "bdd_network",      # the network's subnet and gateway, Redis's and PostgreSQL's addresses
    "bdd_discoverable",  # Redis and PostgreSQL from the host and by name inside; the registry's view of both
    "bdd_healthy",      # every service's Docker health, and each healthcheck run again now
    "checklist_1_5",    # Redis's memory settings
    "checklist_2_4",    # PostgreSQL's schemas and roles
    "checklist_3_5",    # the compose project's containers and their names
    "checklist_4_1",    # the registry's registration, discovery and deregistration, Redis behind it
    "checklist_5_1",    # the registry's and the configuration service's health endpoints
    "checklist_6_2",    # the configuration service's reads from PostgreSQL
    "checklist_E_2",    # trading-engine-py's own client code: Redis, PostgreSQL, the registry, its configuration reads
    "checklist_S_4",    # every container's privileges: capabilities, read-only root, pids limit, users
})
# Features with no sentinel, and why (tests/unit/test_fault_scope.py holds the others to one each).
WITHOUT_SENTINEL = {"section_7": "its scenarios that ask a running service wait for Prometheus's first scrapes",
                    "section_W": "swarm only: a swarm fault's run takes the whole section"}


def fault_scope(option: str | None) -> str:
    """The scope of this session's fault runs: the --fault-scope option, else TSE_FAULT_SCOPE, else scoped."""
    value = option or os.environ.get(SCOPE_VARIABLE) or "scoped"
    if value not in SCOPES:
        raise ValueError(f"{SCOPE_VARIABLE}={value}: it must be one of {', '.join(SCOPES)} "
                         "(--fault-scope on the command line)")
    return value


def selection(faults, scope: str, stack_changing_only: set) -> list[str]:
    """The acceptance run's arguments that select what the run of `faults` (a fault, or the faults
    sharing a run: tests/faults/sharing.py) takes in `scope`. Scenarios that stop and start services
    are slow: they run only when a fault names them."""
    faults = (faults,) if isinstance(faults, Fault) else tuple(faults)
    fails = frozenset().union(*(fault.fails for fault in faults))
    may_fail = frozenset().union(*(fault.may_fail for fault in faults))
    stack_changing = " or ".join(["not changes_stack", *sorted(fails & stack_changing_only)])
    if faults[0].stack == "swarm":
        # What swarm adds, and the swarm forms of the scenarios the fault names: the rest of the
        # suite on swarm is the compose faults' to prove.
        named = " or ".join(["section_W", *sorted(tag for tag in fails if not tag.startswith("checklist_W_"))])
        return ["--stack=swarm", "-m", f"({named}) and ({stack_changing})"]
    if scope == "full":
        return ["-m", stack_changing]
    taken = " or ".join(sorted(fails | may_fail | SENTINELS))
    return ["-m", f"({taken}) and ({stack_changing})"]


def scenario_problems(fault: Fault, scenarios: dict, partners=()) -> list[str]:
    """What keeps a run's scenarios ({name: {"tags", "status"}}) from proving `fault`: a named tag
    with no failed scenario; for an exact fault, a scenario failed beyond those named by it and the
    `partners` sharing its run (in the scoped runs, a sentinel: a fault breaks more than it says)."""
    failed = [s for s in scenarios.values() if s["status"] == "failed"]
    caught = set().union(*(s["tags"] for s in failed))
    problems = []
    if fault.fails - caught:
        problems.append(f"not caught by {sorted(fault.fails - caught)}")
    if fault.exact:
        named = frozenset().union(*(f.fails | f.may_fail for f in (fault, *partners)))
        collateral = sorted(name for name, s in scenarios.items() if s["status"] == "failed" and not s["tags"] & named)
        if collateral:
            problems.append(f"scenarios failed beyond those named: {collateral}")
    return problems
