"""The configuration service's REST endpoints: parameters (read, wait for a change, list, create,
change at a version, delete, history), endpoints, health and metrics."""

from __future__ import annotations

import asyncio
import re
from typing import Optional

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from configsvc.deps import ConfigState, client_address, editor, may_write, not_found, state
from configsvc.model import (
    ENDPOINT_PREFIX,
    Invalid,
    Row,
    canonical_environment,
    check_description,
    check_service,
    history_view,
    normalise_value,
    now_rfc3339,
    parameter_view,
    resolved_view,
)
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
from configsvc.store import VersionConflict
from servicekit.serving import metrics_text

MAX_WAIT_DEFAULT_S = 30.0
# A list answers in pages: the default holds every parameter an environment has today.
PAGE_DEFAULT, PAGE_MAX = 500, 1000
HISTORY_PAGE_DEFAULT = 100
IF_MATCH = re.compile(r'^(W/)?"?([0-9]{1,18})"?$')
PREFIX = re.compile(r"^[A-Za-z0-9_.]*$")
ENVIRONMENT_DOC = "development, testing or production (or dev, test, prod, docker); default: the service's default"
SERVICE_DOC = "a service name: its own value wins over the environment-wide one"
PROBLEMS = {404: {"model": Problem}, 422: {"model": Problem}, 503: {"model": Problem}}
SINGLE = {
    **PROBLEMS,
    200: {"model": Parameter, "description": 'the parameter, with ETag: "<version>"'},
    304: {"description": "wait_version: no newer version before the timeout"},
}
WAIT_VERSION = Query(
    default=None, ge=0, le=2**63 - 1, description="answer as soon as the version exceeds this (304 at the timeout)"
)
TIMEOUT = Query(
    default=None,
    gt=0,
    description="seconds to wait with wait_version (default 30, at most the service's CONFIG_MAX_WAIT_SECONDS)",
)
ENVIRONMENT = Query(default=None, max_length=64, description=ENVIRONMENT_DOC)
KEY = Path(max_length=256)

router = APIRouter()


def expected_version(if_match: str) -> int:
    """The version in If-Match (3, "3" or W/"3"); raises Invalid otherwise."""
    found = IF_MATCH.match(if_match.strip())
    if not found:
        raise Invalid("If-Match", f'If-Match must be a version such as 3 or "3", not {if_match[:40]!r}')
    return int(found.group(2))


def parameter_response(row: Row, status_code: int = 200) -> JSONResponse:
    return JSONResponse(parameter_view(row), status_code=status_code, headers={"ETag": f'"{row.version}"'})


def precondition_failed(key: str, expected: int, current: int) -> JSONResponse:
    return JSONResponse(
        {
            "detail": f"{key} is at version {current}, not {expected}: read it again and retry",
            "current_version": current,
        },
        status_code=412,
        headers={"ETag": f'"{current}"'},
    )


async def read_parameter(
    config: ConfigState,
    key: str,
    environment: Optional[str],
    service: Optional[str],
    wait_version: Optional[int],
    timeout: Optional[float],
    client: str = "",
) -> Response:
    environment, service = config.locate(key, environment, service)
    if timeout is not None and timeout > config.settings.max_wait_s:
        raise Invalid("timeout", f"timeout is at most {config.settings.max_wait_s:g} s")
    if wait_version is None:
        if timeout is not None:
            raise Invalid("timeout", "timeout is how long to wait for a change: give wait_version too")
        row = await run_in_threadpool(config.lookup, environment, key, service)
    else:
        row = await config.wait_for_change(
            environment,
            key,
            service,
            wait_version,
            timeout if timeout is not None else min(MAX_WAIT_DEFAULT_S, config.settings.max_wait_s),
            client,
        )
        config.metrics.waits.labels("changed" if row else "timeout").inc()
        if row is None:
            current = await run_in_threadpool(config.lookup, environment, key, service)
            return Response(status_code=304, headers={"ETag": f'"{current.version if current else 0}"'})
    config.metrics.reads.labels("found" if row else "missing").inc()
    if row is None:
        raise not_found(key, environment, service)
    return parameter_response(row)


def announced(config: ConfigState, change) -> None:
    config.metrics.changed(change)
    config.cache.clear()  # this worker's next read sees it; the others', when the announcement reaches them
    config.notifier.announce(change)


