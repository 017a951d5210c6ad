"""The registry's HTTP app (FastAPI): wires the Redis client, the state the routes depend on
(registry/deps.py), the routes (registry/routes.py), the infrastructure monitor, and the request
guard and error handlers it shares with the configuration service (servicekit). Compatible with
Debian 13's FastAPI 0.115 / pydantic 2.10 / redis-py 6 and with the newer releases pip installs on
the host."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Callable, Optional

import redis
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from registry import configuration_route, prometheus_sd
from registry.deps import CACHED_ROUTES, RegistryState
from registry.infrastructure import InfrastructureMonitor
from registry.keyspace import KeyspaceWatch
from registry.metrics import Metrics
from registry.routes import router
from registry.settings import Settings
from registry.store import Store
from servicekit.hosts import TrustedHosts
from servicekit.http import RequestGuard, add_error_handlers, dependency_unavailable
from servicekit.readcache import CachedReads
from servicekit.redis_client import connect
from servicekit.signin import RedisSignIns

log = logging.getLogger("registry")


def create_app(settings: Optional[Settings] = None, client: Optional[redis.Redis] = None,
               connect_as: Optional[Callable[[str, str], redis.Redis]] = None) -> FastAPI:
    """The API over `client` (the registry's own Redis user; from `settings` when None). Writes go
    through `connect_as(user, password)`: a client signed in as the caller (from `settings`' URL when
    None)."""
    settings = settings or Settings.from_environment()
    client = client or connect(settings.redis_url, settings.redis_user, settings.redis_password)
    connect_as = connect_as or (lambda user, password: connect(settings.redis_url, user, password))
    store, metrics = Store(client), Metrics()
    registry = RegistryState(settings, store, metrics, RedisSignIns(connect_as))
    monitor = InfrastructureMonitor(store, settings.infrastructure, settings.probe_interval_s,
                                    settings.postgres_password, lambda event: metrics.redis_errors.inc(),
                                    lambda name, healthy: metrics.infrastructure_healthy.labels(name).set(healthy),
                                    registry.cache.changed)

    # The siblings' own writes and deletions in Redis, heard as they happen (registry/keyspace.py).
    keyspace = KeyspaceWatch(store, registry.cache.changed)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        tasks = [asyncio.create_task(registry.reconciler.run()), asyncio.create_task(keyspace.run())]
        if settings.infrastructure:
            tasks.append(asyncio.create_task(monitor.run()))
        yield
        for task in tasks:
            task.cancel()

    app = FastAPI(title="Trading ecosystem service registry", version="1.0.0", lifespan=lifespan)
    app.state.registry = registry
    app.include_router(router)
    app.include_router(configuration_route.router)
    app.include_router(prometheus_sd.router)
    # Innermost: answers kept in memory still pass the Host check, CORS and the request metrics.
    app.add_middleware(CachedReads, cache=registry.cache, routes=CACHED_ROUTES)
    app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                       allow_headers=["*"])
    app.add_middleware(TrustedHosts, allowed_hosts=list(settings.allowed_hosts))
    app.add_middleware(RequestGuard, metrics=metrics)
    add_error_handlers(app, "registry", log, {redis.RedisError: ("Redis", metrics.redis_errors.inc)})

    redis_unavailable = dependency_unavailable("Redis", metrics.redis_errors.inc, log)

    @app.exception_handler(redis.exceptions.NoPermissionError)
    async def not_permitted(request: Request, error: redis.exceptions.NoPermissionError):
        if request.method in ("GET", "HEAD", "OPTIONS"):
            # Reads run as the registry's own user: refused, the registry is misconfigured, not the caller.
            return await redis_unavailable(request, error)
        # A write runs as the caller's ACL user, whose key patterns name its own services only.
        return JSONResponse({"detail": f"Redis refused this write to the caller's ACL user: {error}. A service "
                                       "registers, renews and removes only the names its ACL key patterns cover "
                                       "(registry:services:<its names>)"}, status_code=403)

    return app
