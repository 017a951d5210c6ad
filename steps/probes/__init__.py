"""Probes: plain functions that ask the running stack one question each and return a Fact.

No pytest here, so operator tools and the suite's own tests can call them too.
"""
from steps.probes.facts import ExecResult, Fact, Outcome, ProbeError, StackError

__all__ = ["ExecResult", "Fact", "Outcome", "ProbeError", "StackError"]
