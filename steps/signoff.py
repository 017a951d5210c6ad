"""Sign-off evidence of a `pytest features/` run: every scenario's outcome is collected here and the
milestone checklist computed from it (steps/checklist.py) is written next to the Cucumber JSON as
checklist.md, shown at the top of the HTML report, and appended to history.jsonl. The Cucumber JSON
also gets the scenarios pytest-bdd leaves out (those skipped before their first step)."""
from __future__ import annotations

import json
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest

from steps import checklist
from steps.checklist import FAILED, NOT_RUN, PASSED, ScenarioResult
from steps.evidence import add_step_outputs

ROOT = Path(__file__).resolve().parents[1]
FEATURES = ROOT / "features"
RESULTS_KEY = pytest.StashKey[dict]()     # nodeid -> ScenarioResult
RUN_KEY = pytest.StashKey[dict]()         # facts about this run, for the checklist's header
ITEMS_KEY = pytest.StashKey[list]()       # the computed checklist, once
MAPPING_KEY = pytest.StashKey[dict]()     # features/checklist.yaml, read once


def _template(item):
    """pytest-bdd's scenario behind a test item, or None for other tests."""
    from pytest_bdd.scenario import scenario_wrapper_template_registry

    return scenario_wrapper_template_registry.get(getattr(item, "obj", None))


def _result(item) -> ScenarioResult | None:
    template = _template(item)
    if template is None:
        return None
    results = item.config.stash.setdefault(RESULTS_KEY, {})
    if item.nodeid not in results:
        results[item.nodeid] = ScenarioResult(template.name, set(template.tags) | set(template.feature.tags))
    return results[item.nodeid]


def pytest_sessionstart(session):
    session.config.stash[RUN_KEY] = {"id": uuid.uuid4().hex[:12], "monotonic": time.monotonic(),
                                      "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def pytest_deselected(items):
    for item in items:
        found = _result(item)
        if found is not None:
            found.outcome, found.reason = NOT_RUN, "deselected in this run (-m / -k)"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    found = _result(item)
    if found is None:
        return
    _capture_stack_facts(item.config)
    if report.failed:
        found.outcome = FAILED
        message = str(call.excinfo.value) if call.excinfo else report.longreprtext
        found.reason = " ".join(message.strip().splitlines()[:2])[:400] or "failed"
    elif report.skipped and found.outcome != FAILED:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        found.outcome, found.reason = NOT_RUN, reason.removeprefix("Skipped: ")
    elif report.when == "call" and report.passed and found.outcome != FAILED:
        found.outcome, found.reason = PASSED, ""
    if report.when == "call" or report.failed:
        from steps.evidence import EVIDENCE_KEY

        recorded = item.stash.get(EVIDENCE_KEY, None)
        if recorded is not None:
            found.evidence = [(text, [str(fact) for fact in facts]) for text, facts in recorded.steps]


def _capture_stack_facts(config) -> None:
    """Image IDs and versions, read once while the stack is up (it is gone by the end of the run)."""
    from steps.harness.fixtures import STACK_KEY
    from steps.probes import docker_engine

    run = config.stash[RUN_KEY]
    stack = config.stash.get(STACK_KEY, None)
    if stack is None or "images" in run:
        return
    run["mode"], run["project"] = stack.settings.mode, stack.project
    try:
        run["images"] = ", ".join(f"{c.labels.get('com.docker.compose.service')} {c.image.short_id.split(':')[-1]}"
                                  for c in sorted(docker_engine.project_containers(stack.project),
                                                  key=lambda c: c.name))
        compose = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True,
                                 timeout=20).stdout.strip()
        run["engine"] = f"{docker_engine.engine_versions()['engine']} / {compose}"
    except Exception as error:  # noqa: BLE001 - describing the run, not deciding it
        run.setdefault("images", f"unknown ({error})")


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def _reports_dir(config) -> Path | None:
    path = getattr(config.option, "cucumber_json_path", None)
    return Path(path).resolve().parent if path else None


def _mapping(config) -> dict:
    if MAPPING_KEY not in config.stash:
        config.stash[MAPPING_KEY] = checklist.load_mapping(FEATURES / "checklist.yaml")
    return config.stash[MAPPING_KEY]


