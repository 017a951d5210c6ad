"""One failure format for every step: what, expected, observed, where, and a hint."""
from __future__ import annotations

import pytest

from steps.probes import Fact
from steps.probes.waiting import WaitTimeout, wait_until


class Mismatches:
    """Collects every mismatch of a step that checks many things (a table), then fails once."""

    def __init__(self, what: str, hint: str = ""):
        self.what, self.hint, self.items = what, hint, []

    def check(self, ok: bool, expected, observed, fact: Fact | None = None) -> None:
        if not ok:
            self.items.append(_line(expected, observed, fact))

    def raise_any(self) -> None:
        if self.items:
            listed = "\n  - ".join(self.items)
            hint = f"\nHint: {self.hint}" if self.hint else ""
            raise AssertionError(f"{self.what}:\n  - {listed}{hint}")


def _line(expected, observed, fact: Fact | None) -> str:
    where = f" ({fact.where}: {fact.probe})" if fact else ""
    return f"expected {expected}, observed {observed}{where}"


def not_applicable_on_swarm(stack, reason: str) -> None:
    """On a swarm stack, end the scenario as not run (never passed): what the step checks has no
    meaning there, for `reason`."""
    if stack.on_swarm:
        pytest.skip(f"not applicable on swarm: {reason}")


def expect(ok: bool, what: str, expected, observed, fact: Fact | None = None, hint: str = "") -> None:
    """Fail with `what: expected …, observed … (where: probe). Hint: …` unless `ok`."""
    if not ok:
        raise AssertionError(f"{what}: {_line(expected, observed, fact)}." + (f" Hint: {hint}" if hint else ""))


def expect_eventually(check, *, what: str, expected, timeout: float, interval: float = 0.25, transient=(),
                      hint: str = "", evidence=None):
    """Wait (bounded) until `check` returns a truthy value and return it, recorded as evidence when
    it is a Fact; otherwise fail with `what: expected … within N s, observed <the attempts and the
    last observation>. Hint: …`."""
    try:
        value = wait_until(check, timeout=timeout, interval=interval, transient=tuple(transient), description=what)
    except WaitTimeout as error:
        raise AssertionError(f"{what}: expected {expected} within {timeout:g} s, observed {error}."
                             + (f" Hint: {hint}" if hint else "")) from None
    if evidence is not None and isinstance(value, Fact):
        evidence.record(value)
    return value
