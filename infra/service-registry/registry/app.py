"""The registry's HTTP app (FastAPI): wires the Redis client, the state the routes depend on
(registry/deps.py), the routes (registry/routes.py), the infrastructure monitor, the body limit,
metrics middleware and error handlers. Compatible with Debian 13's FastAPI 0.115 / pydantic 2.10 /
redis-py 6 and with the newer releases pip installs on the host."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Optional

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from redis.backoff import NoBackoff
from redis.retry import Retry

from registry.deps import RegistryState
from registry.infrastructure import InfrastructureMonitor
from registry.metrics import Metrics
from registry.routes import router
from registry.settings import Settings
from registry.store import Store

MAX_BODY_BYTES = 64 * 1024
log = logging.getLogger("registry")


def create_app(settings: Optional[Settings] = None, client: Optional[redis.Redis] = None) -> FastAPI:
    settings = settings or Settings.from_environment()
    # One immediate retry (a connection dropped by a Redis restart), no backoff: while Redis is away
    # the registry answers 503 at once instead of stalling its clients and its healthcheck.
    client = client or redis.Redis.from_url(
        settings.redis_url, username=settings.redis_user, password=settings.redis_password or None,
        decode_responses=True, socket_timeout=2, socket_connect_timeout=2, health_check_interval=10,
        retry=Retry(NoBackoff(), 1),
    )
    store, metrics = Store(client), Metrics()
    monitor = InfrastructureMonitor(store, settings.infrastructure, settings.probe_interval_s,
                                    settings.postgres_password, lambda event: metrics.redis_errors.inc(),
                                    lambda name, healthy: metrics.infrastructure_healthy.labels(name).set(healthy))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(monitor.run()) if settings.infrastructure else None
        yield
        if task:
            task.cancel()

    app = FastAPI(title="Trading ecosystem service registry", version="1.0.0", lifespan=lifespan)
    app.state.registry = RegistryState(settings, store, metrics)
    app.include_router(router)
    app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                       allow_headers=["*"])

    @app.middleware("http")
    async def limits_and_latency(request: Request, call_next):
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        if request.method in ("POST", "PUT", "PATCH") and length is None:
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        return response

    add_error_handlers(app, metrics)
    return app


def add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(redis.RedisError)
    async def redis_unavailable(request: Request, error: redis.RedisError):
        metrics.redis_errors.inc()
        return JSONResponse({"status": "unhealthy", "detail": f"Redis is unavailable: {error}"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e.get("msg")}
                    for e in error.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        # Nothing a client sends may produce a 500: log the bug, answer that the service cannot serve it.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "the registry could not process this request"}, status_code=503)
