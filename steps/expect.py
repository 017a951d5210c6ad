"""One failure format for every step: what, expected, observed, where, and a hint."""
from __future__ import annotations

from steps.probes import Fact


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


def expect(ok: bool, what: str, expected, observed, fact: Fact | None = None, hint: str = "") -> None:
    """Fail with `what: expected …, observed … (where: probe). Hint: …` unless `ok`."""
    if not ok:
        raise AssertionError(f"{what}: {_line(expected, observed, fact)}." + (f" Hint: {hint}" if hint else ""))
