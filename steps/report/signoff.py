"""Sign-off evidence of a `pytest features/` run: every scenario's outcome is collected here and the
milestone checklist computed from it (steps/report/checklist.py) is written next to the Cucumber JSON as
checklist.md, shown at the top of the HTML report, and appended to history.jsonl. The Cucumber JSON
also gets the scenarios pytest-bdd leaves out (those skipped before their first step).

In a parallel run (pytest-xdist) each worker collects what it ran and sends it, as JSON, to the
controller (`workeroutput`), which merges it and writes the same reports a serial run writes."""
from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from datetime import date, datetime, timezone
from pathlib import Path

import pytest
import yaml

from steps.report import bundle, checklist, waivers
from steps.report.checklist import FAILED, NOT_RUN, PASSED, ScenarioResult
from steps.report.evidence import RUN_EVIDENCE_KEY, add_step_outputs

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ROOT / "features"
RESULTS_KEY = pytest.StashKey[dict]()     # nodeid -> ScenarioResult
RUN_KEY = pytest.StashKey[dict]()         # facts about this run, for the checklist's header
ITEMS_KEY = pytest.StashKey[list]()       # the computed checklist, once
MAPPING_KEY = pytest.StashKey[dict]()     # features/checklist.yaml, read once
NOT_RUN_KEY = pytest.StashKey[dict]()     # nodeid -> Cucumber JSON feature and element of a scenario not run
ORDER_KEY = pytest.StashKey[list]()       # the nodeids in collection order (deselected first)
WAIVERS_KEY = pytest.StashKey[list]()     # features/waivers.yaml (or --waivers), checked at the start
WORKER_OUTPUT = "tse_signoff"             # a worker's record, in its workeroutput
RUN_FACTS = ("mode", "project", "images", "image_ids", "engine", "compose_config")   # what a worker learns of the stack
WAIVERS_FILE = FEATURES / "waivers.yaml"


def today() -> date:
    """The day waivers are judged by (UTC, as the run's times)."""
    return datetime.now(timezone.utc).date()


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """The waivers are read and checked before any stack starts: a malformed file ends the run with
    one error naming its line and field."""
    from steps.harness.fixtures import runs_features

    if not runs_features(config):
        return
    path = Path(config.getoption("waivers", None) or os.environ.get("TSE_WAIVERS") or WAIVERS_FILE)
    known = set(checklist.item_tags(_mapping(config)))
    try:
        config.stash[WAIVERS_KEY] = waivers.load(path, known)
    except waivers.WaiverError as error:
        raise pytest.UsageError(f"waivers: {error}") from None
    key = _signing_key()
    if key is not None and not key.is_file():
        raise pytest.UsageError(f"{bundle.SIGNING_KEY_ENV}={key}: no such file. Hint: point it at an OpenSSH "
                                "private key (ssh-keygen -t ed25519), or unset it for an unsigned evidence bundle")


def _signing_key() -> Path | None:
    value = os.environ.get(bundle.SIGNING_KEY_ENV)
    return Path(value) if value else None


def _waived_failure(item, found: ScenarioResult, report) -> None:
    """A failed scenario all of whose checklist items carry a live waiver: reported as an expected
    failure (pytest's xfail: the run does not fail on it; JUnit marks it skipped, type pytest.xfail),
    with the waiver's reason as a JUnit property. Its checklist item says "waived"."""
    live = waivers.waived_items(item.config.stash.get(WAIVERS_KEY, []), today())
    reason = waivers.scenario_waiver(found.tags, checklist.item_tags(_mapping(item.config)), live)
    if reason is None:
        return
    found.waiver = reason
    report.outcome, report.wasxfail = "skipped", reason
    if ("waiver", reason) not in item.user_properties:
        item.user_properties.append(("waiver", reason))


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
        _waived_failure(item, found, report)
    elif report.skipped and found.outcome != FAILED and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        found.outcome, found.reason = NOT_RUN, reason.removeprefix("Skipped: ")
    elif report.when == "call" and report.passed and found.outcome != FAILED:
        found.outcome, found.reason = PASSED, ""
    if report.when == "call" or report.failed:
        from steps.report.evidence import EVIDENCE_KEY

        recorded = item.stash.get(EVIDENCE_KEY, None)
        if recorded is not None:
            found.evidence = recorded.as_lines()


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
        containers = sorted(docker_engine.project_containers(stack.project), key=docker_engine.service_of)
        run["images"] = ", ".join(f"{docker_engine.service_of(c)} {c.image.short_id.split(':')[-1]}"
                                  for c in containers)
        run["image_ids"] = "".join(f"{docker_engine.service_of(c)} {c.image.id} {' '.join(c.image.tags)}\n"
                                   for c in containers)
        compose = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True,
                                 timeout=20).stdout.strip()
        run["engine"] = f"{docker_engine.engine_versions()['engine']} / {compose}"
        run["compose_config"] = _resolved_configuration(stack)
    except Exception as error:  # noqa: BLE001 - describing the run, not deciding it
        run.setdefault("images", f"unknown ({error})")


