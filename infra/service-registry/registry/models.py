"""The registration schema: what clients send and what the registry stores and returns."""
from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME = r"^[a-z0-9]+(-[a-z0-9]+)*$"
INSTANCE = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
STATUSES = ("healthy", "unhealthy", "starting", "stopping", "unknown")
MIN_TTL_S, MAX_TTL_S = 2, 3600


class Endpoints(BaseModel):
    """The well-known endpoints; others (e.g. "redis": "redis://redis:6379") are kept as given."""

    model_config = ConfigDict(extra="allow")
    http: Optional[str] = Field(default=None, max_length=512)
    grpc: Optional[str] = Field(default=None, max_length=512)
    health: Optional[str] = Field(default=None, max_length=512)
    metrics: Optional[str] = Field(default=None, max_length=512)

    @field_validator("http", "grpc", "health", "metrics")
    @classmethod
    def parses(cls, url: Optional[str]) -> Optional[str]:
        """A URL or host:port the registry can read the host and port of ("http://[" is neither)."""
        if url:
            _split(url)
        return url


class Registration(BaseModel):
    """POST /api/v1/services. Unknown fields are ignored, so sibling services' payloads register as
    they are."""

    name: str = Field(pattern=NAME, max_length=63)
    version: str = Field(default="unknown", max_length=64)
    instance_id: Optional[str] = Field(default=None, pattern=INSTANCE, max_length=128)
    host: Optional[str] = Field(default=None, max_length=253)
    endpoints: Endpoints = Field(default_factory=Endpoints)
    metadata: Dict[str, Any] = Field(default_factory=dict)
    tags: List[str] = Field(default_factory=list, max_length=64)
    ttl_seconds: Optional[int] = Field(default=None, ge=MIN_TTL_S, le=MAX_TTL_S)
    status: str = Field(default="healthy", pattern="^(" + "|".join(STATUSES) + ")$")

    @model_validator(mode="before")
    @classmethod
    def null_means_absent(cls, payload: Any) -> Any:
        """An optional field sent as null takes its default: risk-monitor-py's ServiceInfo sends
        "metadata": null unless told otherwise. (A required one, `name`, is then reported missing.)"""
        if isinstance(payload, dict):
            return {field: value for field, value in payload.items() if value is not None}
        return payload


class Heartbeat(BaseModel):
    status: Optional[str] = Field(default=None, pattern="^(" + "|".join(STATUSES) + ")$")


def _split(url: str):
    """urlsplit of a URL or of host:port; raises ValueError naming the URL when it does not parse."""
    try:
        return urlsplit(url if "://" in url else f"//{url}")
    except ValueError as error:
        raise ValueError(f"{url[:80]!r} is not a URL or host:port ({error})") from None


def _host_and_port(url: Optional[str]) -> tuple:
    """("risk-monitor", 8080) from "http://risk-monitor:8080/x" or "risk-monitor:50051"."""
    if not url:
        return None, None
    parts = _split(url)
    try:
        return parts.hostname, parts.port
    except ValueError:
        return parts.hostname, None


def instance_fields(request: Registration, now: str, registered_at: Optional[str]) -> Dict[str, str]:
    """The Redis hash of one instance, with the field names sibling services already read."""
    http_host, http_port = _host_and_port(request.endpoints.http)
    grpc_host, grpc_port = _host_and_port(request.endpoints.grpc)
    return {
        "name": request.name,
        "instance_id": request.instance_id or request.name,
        "version": request.version,
        "host": request.host or http_host or grpc_host or request.name,
        "http_port": str(http_port or ""),
        "grpc_port": str(grpc_port or ""),
        "status": request.status,
        "endpoints": json.dumps(request.endpoints.model_dump(exclude_none=True)),
        "metadata": json.dumps(request.metadata),
        "tags": json.dumps(request.tags),
        "ttl_seconds": str(request.ttl_seconds),
        "registered_at": registered_at or now,
        "last_heartbeat": now,
        "registered_via": "api",
    }


class Unreadable(ValueError):
    """A key under registry:services: that is not an instance in a layout the registry reads."""


PREFIX = "registry:services:"


