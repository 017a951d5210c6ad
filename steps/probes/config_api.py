"""Facts from the configuration service's HTTP API on 127.0.0.1, one function per endpoint
(docs/configuration-service.md). Each returns http_api.call's Fact; `http_api.json_object(fact)` is
its body as a JSON object ({} when it is not one)."""
from __future__ import annotations

from urllib.parse import quote, urlencode

from steps.probes import http_api
from steps.probes.facts import Fact

API = "/api/v1/configuration"


def _query(**params) -> str:
    given = {k: v for k, v in params.items() if v is not None}
    return f"?{urlencode(given)}" if given else ""


def parameter(port: int, key: str, environment: str | None = None, service: str | None = None,
              headers: dict | None = None, wait_version: int | None = None, timeout: float | None = None) -> Fact:
    """GET /api/v1/configuration/{key}: the parameter as `service` sees it (optionally waiting for a
    version after `wait_version`, at most `timeout` s: the answer is then given that long to come)."""
    return http_api.call(port, "GET", f"{API}/{quote(key, safe='')}" + _query(
        environment=environment, service=service, wait_version=wait_version, timeout=timeout), headers=headers,
        timeout=http_api.TIMEOUT_S + (timeout or 0))


def parameter_by_query(port: int, key: str, environment: str | None = None, service: str | None = None) -> Fact:
    """GET /api/v1/configuration?key=: the same parameter, as risk-monitor-py's client asks for it."""
    return http_api.call(port, "GET", API + _query(key=key, environment=environment, service=service))


def parameters(port: int, environment: str | None = None, limit: int | None = None, offset: int | None = None
               ) -> Fact:
    """GET /api/v1/configuration?environment=: the parameters of an environment (a page of `limit`
    from `offset` when given)."""
    return http_api.call(port, "GET", API + _query(environment=environment, limit=limit, offset=offset))


def create(port: int, body: dict, auth: tuple | None) -> Fact:
    return http_api.call(port, "POST", API, json=body, auth=auth)


def update(port: int, key: str, environment: str, value: str, auth: tuple | None, if_match: int | None = None) -> Fact:
    headers = {"If-Match": f'"{if_match}"'} if if_match is not None else None
    return http_api.call(port, "PUT", f"{API}/{quote(key, safe='')}" + _query(environment=environment),
                         json={"value": value}, headers=headers, auth=auth)


def delete(port: int, key: str, environment: str, auth: tuple | None) -> Fact:
    return http_api.call(port, "DELETE", f"{API}/{quote(key, safe='')}" + _query(environment=environment), auth=auth)


def history(port: int, key: str, environment: str) -> Fact:
    return http_api.call(port, "GET", f"{API}/{quote(key, safe='')}/history" + _query(environment=environment))


def endpoints(port: int, environment: str | None = None) -> Fact:
    return http_api.call(port, "GET", "/api/v1/endpoints" + _query(environment=environment))


def health(port: int) -> Fact:
    return http_api.call(port, "GET", "/health")


def metrics(port: int) -> Fact:
    return http_api.call(port, "GET", "/metrics")


def openapi(port: int) -> Fact:
    return http_api.call(port, "GET", "/openapi.json")
