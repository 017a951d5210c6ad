"""The HTTP layer both services share: a request guard (body limit, request metrics by route, a
request id on every answer) and the error handlers that keep every answer JSON and no client input a
500. A backend's error is logged with the request id; the client gets the id and a generic message."""
from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Callable, Dict, Tuple, Type

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from servicekit.errors import one_line

MAX_BODY_BYTES = 64 * 1024
# A caller's own X-Request-ID is kept when it is a plain token (it ties the caller's logs to ours);
# anything else is replaced, so no header can forge log lines.
REQUEST_ID_HEADER = b"x-request-id"
CALLERS_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")


def request_id(request: Request) -> str:
    """The id RequestGuard gave this request ("-" outside it)."""
    return request.scope.get("state", {}).get("request_id", "-")


class BodyTooLarge(HTTPException):
    def __init__(self):
        super().__init__(status_code=413, detail=f"request body over {MAX_BODY_BYTES} bytes")


class RequestGuard:
    """ASGI middleware: refuses bodies over 64 KiB, by Content-Length and, when there is none or it
    lies, while the body streams in (nothing larger is ever held in memory); records every request's
    count and latency by route template in `metrics.requests` (method, route, status) and
    `metrics.latency` (method, route); gives every request an id (the caller's X-Request-ID when it
    is a plain token, else a new one), answered in X-Request-ID."""

    def __init__(self, app, metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status, received = time.perf_counter(), [500], [0]
        headers = dict(scope.get("headers") or [])
        given = headers.get(REQUEST_ID_HEADER)
        rid = given.decode() if given and CALLERS_REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def recorded_send(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (REQUEST_ID_HEADER, rid.encode())]}
            await send(message)

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                received[0] += len(message.get("body", b""))
                if received[0] > MAX_BODY_BYTES:
                    raise BodyTooLarge()
            return message

        length = headers.get(b"content-length")
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


# An error type a dependency raises -> (the dependency's name, what to count when it happens).
Unavailable = Dict[Type[Exception], Tuple[str, Callable[[], None]]]


def add_error_handlers(app: FastAPI, service: str, log: logging.Logger, unavailable: Unavailable) -> None:
    """422 naming each field FastAPI could not validate; 503 naming the dependency for each error type
    of `unavailable`; 503 (logged with its traceback) for anything unexpected."""
    for error_type, (dependency, count) in unavailable.items():
        app.add_exception_handler(error_type, dependency_unavailable(dependency, count, log))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e.get("msg")}
                    for e in error.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        # Nothing a client sends may produce a 500: log the bug, answer that the service cannot serve it.
        rid = request_id(request)
        log.exception("request %s: unexpected error on %s %s", rid, request.method, request.url.path)
        return JSONResponse({"detail": f"the {service} could not process this request (request id {rid})",
                             "request_id": rid}, status_code=503)


def log_cause(log: logging.Logger, request: Request, dependency: str, error: BaseException) -> str:
    """Logs why `dependency` failed under the request's id; returns what an answer says instead of the
    cause (a driver's message names addresses, users, commands): where the log has it."""
    rid = request_id(request)
    log.warning("request %s: %s %s: %s is unavailable: %s", rid, request.method, request.url.path, dependency,
                one_line(error))
    return f"the service's log has the cause under request id {rid}"


def dependency_unavailable(dependency: str, count: Callable[[], None], log: logging.Logger):
    """An exception handler answering 503 "<dependency> is unavailable" with the request id, counting
    it; the error itself (a driver's message: addresses, users, commands) goes to the log only."""
    async def handler(request: Request, error: Exception):
        count()
        rid = request_id(request)
        log_cause(log, request, dependency, error)
        return JSONResponse({"status": "unhealthy", "request_id": rid,
                             "detail": f"{dependency} is unavailable: retry later; the service's log has the cause "
                                       f"under request id {rid}"}, status_code=503)
    return handler
