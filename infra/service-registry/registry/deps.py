"""What the routes depend on: the registry's state (its store, metrics and settings) and, for
writes, the caller's identity: its Redis ACL user, authenticated by Redis itself."""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Callable, Dict, List, Optional

import redis
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from registry.metrics import Metrics
from registry.settings import Settings
from registry.store import Store

REALM = "service-registry"
HOW_TO_AUTHENTICATE = (
    "registry writes need HTTP Basic authentication as your service's Redis ACL user, with its Redis password "
    "(for example curl -u risk-adapter:$REDIS_PASSWORD_RISK_ADAPTER); reads need none"
)
basic = HTTPBasic(auto_error=False, realm=REALM,
                  description="Your service's Redis ACL user and its password; the ACL's key patterns decide which "
                              "service names it may register, renew and remove.")


class Writers:
    """Redis clients signed in as the callers of writes: one per (user, password digest), the last
    `size` used kept. Redis checks the password (AUTH), in constant time, and its ACL decides what the
    user may write; the registry keeps no secret of its own. Failed sign-ins are not kept."""

    def __init__(self, connect: Callable[[str, str], redis.Redis], size: int = 32):
        self.connect, self.size = connect, size
        self.clients: OrderedDict = OrderedDict()
        self.lock = threading.Lock()

    def store_for(self, user: str, password: str) -> Store:
        digest = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self.lock:
            client = self.clients.get(digest)
            if client is not None:
                self.clients.move_to_end(digest)
                return Store(client)
        client = self.connect(user, password)
        client.ping()  # signs in: a wrong user or password raises redis.AuthenticationError here
        with self.lock:
            self.clients[digest] = client
            while len(self.clients) > self.size:
                _, evicted = self.clients.popitem(last=False)
                evicted.close()
        return Store(client)


class RegistryState:
    """One per app: the store (as the registry's own user, for reads and the stack's own services),
    the callers' writers, the metrics, the settings, and the keys seen by the last full read."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics, writers: Writers):
        self.settings, self.store, self.metrics, self.writers = settings, store, metrics, writers
        self.seen: set = set()

    def read_all(self) -> List[Dict[str, str]]:
        """Every readable instance; counts the skipped keys and the expiries."""
        listing = self.store.listing()
        self.metrics.unreadable.set(len(listing.unreadable))
        self.track_expiries(list(listing.instances))
        return list(listing.instances.values())

    def track_expiries(self, keys: list) -> None:
        """Instances seen before and gone now, without a DELETE, expired."""
        current = set(keys)
        self.metrics.expiries.inc(len(self.seen - current))
        self.seen.clear()
        self.seen.update(current)
        self.metrics.instances.set(len(current))


def state(request: Request) -> RegistryState:
    return request.app.state.registry


def writer(credentials: Optional[HTTPBasicCredentials] = Depends(basic),
           registry: RegistryState = Depends(state)) -> Store:
    """The store as the caller's Redis ACL user: 401 without credentials or with wrong ones."""
    challenge = {"WWW-Authenticate": f'Basic realm="{REALM}"'}
    if credentials is None:
        raise HTTPException(status_code=401, detail=HOW_TO_AUTHENTICATE, headers=challenge)
    try:
        return registry.writers.store_for(credentials.username, credentials.password)
    except redis.AuthenticationError:
        raise HTTPException(status_code=401, headers=challenge,
                            detail=f"Redis refused user {credentials.username[:64]!r} with this password: "
                                   + HOW_TO_AUTHENTICATE) from None


def writable(name: str, registry: RegistryState) -> None:
    """The stack's own services are written by the registry alone (its infrastructure monitor)."""
    if name in registry.settings.reserved_names:
        raise HTTPException(status_code=403, detail=f"{name} is one of the stack's own services: only the registry "
                                                    "registers it")
