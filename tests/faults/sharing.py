"""Which faults share a run: in the scoped runs, up to three faults that break different services
and name different scenarios go into one copy of the stack, so one stack start proves them all.

A stack's start, its teardown and pytest's own start are about 17 of a plain fault's 24 s; sharing
pays them once for up to three faults. A fault shares a run only when its verdict cannot come from
its partners:
- it is plain (none of its scenarios stops a service or waits for an alert), `exact` (it fails
  nothing beyond what it names, which the full scope proves run by run), with no `may_fail`, in
  development mode on compose;
- it names no sentinel's scenario: every sentinel must pass in a shared run, so each fault's
  overreach is still refused;
- each of its edits reaches known services (the folders a service's image copies or mounts, one
  service's block of docker-compose.yml), none of which a partner's edits reach;
- no scenario it names is one a partner names;
- its edits and its partners' apply together (each pattern still matches once).
A shared run's faults each must fail their own scenarios; a scenario failing beyond all of theirs
(or a sentinel) refuses the proof of all of them. The full scope runs every fault alone.
"""
from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

import yaml

from tests.acceptance_copy import ROOT, feature_scenarios
from tests.faults.faults import COMPOSE, ENV_EXAMPLE, Fault, NotOnce
from tests.faults.scope import SENTINELS

SHARED_RUN_SIZE = 3
# A default inside a variable, as a bind mount's source may be written: ${TSE_TLS_DIR:-./infra/...}.
_DEFAULT = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}")
_SERVICE_KEY = re.compile(r"^  ([A-Za-z0-9_.-]+):\s*$")


@cache
def folder_services(root: Path = ROOT) -> dict[str, frozenset]:
    """{repository path: the services whose image copies it (build contexts) or that mount it}."""
    compose = yaml.safe_load((root / COMPOSE).read_text())
    owners: dict[str, set] = {}
    for name, service in compose["services"].items():
        build = service.get("build") or {}
        sources = [build.get("context"), *(build.get("additional_contexts") or {}).values()]
        for volume in service.get("volumes") or []:
            if isinstance(volume, str):
                sources.append(volume.split(":", 1)[0])
            elif volume.get("type") == "bind":
                sources.append(volume.get("source"))
        for source in filter(None, sources):
            path = os.path.normpath(_DEFAULT.sub(r"\1", source))
            if not path.startswith("$") and (root / path).exists():  # named volumes are not paths
                owners.setdefault(path, set()).add(name)
    return {path: frozenset(names) for path, names in owners.items()}


def compose_block(text: str, start: int, end: int) -> str | None:
    """The service of docker-compose.yml whose block holds text[start:end]; None outside one (the
    shared x- blocks, networks, secrets, volumes reach every service)."""
    line_of = text.count("\n", 0, start), text.count("\n", 0, max(start, end - 1))
    service, in_services, blocks = None, False, {}
    for number, line in enumerate(text.splitlines()):
        if line and not line[0].isspace() and not line.startswith("#"):
            in_services, service = line.startswith("services:"), None
        elif in_services and _SERVICE_KEY.match(line):
            service = _SERVICE_KEY.match(line).group(1)
        blocks[number] = service
    first, last = (blocks.get(n) for n in line_of)
    return first if first == last else None


@cache  # asked for every pair of faults a run may hold
def edit_services(fault: Fault, root: Path = ROOT) -> frozenset | None:
    """The services `fault`'s edits reach, or None when one reaches every service or none known
    (the env file, a shared block of docker-compose.yml, the harness's own code)."""
    reached: set = set()
    for edit in fault.edits:
        if edit.path == ENV_EXAMPLE:
            return None
        if edit.path == COMPOSE:
            text = (root / COMPOSE).read_text()
            match = re.search(edit.pattern, text, flags=re.M)
            service = match and compose_block(text, match.start(), match.end())
            if not service:
                return None
            reached.add(service)
            continue
        owners = [names for path, names in folder_services(root).items()
                  if edit.path == path or edit.path.startswith(path + "/")]
        if not owners:
            return None
        reached.update(*owners)
    return frozenset(reached)


def named_scenarios(fault: Fault, scenarios: dict) -> set:
    """The scenarios (of {name: tags}) a fault names or may fail."""
    return {name for name, tags in scenarios.items() if tags & (fault.fails | fault.may_fail)}


def may_share(fault: Fault, stack_changing_only: set, scenarios: dict) -> bool:
    """Whether `fault` may share a run at all (the module's first three conditions)."""
    sentinel_scenarios = {name for name, tags in scenarios.items() if tags & SENTINELS}
    return (fault.exact and not fault.may_fail and not fault.aborts and not fault.external_volume
            and fault.stack == "up" and fault.mode == "development" and fault.edits
            and not fault.fails & stack_changing_only and "alert_fires" not in fault.fails
            and not named_scenarios(fault, scenarios) & sentinel_scenarios
            and edit_services(fault) is not None)


def apply_together(faults, root: Path = ROOT) -> bool:
    """Whether every edit of `faults`, applied one after another, still matches exactly once."""
    texts: dict = {}
    try:
        for edit in (edit for fault in faults for edit in fault.edits):
            text = texts[edit.path] if edit.path in texts else (root / edit.path).read_text()
            texts[edit.path] = edit.applied_to(text)
    except NotOnce:
        return False
    return True


def shared_runs(faults: list, scope: str, stack_changing_only: set, alone=frozenset()) -> list[tuple]:
    """`faults` as runs: tuples of the faults each run proves, in the faults' order (each fault joins
    the first run it may share). In the full scope, and for the faults in `alone`, one per run."""
    scenarios = feature_scenarios()
    runs: list[list] = []
    shared: list[list] = []  # the runs of faults that may share, open while not full
    for fault in faults:
        if scope != "scoped" or fault in alone or not may_share(fault, stack_changing_only, scenarios):
            runs.append([fault])
            continue
        run = next((run for run in shared if len(run) < SHARED_RUN_SIZE
                    and all(_apart(fault, other, scenarios) for other in run) and apply_together([*run, fault])),
                   None)
        if run is None:
            run = [fault]
            runs.append(run)
            shared.append(run)
        else:
            run.append(fault)
    return [tuple(run) for run in runs]


def _apart(fault: Fault, other: Fault, scenarios: dict) -> bool:
    """Neither reaches a service the other's edits reach, nor names a scenario the other names."""
    return (not edit_services(fault) & edit_services(other)
            and not named_scenarios(fault, scenarios) & named_scenarios(other, scenarios))
