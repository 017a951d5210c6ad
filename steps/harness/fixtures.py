"""The pytest plugin of the stack under test (stack.py holds the stack and its launcher): settled
once, started in the background while pytest collects (up mode), handed to the scenarios as the
session fixture `stack`, and taken down at the end of the session, also after a failure, Ctrl-C or
SIGTERM; a parallel run's workers join the stack their controller started.

Any failure to get a healthy stack ends the session with one clear message instead of an error per
scenario.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from steps.harness.parallel import STACK_CHANGING, write_groups
from steps.harness.settings import PRODUCTION, StackSettings, stack_mode
from steps.harness.stack import Stack, StackLauncher, failure_line
from steps.probes import StackError, docker_engine

# Why a scenario of the other mode does not run (tags @development_only, @production_only).
MODE_SKIPS = {
    "development_only": "production mode: the ecosystem's published passwords and plain connections are refused "
                        "by design (README: Development and production modes)",
    "production_only": "development mode: nothing is encrypted (run with --mode=production)",
}

FEATURES = Path(__file__).resolve().parents[2] / "features"


def attach_mode(config) -> bool:
    return stack_mode(config.getoption) == "attach"


LAUNCHER_KEY = pytest.StashKey[StackLauncher]()
# The workerinput key under which a parallel run's controller hands the ready stack to its workers.
HANDOVER = "tse_stack"
HANDOVER_CACHE = pytest.StashKey[dict]()
GROUPS = "tse_groups_dir"
STACK_KEY = pytest.StashKey[Stack]()


def _launcher(config) -> StackLauncher:
    if LAUNCHER_KEY not in config.stash:
        joined = getattr(config, "workerinput", {}).get(HANDOVER)
        try:
            config.stash[LAUNCHER_KEY] = (StackLauncher(StackSettings.from_dict(joined["settings"]), joined)
                                          if joined else StackLauncher(StackSettings.from_options(config.getoption)))
        except (StackError, ValueError) as error:
            pytest.exit(f"acceptance stack: {error}", returncode=4)
    return config.stash[LAUNCHER_KEY]


def _or_fail(config, action):
    """`action(launcher)`'s result; an error ends the session with one clear line (Ctrl-C re-raised)."""
    launcher = _launcher(config)
    try:
        return action(launcher)
    except BaseException as error:  # noqa: BLE001 - one clear line; Ctrl-C re-raised
        launcher.fail(error)


def missing_engine(config) -> str | None:
    """The one line to end a run with when no Docker engine answers, else None. A parallel run
    checks this before pytest's session starts: its controller starts or checks the stack in
    pytest_sessionstart, where an error is printed twice (pytest's own line and its summary)."""
    try:
        settings = StackSettings.from_options(config.getoption)
    except (StackError, ValueError):
        return None  # said, once, when the session asks for the stack
    try:
        docker_engine.client()
    except StackError as error:
        return failure_line(settings, error)
    return None


def runs_features(config) -> bool:
    """Whether this pytest run collects the acceptance suite (features/), not only the suite's own tests."""
    args = [Path(a.split("::")[0]).resolve() for a in config.args] or [Path.cwd()]
    return any(a == FEATURES or FEATURES in a.parents or a in FEATURES.parents for a in args)


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session):
    """Up mode: start the stack now, so it comes up while pytest imports and collects."""
    config = session.config
    if config.option.collectonly or not runs_features(config) or attach_mode(config):
        return
    _or_fail(config, StackLauncher.start)