def checklist_items(config) -> list:
    """The checklist of this run, computed once all scenarios have reported."""
    if ITEMS_KEY not in config.stash:
        run = config.stash[RUN_KEY]
        run["duration"] = f"{time.monotonic() - run['monotonic']:.1f} s"
        run.setdefault("commit", _commit())
        if "mode" not in run:
            from steps.harness.fixtures import attach_mode

            run["mode"] = "attach" if attach_mode(config) else "up"
        reports = _reports_dir(config)
        history = checklist.read_history(reports / "history.jsonl") if reports else []
        config.stash[ITEMS_KEY] = checklist.compute(
            _mapping(config), checklist.declared_scenarios(FEATURES),
            list(config.stash.get(RESULTS_KEY, {}).values()), history)
    return config.stash[ITEMS_KEY]


def _covers_features(config) -> bool:
    return bool(config.stash.get(RESULTS_KEY, {}))


def pytest_html_results_summary(prefix, summary, postfix, session):
    if _covers_features(session.config):
        prefix.append(checklist.render_html(_mapping(session.config), checklist_items(session.config),
                                            session.config.stash[RUN_KEY]))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    config = session.config
    reports = _reports_dir(config)
    if reports is None or not _covers_features(config):
        return
    items = checklist_items(config)
    run = config.stash[RUN_KEY]
    reports.mkdir(parents=True, exist_ok=True)
    mapping = _mapping(config)
    (reports / "checklist.md").write_text(checklist.render_markdown(mapping, items, run))
    (reports / "checklist.json").write_text(json.dumps(checklist.as_json(mapping, items, run), indent=2) + "\n")
    checklist.append_history(reports / "history.jsonl", run, items)
    _complete_cucumber(Path(config.option.cucumber_json_path), session.items)


def _complete_cucumber(path: Path, items: list) -> None:
    """The one rewrite of the Cucumber JSON pytest-bdd wrote: each step's evidence as its output, and
    one element per scenario (those pytest-bdd skipped before their first step added, steps skipped)."""
    if not path.exists() or not items:
        return
    features = json.loads(path.read_text())
    add_step_outputs(features, items[0].config)
    present = {(f.get("uri"), e.get("name")): e for f in features for e in f.get("elements", [])}
    by_uri = {f.get("uri"): f for f in features}
    for item in items:
        template = _template(item)
        results = item.config.stash.get(RESULTS_KEY, {})
        found = results.get(item.nodeid)
        if template is None or found is None or found.outcome != NOT_RUN:
            continue
        uri = template.feature.rel_filename
        if (uri, template.name) in present:
            _mark_skipped(present[(uri, template.name)], template, found.reason)
            continue
        feature = by_uri.get(uri)
        if feature is None:
            feature = by_uri[uri] = {"keyword": template.feature.keyword, "uri": uri, "name": template.feature.name,
                                     "id": uri.lower().replace(" ", "-"), "line": template.feature.line_number,
                                     "description": template.feature.description, "tags": [
                                         {"name": t, "line": template.feature.line_number - 1}
                                         for t in sorted(template.feature.tags)], "elements": []}
            features.append(feature)
        feature["elements"].append({
            "keyword": template.keyword, "id": item.name, "name": template.name, "line": template.line_number,
            "description": template.description, "type": "scenario",
            "tags": [{"name": t, "line": template.line_number - 1} for t in sorted(template.tags)],
            "steps": [{"keyword": step.keyword, "name": step.name, "line": step.line_number,
                       "match": {"location": ""}, "result": {"status": "skipped", "duration": 0}}
                      for step in template.steps],
        })
    path.write_text(json.dumps(features, indent=2))


def _mark_skipped(element: dict, template, reason: str) -> None:
    """A scenario skipped inside a step: pytest-bdd records that step as passed. It is the skipped
    one (with the reason), and the steps after it, never reached, are skipped too."""
    steps = element.get("steps") or []
    if steps:
        steps[-1]["result"] = {"status": "skipped", "duration": steps[-1]["result"].get("duration", 0),
                               "error_message": reason}
    for step in template.steps[len(steps):]:
        steps.append({"keyword": step.keyword, "name": step.name, "line": step.line_number,
                      "match": {"location": ""}, "result": {"status": "skipped", "duration": 0}})
    element["steps"] = steps


@pytest.fixture(autouse=True)
def _junit_name_is_the_scenario(request):
    """JUnit XML: each test case carries its scenario's name, as readers of the milestone know it."""
    template = _template(request.node)
    if template is not None and getattr(request.config.option, "xmlpath", None):
        request.getfixturevalue("record_xml_attribute")("name", template.name)
