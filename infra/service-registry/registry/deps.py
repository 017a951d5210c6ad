"""What the routes depend on: the registry's state (its store, metrics and settings) and, for
writes, the caller's identity: its Redis ACL user, authenticated by Redis itself."""
from __future__ import annotations

from typing import Dict, List, Tuple

from fastapi import Depends, HTTPException, Request

from registry.metrics import Metrics
from registry.reconcile import Reconciler
from registry.settings import Settings
from registry.store import Store
from servicekit.readcache import ReadCache
from servicekit.signin import Caller, RedisSignIns, basic_sign_in

HOW_TO_AUTHENTICATE = (
    "registry writes need HTTP Basic authentication as your service's Redis ACL user, with its Redis password "
    "(for example curl -u risk-adapter:$REDIS_PASSWORD_RISK_ADAPTER); reads need none"
)


# Every write is announced here: each worker then forgets the discovery answers it kept.
CHANGES_CHANNEL = "registry:changes"
# The reads answered from memory (servicekit/readcache.py), at most 1 s old; /health always asks Redis.
CACHED_ROUTES = ("/api/v1/services", "/api/v1/services/{name}", "/health/{name}")


class RegistryState:
    """One per app: the store (as the registry's own user, for reads and the stack's own services),
    the callers' writers, the metrics, the settings, the reconciliation that indexes what the API did
    not write, the answers kept for reads, and the keys seen by the last full read."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics, writers: RedisSignIns):
        self.settings, self.store, self.metrics, self.writers = settings, store, metrics, writers
        self.cache = ReadCache(store.redis, CHANGES_CHANNEL)
        self.reconciler = Reconciler(store, metrics.pass_ended, metrics.redis_errors.inc,
                                     on_indexed=self.cache.changed)
        self.seen: set = set()

    def read_page(self, offset: int, limit: int) -> Tuple[List[Dict[str, str]], int]:
        """The readable instances of a page of names, and how many names there are; a page holding every
        name counts the expiries (a partial one cannot tell an expiry from a name on another page)."""
        listing, names = self.store.page(offset, limit)
        if offset == 0 and limit >= names:
            self.track_expiries(list(listing.instances))
        return list(listing.instances.values()), names

    def track_expiries(self, keys: list) -> None:
        """Instances seen before and gone now, without a DELETE, expired."""
        current = set(keys)
        self.metrics.expiries.inc(len(self.seen - current))
        self.seen.clear()
        self.seen.update(current)
        self.metrics.instances.set(len(current))


async def state(request: Request) -> RegistryState:
    return request.app.state.registry


signed_in = basic_sign_in("service-registry", HOW_TO_AUTHENTICATE, lambda request: request.app.state.registry.writers)


async def writer(caller: Caller = Depends(signed_in)) -> Store:
    """The store as the caller's Redis ACL user: its ACL key patterns decide which names it writes."""
    return Store(caller.client)


def writable(name: str, registry: RegistryState) -> None:
    """The stack's own services are written by the registry alone (its infrastructure monitor)."""
    if name in registry.settings.reserved_names:
        raise HTTPException(status_code=403, detail=f"{name} is one of the stack's own services: only the registry "
                                                    "registers it")
