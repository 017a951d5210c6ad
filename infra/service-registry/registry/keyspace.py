"""What the services change in Redis behind the registry's back, heard as it happens: Redis's
keyspace notifications (notify-keyspace-events in infra/redis/redis.conf) of every key a layout may
use. A sibling's new entry is read and indexed at once (not at the next walk of Redis), and any
entry's deletion, expiry or eviction drops the answers every process kept, so discovery answers
see each change within milliseconds, not within the walk's pause or an answer's age.

The walk (registry/reconcile.py) stays: it finds what was written while no one listened (the
registry starting, a lost connection) and is how a stack whose Redis announces nothing still
converges, within a walk. The registry's Redis user may subscribe to this one pattern only
(infra/redis/users.acl: Redis matches a pattern subscription literally against the ACL's).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable, Optional

import redis

from registry.models import PREFIX, json_layout
from registry.store import Store
from servicekit.readcache import close_quietly

log = logging.getLogger("registry.keyspace")

# Every key a layout may use has "service" in it (reconcile.SCAN_MATCH); database 0 is the stack's.
PATTERN = "__keyspace@0__:*service*"
CHANNEL_PREFIX = PATTERN.split("*", 1)[0]
# Events after which a key may hold an entry not yet indexed.
WRITTEN = frozenset({"set", "hset", "rename_to", "restore", "copy_to"})
# Events after which an entry is gone: every kept answer is dropped.
GONE = frozenset({"del", "expired", "evicted", "rename_from", "unlink"})
WAIT_S = 1.0        # how long one step waits for a message (the task's cancellation is seen as often)
RETRY_S = 1.0       # the pause before subscribing again after a failure


class KeyspaceWatch:
    """Reads the keyspace events of the layouts' keys and tells the registry: `on_changed()` drops the
    answers kept (this process's and, by its publish, every other's)."""

    def __init__(self, store: Store, on_changed: Callable[[], None]):
        self.store, self.on_changed = store, on_changed
        self.pubsub: Optional[redis.client.PubSub] = None
        self.failing: Optional[str] = None  # why the last step failed, None once one succeeds

    def subscribed(self) -> bool:
        return self.pubsub is not None

    def handle(self, key: str, event: str) -> bool:
        """One event on `key`; True when the registry's answers changed (a new entry, one gone)."""
        if not (key.startswith(PREFIX) or json_layout(key)):
            return False
        if event in GONE:
            self.on_changed()
            return True
        if event in WRITTEN and self.store.index_found(self.store.read([key])):
            self.on_changed()
            return True
        return False

    def step(self) -> None:
        """Subscribe when not subscribed, then handle the messages that arrive within WAIT_S."""
        if self.pubsub is None:
            pubsub = self.store.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.psubscribe(PATTERN)
            except BaseException:
                close_quietly(pubsub)
                raise
            self.pubsub = pubsub
            # Whatever changed while no one listened is the walk's to find; answers kept meanwhile go.
            self.on_changed()
        message = self.pubsub.get_message(timeout=WAIT_S)
        while message is not None:
            channel, event = _text(message["channel"]), _text(message["data"])
            if channel.startswith(CHANNEL_PREFIX):
                self.handle(channel[len(CHANNEL_PREFIX):], event)
            message = self.pubsub.get_message(timeout=0.0)

    def close(self) -> None:
        close_quietly(self.pubsub)
        self.pubsub = None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    await loop.run_in_executor(None, self.step)
                    self.failing = None
                except Exception as error:  # noqa: BLE001 - Redis away (the walk counts that), or refusing
                    if self.failing is None:
                        log.warning("keyspace notifications not heard, subscribing again each second "
                                    "(changes are then seen within a walk of Redis): %s", error)
                    self.failing = f"{type(error).__name__}: {error}"
                    self.close()
                    await asyncio.sleep(RETRY_S)
        finally:
            self.close()


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
