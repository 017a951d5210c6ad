"""The Redis client both services use."""
from __future__ import annotations

from typing import Optional

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from servicekit import tls


def connect(url: str, username: Optional[str], password: Optional[str]) -> redis.Redis:
    """A client that gives up after 2 s and retries once, at once: a connection dropped by a Redis
    restart is retried, but while Redis is away (or paused) the service answers 503 at once instead
    of stalling its clients and its healthcheck. In production mode over TLS (servicekit.tls)."""
    transport = tls.current()
    return redis.Redis.from_url(
        transport.redis_url(url), username=username, password=password or None, decode_responses=True,
        **transport.redis_options(),
        socket_timeout=2, socket_connect_timeout=2, health_check_interval=10, retry=Retry(NoBackoff(), 1),
    )
