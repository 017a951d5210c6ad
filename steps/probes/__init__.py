"""Probes: plain functions that ask the running stack one question each and return a Fact.

No pytest here, so operator tools and the suite's own tests can call them too. No probe calls a
Docker API that changes state (tests/unit/test_probes_only_ask.py): pausing, killing and throwaway
containers are the harness's (steps/harness/interventions.py, scratch.py).
"""
from steps.probes.facts import ExecResult, Fact, Outcome, ProbeError, StackError

__all__ = ["ExecResult", "Fact", "Outcome", "ProbeError", "StackError"]
