"""The records probes return, and the errors they raise."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Fact:
    """One observation of the system: what was asked, where, and what came back.

    `observed` is the parsed value a step asserts on; `raw` is the answer as received, kept short,
    so that the fact doubles as evidence in the reports.
    """

    probe: str
    where: str
    observed: Any
    raw: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"{self.probe} @ {self.where} -> {self.observed!r}"

    def as_dict(self) -> dict:
        return {"probe": self.probe, "where": self.where, "observed": _plain(self.observed), "raw": self.raw[:2000]}


def _plain(value: Any) -> Any:
    """A JSON-friendly copy of an observed value."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, (set, frozenset)) else items
    return repr(value)


@dataclass(frozen=True)
class Outcome:
    """What became of one command or login: allowed (with the reply) or refused (with the error)."""

    allowed: bool
    reply: str

    @property
    def refused_by_acl(self) -> bool:
        return not self.allowed and self.reply.startswith(("NOPERM", "WRONGPASS", "NOAUTH"))


@dataclass(frozen=True)
class ExecResult:
    """A command run inside a container: its exit code and its output."""

    exit_code: int
    output: str


class ProbeError(Exception):
    """A probe could not get an answer (connection refused, timeout, container missing)."""


class StackError(Exception):
    """The stack cannot be brought up, attached to, or brought down. The message names the service,
    what was observed and what to do about it."""