def _resolved_configuration(stack) -> str:
    """The configuration the stack was started from (compose's after interpolation, or the swarm stack
    file), no password in it: for the evidence bundle."""
    model = stack.compose.stack_file if stack.on_swarm else stack.compose.config
    secrets = [value for name, value in stack.settings.values.items() if "PASSWORD" in name]
    return bundle.redact_compose_config(yaml.safe_dump(model, sort_keys=False), secrets)


def _full_commit(short: str) -> str:
    """The commit's full hash, then `short` (the run's: whether the work tree differed from it), for
    the evidence bundle."""
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    return (done.stdout.strip() or "unknown") + "\n" + short + "\n"


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
            _in_collection_order(config), history, config.stash.get(WAIVERS_KEY, []), today())
    return config.stash[ITEMS_KEY]


def _in_collection_order(config) -> list[ScenarioResult]:
    """The results in the order a serial run makes them (deselected scenarios first, then the run's
    order), however the workers of a parallel run finished."""
    results = config.stash.get(RESULTS_KEY, {})
    position = {nodeid: n for n, nodeid in enumerate(config.stash.get(ORDER_KEY, []))}
    return [results[nodeid] for nodeid in sorted(results, key=lambda nodeid: position.get(nodeid, len(position)))]


def _covers_features(config) -> bool:
    return bool(config.stash.get(RESULTS_KEY, {}))


def pytest_html_results_summary(prefix, summary, postfix, session):
    if _covers_features(session.config):
        prefix.append(checklist.render_html(_mapping(session.config), checklist_items(session.config),
                                            session.config.stash[RUN_KEY]))


def pytest_collection_finish(session):
    deselected = list(session.config.stash.get(RESULTS_KEY, {}))
    session.config.stash[ORDER_KEY] = [*deselected, *(item.nodeid for item in session.items)]


