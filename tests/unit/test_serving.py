"""Metrics of several worker processes (servicekit/serving.py): each process writes its own values,
/metrics answers their sum (gauges as each declares)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKER = """
from configsvc.metrics import Metrics
metrics = Metrics()
metrics.writes.labels("created").inc()
metrics.last_version.set({version})
"""
READER = """
from configsvc.metrics import Metrics
from servicekit.serving import metrics_text
print(metrics_text(Metrics().registry).decode())
"""


def run(code: str, folder: Path) -> str:
    path = os.pathsep.join(str(ROOT / part) for part in ("infra/configuration-service", "infra/servicekit"))
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder), "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout


def test_every_workers_metrics_are_summed(tmp_path):
    for version in (3, 7):
        run(WORKER.format(version=version), tmp_path)
    text = run(READER, tmp_path).splitlines()
    assert 'config_writes_total{change="created"} 2.0' in text
    assert "config_last_change_version 7.0" in text      # the highest any worker saw
