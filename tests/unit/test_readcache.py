"""The read cache both services put in front of their read endpoints (servicekit/readcache.py), over
an in-memory Redis (fakeredis): kept answers, forgotten on a change event of any worker, never older
than the bound, never used without a subscription, one computation per key at a time."""
from __future__ import annotations

import asyncio
import time

import fakeredis
import pytest
import redis

from servicekit.readcache import CachedReads, ReadCache

CHANNEL = "test:changes"


class Route:
    path = "/items/{name}"


class CountingApp:
    """An ASGI app answering /items/<name> with a body naming how many times it computed."""

    def __init__(self, delay_s: float = 0.0):
        self.calls, self.delay_s = 0, delay_s

    async def __call__(self, scope, receive, send):
        self.calls += 1
        calls = self.calls
        await asyncio.sleep(self.delay_s)
        scope["route"] = Route()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": f"{calls}".encode()})


def get(middleware, path="/items/a", query=b"", headers=()):
    """One GET through the middleware; the body it answered."""
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": path, "query_string": query, "headers": list(headers)}
    return middleware(scope, receive, send), sent


def answer(middleware, **request) -> str:
    call, sent = get(middleware, **request)
    asyncio.run(call)
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()


@pytest.fixture
def server():
    return fakeredis.FakeServer()


def cache_on(server, **options) -> ReadCache:
    return ReadCache(fakeredis.FakeRedis(server=server, decode_responses=True), CHANNEL, **options)


def test_an_answer_is_kept_and_forgotten_when_any_worker_announces_a_change(server):
    app, other_worker = CountingApp(), cache_on(server)
    reads = CachedReads(app, cache_on(server), ["/items/{name}"])
    assert [answer(reads), answer(reads)] == ["1", "1"]
    other_worker.changed()
    assert answer(reads) == "2"


def test_no_answer_is_older_than_the_bound(server):
    reads = CachedReads(CountingApp(), cache_on(server, max_age_s=0.05), ["/items/{name}"])
    assert answer(reads) == "1"
    time.sleep(0.06)
    assert answer(reads) == "2"


def test_without_a_subscription_every_read_reaches_the_app(server):
    class Away:
        def subscribe(self, *channels):
            raise redis.ConnectionError("Redis is away")

        def close(self):
            pass

    class Unsubscribable(fakeredis.FakeRedis):
        def pubsub(self, **kwargs):
            return Away()

    reads = CachedReads(CountingApp(), ReadCache(Unsubscribable(server=server), CHANNEL), ["/items/{name}"])
    assert [answer(reads), answer(reads)] == ["1", "2"]


def test_queries_varying_headers_and_long_polls_are_kept_apart(server):
    reads = CachedReads(CountingApp(), cache_on(server), ["/items/{name}"], vary=(b"x-service-name",),
                        uncached=("wait_version",))
    assert answer(reads, query=b"a=1") == "1"
    assert answer(reads, query=b"a=2") == "2"
    assert answer(reads, query=b"a=1", headers=[(b"x-service-name", b"risk-monitor")]) == "3"
    assert answer(reads, query=b"a=1") == "1"
    assert answer(reads, query=b"wait_version=3") == "4"
    assert answer(reads, query=b"wait_version=3") == "5"
    assert answer(reads, path="/other") == "6"  # not one of the routes: never kept


def test_concurrent_reads_of_one_key_compute_it_once(server):
    app = CountingApp(delay_s=0.05)
    reads = CachedReads(app, cache_on(server), ["/items/{name}"])

    async def many():
        calls = [get(reads) for _ in range(20)]
        await asyncio.gather(*(call for call, _ in calls))
        return {b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body") for _, sent in calls}

    assert asyncio.run(many()) == {b"1"} and app.calls == 1


def test_an_answer_computed_before_a_change_is_not_kept(server):
    cache = cache_on(server)
    assert cache.listening()
    since = time.monotonic()
    cache.clear()  # a change arrived while the answer was being computed
    assert cache.put("/items/a?", Route(), [], b"stale", since) is None
    assert cache.get("/items/a?") is None


def test_a_change_behind_a_filtered_reply_is_not_missed(server):
    # redis-py's get_message answers None for its health-check PONG: a change queued behind one must
    # still be read before the next answer (it was not: a stale answer after another worker's write).
    class Connection:
        def __init__(self, queued):
            self.queued = queued

        def can_read(self, timeout=0):
            return bool(self.queued)

    class PubSub:
        def __init__(self, queued):
            self.connection = Connection(queued)

        def get_message(self, timeout=0.0):
            return self.connection.queued.pop(0) if self.connection.queued else None

    reads = CachedReads(CountingApp(), cache_on(server), ["/items/{name}"])
    assert [answer(reads), answer(reads)] == ["1", "1"]
    reads.cache.pubsub = PubSub([None, {"type": "message", "data": "changed"}])
    assert answer(reads) == "2"
