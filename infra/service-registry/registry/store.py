"""Instances in Redis, under registry:services:, in the two layouts the registry's users write:

- the registry's own, one hash per instance at registry:services:{name}:{instance_id} (POST
  /api/v1/services), with a TTL;
- the one risk-monitor-py and trading-engine-py write themselves (their service_discovery.py), one
  hash per service at registry:services:{name}, its TTL set and renewed by the writer.

Lookups use SCAN (KEYS is a @dangerous command the registry's ACL user may not run). Writes that
must not resurrect an expired instance use WATCH/MULTI. A key under the prefix that neither layout
reads (wrong type, missing fields, garbage values) is skipped: what a client stored never makes the
registry fail.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional

import redis

from registry.models import PREFIX, Unreadable, read_entry, rfc3339

# Keys already logged as unreadable: each is logged once (bounded, a flood of bad keys cannot grow it).
MAX_LOGGED_KEYS = 10_000
log = logging.getLogger("registry.store")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(timezone.utc))


def key(name: str, instance_id: str) -> str:
    return f"{PREFIX}{name}:{instance_id}"


def glob_escaped(text: str) -> str:
    """`text` matched literally by a SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass
class Listing:
    """What one read of the prefix found: the instances it could read, by key (as hashes of the
    registry's own layout, see models.read_entry), and the keys it skipped, with why."""

    instances: Dict[str, Dict[str, str]] = field(default_factory=dict)
    unreadable: Dict[str, str] = field(default_factory=dict)


class Store:
    def __init__(self, client: redis.Redis):
        self.redis = client
        self.logged: set = set()

    def ping(self) -> bool:
        return bool(self.redis.ping())

    def put(self, fields: Dict[str, str], ttl_s: int) -> bool:
        """Store an instance with its TTL; True when it replaced an existing one."""
        k = key(fields["name"], fields["instance_id"])
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.exists(k)
            pipe.delete(k)
            pipe.hset(k, mapping=fields)
            pipe.expire(k, ttl_s)
            existed, *_ = pipe.execute()
        return bool(existed)

    def registered_at(self, name: str, instance_id: str) -> Optional[str]:
        try:
            return self.redis.hget(key(name, instance_id), "registered_at")
        except redis.ResponseError:  # a client stored something else than a hash there: it is replaced
            return None

    def heartbeat(self, name: str, instance_id: str, status: Optional[str], default_ttl_s: int) -> Optional[Dict]:
        """Renew an instance's TTL (and status); None when it is unknown, has expired or is not one the
        registry can read."""
        k = key(name, instance_id)
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(k)
                    if pipe.type(k) != "hash":
                        pipe.unwatch()
                        return None
                    current = pipe.hgetall(k)
                    try:
                        read_entry(k, current, None)
                    except Unreadable:
                        pipe.unwatch()
                        return None
                    ttl_s = int(current.get("ttl_seconds") or default_ttl_s)
                    updates = {"last_heartbeat": now_rfc3339(), **({"status": status} if status else {})}
                    pipe.multi()
                    pipe.hset(k, mapping=updates)
                    pipe.expire(k, ttl_s)
                    pipe.execute()
                    return {**current, **updates}
                except redis.WatchError:
                    continue

    def delete(self, name: str, instance_id: str) -> bool:
        return bool(self.redis.delete(key(name, instance_id)))

    def instances(self, name: Optional[str] = None) -> List[Dict[str, str]]:
        return list(self.listing(name).instances.values())

    def listing(self, name: Optional[str] = None) -> Listing:
        """Every live instance (of `name`, in both layouts), read with one pipelined HGETALL and TTL per
        key; unreadable keys skipped and logged once each."""
        if name is None:
            found = sorted(self.redis.scan_iter(match=f"{PREFIX}*", count=1000))
        else:
            own = sorted(self.redis.scan_iter(match=f"{PREFIX}{glob_escaped(name)}:*", count=1000))
            found = [f"{PREFIX}{name}", *own]
        if not found:
            return Listing()
        with self.redis.pipeline(transaction=False) as pipe:
            for k in found:
                pipe.hgetall(k)
                pipe.ttl(k)
            # A key of another type answers WRONGTYPE: that reply is kept as an error, not raised.
            replies = pipe.execute(raise_on_error=False)
        listing = Listing()
        for k, fields, ttl in zip(found, replies[0::2], replies[1::2], strict=True):
            if isinstance(ttl, Exception):
                raise ttl  # the connection, not a key, failed
            if ttl == -2 or fields == {}:
                continue  # gone between SCAN and HGETALL (expired, deleted) or never there
            try:
                if isinstance(fields, redis.ResponseError):
                    raise Unreadable(f"not a hash ({str(fields).split(' ', 1)[0]})")
                listing.instances[k] = read_entry(k, fields, ttl)
            except Unreadable as why:
                listing.unreadable[k] = str(why)
                self._log_once(k, str(why))
        return listing

    def _log_once(self, k: str, why: str) -> None:
        if k in self.logged or len(self.logged) >= MAX_LOGGED_KEYS:
            return
        self.logged.add(k)
        log.warning("skipping %s: %s (not an instance the registry can read; it is left as it is)", k[:200], why)
