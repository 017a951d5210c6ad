"""Configuration reads at the registry's address, as the ecosystem's services send them.

The orchestrator's compose gives the simulators CONFIG_SERVICE_URL=http://172.20.0.30:8080: the
registry's address, not the configuration service's (172.20.0.35:8090). The registry forwards their
reads there and answers each in the shape its client parses (read from the sibling repositories):

- GET /api/v1/configuration/{key} and /api/v1/configuration?key=K (audit-correlator-go, the Python
  services): the configuration service's flat answer, as it is (key, value, type, ...).
- the same with an X-Service-Name header (exchange-simulator-go): the envelope its client decodes,
  {"success": true, "data": [{key, value, environment, service, updated_at}], "error": ""}; a
  failure is {"success": false, "data": [], "error": why}, with the configuration service's status.
- GET /configuration?key=K (custodian-simulator-go, no /api/v1): flat, `type` as the number its
  client's enum holds (0 string, 1 number, 2 boolean, 3 json).

Reads only: a write goes to the configuration service itself, signed in as an editor. A wait for a
change (wait_version) too: it would hold one of the registry's threads for up to 30 s.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Optional

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from registry.deps import RegistryState, state
from servicekit import tls

router = APIRouter()
# custodian-simulator-go's ConfigValueType (internal/infrastructure/configuration_client.go).
TYPE_NUMBERS = {"string": 0, "number": 1, "boolean": 2, "json": 3}
FORWARDED_QUERY = ("key", "environment", "service")
TIMEOUT_S = 5.0


def forward(base_url: str, path: str, query: dict, service_name: Optional[str]) -> tuple[int, dict]:
    """GET the configuration service's `path` with `query`; its status and JSON body (a 502 naming the
    configuration service when it cannot be reached or answers something else)."""
    transport = tls.current()
    url = transport.url(base_url.rstrip("/")) + path
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, headers={"Accept": "application/json",
                                                   **({"X-Service-Name": service_name} if service_name else {})})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=transport.client_context()) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            return error.code, json.loads(error.read())
        except ValueError:
            return 502, {"detail": f"the configuration service answered {error.code} without JSON"}
    except (OSError, ValueError) as error:
        return 502, {"detail": f"the configuration service ({base_url}) could not be reached: {error}"}


async def _read(registry: RegistryState, request: Request, path: str, service_name: Optional[str]) -> tuple[int, dict]:
    params = request.query_params
    if "wait_version" in params or "timeout" in params:
        raise HTTPException(400, f"waiting for a change is the configuration service's own: ask "
                                 f"{registry.settings.configuration_url}{path} directly")
    query = {name: params[name] for name in FORWARDED_QUERY if name in params}
    return await run_in_threadpool(forward, registry.settings.configuration_url, path, query, service_name)


def _answer(status: int, body: dict, service_name: Optional[str]) -> JSONResponse:
    if not service_name:
        return JSONResponse(body, status_code=status)
    if status != 200 or "key" not in body:
        why = body.get("detail") if isinstance(body, dict) else None
        return JSONResponse({"success": False, "data": [], "error": str(why or f"status {status}")},
                            status_code=status)
    value = {"key": body["key"], "value": body.get("value"), "environment": body.get("environment"),
             "service": body.get("service") or service_name, "updated_at": body.get("last_updated")}
    return JSONResponse({"success": True, "data": [value], "error": ""})


@router.get("/api/v1/configuration/{key}", summary="A parameter, read from the configuration service")
async def configuration_by_path(key: str, request: Request, registry: RegistryState = Depends(state),
                                x_service_name: Optional[str] = Header(default=None, max_length=64)):
    status, body = await _read(registry, request, f"/api/v1/configuration/{urllib.parse.quote(key, safe='')}",
                               x_service_name)
    return _answer(status, body, x_service_name)


@router.get("/api/v1/configuration", summary="A parameter (?key=), read from the configuration service")
async def configuration_by_query(request: Request, registry: RegistryState = Depends(state),
                                 x_service_name: Optional[str] = Header(default=None, max_length=64)):
    status, body = await _read(registry, request, "/api/v1/configuration", x_service_name)
    return _answer(status, body, x_service_name)


@router.get("/configuration", summary="A parameter (?key=), type as a number (custodian-simulator-go)")
async def configuration_numbered(request: Request, registry: RegistryState = Depends(state)):
    if "key" not in request.query_params:
        raise HTTPException(400, "give the parameter's name: /configuration?key=<name>")
    status, body = await _read(registry, request, "/api/v1/configuration", None)
    if status == 200 and body.get("type") in TYPE_NUMBERS:
        body = {**body, "type": TYPE_NUMBERS[body["type"]]}
    return JSONResponse(body, status_code=status)
