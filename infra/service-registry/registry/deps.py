"""What the routes depend on: the registry's state (its store, metrics and settings) and the
caller's token for writes."""
from __future__ import annotations

from typing import Dict, List, Optional

from fastapi import Depends, Header, HTTPException, Request

from registry.metrics import Metrics
from registry.settings import Settings
from registry.store import Store


class RegistryState:
    """One per app: the store, the metrics, the settings, and the keys seen by the last full read."""

    def __init__(self, settings: Settings, store: Store, metrics: Metrics):
        self.settings, self.store, self.metrics = settings, store, metrics
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


def authorised(authorization: Optional[str] = Header(default=None), registry: RegistryState = Depends(state)) -> None:
    """Writes need `Authorization: Bearer <REGISTRY_API_TOKEN>` when a token is set."""
    token = registry.settings.api_token
    if token and authorization != f"Bearer {token}":
        raise HTTPException(status_code=401, detail="writes need Authorization: Bearer <REGISTRY_API_TOKEN>",
                            headers={"WWW-Authenticate": "Bearer"})
