"""The report the browser tests render, made once for all of them: the one TSE_BROWSER_REPORT names
(CI's acceptance step just wrote it), else reports/acceptance.html of a small real acceptance run on a
copy of the repository (needs Docker)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.acceptance_copy import copy_repository, isolated_environment, run_acceptance
from tests.browser.chromium import chromium_binary

REPORT_VARIABLE = "TSE_BROWSER_REPORT"
# One checklist item and the whole BDD criterion: the criterion's verdict is PASSED only when all of
# its scenarios ran and passed (a part of them is "partly run"), and a passing run must show PASSED.
SELECTION = "checklist_1_1 or bdd_criterion"


@pytest.fixture(scope="session")
def browser() -> str:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no chromium binary on PATH: run infra/host/ensure-browser (Debian: apt-get install chromium)")
    return binary


@pytest.fixture(scope="session")
def report(browser, tmp_path_factory) -> Path:
    """The report TSE_BROWSER_REPORT names, else reports/acceptance.html of a small real acceptance
    run on a copy of the repository."""
    if os.environ.get(REPORT_VARIABLE):
        page = Path(os.environ[REPORT_VARIABLE]).resolve()
        assert page.is_file(), (f"{REPORT_VARIABLE}={page}: no such report. Hint: run `infra/host/run-pytest "
                                f"features/` first, or unset {REPORT_VARIABLE} to render a run of this test's own")
        return page
    copy = copy_repository(tmp_path_factory.mktemp("report") / "stack")
    run = run_acceptance(copy, isolated_environment("tse-report-browser"), "-m", SELECTION)
    assert run.exit_code == 0, f"the acceptance run failed (exit {run.exit_code}):\n{run.output[-3000:]}"
    page = copy / "reports" / "acceptance.html"
    assert page.is_file(), f"the acceptance run wrote no HTML report:\n{run.output[-3000:]}"
    return page
