"""The milestone checklist, computed from one run: each item's verdict from the scenarios carrying its
tags (features/checklist.yaml), rendered as Markdown and as the sign-off section of the HTML report,
with each item's last verdicts from reports/history.jsonl. Plain functions, no pytest in them."""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

from steps.report import waivers

PASSED, FAILED, NOT_RUN, PARTLY_RUN, NOT_COVERED = "passed", "failed", "not run", "partly run", "no scenario"
WAIVED = waivers.LIVE   # failed, partly run or not run, and a live waiver accepts it (steps/report/waivers.py)
# Characters DejaVu Sans has (Debian's default font), so a headless browser draws them too.
SYMBOLS = {PASSED: "✓", FAILED: "✗", NOT_RUN: "–", PARTLY_RUN: "◐", NOT_COVERED: "∅", WAIVED: "⚑"}
HISTORY_SHOWN = 5
# A section of features/checklist.yaml marked `extra: true` goes beyond the milestone document: shown
# as such, and not part of the BDD criterion's verdict (which reads the criterion's parts only).
EXTRA = " (extra, beyond the milestone)"


@dataclass
class ScenarioResult:
    """One scenario's outcome in this run: passed, failed or not run (with the reason)."""

    name: str
    tags: set
    outcome: str = NOT_RUN
    reason: str = ""           # why it did not run, or the first line of its failure
    evidence: list = field(default_factory=list)   # [(step text, [fact line, ...]), ...]
    waiver: str = ""           # a failure its items' live waivers accept: why


@dataclass
class Item:
    id: str
    title: str
    tags: list
    section: str = ""
    verdict: str = NOT_COVERED
    reason: str = ""
    scenarios: list = field(default_factory=list)  # ScenarioResult
    history: list = field(default_factory=list)    # earlier verdicts, oldest first
    waiver: waivers.Applied | None = None

    @property
    def anchor(self) -> str:
        """The id of the item's row in the HTML report, which the first screen links to."""
        return "item-" + self.id.replace(".", "-")

    @property
    def flapping(self) -> bool:
        """Its verdict changed over the runs the history shows (this one included)."""
        return len(set(self.history[-HISTORY_SHOWN:] + [self.verdict])) > 1


