"""The service's Prometheus metrics, in a registry of its own per app (tests create many apps)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("config_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("config_request_seconds", "Request latency (waiting requests included)",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30))
        self.reads = Counter("config_reads_total", "Parameter reads", ["outcome"], registry=self.registry)
        self.writes = Counter("config_writes_total", "Parameter writes", ["change"], registry=self.registry)
        # Every version a write creates; the dashboard's "versions" panel shows it.
        # With several workers (servicekit/serving.py): the highest any has seen; the waiting, summed.
        self.last_version = Gauge("config_last_change_version", "Version number of the latest parameter change",
                                  registry=self.registry, multiprocess_mode="max")
        # Known label values exist from the start, so dashboards and alerts see 0 rather than no series.
        for outcome in ("found", "missing", "list"):
            self.reads.labels(outcome)
        for change in ("created", "updated", "deleted", "unchanged"):
            self.writes.labels(change)
        self.waiting = Gauge("config_waiting_clients", "Requests waiting for a change now (wait_version)",
                             registry=self.registry, multiprocess_mode="livesum")
        self.waits = Counter("config_waits_total", "Requests that waited for a change", ["outcome"],
                             registry=self.registry)
        self.notifications_published = Counter("config_notifications_published_total",
                                               "Change notifications published on config:changes",
                                               registry=self.registry)
        self.notifications_failed = Counter("config_notifications_failed_total",
                                            "Change notifications Redis did not take", registry=self.registry)
        self.storage_errors = Counter("config_storage_errors_total", "Requests PostgreSQL could not serve",
                                      registry=self.registry)

    def read_from_memory(self, route: str, query: str) -> None:
        """A read answered from memory (servicekit/readcache.py: 200s only): counted as the route would."""
        one = route.endswith("{key}") or query.startswith("key=") or "&key=" in query
        self.reads.labels("found" if one else "list").inc()

    def changed(self, change) -> None:
        """Count a write and remember the version it made."""
        self.writes.labels(change.change).inc()
        if change.change != "unchanged":
            self.last_version.set(change.row.version)
