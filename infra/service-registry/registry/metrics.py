"""The registry's Prometheus metrics, in a registry of their own (one app, one set of series)."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.registrations = Counter("registry_registrations_total", "Registrations", ["outcome"],
                                     registry=self.registry)
        self.heartbeats = Counter("registry_heartbeats_total", "Heartbeats", ["outcome"], registry=self.registry)
        self.expiries = Counter("registry_expiries_total", "Instances that disappeared when their TTL ended",
                                registry=self.registry)
        # Known label values exist from the start, so dashboards and alerts see 0 rather than no series.
        for outcome in ("new", "replaced"):
            self.registrations.labels(outcome)
        for outcome in ("renewed", "unknown"):
            self.heartbeats.labels(outcome)
        self.redis_errors = Counter("registry_redis_errors_total", "Redis commands that failed", registry=self.registry)
        self.instances = Gauge("registry_instances", "Live instances", registry=self.registry)
        # Keys under registry:services: that no layout reads (a client's malformed or foreign entry):
        # skipped, never an error; this says how many the last full read skipped.
        self.unreadable = Gauge("registry_unreadable_entries",
                                "Keys under registry:services: the last full read skipped as unreadable",
                                registry=self.registry)
        # When that read began: a count from a read begun after a write has seen the write.
        self.unreadable_read_began = Gauge("registry_unreadable_entries_read_began_timestamp_seconds",
                                           "When the full read that counted registry_unreadable_entries began",
                                           registry=self.registry)
        self.requests = Counter("registry_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        # 1 while the last probe of a declared infrastructure service passed: the alert on "no healthy
        # instance of a registered infrastructure service" reads it.
        self.infrastructure_healthy = Gauge("registry_infrastructure_healthy",
                                            "1 if the last probe of the infrastructure service passed",
                                            ["service"], registry=self.registry)
        self.latency = Histogram("registry_request_seconds", "Request latency", ["method", "route"],
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
                                 registry=self.registry)

    def pass_ended(self, unreadable: dict, began: float) -> None:
        """A full read of registry:services: ended: what it skipped, and when it began."""
        self.unreadable.set(len(unreadable))
        self.unreadable_read_began.set(began)