def parallel_controller(config) -> bool:
    """Whether this process hands the scenarios to pytest-xdist workers (and runs none itself)."""
    return getattr(config.option, "dist", "no") != "no" and not hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """A parallel run's controller checks the stack once, before its workers start: a stack that is
    not there or not healthy is one clear line, not one per worker."""
    config = session.config
    if config.option.collectonly or not runs_features(config) or not parallel_controller(config):
        return
    _or_fail(config, StackLauncher.ready)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist, on the controller: each worker joins the stack checked (attach mode) or started
    (up mode) in pytest_sessionstart, before any worker started."""
    launcher = node.config.stash.get(LAUNCHER_KEY, None)
    if launcher is not None and launcher.stack is not None:
        if HANDOVER_CACHE not in node.config.stash:
            node.config.stash[HANDOVER_CACHE] = launcher.handover()
        node.workerinput[HANDOVER] = node.config.stash[HANDOVER_CACHE]
    if runs_features(node.config):
        node.workerinput[GROUPS] = str(_groups_dir(node.config))


def _groups_dir(config) -> Path:
    """Where the workers write the scenarios' groups for the scheduler (in the launcher's workdir,
    removed at the end)."""
    path = _launcher(config).workdir / "xdist-groups"
    path.mkdir(exist_ok=True)
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """Scenarios grouped by their xdist_group mark; up mode's stack-changing ones wait until nothing
    else runs (steps/harness/parallel.py)."""
    if runs_features(config) and config.option.dist == "loadgroup":
        from steps.harness.parallel import StackChangingLast

        return StackChangingLast(config, log, _groups_dir(config))
    return None


@pytest.fixture(scope="session")
def stack(request) -> Stack:
    """The healthy stack: brought up by this run (up mode) or already running (attach mode)."""
    running = _or_fail(request.config, StackLauncher.ready)
    request.config.stash[STACK_KEY] = running
    try:
        yield running
    finally:
        _launcher(request.config).stop()


def pytest_sessionfinish(session):
    """Also when no scenario asked for the stack, or the run was interrupted before one did."""
    launcher = session.config.stash.get(LAUNCHER_KEY, None)
    if launcher is not None:
        launcher.stop()


def pytest_unconfigure(config):
    """Also when the session never got as far as pytest_sessionfinish: pytest skips it when an
    interrupt comes during pytest_sessionstart, which in a parallel run is where the controller has
    started the stack and pytest-xdist then starts its workers."""
    launcher = config.stash.get(LAUNCHER_KEY, None)
    if launcher is not None:
        launcher.stop()


def pytest_collection_modifyitems(config, items):
    """Scenarios that stop and start services run last, so they cannot disturb the others; the one
    that removes the volumes runs very last. In attach mode they never run (skipped, with why)."""
    def rank(item) -> int:
        return 2 if item.get_closest_marker("removes_volumes") else 1 if item.get_closest_marker("changes_stack") else 0

    items.sort(key=rank)
    # A parallel run (pytest-xdist, --dist loadgroup) keeps scenarios that share one limited resource
    # on the same worker, one after the other: S.7 fills every long-poll slot 6.7 needs one of; E.1
    # counts the registry's unreadable entries, which E.2's raw registry keys are for an instant.
    # Up mode: the stack-changing ones form one group, which steps/harness/parallel.py holds until
    # nothing else runs, then runs on one worker in this order.
    for item in items:
        if item.get_closest_marker("long_polls"):
            item.add_marker(pytest.mark.xdist_group("long_polls"))
        elif item.get_closest_marker("registry_keys"):
            item.add_marker(pytest.mark.xdist_group("registry_keys"))
        elif item.get_closest_marker("changes_stack") and not attach_mode(config):
            item.add_marker(pytest.mark.xdist_group(STACK_CHANGING))
    workerinput = getattr(config, "workerinput", {})
    if GROUPS in workerinput:
        write_groups(Path(workerinput[GROUPS]), workerinput["workerid"],
                     {item.nodeid: item.get_closest_marker("xdist_group").args[0]
                      for item in items if item.get_closest_marker("xdist_group")})
    _skip_what_this_run_cannot_hold(config, items)


def _skip_what_this_run_cannot_hold(config, items) -> None:
    """Skipped, with why: in attach mode, the scenarios that stop and start services; in each mode, the
    other mode's own promises (the ecosystem's published defaults work in development mode only, and
    only production mode encrypts)."""
    production = _launcher(config).settings.values.get("TSE_MODE") == PRODUCTION
    unfit = "development_only" if production else "production_only"
    for item in items:
        if attach_mode(config) and item.get_closest_marker("changes_stack"):
            item.add_marker(pytest.mark.skip(reason="attach mode: scenarios that stop and start services never run "
                                                    "on a stack this run did not start"))
        if item.get_closest_marker(unfit):
            item.add_marker(pytest.mark.skip(reason=MODE_SKIPS[unfit]))


def pytest_report_header(config):
    launcher = config.stash.get(LAUNCHER_KEY, None)
    if launcher is None or launcher.stack is None:
        return None
    stack = launcher.stack
    lines = [f"stack: {stack.settings.mode} mode, compose project {stack.project}"]
    lines += [f"stack: {note}" for note in stack.notes]
    return lines