def rfc3339(moment: datetime) -> str:
    """The one text form of a time the registry serves: UTC, milliseconds, Z."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
PORT = re.compile(r"^\d{1,5}(\.0)?$")   # "8080", or "8080.0" from a float


def _json(fields: Dict[str, str], name: str, kind: type, default: str) -> str:
    text = fields.get(name) or default
    try:
        value = json.loads(text)
    except ValueError:
        raise Unreadable(f"{name} is not JSON") from None
    if value is not None and not isinstance(value, kind):
        raise Unreadable(f"{name} is not a JSON {kind.__name__}")
    return json.dumps(value if value is not None else kind())


def _port(fields: Dict[str, str], name: str) -> str:
    text = (fields.get(name) or "").strip()
    if text and not (PORT.match(text) and 0 < float(text) < 65536):
        raise Unreadable(f"{name} {text[:20]!r} is not a port")
    return str(int(float(text))) if text else ""


def _epoch_as_rfc3339(fields: Dict[str, str], name: str) -> str:
    """The writer's str(time.time()) as the RFC 3339 text the registry's own instances carry."""
    text = (fields.get(name) or "").strip()
    try:
        seconds = float(text)
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(text)
        moment = datetime.fromtimestamp(seconds, timezone.utc)
    except (ValueError, OverflowError, OSError):
        raise Unreadable(f"{name} {text[:40]!r} is not a time in epoch seconds") from None
    return rfc3339(moment)


def _common(fields: Dict[str, str], name: str) -> None:
    if fields.get("name") != name:
        raise Unreadable(f"field name {str(fields.get('name'))[:70]!r} is not the key's name {name!r}")
    if fields.get("status") not in STATUSES:
        raise Unreadable(f"status {str(fields.get('status'))[:40]!r} is none of {', '.join(STATUSES)}")
    if not fields.get("host"):
        raise Unreadable("no host")


def read_entry(key: str, fields: Dict[str, str], ttl: Optional[int]) -> Dict[str, str]:
    """The instance a hash under registry:services: holds, as a hash of the registry's own layout
    (instance_view shows it); raises Unreadable when it is none.

    - registry:services:{name}:{instance_id}: the registry's own (POST /api/v1/services);
    - registry:services:{name}: the hash risk-monitor-py and trading-engine-py write themselves
      (name, version, host, http_port, grpc_port, status, metadata as JSON text, registered_at and
      last_heartbeat as epoch seconds, TTL set by the writer): one instance whose id is its name,
      its endpoints built from host and ports, its TTL the key's.
    """
    rest = key[len(PREFIX):] if key.startswith(PREFIX) else ""
    name, _, instance_id = rest.partition(":")
    if not re.match(NAME, name or "-"):
        raise Unreadable(f"{name[:70]!r} is not a service name")
    _common(fields, name)
    if instance_id:
        if not re.match(INSTANCE, instance_id) or fields.get("instance_id") != instance_id:
            raise Unreadable(f"field instance_id {str(fields.get('instance_id'))[:70]!r} is not the key's "
                             f"{instance_id[:70]!r}")
        checked = {"http_port": _port(fields, "http_port"), "grpc_port": _port(fields, "grpc_port"),
                   "endpoints": _json(fields, "endpoints", dict, "{}"),
                   "metadata": _json(fields, "metadata", dict, "{}"), "tags": _json(fields, "tags", list, "[]")}
        return {**fields, **checked, "registered_via": fields.get("registered_via") or "api"}
    http_port, grpc_port, host = _port(fields, "http_port"), _port(fields, "grpc_port"), fields["host"]
    endpoints = {**({"http": f"http://{host}:{http_port}"} if http_port else {}),
                 **({"grpc": f"{host}:{grpc_port}"} if grpc_port else {})}
    return {
        "name": name, "instance_id": name, "version": fields.get("version") or "unknown", "host": host,
        "http_port": http_port, "grpc_port": grpc_port, "status": fields["status"],
        "endpoints": json.dumps(endpoints), "metadata": _json(fields, "metadata", dict, "{}"), "tags": "[]",
        "ttl_seconds": str(ttl) if ttl and ttl > 0 else "",
        "registered_at": _epoch_as_rfc3339(fields, "registered_at"),
        "last_heartbeat": _epoch_as_rfc3339(fields, "last_heartbeat"),
        "registered_via": "redis",
    }


def instance_view(fields: Dict[str, str]) -> Dict[str, Any]:
    """A stored hash as the API returns it (JSON fields decoded, ports as numbers)."""
    def decoded(key, default):
        try:
            return json.loads(fields.get(key) or "null") or default
        except ValueError:
            return default

    def number(key):
        value = fields.get(key) or ""
        return int(value) if re.fullmatch(r"\d+", value) else None

    return {
        "name": fields.get("name"),
        "instance_id": fields.get("instance_id"),
        "version": fields.get("version"),
        "host": fields.get("host"),
        "http_port": number("http_port"),
        "grpc_port": number("grpc_port"),
        "status": fields.get("status"),
        "endpoints": decoded("endpoints", {}),
        "metadata": decoded("metadata", {}),
        "tags": decoded("tags", []),
        "ttl_seconds": number("ttl_seconds"),
        "registered_at": fields.get("registered_at"),
        "last_heartbeat": fields.get("last_heartbeat"),
        # "api": registered through POST /api/v1/services; "redis": a hash its service wrote itself.
        "registered_via": fields.get("registered_via") or "api",
    }
