"""Run the acceptance suite on a copy of the repository, isolated from any other stack.

The copy gets its own compose project, host ports, subnet and network name, so it can run beside
a user's stack; what it reports is read back from its Cucumber JSON.
"""
from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from docker.errors import APIError, NotFound

from steps.harness import ACCEPTANCE_PYTEST
from steps.harness.isolation import free_port, monitoring_subnet
from steps.harness.isolation import free_subnet_prefix as stack_free_subnet_prefix
from steps.harness.settings import PORT_VARIABLES
from steps.probes import docker_engine

ROOT = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "reports", "__pycache__", ".pytest_cache", ".env", ".stack")


def copy_repository(destination: Path) -> Path:
    shutil.copytree(ROOT, destination, ignore=COPY_IGNORE)
    (destination / "reports").mkdir()
    return destination


def image_builds(root: Path) -> list[dict]:
    """compose's build section of every service built from `root` (every profile), with absolute paths."""
    result = subprocess.run(["docker", "compose", "--env-file", ".env.example", "--profile", "*", "config",
                             "--format", "json"], cwd=root, capture_output=True, text=True, check=True)
    services = json.loads(result.stdout)["services"].values()
    return [service["build"] for service in services if "build" in service]


def image_sources(build: dict) -> list[tuple[Path, str]]:
    """What an image is made of from the repository: its Dockerfile, and each source of its COPY and
    ADD lines, as (folder, pattern) pairs: the build context, or the additional context a `--from=`
    names. A `--from=` naming a build stage or an image copies nothing of the repository's."""
    context = Path(build["context"])
    dockerfile = context / build.get("dockerfile", "Dockerfile")
    contexts = {name: Path(path) for name, path in (build.get("additional_contexts") or {}).items()}
    sources = [(dockerfile.parent, dockerfile.name)]
    for instruction in _instructions(dockerfile.read_text()):
        words = instruction.split()
        if not words or words[0].upper() not in ("COPY", "ADD"):
            continue
        options = [w for w in words[1:] if w.startswith("--")]
        arguments = [w for w in words[1:] if not w.startswith("--")]
        origin = next((o.split("=", 1)[1] for o in options if o.startswith("--from=")), None)
        if origin is not None and origin not in contexts:
            continue
        folder = contexts[origin] if origin is not None else context
        sources += [(folder, source.lstrip("/")) for source in arguments[:-1]]
    return sources


def _instructions(dockerfile: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in dockerfile.splitlines()
                                           if not line.lstrip().startswith("#")))
    return joined.splitlines()


def _differ(left: Path, right: Path) -> bool:
    if left.is_dir() != right.is_dir():
        return True
    if left.is_dir():
        return _trees_differ(left, right)
    return left.is_file() != right.is_file() or (left.is_file() and not filecmp.cmp(left, right, shallow=False))


def _trees_differ(left: Path, right: Path) -> bool:
    compared = filecmp.dircmp(left, right, ignore=["__pycache__"])
    if compared.left_only or compared.right_only or compared.funny_files:
        return True
    _, mismatched, errors = filecmp.cmpfiles(left, right, compared.common_files, shallow=False)
    return bool(mismatched or errors) or any(_trees_differ(left / d, right / d) for d in compared.common_dirs)


def copied_files_differ(copy: Path, original: Path = ROOT) -> list[str]:
    """The paths (relative to the repository) that an image of `copy` copies and that differ from
    `original`'s. A bind-mounted file (redis.conf, users.acl, pg_hba.conf) is read by the running
    container: a change to it needs no image of its own."""
    copy = copy.resolve()
    differing = set()
    for build in image_builds(copy):
        for folder, pattern in image_sources(build):
            relative = folder.relative_to(copy)
            ours, theirs = _matches(copy, relative, pattern), _matches(original, relative, pattern)
            differing |= ours ^ theirs
            differing |= {path for path in ours & theirs if _differ(copy / path, original / path)}
    return sorted(str(path) for path in differing)


def _matches(root: Path, folder: Path, pattern: str) -> set[Path]:
    """The paths, relative to `root`, that a COPY source `pattern` in `folder` names (a glob or a path)."""
    if any(c in pattern for c in "*?["):
        return {path.relative_to(root) for path in (root / folder).glob(pattern)}
    return {folder / pattern}


def own_images(copy: Path, project: str) -> dict:
    """{"TSE_IMAGE_TAG": project} when a file an image copies (its Dockerfile, a COPY or ADD source)
    differs between the copy and the repository (a fault inside an image): the run builds a set of
    images of its own, which `remove_own_images(project)` removes after it. {} when the copy can share
    the repository's."""
    return {"TSE_IMAGE_TAG": project} if copied_files_differ(copy) else {}


