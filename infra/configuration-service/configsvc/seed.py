"""The environment files (environments/<environment>.yaml): validated before the service serves,
then seeded into the store.

Seeding inserts the parameters that are missing and updates those the seed itself wrote last when
the file now says otherwise; a parameter changed (or deleted) at run time through the API is left
as it is.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from configsvc.model import (
    ENVIRONMENTS,
    Entry,
    Invalid,
    check_description,
    check_key,
    check_service,
    normalise_value,
)
from configsvc.notifier import Notifier
from configsvc.store import Store, VersionConflict

SEED_AUTHOR = "seed"
ENTRY_FIELDS = ("key", "type", "value", "service", "description")
log = logging.getLogger("configsvc.seed")


@dataclass(frozen=True)
class Problem:
    file: str
    where: str                                  # the key, or parameters[i] when it has no valid key
    reason: str

    def line(self) -> str:
        return f"configuration invalid: {self.file}: {self.where}: {self.reason}"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:300]


def _checked(check, value, problems: List[str]):
    """check(value), or None after adding its problem to `problems`."""
    try:
        return check(value)
    except Invalid as invalid:
        problems.append(invalid.problem)
        return None


def _entry(environment: str, index: int, raw, problems: List[str]) -> Tuple[str, Optional[Entry]]:
    """(where, Entry) for one raw entry; the Entry is None and `problems` says why when it is invalid."""
    where = f"parameters[{index}]"
    if not isinstance(raw, dict):
        problems.append("an entry is a mapping with key, type and value")
        return where, None
    if "key" not in raw:
        problems.append("missing key")
    else:
        where = _checked(check_key, raw["key"], problems) or where
    problems.extend(f"unknown field {str(name)[:40]!r}" for name in raw if name not in ENTRY_FIELDS)
    problems.extend(f"missing {name}" for name in ("type", "value") if name not in raw)
    service = _checked(check_service, raw.get("service"), problems)
    description = _checked(check_description, raw.get("description") or "", problems)
    if problems:
        return where, None
    value = _checked(lambda v: normalise_value(where, raw["type"], v, service), raw["value"], problems)
    return where, None if problems else Entry(environment, service, where, raw["type"], value, description)


def load_file(path: Path) -> Tuple[List[Entry], List[Problem]]:
    """The parameters of one environment file, and every problem in it."""
    problems: List[Problem] = []
    if path.stem not in ENVIRONMENTS:
        return [], [Problem(path.name, "file", f"{path.stem!r} is not an environment: name the file after one of "
                                               f"{', '.join(ENVIRONMENTS)}")]
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        return [], [Problem(path.name, "file", f"not readable YAML: {_one_line(error)}")]
    if not isinstance(document, dict) or not isinstance(document.get("parameters"), list):
        return [], [Problem(path.name, "file", "expected a mapping with a list under 'parameters'")]
    problems.extend(Problem(path.name, "file", f"unknown top-level field {str(name)[:40]!r}")
                    for name in document if name != "parameters")
    entries, seen = [], set()
    for index, raw in enumerate(document["parameters"]):
        reasons: List[str] = []
        where, entry = _entry(path.stem, index, raw, reasons)
        problems.extend(Problem(path.name, where, _one_line(reason)) for reason in reasons)
        if entry is None:
            continue
        if (entry.service, entry.key) in seen:
            problems.append(Problem(path.name, where, "defined twice" + (f" for service {entry.service}"
                                                                         if entry.service else "")))
        seen.add((entry.service, entry.key))
        entries.append(entry)
    return entries, problems


def load_environments(directory) -> Tuple[List[Entry], List[Problem]]:
    """Every parameter of every *.yaml file in `directory`, and every problem found in any of them."""
    folder = Path(directory)
    if not folder.is_dir():
        return [], [Problem(str(folder), "file", "no such directory (CONFIG_ENVIRONMENTS_DIR)")]
    entries: List[Entry] = []
    problems: List[Problem] = []
    for path in sorted(folder.glob("*.yaml")):
        found, wrong = load_file(path)
        entries.extend(found)
        problems.extend(wrong)
    return entries, problems


def seed(store: Store, entries: List[Entry], notifier: Notifier) -> Dict[str, int]:
    """Writes the files' parameters to the store; the count of each outcome (created, updated,
    unchanged, kept: changed or deleted at run time, so left alone)."""
    counts = {"created": 0, "updated": 0, "unchanged": 0, "kept": 0}
    unannounced = 0
    for entry in entries:
        rows = store.get_rows(entry.environment, entry.key, [entry.service])
        current = rows[0] if rows else None
        if current is None and store.history(entry.environment, entry.service, entry.key, limit=1):
            counts["kept"] += 1             # deleted through the API: it stays deleted
            continue
        if current is not None and current.updated_by != SEED_AUTHOR:
            counts["kept"] += 1             # changed through the API: the run-time value wins
            continue
        try:
            # The version read above: an API write in between wins, and this seed leaves it alone.
            change = store.upsert(entry.environment, entry.service, entry.key, entry.type, entry.value,
                                  entry.description, SEED_AUTHOR, expected_version=current.version if current else 0)
        except VersionConflict:
            counts["kept"] += 1
            continue
        counts[change.change] += 1
        if change.change == "unchanged":
            continue
        # After one failure the rest are not tried: each could wait for Redis's timeout and hold up the start.
        if unannounced or not notifier.publish(change):
            unannounced += 1
    if unannounced:
        notifier.metrics.notifications_failed.inc(unannounced - 1)
        log.warning("%s seed changes not announced on Redis", unannounced)
    log.info("seeded %s parameters: %s", len(entries), ", ".join(f"{n} {what}" for what, n in counts.items()))
    return counts