def _worker_record(session) -> dict:
    """What a worker knows of the run, as JSON for its controller."""
    config = session.config
    results = config.stash.get(RESULTS_KEY, {})
    run = config.stash[RUN_KEY]
    return {
        "order": config.stash.get(ORDER_KEY, []),
        "results": {nodeid: {"name": r.name, "tags": sorted(r.tags), "outcome": r.outcome, "reason": r.reason,
                             "evidence": r.evidence, "waiver": r.waiver} for nodeid, r in results.items()},
        "evidence": config.stash.get(RUN_EVIDENCE_KEY, {}),
        "not_run": _not_run_elements(session.items, results),
        "run": {key: run[key] for key in RUN_FACTS if key in run},
    }


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    """pytest-bdd keeps a report's scenario beside the report object, which a parallel run's worker
    does not send: carried as an attribute of the report (serialized with it), put back where
    pytest-bdd's Cucumber JSON looks for it on the controller."""
    from pytest_bdd.reporting import ReportContext, test_report_context_registry

    context = test_report_context_registry.get(report)
    if context is not None:
        report.bdd_context = {"scenario": context.scenario, "name": context.name}
    elif getattr(report, "bdd_context", None):
        test_report_context_registry[report] = ReportContext(**report.bdd_context)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist, on the controller: a worker is done; merge what it sent."""
    sent = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
    if sent:
        merge_worker_record(node.config, json.loads(sent))


def merge_worker_record(config, record: dict) -> None:
    """A worker's results join the run's: a scenario that ran wins over its "not run" (deselected,
    which every worker reports alike)."""
    results = config.stash.setdefault(RESULTS_KEY, {})
    for nodeid, sent in record["results"].items():
        found = ScenarioResult(sent["name"], set(sent["tags"]), sent["outcome"], sent["reason"],
                               _steps_from_json(sent["evidence"]), sent.get("waiver", ""))
        if nodeid not in results or (results[nodeid].outcome == NOT_RUN and found.outcome != NOT_RUN):
            results[nodeid] = found
    config.stash.setdefault(RUN_EVIDENCE_KEY, {}).update(
        {name: _steps_from_json(steps) for name, steps in record["evidence"].items()})
    config.stash.setdefault(NOT_RUN_KEY, {}).update(record["not_run"])
    config.stash.setdefault(ORDER_KEY, record["order"])
    run = config.stash[RUN_KEY]
    for key, value in record["run"].items():
        run.setdefault(key, value)


def _steps_from_json(steps: list) -> list:
    """[(step text, [fact line, ...]), ...] back from JSON's lists."""
    return [(text, list(lines)) for text, lines in steps]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    config = session.config
    if hasattr(config, "workerinput"):
        if _covers_features(config):
            config.workeroutput[WORKER_OUTPUT] = json.dumps(_worker_record(session))
        return
    reports = _reports_dir(config)
    if reports is None or not _covers_features(config):
        return
    if session.items:  # a serial run; a parallel one's controller has the workers' instead
        config.stash[NOT_RUN_KEY] = _not_run_elements(session.items, config.stash.get(RESULTS_KEY, {}))
    items = checklist_items(config)
    run = config.stash[RUN_KEY]
    reports.mkdir(parents=True, exist_ok=True)
    mapping = _mapping(config)
    (reports / "checklist.md").write_text(checklist.render_markdown(mapping, items, run))
    (reports / "checklist.json").write_text(json.dumps(checklist.as_json(mapping, items, run), indent=2) + "\n")
    checklist.append_history(reports / "history.jsonl", run, items)
    _complete_cucumber(Path(config.option.cucumber_json_path), config)


def pytest_unconfigure(config):
    """The evidence bundle, once every report is written (pytest-html's page, arranged; JUnit; the
    Cucumber JSON): reports/evidence-<date>-<commit>.tar.gz, sealed by its manifest, signed when
    TSE_EVIDENCE_SIGNING_KEY names a key."""
    reports = _reports_dir(config)
    if hasattr(config, "workerinput") or reports is None or ITEMS_KEY not in config.stash:
        return
    run = config.stash[RUN_KEY]
    option = config.option
    files = [Path(path) for path in (getattr(option, "htmlpath", None), getattr(option, "xmlpath", None),
                                     option.cucumber_json_path, reports / "checklist.md",
                                     reports / "checklist.json", reports / "history.jsonl")
             if path and Path(path).is_file()]
    facts = {"compose-config.yaml": run.get("compose_config", "not read: the stack never came up\n"),
             "images.txt": run.get("image_ids", "not read: the stack never came up\n"),
             "commit.txt": _full_commit(run.get("commit", "unknown"))}
    try:
        made = bundle.write_bundle(reports, files, facts, _signing_key(), datetime.now(timezone.utc),
                                   run.get("commit", "unknown"))
        line = f"evidence bundle: {made.path} ({'signed' if made.signed else 'unsigned'})"
    except (bundle.BundleError, OSError, subprocess.SubprocessError) as error:
        line = f"evidence bundle: NOT written: {error}"
    writer = config.pluginmanager.get_plugin("terminalreporter")
    if writer is not None:
        writer.write_line(line)


