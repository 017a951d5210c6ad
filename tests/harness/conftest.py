"""The operator cycle's stack (test_operator.py), shared by its tests in their order: a fresh stack,
the same stack minutes later, then down.

Its second test validates a stack up for minutes. Rather than wait for that alone, the stack starts
(`stackctl up`, in the background) with the first harness test of a session that takes the cycle,
and ages while the tests before the cycle (test_harness.py's, one stack at a time) run beside it."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from steps.probes import docker_engine
from tests.acceptance_copy import RESERVATIONS, copy_repository, run_stackctl, volumes


@dataclass
class OperatorStack:
    copy: Path
    env: dict
    project: str
    tmp_path: Path
    _up: subprocess.Popen | None = field(default=None, repr=False)

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return run_stackctl(self.copy, self.env, f"--project-name={self.project}", *args)

    @property
    def start_record(self) -> Path:
        return self.copy / ".stack" / f"{self.project}.start-record.json"

    def start_up(self) -> None:
        """`stackctl up`, in the background; its output to files (a pipe nobody reads could fill)."""
        with (self.tmp_path / "up.out").open("w") as out, (self.tmp_path / "up.err").open("w") as err:
            self._up = subprocess.Popen([sys.executable, str(self.copy / "infra/host/stackctl.py"),
                                         f"--project-name={self.project}", "up"],
                                        cwd=self.copy, env=self.env, stdout=out, stderr=err)

    def up_result(self, timeout: float = 600) -> subprocess.CompletedProcess:
        """The background `stackctl up`, once it has ended."""
        returncode = self._up.wait(timeout=timeout)
        return subprocess.CompletedProcess(self._up.args, returncode, (self.tmp_path / "up.out").read_text(),
                                           (self.tmp_path / "up.err").read_text())

    def end_up(self) -> None:
        """No `stackctl up` left running (after an interrupt or a failure before the cycle's tests)."""
        if self._up is not None and self._up.poll() is None:
            self._up.terminate()
            try:
                self._up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._up.kill()
                self._up.wait()


@pytest.fixture
def copy(tmp_path):
    """A copy of the repository for a test's own stack."""
    return copy_repository(tmp_path / "stack")


@pytest.fixture(scope="session")
def operator_stack(tmp_path_factory):
    """An isolated copy of the repository, brought up by `stackctl up` (started now, in the background),
    with `stackctl` bound to it. Whatever runs under its project is removed at the end, and nothing
    may be left behind."""
    project = "tse-operator-cycle"
    tmp_path = tmp_path_factory.mktemp("operator")
    copy, before = copy_repository(tmp_path / "stack"), volumes()
    # Promised until the end: the tests beside it take other ports and subnets while it binds its own.
    stack = OperatorStack(copy, RESERVATIONS.environment(project), project, tmp_path)
    stack.start_up()
    try:
        yield stack
    finally:
        stack.end_up()
        subprocess.run(["docker", "compose", "-p", project, "down", "-v"], capture_output=True)
        RESERVATIONS.release(stack.env)
    assert docker_engine.leftovers(project) == {"containers": [], "networks": [], "volumes": []}
    assert volumes() - before == set()


@pytest.fixture(autouse=True)
def _operator_stack_ages_beside_the_harness_tests(request):
    """The first harness test of a session that takes the operator cycle starts the cycle's stack."""
    if any("operator_stack" in item.fixturenames for item in request.session.items):
        request.getfixturevalue("operator_stack")
