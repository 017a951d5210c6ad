"""Change notifications: each committed change is published on Redis (config:changes), and waiting
requests are woken by changes from this instance (directly) and from any other (by subscription)."""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from typing import Dict, Iterator, Set, Tuple

import redis

from configsvc.metrics import Metrics
from configsvc.model import Change, rfc3339

CHANNEL = "config:changes"
POLL_S = 0.25                   # how often the listener looks up from the subscription (to notice stop())
log = logging.getLogger("configsvc.notifier")


def change_message(change: Change) -> Dict:
    """The JSON message announcing `change` (value null for a deletion)."""
    row = change.row
    return {"event": change.change, "key": row.key, "environment": row.environment, "service": row.service or None,
            "type": row.type, "value": None if change.change == "deleted" else row.value, "version": row.version,
            "updated_by": row.updated_by, "timestamp": rfc3339(row.updated_at)}


class ChangeSignal:
    """Wakes the asyncio tasks waiting on one (environment, key), from any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._waiters: Dict[Tuple[str, str], Set[Tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @contextlib.contextmanager
    def watching(self, environment: str, key: str) -> Iterator[asyncio.Event]:
        """An event set on every change of (environment, key) while the block runs; call from a coroutine."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault((environment, key), set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                waiters = self._waiters.get((environment, key), set())
                waiters.discard(entry)
                if not waiters:
                    self._waiters.pop((environment, key), None)

    def notify(self, environment: str, key: str) -> None:
        with self._lock:
            targets = list(self._waiters.get((environment, key), ()))
        for loop, event in targets:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is waiting there any more
                loop.call_soon_threadsafe(event.set)


class Notifier:
    """Announces committed changes. A Redis failure never undoes a change: it is counted and logged."""

    def __init__(self, client: redis.Redis, signal: ChangeSignal, metrics: Metrics):
        self.redis, self.signal, self.metrics = client, signal, metrics

    def announce(self, change: Change) -> None:
        """Publishes `change` and wakes this instance's waiters; nothing for an unchanged write."""
        if change.change == "unchanged":
            return
        self.signal.notify(change.row.environment, change.row.key)
        self.publish(change)

    def publish(self, change: Change) -> bool:
        """True when Redis took the message on config:changes."""
        try:
            self.redis.publish(CHANNEL, json.dumps(change_message(change)))
        except (redis.RedisError, OSError) as error:
            self.metrics.notifications_failed.inc()
            log.warning("change %s of %s/%s not announced: Redis is unavailable: %s", change.row.version,
                        change.row.environment, change.row.key, " ".join(str(error).split())[:200])
            return False
        self.metrics.notifications_published.inc()
        return True


class ChangeListener:
    """A background thread subscribed to config:changes (resubscribing after a Redis outage) that
    wakes the waiters of every change announced by any instance."""

    def __init__(self, client: redis.Redis, signal: ChangeSignal, retry_s: float = 1.0):
        self.redis, self.signal, self.retry_s = client, signal, retry_s
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="config-changes-listener", daemon=True).start()

    def stop(self) -> None:
        """Asks the thread to end; it does within POLL_S, unwaited for (it is a daemon thread)."""
        self._stop.set()

    def deliver(self, data) -> None:
        """Wakes the waiters of the change in one message; anything unreadable is ignored."""
        try:
            message = json.loads(data)
            self.signal.notify(str(message["environment"]), str(message["key"]))
        except (ValueError, TypeError, KeyError):
            return

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                if failing:
                    log.info("subscribed to %s again", CHANNEL)
                failing = False
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=POLL_S)
                    if message and message.get("type") == "message":
                        self.deliver(message["data"])
            except Exception as error:  # noqa: BLE001 - the listener must outlive any Redis failure
                if not failing:
                    log.warning("subscription to %s lost, retrying every %ss: %s", CHANNEL, self.retry_s,
                                " ".join(str(error).split())[:200])
                failing = True
                self._stop.wait(self.retry_s)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()
