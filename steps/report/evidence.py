"""Evidence: what each step probed and what came back, attached to the scenario's reports.

Steps call `evidence.record(fact)`; the facts are grouped by step and end up in the HTML report
(with the services' health and last log lines when a scenario fails), in the JUnit XML as a
property, and in the Cucumber JSON as each step's output.
"""
from __future__ import annotations

import html
import json
from dataclasses import dataclass, field

import pytest

from steps.probes import Fact, container_state

EVIDENCE_KEY = pytest.StashKey["Evidence"]()
# test name -> [(step text, [fact line, ...]), ...], for the Cucumber JSON (plain strings: a
# parallel run's workers send it to the controller, which writes the reports)
RUN_EVIDENCE_KEY = pytest.StashKey[dict]()


@dataclass
class Evidence:
    """Facts recorded by a scenario's steps, in order: [(step text, [Fact, ...]), ...]."""

    steps: list = field(default_factory=list)

    def start_step(self, text: str) -> None:
        self.steps.append((text, []))

    def record(self, fact: Fact) -> Fact:
        if not self.steps:
            self.start_step("(setup)")
        self.steps[-1][1].append(fact)
        return fact

    def as_lines(self) -> list:
        return [(text, [str(fact) for fact in facts]) for text, facts in self.steps]

    def as_dicts(self) -> list:
        return [{"step": text, "facts": [f.as_dict() for f in facts]} for text, facts in self.steps]


@pytest.fixture
def evidence(request) -> Evidence:
    """The current scenario's evidence."""
    found = request.node.stash.get(EVIDENCE_KEY, None)
    if found is None:
        found = request.node.stash[EVIDENCE_KEY] = Evidence()
    return found


def pytest_bdd_before_step(request, feature, scenario, step, step_func):
    request.getfixturevalue("evidence").start_step(f"{step.keyword} {step.name}")


def _facts_html(evidence: Evidence) -> str:
    rows = []
    for text, facts in evidence.steps:
        rows.append(f"<li><b>{html.escape(text)}</b><ul>")
        for fact in facts:
            rows.append(
                f"<li><code>{html.escape(fact.probe)}</code> @ {html.escape(fact.where)} &rarr; "
                f"<code>{html.escape(repr(fact.observed))[:1500]}</code></li>"
            )
        rows.append("</ul></li>")
    return "<div class='evidence'><p>Evidence</p><ol>" + "".join(rows) + "</ol></div>"


def _stack_state_html(item) -> str:
    """The health output and last log lines of every service, for a failed scenario."""
    from steps.harness.fixtures import STACK_KEY

    stack = item.config.stash.get(STACK_KEY, None)
    if stack is None:
        return ""
    parts = []
    for service in stack.services:
        found = container_state.service_state(stack.project, service, 15)
        state = f"{found['health']}; last health output: {found['last_health_output']}"
        parts.append(f"<p><b>{html.escape(service)}</b>: {html.escape(state)}</p>"
                     f"<pre>{html.escape(found['log_tail'])}</pre>")
    return "<div class='stack-state'><p>Services at the time of failure</p>" + "".join(parts) + "</div>"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    found = item.stash.get(EVIDENCE_KEY, None)
    if report.when != "call" and not (report.when == "setup" and report.failed):
        return
    extras = getattr(report, "extras", [])
    try:
        from pytest_html import extras as html_extras
    except ImportError:  # the HTML report is optional outside `pytest features/`
        html_extras = None
    if found is not None:
        item.config.stash.setdefault(RUN_EVIDENCE_KEY, {})[item.name] = found.as_lines()
        # JUnit XML reads the properties of the teardown report, which copies the item's.
        item.user_properties.append(("evidence", json.dumps(found.as_dicts())))
        if html_extras:
            extras.append(html_extras.html(_facts_html(found)))
    if report.failed and html_extras:
        extras.append(html_extras.html(_stack_state_html(item)))
    report.extras = extras


def add_step_outputs(features: list, recorded: dict) -> None:
    """Add each step's evidence (`recorded`: RUN_EVIDENCE_KEY's) to the Cucumber JSON pytest-bdd
    wrote (parsed: `features`), as the step's `output` (the field Cucumber reporters show under a
    step). steps/report/signoff.py owns the file and calls this before it writes it back."""
    for feature in features:
        for element in feature.get("elements", []):
            found = recorded.get(element.get("id"))
            if found is None:
                continue
            by_text = {}
            for text, lines in found:
                by_text.setdefault(text, []).append(lines)
            for step in element.get("steps", []):
                lines_list = by_text.get(f"{step['keyword']} {step['name']}")
                if lines_list:
                    step["output"] = list(lines_list.pop(0))