def _not_run_elements(items: list, results: dict) -> dict:
    """nodeid -> {"uri", "reason", "feature", "element"}: the Cucumber JSON of each scenario that did
    not run, made from its pytest-bdd template (its steps skipped)."""
    found = {}
    for item in items:
        template, result = _template(item), results.get(item.nodeid)
        if template is None or result is None or result.outcome != NOT_RUN:
            continue
        feature = template.feature
        uri = feature.rel_filename
        found[item.nodeid] = {"uri": uri, "reason": result.reason, "feature": {
            "keyword": feature.keyword, "uri": uri, "name": feature.name, "id": uri.lower().replace(" ", "-"),
            "line": feature.line_number, "description": feature.description,
            "tags": [{"name": t, "line": feature.line_number - 1} for t in sorted(feature.tags)], "elements": []},
            "element": {
                "keyword": template.keyword, "id": item.name, "name": template.name, "line": template.line_number,
                "description": template.description, "type": "scenario",
                "tags": [{"name": t, "line": template.line_number - 1} for t in sorted(template.tags)],
                "steps": [{"keyword": step.keyword, "name": step.name, "line": step.line_number,
                           "match": {"location": ""}, "result": {"status": "skipped", "duration": 0}}
                          for step in template.steps]}}
    return found


def _complete_cucumber(path: Path, config) -> None:
    """The one rewrite of the Cucumber JSON pytest-bdd wrote: each step's evidence as its output, one
    element per scenario (those pytest-bdd skipped before their first step added, steps skipped),
    features and scenarios in the order of their files (a parallel run's reports finish in any
    order)."""
    if not path.exists():
        return
    features = json.loads(path.read_text())
    add_step_outputs(features, config.stash.get(RUN_EVIDENCE_KEY, {}))
    _mark_waived(features, {r.name: r.waiver for r in config.stash.get(RESULTS_KEY, {}).values() if r.waiver})
    present = {(f.get("uri"), e.get("name")): e for f in features for e in f.get("elements", [])}
    by_uri = {f.get("uri"): f for f in features}
    for nodeid in config.stash.get(ORDER_KEY, []):
        not_run = config.stash.get(NOT_RUN_KEY, {}).get(nodeid)
        if not_run is None:
            continue
        uri, element = not_run["uri"], not_run["element"]
        if (uri, element["name"]) in present:
            _mark_skipped(present[(uri, element["name"])], element["steps"], not_run["reason"])
            continue
        if uri not in by_uri:
            by_uri[uri] = not_run["feature"]
            features.append(by_uri[uri])
        by_uri[uri]["elements"].append(element)
    features.sort(key=lambda f: f.get("uri", ""))
    for feature in features:
        feature.get("elements", []).sort(key=lambda e: e.get("line", 0))
    path.write_text(json.dumps(features, indent=2))


def _mark_waived(features: list, waived: dict) -> None:
    """A waived scenario: tagged `waived`, its waiver beside its steps, and its failed step skipped
    with the waiver as the message (the run does not fail on it, as pytest's own verdict says)."""
    for element in (e for f in features for e in f.get("elements", []) if e.get("name") in waived):
        reason = waived[element["name"]]
        element.setdefault("tags", []).append({"name": "waived", "line": element.get("line", 1) - 1})
        element["waiver"] = reason
        for step in element.get("steps", []):
            if step.get("result", {}).get("status") in ("failed", "skipped") and "error_message" not in step["result"]:
                step["result"] = {**step["result"], "status": "skipped", "error_message": reason}
                break


def _mark_skipped(element: dict, all_steps: list, reason: str) -> None:
    """A scenario skipped inside a step: pytest-bdd records that step as passed. It is the skipped
    one (with the reason), and the steps after it, never reached, are skipped too."""
    steps = element.get("steps") or []
    if steps:
        steps[-1]["result"] = {"status": "skipped", "duration": steps[-1]["result"].get("duration", 0),
                               "error_message": reason}
    steps.extend(all_steps[len(steps):])
    element["steps"] = steps


@pytest.fixture(autouse=True)
def _junit_name_is_the_scenario(request):
    """JUnit XML: each test case carries its scenario's name, as readers of the milestone know it."""
    template = _template(request.node)
    if template is not None and getattr(request.config.option, "xmlpath", None):
        request.getfixturevalue("record_xml_attribute")("name", template.name)
