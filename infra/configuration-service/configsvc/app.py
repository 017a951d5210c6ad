"""The configuration service's HTTP app (FastAPI): wires the store, Redis, the state the routes
depend on (configsvc/deps.py), the routes (configsvc/routes.py), the change listener, the request
guard (body limit, metrics) and the error handlers. Compatible with Debian 13's FastAPI 0.115 /
pydantic 2.10 / redis-py 6 and with the newer releases pip installs on the host."""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Optional

import redis
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.backoff import NoBackoff
from redis.retry import Retry

from configsvc.deps import ConfigState
from configsvc.metrics import Metrics
from configsvc.model import Invalid
from configsvc.routes import router
from configsvc.settings import Settings
from configsvc.store import PostgresStore, Store, StoreUnavailable

MAX_BODY_BYTES = 64 * 1024
log = logging.getLogger("configsvc")


def redis_client_for(settings: Settings) -> redis.Redis:
    # One immediate retry (a connection dropped by a Redis restart), no backoff: while Redis is away
    # a write still answers at once, only its notification is lost.
    return redis.Redis.from_url(
        settings.redis_url, username=settings.redis_user, password=settings.redis_password or None,
        decode_responses=True, socket_timeout=2, socket_connect_timeout=2, health_check_interval=10,
        retry=Retry(NoBackoff(), 1),
    )


class BodyTooLarge(HTTPException):
    def __init__(self):
        super().__init__(status_code=413, detail=f"request body over {MAX_BODY_BYTES} bytes")


class RequestGuard:
    """ASGI middleware: refuses bodies over 64 KiB (by Content-Length, and while streaming when there
    is none or it lies) and records every request's count and latency by route template."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status, received = time.perf_counter(), [500], [0]

        async def recorded_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > MAX_BODY_BYTES:
                    raise BodyTooLarge()
            return message

        length = dict(scope.get("headers") or []).get(b"content-length")
        try:
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                too_large = BodyTooLarge()
                await JSONResponse({"detail": too_large.detail}, status_code=413)(scope, receive, recorded_send)
            else:
                await self.app(scope, limited_receive, recorded_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status[0])).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)


def create_app(settings: Optional[Settings] = None, store: Optional[Store] = None,
               redis_client: Optional[redis.Redis] = None, listen: bool = True) -> FastAPI:
    """The API over `store` (PostgreSQL from `settings` when none) and `redis_client`. listen: subscribe
    to config:changes while the app runs, so waits end on changes made by other instances too."""
    settings = settings or Settings.from_environment()
    owns_store = store is None
    config = ConfigState(settings, store or PostgresStore.open(settings), redis_client or redis_client_for(settings))

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
    app.add_middleware(RequestGuard, metrics=config.metrics)
    app.include_router(router)
    add_error_handlers(app, config.metrics)
    return app


def add_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    @app.exception_handler(Invalid)
    async def invalid_input(request: Request, error: Invalid):
        return JSONResponse({"detail": [{"field": error.field, "problem": error.problem}]}, status_code=422)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, error: StoreUnavailable):
        metrics.storage_errors.inc()
        return JSONResponse({"detail": f"PostgreSQL is unavailable: {error}"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e.get("msg")}
                    for e in error.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        # Nothing a client sends may produce a 500: log the bug, answer that the service cannot serve it.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "the configuration service could not process this request"}, status_code=503)
