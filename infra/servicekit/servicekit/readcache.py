"""Answers of read endpoints kept in memory, so a read that is asked again does no work again.

Coherence: every write publishes on a Redis channel of the service's own (the registry's
registry:changes, the configuration service's config:changes), and each worker process drops every
kept answer when a message arrives. The worker reads its subscription without blocking before each
read it answers. Redis writes the message to every subscriber's socket as it answers the writer's
PUBLISH, so the next read of every worker sees the write; on a loaded machine the message can trail
the writer's answer by a scheduling delay (tens of milliseconds, seen with three stacks on two
cores), which is how long a read may still see the old value. Bounds: an answer is never older than
MAX_AGE_S (what changes without an event, such as an instance a sibling writes into Redis itself, or a
message lost with a connection, is seen within it), and while the subscription is down nothing is
answered from memory at all.
"""
from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from typing import Callable, Iterable, NamedTuple, Optional

import redis

log = logging.getLogger("servicekit.readcache")

MAX_AGE_S = 1.0
MAX_ENTRIES = 1024
RESUBSCRIBE_INTERVAL_S = 1.0
MAX_DRAINED = 1000  # messages read before one answer at most (a flood of changes cannot stall a read)


class Answer(NamedTuple):
    route: object          # the route that answered (its template labels the metrics)
    headers: list          # the ASGI response headers the app sent
    body: bytes
    kept_at: float


class ReadCache:
    def __init__(self, client: redis.Redis, channel: str, max_age_s: float = MAX_AGE_S,
                 max_entries: int = MAX_ENTRIES):
        self.client, self.channel, self.max_age_s, self.max_entries = client, channel, max_age_s, max_entries
        self.answers: OrderedDict = OrderedDict()
        self.pubsub: Optional[redis.client.PubSub] = None
        self.resubscribe_at = self.cleared_at = 0.0

    def get(self, key: str) -> Optional[Answer]:
        """The kept answer for `key` if it is young enough (call listening() first)."""
        answer = self.answers.get(key)
        if answer is None or time.monotonic() - answer.kept_at > self.max_age_s:
            return None
        return answer

    def put(self, key: str, route, headers: Iterable, body: bytes, since: float) -> Optional[Answer]:
        """Keep an answer computed from reads that started at `since` (monotonic) and return it; one
        that may have missed the last change (computed before it) is not kept: None."""
        if self.pubsub is None or since < self.cleared_at:
            return None
        answer = self.answers[key] = Answer(route, list(headers), body, since)
        self.answers.move_to_end(key)
        while len(self.answers) > self.max_entries:
            self.answers.popitem(last=False)
        return answer

    def clear(self) -> None:
        self.cleared_at = time.monotonic()
        self.answers.clear()

    def changed(self, what: str = "") -> None:
        """After a write: forget what this worker kept and tell the others (and their next reads)."""
        self.clear()
        try:
            self.client.publish(self.channel, what or "changed")
        except redis.RedisError as error:  # the others forget within MAX_AGE_S anyway
            log.info("could not publish on %s: %s", self.channel, error)

    def listening(self) -> bool:
        """Drain the change events already received (dropping every kept answer if there was one);
        False while there is no working subscription."""
        if self.pubsub is None and not self._subscribe():
            return False
        try:
            # get_message answers None for what it filters (redis-py's health-check PONG, a subscribe
            # confirmation) too: read on while the connection has anything left.
            for _ in range(MAX_DRAINED):
                if self.pubsub.get_message(timeout=0.0) is not None:
                    self.clear()
                elif not self.pubsub.connection.can_read(timeout=0):
                    break
            return True
        except (redis.RedisError, OSError) as error:
            log.info("subscription to %s lost (%s): answering from Redis until it is back", self.channel, error)
            self._unsubscribe()
            return False

    def _subscribe(self) -> bool:
        now = time.monotonic()
        if now < self.resubscribe_at:
            return False
        self.resubscribe_at = now + RESUBSCRIBE_INTERVAL_S
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(self.channel)
        except (redis.RedisError, OSError) as error:
            log.info("cannot subscribe to %s (%s): answering from Redis", self.channel, error)
            pubsub.close()
            return False
        # A reconnection inside redis-py (its one retry) may have lost messages: forget everything then.
        pubsub.connection.register_connect_callback(self._reconnected)
        self.pubsub = pubsub
        self.clear()  # what was kept before may have missed events
        return True

    def _reconnected(self, connection) -> None:
        self.clear()

    def _unsubscribe(self) -> None:
        self.clear()
        close_quietly(self.pubsub)
        self.pubsub = None


