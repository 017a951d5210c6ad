"""The configuration service's HTTP API (FastAPI). Compatible with Debian 13's FastAPI 0.115 /
pydantic 2.10 / redis-py 6 and with the newer releases pip installs on the host."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from typing import Callable, Optional, Tuple

import redis
from fastapi import FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.backoff import NoBackoff
from redis.retry import Retry
from starlette.concurrency import run_in_threadpool

from configsvc.metrics import Metrics
from configsvc.model import (
    ENDPOINT_PREFIX,
    Invalid,
    Row,
    canonical_environment,
    check_description,
    check_key,
    check_service,
    history_view,
    normalise_value,
    now_rfc3339,
    parameter_view,
    resolve,
    resolved_view,
)
from configsvc.notifier import ChangeListener, ChangeSignal, Notifier
from configsvc.schemas import (
    Endpoints,
    Health,
    History,
    Parameter,
    ParameterIn,
    ParameterList,
    ParameterUpdate,
    Problem,
)
from configsvc.settings import Settings
from configsvc.store import PostgresStore, Store, StoreUnavailable, VersionConflict

MAX_BODY_BYTES = 64 * 1024
HEALTH_TIMEOUT_S = 2.0          # each dependency's probe: /health answers within ~2 s even when one hangs
MAX_HANGING_PROBES = 4          # probes still stuck in a hung dependency; past this, it is reported down at once
RECHECK_S = 1.0                 # a waiting request reads again at least this often, signalled or not
MAX_AUTHOR_CHARS = 200
IF_MATCH = re.compile(r'^(W/)?"?([0-9]{1,18})"?$')
PREFIX = re.compile(r"^[A-Za-z0-9_.]*$")
log = logging.getLogger("configsvc")

ENVIRONMENT_DOC = "development, testing or production (or dev, test, prod); default: the service's default"
SERVICE_DOC = "a service name: its own value wins over the environment-wide one"
PROBLEMS = {404: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}}


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


def author(updated_by: Optional[str], service_name: Optional[str]) -> str:
    """Who writes: X-Updated-By, else X-Service-Name, else "api"."""
    for candidate in (updated_by, service_name):
        if candidate and candidate.strip():
            return candidate.strip()[:MAX_AUTHOR_CHARS]
    return "api"


def expected_version(if_match: str) -> int:
    """The version in If-Match (3, "3" or W/"3"); raises Invalid otherwise."""
    found = IF_MATCH.match(if_match.strip())
    if not found:
        raise Invalid("If-Match", f"If-Match must be a version such as 3 or \"3\", not {if_match[:40]!r}")
    return int(found.group(2))


def parameter_response(row: Row, status_code: int = 200) -> JSONResponse:
    return JSONResponse(parameter_view(row), status_code=status_code, headers={"ETag": f'"{row.version}"'})


def precondition_failed(key: str, expected: int, current: int) -> JSONResponse:
    return JSONResponse({"detail": f"{key} is at version {current}, not {expected}: read it again and retry",
                         "current_version": current}, status_code=412, headers={"ETag": f'"{current}"'})


def create_app(settings: Optional[Settings] = None, store: Optional[Store] = None,
               redis_client: Optional[redis.Redis] = None, listen: bool = True) -> FastAPI:
    """The API over `store` (PostgreSQL from `settings` when none) and `redis_client`. listen: subscribe
    to config:changes while the app runs, so waits end on changes made by other instances too."""
    settings = settings or Settings.from_environment()
    default_environment = canonical_environment(settings.default_environment)
    owns_store = store is None
    store = store or PostgresStore.open(settings)
    client = redis_client or redis_client_for(settings)
    metrics, signal = Metrics(), ChangeSignal()
    notifier = Notifier(client, signal, metrics)
    listener = ChangeListener(client, signal)
    hanging = threading.BoundedSemaphore(MAX_HANGING_PROBES)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        if listen:
            listener.start()
        yield
        listener.stop()
        if owns_store:
            store.close()

    app = FastAPI(title="Trading ecosystem configuration service", version="1.0.0", lifespan=lifespan,
                  description="Typed parameters per environment and service, with history, optimistic locking "
                              "(ETag / If-Match) and change notifications on Redis channel config:changes.")
    app.state.store, app.state.notifier, app.state.metrics, app.state.listener = store, notifier, metrics, listener
    app.add_middleware(RequestGuard, metrics=metrics)

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

    def locate(key: str, environment: Optional[str], service: Optional[str]) -> Tuple[str, str]:
        """(environment, service) of a request after checking them and the key; raises Invalid."""
        check_key(key)
        return canonical_environment(environment, default_environment), check_service(service)

    def lookup(environment: str, key: str, service: str) -> Optional[Row]:
        """The row `service` sees for `key` in `environment` (its own over the environment-wide one)."""
        return resolve(store.get_rows(environment, key, ["", service] if service else [""]), service)

    def exact_row(environment: str, service: str, key: str) -> Optional[Row]:
        rows = store.get_rows(environment, key, [service])
        return rows[0] if rows else None

    def not_found(key: str, environment: str, service: str) -> HTTPException:
        return HTTPException(status_code=404, detail=f"no parameter {key} in {environment}" + (
            f" for service {service}" if service else ""))

    async def wait_for_change(environment: str, key: str, service: str, after: int, timeout_s: float) -> Optional[Row]:
        """The resolved row once its version exceeds `after` (a missing key counts as 0); None at the timeout."""
        deadline = time.monotonic() + timeout_s
        with signal.watching(environment, key) as changed, metrics.waiting.track_inprogress():
            while True:
                changed.clear()    # before reading: a change landing after the read still wakes the wait below
                row = await run_in_threadpool(lookup, environment, key, service)
                if (row.version if row else 0) > after:
                    return row
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(RECHECK_S, remaining))

    async def read_parameter(key: str, environment: Optional[str], service: Optional[str],
                             wait_version: Optional[int], timeout: Optional[float]) -> Response:
        environment, service = locate(key, environment, service)
        if wait_version is None:
            if timeout is not None:
                raise Invalid("timeout", "timeout is how long to wait for a change: give wait_version too")
            row = await run_in_threadpool(lookup, environment, key, service)
        else:
            row = await wait_for_change(environment, key, service, wait_version,
                                        timeout if timeout is not None else min(30.0, settings.max_wait_s))
            metrics.waits.labels("changed" if row else "timeout").inc()
            if row is None:
                current = await run_in_threadpool(lookup, environment, key, service)
                return Response(status_code=304, headers={"ETag": f'"{current.version if current else 0}"'})
        metrics.reads.labels("found" if row else "missing").inc()
        if row is None:
            raise not_found(key, environment, service)
        return parameter_response(row)

    def wait_version_query():
        return Query(default=None, ge=0, le=2**63 - 1,
                     description="answer as soon as the version exceeds this (304 at the timeout)")

    def timeout_query():
        return Query(default=None, gt=0, le=settings.max_wait_s,
                     description=f"seconds to wait with wait_version (default {min(30.0, settings.max_wait_s):g})")

    single = {**PROBLEMS, 200: {"model": Parameter, "description": "the parameter, with ETag: \"<version>\""},
              304: {"description": "wait_version: no newer version before the timeout"}}

    @app.get("/api/v1/configuration/{key}", responses=single, summary="One parameter, as a service sees it")
    async def get_parameter(key: str = Path(max_length=256),
                            environment: Optional[str] = Query(default=None, max_length=64,
                                                               description=ENVIRONMENT_DOC),
                            service: Optional[str] = Query(default=None, max_length=64, description=SERVICE_DOC),
                            wait_version: Optional[int] = wait_version_query(),
                            timeout: Optional[float] = timeout_query(),
                            x_service_name: Optional[str] = Header(default=None, description="service, when no "
                                                                   "?service= is given")):
        return await read_parameter(key, environment, service if service is not None else x_service_name,
                                    wait_version, timeout)

    @app.get("/api/v1/configuration", responses={**single, 200: {"model": ParameterList, "description": (
        "with ?key=: that parameter (as GET /api/v1/configuration/{key}); without: the list")}},
             summary="One parameter (?key=) or the parameters of an environment")
    async def list_parameters(key: Optional[str] = Query(default=None, max_length=256),
                              environment: Optional[str] = Query(default=None, max_length=64,
                                                                 description=ENVIRONMENT_DOC),
                              service: Optional[str] = Query(default=None, max_length=64, description=SERVICE_DOC),
                              prefix: str = Query(default="", max_length=200, description="keys starting with this"),
                              wait_version: Optional[int] = wait_version_query(),
                              timeout: Optional[float] = timeout_query(),
                              x_service_name: Optional[str] = Header(default=None)):
        service = service if service is not None else x_service_name
        if key is not None:
            return await read_parameter(key, environment, service, wait_version, timeout)
        if wait_version is not None or timeout is not None:
            raise Invalid("wait_version", "waiting is for one parameter: give key too")
        if not PREFIX.match(prefix):
            raise Invalid("prefix", "a key prefix has letters, digits, underscores and dots only")
        environment, service = canonical_environment(environment, default_environment), check_service(service)
        if service:
            rows = resolved_view(await run_in_threadpool(store.list_rows, environment, ["", service], prefix), service)
        else:
            rows = await run_in_threadpool(store.list_rows, environment, None, prefix)
        metrics.reads.labels("list").inc()
        return {"environment": environment, "service": service or None, "prefix": prefix, "count": len(rows),
                "parameters": [parameter_view(row) for row in rows]}

    @app.post("/api/v1/configuration", status_code=201, summary="Create or change a parameter", responses={
        **PROBLEMS, 201: {"model": Parameter, "description": "created"},
        200: {"model": Parameter, "description": "changed (new version) or already so (same version)"}})
    def put_parameter(body: ParameterIn, x_updated_by: Optional[str] = Header(default=None),
                      x_service_name: Optional[str] = Header(default=None)):
        environment, service = locate(body.key, body.environment, body.service)
        description = None if body.description is None else check_description(body.description)
        value = normalise_value(body.key, body.type, body.value, service)
        change = store.upsert(environment, service, body.key, body.type, value, description,
                              author(x_updated_by, x_service_name))
        metrics.changed(change)
        notifier.announce(change)
        return parameter_response(change.row, 201 if change.change == "created" else 200)

    @app.put("/api/v1/configuration/{key}", summary="Change a parameter at the version read (If-Match)",
             responses={**PROBLEMS, 200: {"model": Parameter}, 412: {"model": Problem, "description": (
                 "the parameter moved on: current_version says where")}, 428: {"model": Problem}})
    def update_parameter(body: ParameterUpdate, key: str = Path(max_length=256),
                         environment: Optional[str] = Query(default=None, max_length=64, description=ENVIRONMENT_DOC),
                         service: Optional[str] = Query(default=None, max_length=64, description="none: the "
                                                        "environment-wide parameter"),
                         if_match: Optional[str] = Header(default=None, description="the version read: 3, \"3\" "
                                                          "or W/\"3\""),
                         x_updated_by: Optional[str] = Header(default=None),
                         x_service_name: Optional[str] = Header(default=None)):
        environment, service = locate(key, environment, service)
        if if_match is None:
            raise HTTPException(status_code=428, detail="a change needs If-Match: <version> (the ETag as read)")
        expected = expected_version(if_match)
        current = exact_row(environment, service, key)
        if current is None:
            raise not_found(key, environment, service)
        type_ = body.type or current.type
        description = None if body.description is None else check_description(body.description)
        value = normalise_value(key, type_, body.value, service)
        try:
            change = store.upsert(environment, service, key, type_, value, description,
                                  author(x_updated_by, x_service_name), expected_version=expected)
        except VersionConflict as conflict:
            if conflict.current is None:
                raise not_found(key, environment, service) from None
            return precondition_failed(key, expected, conflict.current)
        metrics.changed(change)
        notifier.announce(change)
        return parameter_response(change.row)

    @app.delete("/api/v1/configuration/{key}", status_code=204, summary="Delete a parameter",
                responses={**PROBLEMS, 412: {"model": Problem}})
    def delete_parameter(key: str = Path(max_length=256),
                         environment: Optional[str] = Query(default=None, max_length=64, description=ENVIRONMENT_DOC),
                         service: Optional[str] = Query(default=None, max_length=64),
                         if_match: Optional[str] = Header(default=None, description="optional: delete only at "
                                                          "this version"),
                         x_updated_by: Optional[str] = Header(default=None),
                         x_service_name: Optional[str] = Header(default=None)):
        environment, service = locate(key, environment, service)
        expected = expected_version(if_match) if if_match is not None else None
        try:
            change = store.delete(environment, service, key, author(x_updated_by, x_service_name), expected)
        except VersionConflict as conflict:
            return precondition_failed(key, expected, conflict.current)
        if change is None:
            raise not_found(key, environment, service)
        metrics.changed(change)
        notifier.announce(change)
        return Response(status_code=204)

    @app.get("/api/v1/configuration/{key}/history", response_model=History, responses=PROBLEMS,
             summary="The changes of one parameter, newest first")
    def parameter_history(key: str = Path(max_length=256),
                          environment: Optional[str] = Query(default=None, max_length=64, description=ENVIRONMENT_DOC),
                          service: Optional[str] = Query(default=None, max_length=64)):
        environment, service = locate(key, environment, service)
        entries = store.history(environment, service, key)
        if not entries:
            raise not_found(key, environment, service)
        return {"key": key, "environment": environment, "service": service or None,
                "history": [history_view(entry) for entry in entries]}

    @app.get("/api/v1/endpoints", response_model=Endpoints, responses=PROBLEMS,
             summary="The environment's endpoints (the environment-wide endpoints.* parameters)")
    def endpoints(environment: Optional[str] = Query(default=None, max_length=64, description=ENVIRONMENT_DOC)):
        environment = canonical_environment(environment, default_environment)
        rows = store.list_rows(environment, [""], ENDPOINT_PREFIX)
        return {"environment": environment, "endpoints": {row.key[len(ENDPOINT_PREFIX):]: row.value for row in rows}}

    def in_daemon_thread(check: Callable[[], object]) -> asyncio.Future:
        """A future of check(), run in a daemon thread: one that hangs holds up neither /health nor the
        process's exit (run_in_threadpool cannot be abandoned, an executor's threads are joined at exit)."""
        loop, future = asyncio.get_running_loop(), asyncio.get_running_loop().create_future()

        def settle(setter: Callable, value) -> None:
            if not future.done():      # not abandoned at the timeout meanwhile
                setter(value)

        def run() -> None:
            try:
                outcome = (future.set_result, check())
            except Exception as error:  # noqa: BLE001 - handed to the waiting coroutine
                outcome = (future.set_exception, error)
            finally:
                hanging.release()
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits for this any more
                loop.call_soon_threadsafe(settle, *outcome)

        if not hanging.acquire(blocking=False):
            future.set_exception(TimeoutError(f"{MAX_HANGING_PROBES} earlier probes have not answered yet"))
            return future
        threading.Thread(target=run, name="health-probe", daemon=True).start()
        return future

    async def probe(check: Callable[[], object]) -> dict:
        """{"status": "healthy", "latency_ms"} or {"status": "unhealthy", "error"}, within HEALTH_TIMEOUT_S even
        when the dependency hangs."""
        started = time.perf_counter()
        try:
            await asyncio.wait_for(in_daemon_thread(check), HEALTH_TIMEOUT_S)
        except asyncio.TimeoutError:
            return {"status": "unhealthy", "error": f"no answer within {HEALTH_TIMEOUT_S:g} s"}
        except Exception as error:  # noqa: BLE001 - whatever failed, the dependency is down, and why is reported
            return {"status": "unhealthy", "error": " ".join(str(error).split())[:300] or type(error).__name__}
        return {"status": "healthy", "latency_ms": round((time.perf_counter() - started) * 1000, 1)}

    @app.get("/health", response_model=Health, responses={503: {"model": Health, "description": "PostgreSQL is "
                                                                 "unreachable"}},
             summary="healthy; degraded (200) without Redis; unhealthy (503) without PostgreSQL")
    async def health():
        postgres, redis_state = await asyncio.gather(probe(store.ping), probe(client.ping))
        if postgres["status"] != "healthy":
            status = "unhealthy"
        else:
            status = "healthy" if redis_state["status"] == "healthy" else "degraded"
        body = {"status": status, "timestamp": now_rfc3339(), "postgres": postgres, "redis": redis_state}
        return JSONResponse(body, status_code=503 if status == "unhealthy" else 200)

    @app.get("/metrics", summary="Prometheus metrics")
    def prometheus_metrics():
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