def load_mapping(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def milestone_items(document: str) -> list[tuple[str, str]]:
    """(id, title) of every checklist item of the numbered sections of the milestone document."""
    items, section, number = [], None, 0
    for line in document.splitlines():
        heading = re.match(r"### (\d+)\. ", line)
        if heading:
            section, number = heading.group(1), 0
        elif line.startswith("## "):
            section = None
        entry = re.match(r"- \[[ xX]\] \*\*(.+?)\*\*", line)
        if entry and section:
            number += 1
            items.append((f"{section}.{number}", entry.group(1)))
    return items


def mapped_items(mapping: dict) -> list[Item]:
    """The criterion's parts first, then every item of every section, as the mapping lists them."""
    items = [Item(part["id"], part["title"], list(part["tags"]), "BDD") for part in mapping["criterion"]["parts"]]
    for section in mapping["sections"]:
        for entry in section["items"]:
            items.append(Item(entry["id"], entry["title"], list(entry.get("tags") or []), section["id"]))
    return items


def verdict(item_tags: list, declared: dict, results: list[ScenarioResult]) -> tuple[str, str, list]:
    """(verdict, reason, scenarios) of an item: failed when any of its scenarios failed, passed when all
    ran and passed, not run / partly run with the reason otherwise; "no scenario" when no scenario of
    features/ carries its tags (`declared`: scenario name -> tags, from the feature files)."""
    wanted = set(item_tags)
    if not any(tags & wanted for tags in declared.values()):
        return NOT_COVERED, "no scenario covers this item", []
    mine = [r for r in results if r.tags & wanted]
    ran = {r.name for r in mine}
    mine += [ScenarioResult(name, tags, NOT_RUN, "not collected in this run")
             for name, tags in sorted(declared.items()) if tags & wanted and name not in ran]
    outcomes = [r.outcome for r in mine]
    unrun = sorted({r.reason for r in mine if r.outcome == NOT_RUN})
    if FAILED in outcomes:
        return FAILED, "; ".join(r.reason for r in mine if r.outcome == FAILED), mine
    if PASSED not in outcomes:
        return NOT_RUN, "; ".join(unrun), mine
    if NOT_RUN in outcomes:
        return PARTLY_RUN, f"{outcomes.count(NOT_RUN)} of {len(mine)} scenarios not run: " + "; ".join(unrun), mine
    return PASSED, "", mine


def compute(mapping: dict, declared: dict, results: list[ScenarioResult], history: list[dict],
            accepted: list[waivers.Waiver] = (), today: date | None = None) -> list[Item]:
    """Each item's verdict from its scenarios, then the waivers `accepted` applied as of `today`."""
    items = mapped_items(mapping)
    earlier: dict = {}
    for line in history:
        earlier.setdefault(line["item"], []).append(line["verdict"])
    for item in items:
        item.verdict, item.reason, item.scenarios = verdict(item.tags, declared, results)
        item.history = earlier.get(item.id, [])[-HISTORY_SHOWN:]
    apply_waivers(items, accepted, today or date.today())
    return items


def apply_waivers(items: list[Item], accepted: list[waivers.Waiver], today: date) -> None:
    """A live waiver makes its item's verdict "waived" unless it passed (then it is no longer needed);
    an expired one leaves the verdict as it is. Each item keeps what its waiver did."""
    by_item = {waiver.item: waiver for waiver in accepted}
    for item in items:
        waiver = by_item.get(item.id)
        if waiver is None:
            continue
        item.waiver = waivers.Applied(waiver, waivers.status(waiver, item.verdict, PASSED, today), item.verdict)
        if item.waiver.status == waivers.LIVE:
            item.verdict = WAIVED


def item_tags(mapping: dict) -> dict[str, list]:
    """item id -> the scenario tags that prove it."""
    return {item.id: item.tags for item in mapped_items(mapping)}


def declared_scenarios(features_dir: Path) -> dict:
    """Scenario name -> its tags (its own, its rule's and its feature's), read from the .feature files
    by pytest-bdd's own parser: Scenario Outline, Rule and tags on several lines count as pytest-bdd
    collects them."""
    from pytest_bdd.feature import get_features

    found = {}
    for feature in get_features([str(features_dir)]):
        for scenario in feature.scenarios.values():
            rule_tags = set(scenario.rule.tags) if scenario.rule else set()
            found[scenario.name.strip()] = set(feature.tags) | rule_tags | set(scenario.tags)
    return found


def read_history(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text().splitlines():
        try:
            lines.append(json.loads(raw))
        except ValueError:
            continue  # a torn last line of an interrupted run: skip it, keep the rest
    return lines


def append_history(path: Path, run: dict, items: list[Item]) -> None:
    with path.open("a") as file:
        for item in items:
            file.write(json.dumps({"run": run["id"], "time": run["started"], "item": item.id,
                                   "verdict": item.verdict}) + "\n")


def criterion_verdict(items: list[Item]) -> str:
    """The BDD criterion's verdict, from its parts': failed if any failed, passed if all passed (a
    waived part counts as passed; criterion_line says how many waivers it took)."""
    verdicts = {PASSED if item.verdict == WAIVED else item.verdict for item in items if item.section == "BDD"}
    if FAILED in verdicts:
        return FAILED
    if verdicts == {PASSED}:
        return PASSED
    if PASSED in verdicts or PARTLY_RUN in verdicts:
        return PARTLY_RUN
    return NOT_RUN


def waived_count(items: list[Item]) -> int:
    return sum(item.verdict == WAIVED for item in items)


def criterion_line(items: list[Item]) -> str:
    """The verdict line: "PASSED", or "PASSED WITH 2 WAIVERS" when waived items were accepted."""
    overall, count = criterion_verdict(items).upper(), waived_count(items)
    if count and overall == "PASSED":
        return f"{overall} WITH {count} WAIVER{'S' if count > 1 else ''}"
    return overall


def as_json(mapping: dict, items: list[Item], run: dict) -> dict:
    """The checklist for machines (reports/checklist.json)."""
    return {"milestone": mapping["milestone"], "criterion": criterion_verdict(items),
            "criterion_line": criterion_line(items), "waivers": waived_count(items),
            "run": {k: v for k, v in run.items() if k != "monotonic"},
            "items": [{"id": i.id, "title": i.title, "verdict": i.verdict, "reason": i.reason,
                       **({"waiver": i.waiver.as_json()} if i.waiver else {}),
                       "scenarios": [{"name": s.name, "outcome": s.outcome, "reason": s.reason} for s in i.scenarios]}
                      for i in items]}


def section_counts(items: list[Item]) -> dict:
    """section -> {verdict: count}."""
    counts: dict = {}
    for item in items:
        bucket = counts.setdefault(item.section, {})
        bucket[item.verdict] = bucket.get(item.verdict, 0) + 1
    return counts


def _history_text(item: Item) -> str:
    return "".join(SYMBOLS[v] for v in item.history + [item.verdict] if v in SYMBOLS)


def render_markdown(mapping: dict, items: list[Item], run: dict) -> str:
    lines = [f"# Milestone {mapping['milestone']}: checklist of this run", "",
             f"**BDD criterion: {criterion_line(items)}**: {' '.join(mapping['criterion']['text'].split())}",
             "", "Computed from the scenarios of this run (their evidence: [acceptance.html](acceptance.html)); "
             "never written by hand.", ""]
    lines += [f"- {label}: {run.get(key, '')}" for key, label in RUN_FIELDS]
    lines += ["", f"Legend: {', '.join(f'{s} {v}' for v, s in SYMBOLS.items())}. History: the last runs, "
              "this one last.", ""]
    noted = [item for item in items if item.waiver]
    if noted:
        lines += ["## Waivers", ""]
        lines += [f"- {item.id} {item.title}: {_md(item.waiver.describe())}" for item in noted]
    section_titles = {s["id"]: s["title"] + (EXTRA if s.get("extra") else "") for s in mapping["sections"]}
    current = None
    for item in items:
        if item.section != current:
            current = item.section
            title = "BDD acceptance criterion" if current == "BDD" else f"{current}. {section_titles[current]}"
            lines += ["", f"## {title}", "", "| item | verdict | scenarios | history |", "|---|---|---|---|"]
        scenarios = "<br>".join(f"{SYMBOLS.get(s.outcome, '')} {s.name}" for s in item.scenarios) or "—"
        lines.append(f"| {item.id} {item.title} | {SYMBOLS[item.verdict]} {item.verdict}{_md(_notes(item))} | "
                     f"{_md(scenarios)} | {_history_text(item)} |")
    return "\n".join(lines) + "\n"


def _notes(item: Item) -> str:
    """What a verdict cell adds to the verdict: why it did not pass, what its waiver did."""
    notes = [item.reason] if item.reason and item.verdict != PASSED else []
    if item.waiver:
        notes.append(item.waiver.describe())
    return f" ({'; '.join(notes)})" if notes else ""


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


RUN_FIELDS = (("started", "date"), ("duration", "duration"), ("mode", "mode"), ("commit", "commit"),
              ("project", "compose project"), ("engine", "Docker engine / Compose"), ("images", "image IDs"))
COUNTED = (PASSED, FAILED, WAIVED, PARTLY_RUN, NOT_RUN, NOT_COVERED)


def render_html(mapping: dict, items: list[Item], run: dict) -> str:
    """The sign-off section: the criterion's verdict, the run, counts per section, the failed and the
    waived items (each linking to its row and evidence) and the items whose verdict changed over the
    last runs, then the checklist with each item's scenarios, evidence and history."""
    e = html.escape
    overall = criterion_verdict(items)
    parts = [SIGNOFF_CSS, "<section id='sign-off'>",
             f"<h2>Milestone {e(mapping['milestone'])}: sign-off</h2>",
             f"<p id='verdict' class='verdict {overall.replace(' ', '-')}'>BDD criterion: "
             f"{e(criterion_line(items))} <span>{e(' '.join(mapping['criterion']['text'].split()))}</span></p>",
             "<table class='run'>" + "".join(f"<tr><th>{e(label)}</th><td>{e(str(run.get(key, '')))}</td></tr>"
                                             for key, label in RUN_FIELDS) + "</table>",
             _counts_html(mapping, items), _failures_html(items), _waivers_html(items), _flapping_html(items)]
    rows = [_row_html(item) for item in sorted(items, key=lambda i: (i.verdict != FAILED, i.verdict != WAIVED))]
    parts.append("<table id='checklist'><tr><th>item</th><th>checklist</th><th>verdict</th><th>scenarios and "
                 "evidence</th><th>history</th></tr>" + "".join(rows) + "</table></section>")
    return "".join(parts)


def _counts_html(mapping: dict, items: list[Item]) -> str:
    e = html.escape
    counts = section_counts(items)
    extra = {s["id"] for s in mapping["sections"] if s.get("extra")}
    return ("<table class='counts'><tr><th>section</th>" + "".join(f"<th>{e(v)}</th>" for v in COUNTED) + "</tr>"
            + "".join(f"<tr><td>{e(section)}{e(EXTRA) if section in extra else ''}</td>"
                      + "".join(f"<td>{counts[section].get(v, 0) or ''}</td>" for v in COUNTED) + "</tr>"
                      for section in counts)
            + "</table>")


def _link(item: Item) -> str:
    return f"<a href='#{item.anchor}'><b>{html.escape(item.id)}</b></a>"


def _failures_html(items: list[Item]) -> str:
    failed = [(item, s) for item in items if item.verdict == FAILED for s in item.scenarios if s.outcome == FAILED]
    if not failed:
        return ""
    return ("<div id='failures'><h3>Failures</h3><ul>" + "".join(
        f"<li>{_link(item)} {html.escape(s.name)}: <code>{html.escape(s.reason)}</code></li>" for item, s in failed)
        + "</ul></div>")


def _waivers_html(items: list[Item]) -> str:
    """Every waiver and what it did: waived (with the verdict it covers), expired, no longer needed."""
    noted = [item for item in items if item.waiver]
    if not noted:
        return ""
    return ("<div id='waivers'><h3>Waivers</h3><ul>" + "".join(
        f"<li class='waiver {item.waiver.status.replace(' ', '-')}'>{_link(item)} {html.escape(item.title)}: "
        f"{html.escape(item.waiver.describe())}</li>" for item in noted) + "</ul></div>")


def _flapping_html(items: list[Item]) -> str:
    flapping = [item for item in items if item.flapping]
    if not flapping:
        return ""
    return ("<p id='flapping'>Verdict changed over the last runs: " + ", ".join(
        f"{_link(item)} <span class='history'>{_history_text(item)}</span>" for item in flapping) + "</p>")


def _row_html(item: Item) -> str:
    e = html.escape
    scenarios = "".join(
        f"<details><summary>{SYMBOLS.get(s.outcome, '')} {e(s.name)}"
        f"{' (' + e(s.reason) + ')' if s.reason else ''}</summary>{_evidence_html(s)}</details>"
        for s in item.scenarios) or "—"
    notes = f"<br><small>{e(_notes(item).strip()[1:-1])}</small>" if _notes(item) else ""
    flapping = " flapping" if item.flapping else ""
    return (f"<tr id='{item.anchor}' data-item='{e(item.id)}'><td>{e(item.id)}</td><td>{e(item.title)}</td>"
            f"<td class='verdict {item.verdict.replace(' ', '-')}'>{SYMBOLS[item.verdict]} {e(item.verdict)}"
            f"{notes}</td><td>{scenarios}</td><td class='history{flapping}'>{_history_text(item)}</td></tr>")


def _evidence_html(result: ScenarioResult) -> str:
    if not result.evidence:
        return "<p>no evidence recorded</p>"
    return "<ol>" + "".join(
        f"<li>{html.escape(text)}<ul>" + "".join(f"<li><code>{html.escape(fact)[:600]}</code></li>" for fact in facts)
        + "</ul></li>" for text, facts in result.evidence) + "</ol>"


SIGNOFF_CSS = """<style>
#sign-off { font-family: sans-serif; margin-bottom: 2em; }
#verdict { font-size: 1.6em; font-weight: bold; padding: .4em .6em; border-radius: 4px; }
#verdict span { display: block; font-size: .55em; font-weight: normal; }
#verdict.passed { background: #d4edda; } #verdict.failed { background: #f8d7da; }
#verdict.not-run, #verdict.partly-run { background: #fff3cd; }
#sign-off table { border-collapse: collapse; margin: .6em 0; }
#sign-off td, #sign-off th { border: 1px solid #ccc; padding: 2px 6px; vertical-align: top; text-align: left; }
td.verdict.passed { color: #155724; } td.verdict.failed { color: #721c24; font-weight: bold; }
td.verdict.not-run, td.verdict.partly-run, td.verdict.no-scenario { color: #856404; }
td.verdict.waived { color: #004085; font-weight: bold; }
#waivers li.expired { color: #721c24; } #waivers li.no-longer-needed { color: #555; }
td.history.flapping, #flapping .history { background: #fff3cd; }
#failures code { white-space: pre-wrap; }
</style>"""
