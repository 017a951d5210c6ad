"""Facts from the service registry's HTTP API on 127.0.0.1, one function per endpoint
(docs/registry.md). Each returns http_api.call's Fact; `http_api.json_object(fact)` is its body as
a JSON object ({} when it is not one), `http_api.text(fact)` its text. Writes sign in with `auth`,
(Redis ACL user, its password), as the registry asks of every write; None sends none."""
from __future__ import annotations

from urllib.parse import quote, urlencode

from steps.probes import http_api
from steps.probes.facts import Fact


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in parts)


def register(port: int, payload: dict, auth: tuple | None) -> Fact:
    return http_api.call(port, "POST", "/api/v1/services", json=payload, auth=auth)


def heartbeat(port: int, name: str, instance_id: str, auth: tuple | None, status: str | None = "healthy") -> Fact:
    return http_api.call(port, "PUT", _path("api", "v1", "services", name, "instances", instance_id, "heartbeat"),
                         json={"status": status} if status else None, auth=auth)


def deregister(port: int, name: str, instance_id: str, auth: tuple | None) -> Fact:
    return http_api.call(port, "DELETE", _path("api", "v1", "services", name, "instances", instance_id), auth=auth)


def services(port: int) -> Fact:
    """GET /api/v1/services: every service with its instance and healthy counts."""
    return http_api.call(port, "GET", "/api/v1/services")


def service(port: int, name: str, status: str | None = None) -> Fact:
    """GET /api/v1/services/{name}[?status=]: its instances."""
    return http_api.call(port, "GET", _path("api", "v1", "services", name)
                         + (f"?{urlencode({'status': status})}" if status else ""))


def health(port: int) -> Fact:
    return http_api.call(port, "GET", "/health")


def health_of(port: int, name: str) -> Fact:
    return http_api.call(port, "GET", _path("health", name))


def metrics(port: int) -> Fact:
    return http_api.call(port, "GET", "/metrics")


def openapi(port: int) -> Fact:
    return http_api.call(port, "GET", "/openapi.json")