def images_tagged(tag: str) -> list[str]:
    """The names of the stack's images under `tag` (not the other tags the same images carry)."""
    engine = docker_engine.client()
    return sorted(name for image in engine.images.list(filters={"reference": f"trading-ecosystem/*:{tag}"})
                  for name in image.tags if name.endswith(f":{tag}"))


def remove_own_images(tag: str) -> None:
    """Untag the stack's images tagged `tag` (a copy's own set); the shared `local` set stays."""
    for name in images_tagged(tag):
        try:
            docker_engine.client().images.remove(name)
        except APIError:
            pass  # still used by a container the run left behind: assert_nothing_left names both


def assert_project_gone(project: str, leftovers: dict, images_left: list) -> None:
    """No container, network or volume of `project`, no image of its own, as read when its run ended."""
    assert leftovers == {"containers": [], "networks": [], "volumes": []}, f"{project}: left behind: {leftovers}"
    assert images_left == [], f"{project}: images left behind: {images_left}"


def assert_nothing_left(project: str, volumes_before: set) -> None:
    """assert_project_gone, read now, and no volume the run created (anonymous ones included). A
    volume another compose project made meanwhile (a stack starting beside the run) is not the run's."""
    assert_project_gone(project, docker_engine.leftovers(project), images_tagged(project))
    new = volumes() - volumes_before
    others = {name for name in new if volume_project(name) not in (None, project)}
    assert new - others == set(), f"{project}: volumes left behind: {sorted(new - others)}"


def volume_project(name: str) -> str | None:
    """The compose project that made volume `name`; None for an anonymous volume (or one gone since)."""
    try:
        labels = docker_engine.client().volumes.get(name).attrs.get("Labels") or {}
    except NotFound:
        return None
    return labels.get("com.docker.compose.project")


def free_subnet_prefix(taken=frozenset()) -> str:
    """A free 172.N prefix for an isolated copy, searched from the top down: up mode's own isolation
    searches from 172.21 up, so a copy and a stack moved off 172.20 do not race for the same one.
    `taken`: prefixes promised to copies whose networks do not exist yet."""
    prefix = stack_free_subnet_prefix([n for n in range(31, 16, -1) if f"172.{n}" not in taken])
    if prefix is None:
        raise RuntimeError("no free 172.17-31.0.0/16 subnet for an isolated copy of the stack")
    return prefix


def isolated_environment(project: str, *, taken_prefixes=frozenset(), taken_ports=frozenset(), **extra: str) -> dict:
    """The environment of an acceptance run on its own project, free ports and a free subnet (none of
    those `taken_*` or promised in RESERVATIONS: promised to a run that has not bound them yet)."""
    promised_prefixes, promised_ports = RESERVATIONS.promised()
    taken_prefixes, taken_ports = taken_prefixes | promised_prefixes, taken_ports | promised_ports
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TSE_", "PYTEST_"))}
    ports: set = set()
    for variable in PORT_VARIABLES:
        port = free_port()
        while port in taken_ports or port in ports:
            port = free_port()
        ports.add(port)
        env[variable] = str(port)
    env.update({
        "TSE_PROJECT": project,
        "TSE_NETWORK_NAME": project,
        "TSE_SUBNET_PREFIX": free_subnet_prefix(taken_prefixes),
        "TESTCONTAINERS_RYUK_DISABLED": "true",
    })
    # The monitoring network's subnet goes with the prefix: free with it, promised with it.
    env["TSE_MONITORING_SUBNET"] = monitoring_subnet(env["TSE_SUBNET_PREFIX"])
    env.update(extra)
    return env


class Reservations:
    """Subnets and ports promised to runs side by side: a run's network and ports exist only once its
    stack is up, so until it ends no other run may be given them."""

    def __init__(self):
        self._lock = threading.RLock()  # environment() asks promised() while it holds it
        self._prefixes: set = set()
        self._ports: set = set()

    def environment(self, project: str, **extra: str) -> dict:
        with self._lock:
            env = isolated_environment(project, taken_prefixes=frozenset(self._prefixes),
                                       taken_ports=frozenset(self._ports), **extra)
            self._prefixes.add(env["TSE_SUBNET_PREFIX"])
            self._ports.update(int(env[variable]) for variable in PORT_VARIABLES)
            return env

    def promised(self) -> tuple[frozenset, frozenset]:
        """The subnet prefixes and ports promised and not released."""
        with self._lock:
            return frozenset(self._prefixes), frozenset(self._ports)

    def release(self, env: dict) -> None:
        with self._lock:
            self._prefixes.discard(env["TSE_SUBNET_PREFIX"])
            self._ports.difference_update(int(env[variable]) for variable in PORT_VARIABLES)