@router.get("/api/v1/configuration/{key}", responses=SINGLE, summary="One parameter, as a service sees it")
async def get_parameter(
    key: str = Path(max_length=256),
    environment: Optional[str] = Query(default=None, max_length=64, description=ENVIRONMENT_DOC),
    service: Optional[str] = Query(default=None, max_length=64, description=SERVICE_DOC),
    wait_version: Optional[int] = WAIT_VERSION,
    timeout: Optional[float] = TIMEOUT,
    x_service_name: Optional[str] = Header(default=None, description="service, when no ?service= is given"),
    config: ConfigState = Depends(state),
    client: str = Depends(client_address),
):
    return await read_parameter(
        config, key, environment, service if service is not None else x_service_name, wait_version, timeout, client
    )


@router.get(
    "/api/v1/configuration",
    responses={
        **SINGLE,
        200: {
            "model": ParameterList,
            "description": ("with ?key=: that parameter (as GET /api/v1/configuration/{key}); without: the list"),
        },
    },
    summary="One parameter (?key=) or the parameters of an environment",
)
async def list_parameters(
    key: Optional[str] = Query(default=None, max_length=256),
    environment: Optional[str] = Query(default=None, max_length=64, description=ENVIRONMENT_DOC),
    service: Optional[str] = Query(default=None, max_length=64, description=SERVICE_DOC),
    prefix: str = Query(default="", max_length=200, description="keys starting with this"),
    limit: int = Query(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX, description=f"per page (at most {PAGE_MAX})"),
    offset: int = Query(default=0, ge=0, le=2**31 - 1, description="where the page starts: the last next_offset"),
    wait_version: Optional[int] = WAIT_VERSION,
    timeout: Optional[float] = TIMEOUT,
    x_service_name: Optional[str] = Header(default=None),
    config: ConfigState = Depends(state),
    client: str = Depends(client_address),
):
    service = service if service is not None else x_service_name
    if key is not None:
        return await read_parameter(config, key, environment, service, wait_version, timeout, client)
    if wait_version is not None or timeout is not None:
        raise Invalid("wait_version", "waiting is for one parameter: give key too")
    if not PREFIX.match(prefix):
        raise Invalid("prefix", "a key prefix has letters, digits, underscores and dots only")
    environment, service = canonical_environment(environment, config.default_environment), check_service(service)
    if service:
        rows = resolved_view(
            await run_in_threadpool(config.store.list_rows, environment, ["", service], prefix), service
        )
    else:
        rows = await run_in_threadpool(config.store.list_rows, environment, None, prefix)
    config.metrics.reads.labels("list").inc()
    page = rows[offset:offset + limit]
    return {
        "environment": environment,
        "service": service or None,
        "prefix": prefix,
        "count": len(page),
        "total": len(rows),
        "offset": offset,
        "next_offset": offset + limit if offset + limit < len(rows) else None,
        "parameters": [parameter_view(row) for row in page],
    }


@router.post(
    "/api/v1/configuration",
    status_code=201,
    summary="Create or change a parameter",
    responses={
        **PROBLEMS,
        201: {"model": Parameter, "description": "created"},
        200: {"model": Parameter, "description": "changed (new version) or already so (same version)"},
    },
)
def put_parameter(body: ParameterIn, config: ConfigState = Depends(state), user: str = Depends(editor)):
    environment, service = config.locate(body.key, body.environment, body.service)
    may_write(config, user, environment)
    description = None if body.description is None else check_description(body.description)
    value = normalise_value(body.key, body.type, body.value, service)
    change = config.store.upsert(
        environment, service, body.key, body.type, value, description, user
    )
    announced(config, change)
    return parameter_response(change.row, 201 if change.change == "created" else 200)


@router.put(
    "/api/v1/configuration/{key}",
    summary="Change a parameter at the version read (If-Match)",
    responses={
        **PROBLEMS,
        200: {"model": Parameter},
        412: {"model": Problem, "description": ("the parameter moved on: current_version says where")},
        428: {"model": Problem},
    },
)
def update_parameter(
    body: ParameterUpdate,
    key: str = Path(max_length=256),
    environment: Optional[str] = Query(default=None, max_length=64, description=ENVIRONMENT_DOC),
    service: Optional[str] = Query(default=None, max_length=64, description="none: the environment-wide parameter"),
    if_match: Optional[str] = Header(default=None, description='the version read: 3, "3" or W/"3"'),
    config: ConfigState = Depends(state),
    user: str = Depends(editor),
):
    environment, service = config.locate(key, environment, service)
    may_write(config, user, environment)
    if if_match is None:
        raise HTTPException(status_code=428, detail="a change needs If-Match: <version> (the ETag as read)")
    expected = expected_version(if_match)
    current = config.exact_row(environment, service, key)
    if current is None:
        raise not_found(key, environment, service)
    type_ = body.type or current.type
    description = None if body.description is None else check_description(body.description)
    value = normalise_value(key, type_, body.value, service)
    try:
        change = config.store.upsert(
            environment,
            service,
            key,
            type_,
            value,
            description,
            user,
            expected_version=expected,
        )
    except VersionConflict as conflict:
        if conflict.current is None:
            raise not_found(key, environment, service) from None
        return precondition_failed(key, expected, conflict.current)
    announced(config, change)
    return parameter_response(change.row)