def close_quietly(pubsub: Optional[redis.client.PubSub]) -> None:
    """Close a subscription that may be broken already (what closing it says then is of no use)."""
    if pubsub is not None:
        try:
            pubsub.close()
        except Exception:  # noqa: BLE001 - already broken
            pass


def path_pattern(route: str) -> str:
    """"/api/v1/services/{name}" -> "/api/v1/services/[^/]+", a regular expression of its paths."""
    return "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in re.split(r"(\{[^}]+\})", route))


class CachedReads:
    """ASGI middleware: answers a GET from `cache` when it keeps one for the same path, query and
    `vary` headers; otherwise lets the app answer and keeps a 200 of one of `routes` (route
    templates). Requests for an answer being computed wait for it rather than computing it again (32
    clients asking at the moment an answer expires cost one computation, not 32), unless a change
    came after it started. Queries naming one of `uncached` (a long poll's) always reach the app;
    `on_hit(route template, query)` counts what the app's own counters would have."""

    def __init__(self, app, cache: ReadCache, routes: Iterable[str], vary: Iterable[bytes] = (),
                 uncached: Iterable[str] = (), on_hit: Callable[[str, str], None] = lambda route, query: None):
        self.app, self.cache, self.routes, self.on_hit = app, cache, frozenset(routes), on_hit
        self.vary = tuple(vary)
        self.paths = re.compile("|".join(map(path_pattern, self.routes)))  # the paths that may be kept
        self.uncached = re.compile("|".join(rf"(^|&){re.escape(name)}=" for name in uncached) or r"(?!)")
        self.computing: dict = {}   # key -> (since, future of its Answer or None)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "GET" or not self.paths.fullmatch(scope["path"]):
            return await self.app(scope, receive, send)
        query = scope["query_string"].decode("latin-1")
        if self.uncached.search(query) or not self.cache.listening():
            return await self.app(scope, receive, send)
        key = scope["path"] + "?" + query
        if self.vary:
            headers = dict(scope["headers"])
            key += "".join(f"\n{headers.get(name, b'').decode('latin-1')}" for name in self.vary)
        answer = self.cache.get(key)
        if answer is None and key in self.computing:
            since, future = self.computing[key]
            if since >= self.cache.cleared_at:
                answer = await asyncio.shield(future)
        if answer is not None:
            scope["route"] = answer.route
            self.on_hit(answer.route.path, query)
            await send({"type": "http.response.start", "status": 200, "headers": answer.headers})
            await send({"type": "http.response.body", "body": answer.body})
            return
        await self._compute(key, scope, receive, send)

    async def _compute(self, key, scope, receive, send):
        since, start, chunks = time.monotonic(), {}, []
        future = asyncio.get_running_loop().create_future()
        self.computing[key] = (since, future)

        async def kept_send(message):
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        answer = None
        try:
            await self.app(scope, receive, kept_send)
            route = scope.get("route")
            if start.get("status") == 200 and getattr(route, "path", None) in self.routes:
                answer = self.cache.put(key, route, start.get("headers", []), b"".join(chunks), since)
        finally:
            future.set_result(answer)
            if self.computing.get(key, (None, None))[1] is future:
                del self.computing[key]
