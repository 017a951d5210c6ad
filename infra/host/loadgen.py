"""A bounded load generator for the benchmark scripts: persistent connections, a deadline, latencies."""
from __future__ import annotations

import http.client
import statistics
import threading
import time


def summary(latencies: list, errors: int, elapsed: float) -> dict:
    """requests, errors, requests/s and p50/p99 in ms of one load phase."""
    latencies = sorted(latencies)
    return {
        "requests": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2) if latencies else None,
    }


def run_workers(connections: int, seconds: float, open_connection, request, close_connection) -> dict:
    """`connections` threads, each with its own connection, call `request(conn, index)` (a status:
    >= 400 or 0 counts as an error) until `seconds` have passed."""
    latencies, errors, lock = [], [0], threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(index: int) -> None:
        conn = open_connection()
        mine, failed = [], 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                status = request(conn, index)
            except Exception:  # noqa: BLE001 - a failed request is counted, the connection renewed
                close_connection(conn)
                conn = open_connection()
                status = 0
            mine.append(time.perf_counter() - started)
            failed += status >= 400 or status == 0
        close_connection(conn)
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summary(latencies, errors[0], time.monotonic() - started)


def load(port: int, connections: int, seconds: float, request) -> dict:
    """Run `request(conn, worker)` on `connections` persistent HTTP connections to 127.0.0.1:`port`."""
    return run_workers(connections, seconds, lambda: http.client.HTTPConnection("127.0.0.1", port, timeout=5),
                       request, lambda conn: conn.close())