@router.delete(
    "/api/v1/configuration/{key}",
    status_code=204,
    summary="Delete a parameter",
    responses={**PROBLEMS, 412: {"model": Problem}},
)
def delete_parameter(
    key: str = Path(max_length=256),
    environment: Optional[str] = Query(default=None, max_length=64, description=ENVIRONMENT_DOC),
    service: Optional[str] = Query(default=None, max_length=64),
    if_match: Optional[str] = Header(default=None, description="optional: delete only at this version"),
    config: ConfigState = Depends(state),
    user: str = Depends(editor),
):
    environment, service = config.locate(key, environment, service)
    may_write(config, user, environment)
    expected = expected_version(if_match) if if_match is not None else None
    try:
        change = config.store.delete(environment, service, key, user, expected)
    except VersionConflict as conflict:
        return precondition_failed(key, expected, conflict.current)
    if change is None:
        raise not_found(key, environment, service)
    announced(config, change)
    return Response(status_code=204)


@router.get(
    "/api/v1/configuration/{key}/history",
    response_model=History,
    responses=PROBLEMS,
    summary="The changes of one parameter, newest first",
)
def parameter_history(
    key: str = Path(max_length=256),
    environment: Optional[str] = Query(default=None, max_length=64, description=ENVIRONMENT_DOC),
    service: Optional[str] = Query(default=None, max_length=64),
    limit: int = Query(default=HISTORY_PAGE_DEFAULT, ge=1, le=PAGE_MAX, description=f"changes per page (at most "
                                                                                     f"{PAGE_MAX})"),
    before_version: Optional[int] = Query(default=None, ge=1, le=2**63 - 1,
                                          description="older changes only: the last page's next_before_version"),
    config: ConfigState = Depends(state),
):
    environment, service = config.locate(key, environment, service)
    entries = config.store.history(environment, service, key, limit + 1, before_version)
    if not entries and before_version is None:
        raise not_found(key, environment, service)
    page = entries[:limit]
    return {
        "key": key,
        "environment": environment,
        "service": service or None,
        "next_before_version": page[-1].version if len(entries) > limit else None,
        "history": [history_view(entry) for entry in page],
    }


@router.get(
    "/api/v1/endpoints",
    response_model=Endpoints,
    responses=PROBLEMS,
    summary="The environment's endpoints (the environment-wide endpoints.* parameters)",
)
def endpoints(
    environment: Optional[str] = Query(default=None, max_length=64, description=ENVIRONMENT_DOC),
    config: ConfigState = Depends(state),
):
    environment = canonical_environment(environment, config.default_environment)
    rows = config.store.list_rows(environment, [""], ENDPOINT_PREFIX)
    return {"environment": environment, "endpoints": {row.key[len(ENDPOINT_PREFIX) :]: row.value for row in rows}}


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "PostgreSQL is unreachable"}},
    summary="healthy; degraded (200) without Redis; unhealthy (503) without PostgreSQL",
)
async def health(request: Request, config: ConfigState = Depends(state)):
    postgres, redis_state = await asyncio.gather(config.probe(config.store.ping, request, "PostgreSQL"),
                                                 config.probe(config.client.ping, request, "Redis"))
    if postgres["status"] != "healthy":
        status = "unhealthy"
    else:
        status = "healthy" if redis_state["status"] == "healthy" else "degraded"
    body = {"status": status, "timestamp": now_rfc3339(), "postgres": postgres, "redis": redis_state}
    return JSONResponse(body, status_code=503 if status == "unhealthy" else 200)


@router.get("/metrics", summary="Prometheus metrics")
def prometheus_metrics(config: ConfigState = Depends(state)):
    return PlainTextResponse(metrics_text(config.metrics.registry), media_type=CONTENT_TYPE_LATEST)
