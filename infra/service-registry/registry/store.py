"""Instances in Redis, under registry:services:, in the two layouts the registry's users write:

- the registry's own, one hash per instance at registry:services:{name}:{instance_id} (POST
  /api/v1/services), with a TTL;
- the one risk-monitor-py and trading-engine-py write themselves (their service_discovery.py), one
  hash per service at registry:services:{name}, its TTL set and renewed by the writer.

No request walks the keyspace (Redis is also the domains' cache: a million keys). The registry keeps
an index per name, registry:index:{name}, a sorted set of the instance ids it wrote, scored by when
each expires, and a sorted set of the names, registry:names, scored the same way. Discovery of one
name reads its index and the writer-owned hash by its key; a listing of every service reads the
names, then the same. What the API did not write (a writer-owned hash, an instance stored into Redis
directly) is indexed by the background reconciliation (registry/reconcile.py), which SCANs the
prefix a bounded number of keys at a time. KEYS is a @dangerous command the registry's ACL user may
not run. Writes that must not resurrect an expired instance use WATCH/MULTI. A key under the prefix
that neither layout reads (wrong type, missing fields, garbage values) is skipped: what a client
stored never makes the registry fail.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple

import redis

from registry.models import MAX_JSON_BYTES, PREFIX, Unreadable, json_layout, read_entry, read_json_entry, rfc3339

# Keys already logged as unreadable: each is logged once (bounded, a flood of bad keys cannot grow it).
MAX_LOGGED_KEYS = 10_000
log = logging.getLogger("registry.store")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(timezone.utc))


# Bounds of a read, so no listing reads an unbounded number of instances: the names a listing reads,
# the instances read per name (registrations past it are refused), and the fields of a hash read whole
# (an instance has about 15; a bigger hash is not one, and is skipped as unreadable without HGETALL).
MAX_NAMES = 10_000
MAX_INSTANCES_PER_SERVICE = 100
MAX_FIELDS = 64
INDEX_PREFIX = "registry:index:"
NAMES_KEY = "registry:names"
# How long a writer-owned hash without a TTL stays among the names (a reconciliation pass that
# finds it again renews it).
UNEXPIRING_HORIZON_S = 300


def key(name: str, instance_id: str) -> str:
    return f"{PREFIX}{name}:{instance_id}"


def index_key(name: str) -> str:
    return f"{INDEX_PREFIX}{name}"


# An index member is an instance id of the registry's layout, or "@" and the key of a Go service's
# own JSON entry (models.json_layout), which no id and name rebuild.
FOREIGN_MEMBER = "@"


def member_key(name: str, member: str) -> str:
    return member[1:] if member.startswith(FOREIGN_MEMBER) else key(name, member)


class Index:
    """Per name, the instance ids the registry's API wrote, scored by their expiry (epoch seconds).
    Written by the registry's own Redis user (callers' ACLs do not cover registry:index:), after the
    caller's write succeeded. A member whose instance is gone is skipped by the reader and swept
    once its score has passed; the sorted set itself expires with its longest-lived member."""

    def __init__(self, client: redis.Redis):
        self.redis = client

    def add(self, name: str, instance_id: str, ttl_s: int) -> None:
        self.add_all([(name, instance_id, ttl_s)])

    def add_all(self, instances: list, only_new: bool = False) -> int:
        """Index each (name, instance id or None for a writer-owned hash, seconds left); `only_new`
        leaves the expiry of an id already indexed as it is (the API's write knows it better).
        Returns how many ids and names were not indexed before."""
        now = time.time()
        added = []  # the positions of the ZADDs among the pipeline's answers
        with self.redis.pipeline(transaction=True) as pipe:
            for name, instance_id, ttl_s in instances:
                ttl_s = ttl_s if ttl_s > 0 else UNEXPIRING_HORIZON_S
                expiry = now + ttl_s
                if instance_id is not None:
                    k = index_key(name)
                    added.append(len(pipe))
                    pipe.zadd(k, {instance_id: expiry}, nx=only_new)
                    pipe.expire(k, ttl_s, nx=True)
                    pipe.expire(k, ttl_s, gt=True)
                added.append(len(pipe))
                pipe.zadd(NAMES_KEY, {name: expiry}, gt=True)
            answers = pipe.execute()
        return sum(int(answers[position] or 0) for position in added)

    def live(self, name: str) -> int:
        """How many ids of `name` have not expired yet."""
        return int(self.redis.zcount(index_key(name), time.time(), "+inf"))

    def remove(self, name: str, instance_id: str) -> None:
        self.redis.zrem(index_key(name), instance_id)

    def names(self) -> List[str]:
        """Every name with an instance that has not expired yet (the expired ones swept)."""
        now = time.time()
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(NAMES_KEY, "-inf", now)
            pipe.zrangebyscore(NAMES_KEY, now, "+inf", start=0, num=MAX_NAMES)
            _, names = pipe.execute()
        return list(names)

    def keys(self, names: List[str]) -> List[str]:
        """The keys that can hold instances of `names`: each writer-owned hash, each id indexed and not
        expired yet (the expired ones swept in the same round trip)."""
        now = time.time()
        with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zremrangebyscore(index_key(name), "-inf", now)
                pipe.zrangebyscore(index_key(name), now, "+inf", start=0, num=MAX_INSTANCES_PER_SERVICE)
            indexed = pipe.execute()[1::2]
        return [k for name, ids in zip(names, indexed, strict=True)
                for k in (f"{PREFIX}{name}", *sorted(member_key(name, member) for member in ids))]


def glob_escaped(text: str) -> str:
    """`text` matched literally by a SCAN MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass
class Listing:
    """What one read of the prefix found: the instances it could read, by key (as hashes of the
    registry's own layout, see models.read_entry), and the keys it skipped, with why."""

    instances: Dict[str, Dict[str, str]] = field(default_factory=dict)
    unreadable: Dict[str, str] = field(default_factory=dict)
    ttls: Dict[str, int] = field(default_factory=dict)  # seconds left, -1 for none


class Store:
    def __init__(self, client: redis.Redis):
        self.redis = client
        self.logged: set = set()
        self.index = Index(client)

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
                    if pipe.type(k) != "hash" or pipe.hlen(k) > MAX_FIELDS:
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
        """Every live instance (of `name`, in both layouts), from the indexes: never a SCAN; at most
        MAX_INSTANCES_PER_SERVICE of a name, of at most MAX_NAMES names."""
        if name is None:
            return self.read(self.index.keys(self.index.names()))
        # The writer-owned hash by its key, the registry's own instances by the index.
        return self.read(self.index.keys([name]))

    def page(self, offset: int, limit: int) -> Tuple[Listing, int]:
        """The live instances of the names `offset` to `offset + limit` (sorted), and how many names there
        are (at most MAX_NAMES)."""
        names = sorted(self.index.names())
        return self.read(self.index.keys(names[offset:offset + limit])), len(names)

    def read(self, found: List[str]) -> Listing:
        """The instances at `found`: the hashes (HLEN, TTL, then HGETALL of those of at most MAX_FIELDS
        fields) and the Go services' JSON strings (STRLEN, TTL, then GET of those of at most
        MAX_JSON_BYTES); keys gone skipped, unreadable ones (another type, an oversized value, bad
        fields) skipped and logged once each."""
        listing = Listing()
        self._read_each([k for k in found if not json_layout(k)], listing, "hlen", "hgetall", MAX_FIELDS,
                        lambda k, size, fields, ttl: read_entry(k, self._fields(size, fields), ttl))
        self._read_each([k for k in found if json_layout(k)], listing, "strlen", "get", MAX_JSON_BYTES,
                        lambda k, size, text, ttl: read_json_entry(k, self._text(size, text), ttl))
        return listing

    def _read_each(self, found: List[str], listing: Listing, measure: str, fetch: str, limit: int, parse) -> None:
        """Into `listing`: one pipeline of `measure` (the value's size) and TTL per key, then one of
        `fetch` of the values of at most `limit`; `parse(key, size, value, ttl)` makes the instance."""
        if not found:
            return
        with self.redis.pipeline(transaction=False) as pipe:
            for k in found:
                getattr(pipe, measure)(k)
                pipe.ttl(k)
            # A key of another type answers WRONGTYPE: that reply is kept as an error, not raised.
            replies = pipe.execute(raise_on_error=False)
        sizes = dict(zip(found, replies[0::2], strict=True))
        whole = [k for k in found if isinstance(sizes[k], int) and 0 < sizes[k] <= limit]
        with self.redis.pipeline(transaction=False) as pipe:
            for k in whole:
                getattr(pipe, fetch)(k)
            contents = dict(zip(whole, pipe.execute(), strict=True)) if whole else {}
        for k, ttl in zip(found, replies[1::2], strict=True):
            if isinstance(ttl, Exception):
                raise ttl  # the connection, not a key, failed
            if ttl == -2 or sizes[k] == 0 or (k in contents and not contents[k]):
                continue  # gone since it was found (expired, deleted) or never there
            try:
                listing.instances[k] = parse(k, sizes[k], contents.get(k), ttl)
                listing.ttls[k] = ttl
            except Unreadable as why:
                listing.unreadable[k] = str(why)
                self._log_once(k, str(why))

    @staticmethod
    def _text(size, text: Optional[str]) -> str:
        """A JSON entry's text as read; Unreadable for another type or an oversized one (never read)."""
        if isinstance(size, redis.ResponseError):
            raise Unreadable(f"not a string ({str(size).split(' ', 1)[0]})")
        if text is None:
            raise Unreadable(f"a string of {size} bytes, over the {MAX_JSON_BYTES} an entry may have")
        return text

    @staticmethod
    def _fields(size, fields: Optional[Dict[str, str]]) -> Dict[str, str]:
        """A hash's fields as read; Unreadable for another type or an oversized hash (never read whole)."""
        if isinstance(size, redis.ResponseError):
            raise Unreadable(f"not a hash ({str(size).split(' ', 1)[0]})")
        if fields is None:
            raise Unreadable(f"a hash of {size} fields, over the {MAX_FIELDS} an instance may have")
        return fields

    def index_found(self, listing: Listing) -> int:
        """Index what a walk of the prefix found (registry/reconcile.py): the instances written into
        Redis directly, not through the API, are then listed and discovered by name too. Returns how
        many ids and names were new."""
        found = []
        for k, instance in listing.instances.items():
            writer_owned = k == f"{PREFIX}{instance['name']}"
            member = FOREIGN_MEMBER + k if json_layout(k) else instance["instance_id"]
            found.append((instance["name"], None if writer_owned else member, listing.ttls[k]))
        return self.index.add_all(found, only_new=True) if found else 0

    def _log_once(self, k: str, why: str) -> None:
        if k in self.logged or len(self.logged) >= MAX_LOGGED_KEYS:
            return
        self.logged.add(k)
        log.warning("skipping %s: %s (not an instance the registry can read; it is left as it is)", k[:200], why)
