"""Waivers: known, accepted gaps of the checklist (features/waivers.yaml), as compliance tools keep
them (Chef InSpec's waiver files): the item, why it is accepted, who accepted it, and the day the
acceptance ends. A waived item is still run and reported; a live waiver turns its failed, partly run
or not run verdict into "waived" (and a waived scenario's failure no longer fails the run); an
expired one no longer applies and says so; one on a passing item is reported as no longer needed.

Plain functions, no pytest in them: the file is read and checked before any stack starts, and a
malformed one is one error naming its line and field."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

FIELDS = ("item", "justification", "accepted_by", "expires")
LIVE, EXPIRED, UNNEEDED = "waived", "expired", "no longer needed"
EXAMPLE = ('waivers:\n  - item: "6.3"\n    justification: why the gap is accepted\n'
           '    accepted_by: who accepted it\n    expires: 2027-01-31')


class WaiverError(ValueError):
    """A malformed waiver file: the message names the file, the line and the field, and the remedy."""


@dataclass(frozen=True)
class Waiver:
    item: str
    justification: str
    accepted_by: str
    expires: date
    line: int

    def live(self, today: date) -> bool:
        """A waiver holds through the day it expires."""
        return today <= self.expires

    def describe(self) -> str:
        return f"{self.justification} (accepted by {self.accepted_by}, until {self.expires.isoformat()})"


def load(path: Path, known_items: set[str]) -> list[Waiver]:
    """The waivers of `path` (none when it does not exist), every entry checked: its fields, a known
    checklist item, a date, one waiver per item. Raises WaiverError naming every problem found."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise WaiverError(f"{where}: not valid YAML ({getattr(error, 'problem', error)}). "
                          f"Expected:\n{EXAMPLE}") from None
    problems: list[str] = []
    waivers = _entries(root, path, problems, known_items)
    if problems:
        raise WaiverError("\n".join(problems) + f"\nEach waiver reads:\n{EXAMPLE}")
    return waivers


def _entries(root, path: Path, problems: list, known_items: set) -> list[Waiver]:
    if root is None:
        return []
    entries = _value(root, "waivers") if isinstance(root, yaml.MappingNode) else None
    if entries is None or not isinstance(entries, (yaml.SequenceNode, yaml.ScalarNode)) or (
            isinstance(entries, yaml.ScalarNode) and entries.value not in ("", "~", "null")):
        problems.append(f"{path}:{root.start_mark.line + 1}: the file must hold `waivers:`, a list of waivers")
        return []
    waivers, seen = [], {}
    for node in entries.value if isinstance(entries, yaml.SequenceNode) else []:
        waiver = _entry(node, path, problems, known_items)
        if waiver is None:
            continue
        if waiver.item in seen:
            problems.append(f"{path}:{waiver.line}: field 'item': item {waiver.item} is already waived at line "
                            f"{seen[waiver.item]}; keep one waiver per item")
            continue
        seen[waiver.item] = waiver.line
        waivers.append(waiver)
    return waivers


def _value(mapping, key: str):
    return next((value for name, value in mapping.value if getattr(name, "value", None) == key), None)


def _entry(node, path: Path, problems: list, known_items: set) -> Waiver | None:
    line = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode):
        problems.append(f"{path}:{line}: a waiver must be a mapping with the fields {', '.join(FIELDS)}")
        return None
    found = {}
    for name, value in node.value:
        key = getattr(name, "value", None)
        if key not in FIELDS:
            problems.append(f"{path}:{name.start_mark.line + 1}: field '{key}': unknown (the fields are "
                            f"{', '.join(FIELDS)})")
        elif not isinstance(value, yaml.ScalarNode) or not str(value.value).strip():
            problems.append(f"{path}:{value.start_mark.line + 1}: field '{key}': empty or not a single value")
        else:
            found[key] = (str(value.value).strip(), value.start_mark.line + 1)
    missing = [key for key in FIELDS if key not in found]
    if missing:
        problems.append(f"{path}:{line}: field '{missing[0]}': missing (a waiver names {', '.join(FIELDS)})")
        return None
    expires = _date(*found["expires"], path, problems)
    item, item_line = found["item"]
    if item not in known_items:
        problems.append(f"{path}:{item_line}: field 'item': {item!r} is no checklist item "
                        "(features/checklist.yaml lists them: 1.1, BDD.2, S.3, ...)")
        return None
    if expires is None:
        return None
    return Waiver(item, found["justification"][0], found["accepted_by"][0], expires, line)


def _date(text: str, line: int, path: Path, problems: list) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(f"{path}:{line}: field 'expires': {text!r} is not a date (write it as YYYY-MM-DD)")
        return None


@dataclass(frozen=True)
class Applied:
    """What a waiver did in this run: waived its item, expired, or was no longer needed."""

    waiver: Waiver
    status: str            # LIVE, EXPIRED or UNNEEDED
    verdict: str           # the item's own verdict, before the waiver

    def as_json(self) -> dict:
        return {"status": self.status, "justification": self.waiver.justification,
                "accepted_by": self.waiver.accepted_by, "expires": self.waiver.expires.isoformat(),
                "verdict_without_waiver": self.verdict}

    def describe(self) -> str:
        if self.status == EXPIRED:
            return f"waiver expired on {self.waiver.expires.isoformat()}: {self.waiver.describe()}"
        if self.status == UNNEEDED:
            return f"waiver no longer needed (the item passed): {self.waiver.describe()}"
        return f"waived ({self.verdict}): {self.waiver.describe()}"


def status(waiver: Waiver, verdict: str, passed: str, today: date) -> str:
    """LIVE, EXPIRED or UNNEEDED, for an item whose own verdict is `verdict`."""
    if not waiver.live(today):
        return EXPIRED
    return UNNEEDED if verdict == passed else LIVE


def waived_items(waivers: list[Waiver], today: date) -> dict[str, Waiver]:
    """item id -> its live waiver."""
    return {waiver.item: waiver for waiver in waivers if waiver.live(today)}


def scenario_waiver(tags: set, item_tags: dict[str, list], live: dict[str, Waiver]) -> str | None:
    """Why a scenario's failure is waived, or None: every checklist item the scenario proves has a
    live waiver (a scenario also proving an item nobody waived still fails the run)."""
    mine = [item for item, wanted in item_tags.items() if tags & set(wanted)]
    if not mine or any(item not in live for item in mine):
        return None
    return "waived: " + "; ".join(f"{item}: {live[item].describe()}" for item in mine)
