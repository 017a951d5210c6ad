"""Live health of the stack's own services: each is probed every few seconds (PING, a SQL round
trip, an HTTP health URL) and registered with the outcome and a TTL of a few probe intervals, so
a status is never older than that: it is probed now, never written once."""
from __future__ import annotations

import asyncio
import logging
import socket
import urllib.request
from typing import Callable, Dict

from registry.models import Registration
from registry.store import Store, now_rfc3339
from servicekit import tls

log = logging.getLogger("registry.infrastructure")


def probe_redis(store: Store, entry: Dict) -> bool:
    return store.ping()


def probe_postgres(entry: Dict, password: str) -> bool:
    import psycopg

    with psycopg.connect(host=entry["host"], port=entry["port"], dbname=entry.get("database", "postgres"),
                         user=entry["user"], password=password, connect_timeout=3,
                         **tls.current().postgres_options()) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def probe_http(entry: Dict) -> bool:
    transport = tls.current()
    with urllib.request.urlopen(transport.url(entry["health_url"]), timeout=3,
                                context=transport.client_context()) as response:
        return response.status == 200


def probe_tcp(entry: Dict) -> bool:
    with socket.create_connection((entry["host"], entry["port"]), timeout=3):
        return True


class InfrastructureMonitor:
    """Probes the declared services and registers each with its current status."""

    def __init__(self, store: Store, declared: list, interval_s: float, postgres_password: str,
                 counters: Callable[[str], None] = lambda event: None,
                 observe: Callable[[str, bool], None] = lambda name, healthy: None,
                 changed: Callable[[], None] = lambda: None):
        self.store, self.declared, self.interval_s = store, declared, interval_s
        self.postgres_password, self.count, self.observe, self.changed = postgres_password, counters, observe, changed

    def probe(self, entry: Dict) -> bool:
        kind = entry["kind"]
        try:
            if kind == "redis":
                return probe_redis(self.store, entry)
            if kind == "postgres":
                return probe_postgres(entry, self.postgres_password)
            if kind == "http":
                return probe_http(entry)
            return probe_tcp(entry)
        except Exception as error:  # noqa: BLE001 - any failure means unhealthy, and why is logged
            log.info("probe of %s failed: %s", entry["name"], error)
            return False

    def cycle(self) -> Dict[str, str]:
        """Probe every declared service once and register the outcome; {name: status}."""
        statuses = {}
        for entry in self.declared:
            healthy = self.probe(entry)
            self.observe(entry["name"], healthy)
            status = "healthy" if healthy else "unhealthy"
            statuses[entry["name"]] = status
            registration = Registration(
                name=entry["name"], version=entry.get("version", "infrastructure"), instance_id=entry["name"],
                host=entry.get("host"),
                # As clients reach them in this mode (https://, rediss:// in production).
                endpoints={kind: tls.current().url(url) for kind, url in entry.get("endpoints", {}).items()},
                metadata={"role": "infrastructure", "kind": entry["kind"], "probed_at": now_rfc3339(),
                          **({"probed_as": entry["user"]} if "user" in entry else {})},
                ttl_seconds=max(2, int(self.interval_s * 3)), status=status,
            )
            from registry.models import instance_fields

            now = now_rfc3339()
            try:
                fields = instance_fields(registration, now, self.store.registered_at(entry["name"], entry["name"]))
                self.store.put(fields, registration.ttl_seconds)
                self.store.index.add(entry["name"], entry["name"], registration.ttl_seconds)
            except Exception as error:  # noqa: BLE001 - Redis away: nothing can be stored until it is back
                self.count("redis_error")
                log.info("cannot store %s: %s", entry["name"], error)
        self.changed()
        return statuses

    async def run(self) -> None:
        while True:
            await asyncio.get_running_loop().run_in_executor(None, self.cycle)
            await asyncio.sleep(self.interval_s)
