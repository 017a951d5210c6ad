"""Run the acceptance suite on a copy of the repository, isolated from any other stack.

The copy gets its own compose project, host ports, subnet and network name, so it can run beside
a user's stack; what it reports is read back from its Cucumber JSON.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from steps.harness.isolation import free_port
from steps.harness.isolation import free_subnet_prefix as stack_free_subnet_prefix
from steps.harness.settings import PORT_VARIABLES
from steps.probes import docker_engine

ROOT = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "reports", "__pycache__", ".pytest_cache", ".env", ".stack")


def copy_repository(destination: Path) -> Path:
    shutil.copytree(ROOT, destination, ignore=COPY_IGNORE)
    (destination / "reports").mkdir()
    return destination


def free_subnet_prefix() -> str:
    """A free 172.N prefix for an isolated copy, searched from the top down: up mode's own isolation
    searches from 172.21 up, so a copy and a stack moved off 172.20 do not race for the same one."""
    prefix = stack_free_subnet_prefix(range(31, 15, -1))
    if prefix is None:
        raise RuntimeError("no free 172.16-31.0.0/16 subnet for an isolated copy of the stack")
    return prefix


def isolated_environment(project: str, **extra: str) -> dict:
    """The environment of an acceptance run on its own project, free ports and a free subnet."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TSE_", "PYTEST_"))}
    env.update({
        "TSE_PROJECT": project,
        "TSE_NETWORK_NAME": project,
        "TSE_SUBNET_PREFIX": free_subnet_prefix(),
        **{variable: str(free_port()) for variable in PORT_VARIABLES},
        "TESTCONTAINERS_RYUK_DISABLED": "true",
    })
    env.update(extra)
    return env


@dataclass
class AcceptanceRun:
    exit_code: int
    output: str
    scenarios: dict  # scenario name -> {"tags": set, "status": "passed" | "failed" | "skipped"}

    def statuses_by_tag(self) -> dict:
        """tag -> set of statuses of the scenarios carrying it."""
        result: dict = {}
        for scenario in self.scenarios.values():
            for tag in scenario["tags"]:
                result.setdefault(tag, set()).add(scenario["status"])
        return result

    def failed_tags(self) -> set:
        return {tag for tag, statuses in self.statuses_by_tag().items() if "failed" in statuses}

    def passed_tags(self) -> set:
        return {tag for tag, statuses in self.statuses_by_tag().items() if statuses == {"passed"}}


def run_acceptance(copy: Path, env: dict, *args: str, timeout: float = 600) -> AcceptanceRun:
    """`pytest features/` in `copy` with `env`; the scenarios' outcomes come from its cucumber.json."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "features/", "-q", "-p", "no:cacheprovider", *args],
        cwd=copy, env=env, capture_output=True, text=True, timeout=timeout,
    )
    return AcceptanceRun(result.returncode, result.stdout + result.stderr,
                         read_cucumber(copy / "reports/cucumber.json"))


def read_cucumber(path: Path) -> dict:
    if not path.exists():
        return {}
    scenarios = {}
    for feature in json.loads(path.read_text()):
        for element in feature.get("elements", []):
            statuses = {step["result"]["status"] for step in element.get("steps", [])}
            status = "failed" if "failed" in statuses else "skipped" if statuses <= {"skipped"} else "passed"
            if element.get("steps") and statuses - {"passed", "failed"} and "failed" not in statuses:
                status = "skipped"
            scenarios[element["name"]] = {"tags": {t["name"] for t in element.get("tags", [])}, "status": status}
    return scenarios


def volumes() -> set:
    return {v.name for v in docker_engine.client().volumes.list()}


def feature_scenarios() -> dict:
    """Scenario name -> its tags (feature-level ones included), read from features/*.feature."""
    from steps.checklist import declared_scenarios

    return declared_scenarios(ROOT / "features")


def stack_changing_scenarios() -> dict:
    """The scenarios tagged @changes_stack (they stop, kill, pause or break a service)."""
    return {name: tags for name, tags in feature_scenarios().items() if "changes_stack" in tags}


def stack_changing_only_tags() -> set:
    """Tags that only stack-changing scenarios carry: naming one is the way to select such a scenario."""
    others = set().union(*(tags for tags in feature_scenarios().values() if "changes_stack" not in tags))
    return set().union(*stack_changing_scenarios().values()) - others - {"changes_stack", "removes_volumes"}
