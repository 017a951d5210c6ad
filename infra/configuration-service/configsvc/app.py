"""The configuration service's HTTP app (FastAPI): wires the store, Redis, the state the routes
depend on (configsvc/deps.py), the routes (configsvc/routes.py), the change listener, and the request
guard and error handlers it shares with the registry (servicekit). Compatible with Debian 13's
FastAPI 0.115 / pydantic 2.10 / redis-py 6 and with the newer releases pip installs on the host."""
from __future__ import annotations

import contextlib
import logging
from typing import Callable, Optional

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from configsvc.deps import ConfigState
from configsvc.model import Invalid
from configsvc.routes import router
from configsvc.settings import Settings
from configsvc.store import PostgresStore, Store, StoreUnavailable
from servicekit.hosts import TrustedHosts
from servicekit.http import RequestGuard, add_error_handlers
from servicekit.readcache import CachedReads
from servicekit.redis_client import connect
from servicekit.signin import RedisSignIns

log = logging.getLogger("configsvc")


# One parameter as a service sees it, and the lists: 200s kept at most 1 s (a change forgets them at once).
CACHED_ROUTES = ("/api/v1/configuration/{key}", "/api/v1/configuration")


def redis_client_for(settings: Settings) -> redis.Redis:
    return connect(settings.redis_url, settings.redis_user, settings.redis_password)


def create_app(settings: Optional[Settings] = None, store: Optional[Store] = None,
               redis_client: Optional[redis.Redis] = None, listen: bool = True,
               connect_as: Optional[Callable[[str, str], redis.Redis]] = None) -> FastAPI:
    """The API over `store` (PostgreSQL from `settings` when none) and `redis_client`. listen: subscribe
    to config:changes while the app runs, so waits end on changes made by other instances too. Editors
    sign in through `connect_as(user, password)` (a client from `settings`' URL when None)."""
    settings = settings or Settings.from_environment().with_passwords()
    owns_store = store is None
    connect_as = connect_as or (lambda user, password: connect(settings.redis_url, user, password))
    config = ConfigState(settings, store or PostgresStore.open(settings), redis_client or redis_client_for(settings),
                         RedisSignIns(connect_as))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if listen:
            config.listener.start()
        yield
        config.listener.stop()
        if owns_store:
            config.store.close()

    app = FastAPI(title="Trading ecosystem configuration service", version="1.0.0", lifespan=lifespan,
                  description="Typed parameters per environment and service, with history, optimistic locking "
                              "(ETag / If-Match) and change notifications on Redis channel config:changes.")
    app.state.config = config
    app.state.notifier = config.notifier  # the seed announces what it writes through it (__main__)
    # Innermost: reads answered from memory still pass the request metrics (servicekit/readcache.py);
    # the service a read is for may come in X-Service-Name; a long poll (wait_version) always waits.
    app.add_middleware(CachedReads, cache=config.cache, routes=CACHED_ROUTES, vary=(b"x-service-name",),
                       uncached=("wait_version",), on_hit=config.metrics.read_from_memory)
    # Outside the kept reads: an answer from memory is refused a foreign Host too (DNS rebinding).
    app.add_middleware(TrustedHosts, allowed_hosts=list(settings.allowed_hosts))
    app.add_middleware(RequestGuard, metrics=config.metrics)
    app.include_router(router)
    add_error_handlers(app, "configuration service", log,
                       {StoreUnavailable: ("PostgreSQL", config.metrics.storage_errors.inc),
                        # Only a new editor's sign-in needs Redis: a signed-in editor writes through an outage.
                        redis.RedisError: ("Redis", lambda: None)})

    @app.exception_handler(Invalid)
    async def invalid_input(request: Request, error: Invalid):
        return JSONResponse({"detail": [{"field": error.field, "problem": error.problem}]}, status_code=422)

    return app
