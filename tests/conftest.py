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

ROOT = Path(__file__).resolve().parents[1]
for folder in ("infra/service-registry", "infra/configuration-service", "infra/servicekit", "infra/alert-receiver",
               "infra/host"):
    if str(ROOT / folder) not in sys.path:
        sys.path.insert(0, str(ROOT / folder))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    # A SIGTERM to this pytest alone (a CI cancel) ends the run as a Ctrl-C does, with an interrupt:
    # the child runs it started get SIGTERM in turn and take their stacks down (acceptance_copy.run_child).
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