# The promises of this process's runs that go side by side (the fault runs; the operator cycle's stack,
# started in the background beside the harness tests): isolated_environment() avoids them all.
RESERVATIONS = Reservations()


@dataclass
class AcceptanceRun:
    exit_code: int
    output: str
    scenarios: dict  # scenario name -> {"tags": set, "status": "passed" | "failed" | "skipped"}
    reports: Path  # where the run wrote its reports (reports/swarm for a run on swarm)

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
    exit_code, output = run_child([*ACCEPTANCE_PYTEST, *args], copy, env, timeout)
    reports = copy / "reports" / ("swarm" if "--stack=swarm" in args else "production" if "--mode=production" in args
                                  else "")
    return AcceptanceRun(exit_code, output, read_cucumber(reports / "cucumber.json"), reports)


_CHILDREN: set = set()
_CHILDREN_LOCK = threading.Lock()


def run_child(command: list, cwd: Path, env: dict, timeout: float, grace: float = 180) -> tuple[int, str]:
    """Run `command` to its end: (exit code, stdout and stderr). It runs in a session of its own, so
    a Ctrl-C at a terminal reaches only this process; when this process is interrupted (Ctrl-C, or a
    SIGTERM, which tests/conftest.py turns into an interrupt: a CI cancel) or the timeout ends, the
    child gets SIGTERM and up to `grace` seconds to take its stack down, as a user's Ctrl-C would.
    Children run from other threads are ended by `stop_children`."""
    child = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    with _CHILDREN_LOCK:
        _CHILDREN.add(child)
    try:
        output, _ = child.communicate(timeout=timeout)
    except BaseException:
        _stop(child, grace)
        raise
    finally:
        with _CHILDREN_LOCK:
            _CHILDREN.discard(child)
    return child.returncode, output


def _stop(child: subprocess.Popen, grace: float) -> None:
    child.send_signal(signal.SIGTERM)
    try:
        child.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()


def stop_children(grace: float = 180) -> None:
    """SIGTERM to every child still running (each takes its stack down, as after a Ctrl-C), killed
    after `grace` seconds; their own threads then finish as after any other end."""
    with _CHILDREN_LOCK:
        children = list(_CHILDREN)
    for child in children:
        child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            child.kill()


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


def run_stackctl(copy: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """The operator's `stackctl` of the copy, with `args`, in `env`."""
    return subprocess.run([sys.executable, str(copy / "infra/host/stackctl.py"), *args], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=600)


def volumes() -> set:
    return {v.name for v in docker_engine.client().volumes.list()}


def feature_scenarios() -> dict:
    """Scenario name -> its tags (feature-level ones included), read from features/*.feature."""
    from steps.report.checklist import declared_scenarios

    return declared_scenarios(ROOT / "features")


def stack_changing_scenarios() -> dict:
    """The scenarios tagged @changes_stack (they stop, kill, pause or break a service)."""
    return {name: tags for name, tags in feature_scenarios().items() if "changes_stack" in tags}


def stack_changing_only_tags() -> set:
    """Tags that only stack-changing scenarios carry: naming one is the way to select such a scenario."""
    others = set().union(*(tags for tags in feature_scenarios().values() if "changes_stack" not in tags))
    return set().union(*stack_changing_scenarios().values()) - others - {"changes_stack", "removes_volumes"}


def report_digest(reports: Path) -> dict:
    """What a run's reports say, without what differs between two runs of the same verdict (times,
    ids, observed values): each checklist item's verdict and reason; each scenario's steps and their
    outcomes, in the Cucumber JSON's order; the history line's verdicts."""
    checklist = json.loads((reports / "checklist.json").read_text())
    cucumber = json.loads((reports / "cucumber.json").read_text())
    history = [json.loads(line) for line in (reports / "history.jsonl").read_text().splitlines()]
    return {
        "checklist": [(item["id"], item["verdict"], item["reason"]) for item in checklist["items"]],
        "cucumber": [(feature["uri"], element["name"], [(step["keyword"], step["name"], step["result"]["status"],
                                                         bool(step.get("output"))) for step in element["steps"]])
                     for feature in cucumber for element in feature["elements"]],
        "history": [(line["item"], line["verdict"]) for line in history if line["run"] == history[-1]["run"]],
    }

