"""Instances in Redis: one hash per instance at registry:services:{name}:{instance_id}, with a TTL.

Lookups use SCAN (KEYS is a @dangerous command the registry's ACL user may not run). Writes that
must not resurrect an expired instance use WATCH/MULTI.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Dict, List, Optional

import redis

PREFIX = "registry:services:"


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def key(name: str, instance_id: str) -> str:
    return f"{PREFIX}{name}:{instance_id}"


class Store:
    def __init__(self, client: redis.Redis):
        self.redis = client

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
        return self.redis.hget(key(name, instance_id), "registered_at")

    def heartbeat(self, name: str, instance_id: str, status: Optional[str], default_ttl_s: int) -> Optional[Dict]:
        """Renew an instance's TTL (and status); None when it is unknown or has expired."""
        k = key(name, instance_id)
        with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(k)
                    current = pipe.hgetall(k)
                    if not current:
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

    def keys(self, name: Optional[str] = None) -> List[str]:
        pattern = f"{PREFIX}{name}:*" if name else f"{PREFIX}*"
        return sorted(self.redis.scan_iter(match=pattern, count=1000))

    def instances(self, name: Optional[str] = None) -> List[Dict[str, str]]:
        """Every live instance (of `name`), read with one pipelined HGETALL per key."""
        found = self.keys(name)
        if not found:
            return []
        with self.redis.pipeline(transaction=False) as pipe:
            for k in found:
                pipe.hgetall(k)
            hashes = pipe.execute()
        # A key can expire between SCAN and HGETALL: it then reads back empty.
        return [h for h in hashes if h]
