"""The suite's own tests, by kind: unit/ (seconds, no Docker), harness/ (the acceptance harness and
stackctl on real stacks), faults/ (broken copies of the stack), browser/ (the HTML report in
Chromium). Those that need a Docker engine carry the `docker` marker: `pytest tests/ -m "not docker"`
runs the rest in seconds.

The two services' code is importable as in their images, where each package sits in the working
directory: `registry` (infra/service-registry), `configsvc` (infra/configuration-service) and the
`servicekit` they share (infra/servicekit); the alert receiver (`receiver`, infra/alert-receiver); and
stackctl (infra/host) for the operator tests."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
for folder in ("infra/service-registry", "infra/configuration-service", "infra/servicekit", "infra/alert-receiver",
               "infra/host"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_addoption(parser):
    from tests.faults.scope import SCOPES

    parser.getgroup("faults", "the fault suite (tests/faults)").addoption(
        "--fault-scope", choices=SCOPES, default=None,
        help="scoped (default): each fault's run takes the scenarios it names and the sentinels; "
             "full: every read-only scenario besides, each of which must pass (env TSE_FAULT_SCOPE)")


def pytest_configure(config):
    from tests.faults.scope import fault_scope

    try:
        fault_scope(config.getoption("fault_scope"))  # a bad TSE_FAULT_SCOPE: one line, before any test
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    # A SIGTERM to this pytest alone (a CI cancel) ends the run as a Ctrl-C does, with an interrupt:
    # the child runs it started get SIGTERM in turn and take their stacks down (acceptance_copy.run_child).
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
