"""Serving an app with uvicorn in one process or in several (workers, so a service uses every CPU
its limit gives it), and its Prometheus metrics summed across them (prometheus_client's
multiprocess mode: each process writes its values to files in PROMETHEUS_MULTIPROC_DIR, a tmpfs)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir() -> None:
    """Empty the multiprocess metrics folder (the files of a previous start would be summed in); call
    it in the parent process, before any metric exists."""
    folder = os.environ.get(MULTIPROCESS_DIR)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        Path(folder).mkdir(parents=True)


def serve(app, factory: str, port: int, workers: int) -> None:
    """Serve `app` in this process, or `factory` ("module:function" building the app) in `workers`
    worker processes sharing the port."""
    import uvicorn

    from servicekit import tls

    # HTTPS in production mode, with the certificate the secrets service handed out.
    options = {"host": "0.0.0.0", "port": port, "log_level": "warning", **tls.current().server_options()}
    if workers > 1:
        uvicorn.run(factory, factory=True, workers=workers, **options)
    else:
        uvicorn.run(app, **options)


def metrics_text(registry: CollectorRegistry) -> bytes:
    """The exposition of `registry`, or, with several workers, of every worker's metrics summed (gauges
    as each declares its multiprocess_mode)."""
    if not os.environ.get(MULTIPROCESS_DIR):
        return generate_latest(registry)
    from prometheus_client import multiprocess

    every_worker = CollectorRegistry()
    multiprocess.MultiProcessCollector(every_worker)
    return generate_latest(every_worker)
