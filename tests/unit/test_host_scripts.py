"""The operator scripts of infra/host start: each answers --help (an import they lost fails here,
not on the day someone benchmarks)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON_SCRIPTS = ["infra/host/benchmark", "infra/host/benchmark-registry", "infra/host/benchmark-configuration",
                  "infra/host/stackctl.py", "infra/host/make-env"]


@pytest.mark.parametrize("script", PYTHON_SCRIPTS)
def test_script_answers_help(script):
    done = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


@pytest.mark.parametrize("args, says", [([], "usage: infra/host/swarm-nodes up [N]"),
                                        (["up", "many"], "N is a number of nodes from 1 to 9, not 'many'")])
def test_swarm_nodes_refuses_bad_input_with_its_remedy(args, says):
    # Refused before anything touches Docker.
    done = subprocess.run(["bash", str(ROOT / "infra/host/swarm-nodes"), *args], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and says in done.stderr, done.stderr
