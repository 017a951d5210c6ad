"""Options and report defaults of the acceptance suite (`pytest features/`).

The step definitions are plugins under steps/; the probes they call are plain functions in
steps/probes. `pytest tests/` (the suite's own tests) needs none of the stack options.
"""
import os
from pathlib import Path

import pytest

from steps.harness.settings import DEFAULT_WAIT_TIMEOUT, PRODUCTION, StackSettings, stack_mode
from steps.probes import StackError
from steps.report.checklist import declared_scenarios

pytest_plugins = [
    "steps.harness.fixtures",
    "steps.report.evidence",
    "steps.report.signoff",
    "steps.report.html_page",
    "steps.docker_steps",
    "steps.redis_steps",
    "steps.postgres_steps",
    "steps.compose_steps",
    "steps.health_steps",
    "steps.registry_steps",
    "steps.configuration_steps",
    "steps.observability_steps",
    "steps.alerting_steps",
    "steps.lifecycle_steps",
    "steps.ecosystem_steps",
    "steps.ecosystem_deployment_steps",
    "steps.security_steps",
    "steps.encryption_steps",
    "steps.swarm_steps",
]

ROOT = Path(__file__).resolve().parent
REPORTS = ROOT / "reports"


def pytest_addoption(parser):
    group = parser.getgroup("stack", "the trading-ecosystem stack under test")
    group.addoption("--stack", choices=["up", "attach", "swarm"], default=None,
                    help="up (default): start an isolated stack and remove it at the end; "
                         "attach: test a running stack, never changing or stopping it; "
                         "swarm: deploy the stack on this engine's swarm and remove it at the end (env TSE_STACK)")
    group.addoption("--keep-stack", action="store_true", default=None,
                    help="up mode: leave the stack running at the end (env TSE_KEEP_STACK=1)")
    group.addoption("--compose-file", default=None, help="compose file (env TSE_COMPOSE_FILE)")
    group.addoption("--env-file", default=None,
                    help="env file with ports and development passwords (env TSE_ENV_FILE; "
                         "default .env, else .env.example)")
    group.addoption("--project-name", default=None,
                    help="compose project (env TSE_PROJECT; default tse-acceptance in up mode, "
                         "COMPOSE_PROJECT_NAME else trading-ecosystem in attach mode)")
    group.addoption("--mode", dest="security_mode", choices=["development", "production"], default=None,
                    help="production: refuse to start while a password is one .env.example publishes or shorter "
                         "than 16 characters (env TSE_MODE; default development)")
    group.addoption("--waivers", default=None,
                    help="the waiver file (env TSE_WAIVERS; default features/waivers.yaml): accepted gaps, "
                         "each with its justification, who accepted it and its expiry date")
    group.addoption("--wait-timeout", type=int, default=None,
                    help="seconds to wait for every service to be healthy "
                         f"(env TSE_WAIT_TIMEOUT; default {DEFAULT_WAIT_TIMEOUT})")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """The scenarios run on parallel workers (pytest-xdist) unless -n says otherwise: they mostly wait
    (a TTL to lapse, a probe round, a scrape), and one stack serves them side by side. Up mode's
    stack-changing scenarios run after the others, alone (steps/harness/parallel.py)."""
    import sys

    from steps.harness.fixtures import missing_engine, runs_features

    if hasattr(config, "workerinput") or not runs_features(config) or not hasattr(config.option, "numprocesses"):
        return None
    if not (config.option.collectonly or config.option.help or config.option.version):
        missing = missing_engine(config)
        if missing:
            print(missing, file=sys.stderr)
            return 3
    if config.option.numprocesses is None:
        config.option.numprocesses = "auto"
    if config.option.dist == "no":
        config.option.dist = "loadgroup"   # scenarios sharing a limited resource stay on one worker


def pytest_xdist_auto_num_workers(config):
    """One more worker than the cores: the scenarios wait more than they compute (measured on 2 cores,
    attach mode: 28 s serial, 16 s with 2 workers, 13.5 s with 3, 14 s with 4)."""

    return (os.cpu_count() or 1) + 1


def _register_feature_tags(config) -> None:
    """Gherkin tags become markers; register them so `-m checklist_1_5` works without warnings."""
    for tag in sorted(set().union(*declared_scenarios(ROOT / "features").values())):
        config.addinivalue_line("markers", f"{tag}: Gherkin tag")


def _production_mode(config) -> bool:
    """Whether this run's stack is in production mode (option, environment or env file); a setting that
    cannot be resolved is the launcher's to report, with its remedy."""
    try:
        return StackSettings.from_options(config.getoption).values.get("TSE_MODE") == PRODUCTION
    except (StackError, ValueError):
        return False


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    """Plain `pytest features/` writes the evidence reports; explicit options win."""
    _register_feature_tags(config)
    from steps.harness.fixtures import runs_features  # a plugin: imported by pytest_plugins first

    if not runs_features(config) or hasattr(config, "workerinput"):
        return
    # A run on swarm, or in production mode, keeps its evidence apart: the compose development run's
    # (the milestone's) is never replaced by it.
    reports = REPORTS / "swarm" if stack_mode(config.getoption) == "swarm" else REPORTS
    if _production_mode(config):
        reports = REPORTS / PRODUCTION
    reports.mkdir(parents=True, exist_ok=True)
    option = config.option
    if getattr(option, "htmlpath", None) is None:
        option.htmlpath = str(reports / "acceptance.html")
        option.self_contained_html = True
    if getattr(option, "cucumber_json_path", None) is None:
        option.cucumber_json_path = str(reports / "cucumber.json")
    if getattr(option, "xmlpath", None) is None:
        option.xmlpath = str(reports / "junit.xml")
