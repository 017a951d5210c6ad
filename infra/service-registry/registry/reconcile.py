"""The background walk of the keys the services register under that indexes what the API did not write.

risk-monitor-py and trading-engine-py write their own hash at registry:services:{name}, the Go
services their own JSON entries (services:{name}:..., {namespace}:service:{id}: models.json_layout);
a client can store an instance in the registry's layout directly. Discovery by name reads the
writer-owned hash by its key, so it sees those at once (the Go services' entries once a walk indexed
them); listing every service reads the names the registry knows
(store.py), and this walk is how such names get known. It SCANs a bounded number of keys per step,
so its cost does not grow with what else Redis holds (a domain's cache of a million keys): only how
long a pass takes does (KEYS_PER_SECOND). It also counts, per pass, the keys no layout reads, and
says when that pass began (what a reader of the count needs to know it saw a given write).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Dict, Optional

import redis

from registry.models import PREFIX, json_layout
from registry.store import Store

log = logging.getLogger("registry.reconcile")

KEYS_PER_STEP = 1000      # SCAN's COUNT: about how many keys one step examines
STEP_INTERVAL_S = 0.05    # so at most about 20,000 keys a second: a pass over a million keys takes ~50 s
PASS_INTERVAL_S = 1.0
# Every key a layout may use has "service" in it: registry:services:*, services:*, {namespace}:service:*.
SCAN_MATCH = "*service*"     # the pause between passes: the staleness of a listing on a small keyspace


class Reconciler:
    def __init__(self, store: Store, on_pass: Callable[[Dict[str, str], float], None] = lambda unreadable, began: None,
                 on_error: Callable[[], None] = lambda: None, keys_per_step: int = KEYS_PER_STEP,
                 on_indexed: Callable[[], None] = lambda: None):
        self.store, self.on_pass, self.on_error, self.keys_per_step = store, on_pass, on_error, keys_per_step
        # Told when a step indexed something new: every process's (and replica's) kept listings drop it.
        self.on_indexed = on_indexed
        self.cursor, self.unreadable, self.began = 0, {}, time.time()
        self.failing: Optional[str] = None  # why the last step failed, None once one succeeds

    def step(self) -> bool:
        """Examine the next batch of keys and index the instances among them; True when that ended a pass
        (on_pass then gets the unreadable keys the pass met, {key: why}, and when the pass began)."""
        if self.cursor == 0:
            self.began = time.time()
        # One walk for every layout: the registry's prefix and the Go services' (models.json_layout).
        self.cursor, keys = self.store.redis.scan(self.cursor, match=SCAN_MATCH, count=self.keys_per_step)
        listing = self.store.read(sorted(k for k in keys if k.startswith(PREFIX) or json_layout(k)))
        if self.store.index_found(listing):
            self.on_indexed()
        self.unreadable.update(listing.unreadable)
        if self.cursor != 0:
            return False
        self.on_pass(self.unreadable, self.began)
        self.unreadable = {}
        return True

    def full_pass(self) -> None:
        """A whole pass at once, beside (not disturbing) the one run() is making."""
        walk = Reconciler(self.store, self.on_pass, self.on_error, self.keys_per_step, self.on_indexed)
        while not walk.step():
            pass

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                ended = await loop.run_in_executor(None, self.step)
                self.failing = None
            except Exception as error:  # noqa: BLE001 - Redis away, or refusing: /health says so, the walk goes on
                if isinstance(error, redis.RedisError):
                    self.on_error()
                if self.failing is None:
                    log.warning("reconciliation failed, retrying each second: %s", error)
                self.failing = f"{type(error).__name__}: {error}"
                self.cursor, self.unreadable, ended = 0, {}, True  # the next pass starts over
            await asyncio.sleep(PASS_INTERVAL_S if ended else STEP_INTERVAL_S)
