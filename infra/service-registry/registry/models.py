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


# The layouts the Go services write themselves, each a JSON string with a TTL (their code; README "What
# each service of the ecosystem uses"):
# - services:{name}:{instance_id} (audit-correlator through its data adapter, market-data-simulator) and
#   services:{name}:{host}:{grpc_port} (custodian- and exchange-simulator): snake_case fields;
# - {namespace}:service:{id}, beside {namespace}:heartbeat:{id} (the Go data adapters): Go's field names.
SERVICES_PREFIX = "services:"
ADAPTER_KEY = re.compile(r"^([a-z][a-z0-9_]*):service:(.+)$")
GO_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")
GO_STATUSES = {"active": "healthy"}   # market-data-simulator's word for it
MAX_JSON_BYTES = 64 * 1024


def json_layout(key: str) -> bool:
    """Whether `key` is one of the Go services' JSON layouts (the registry reads it with GET)."""
    return (key.startswith(SERVICES_PREFIX) and ":" in key[len(SERVICES_PREFIX):]) or bool(ADAPTER_KEY.match(key))


def _go_time(value: Any, name: str) -> str:
    """A Go time.Time as JSON (RFC 3339, up to nanoseconds) as the registry's RFC 3339 text."""
    found = GO_TIME.match(value) if isinstance(value, str) else None
    if not found:
        raise Unreadable(f"{name} {str(value)[:40]!r} is not an RFC 3339 time")
    zone = "+00:00" if found.group(3) == "Z" else found.group(3)
    fraction = (found.group(2) or ".0")[:7]
    return rfc3339(datetime.fromisoformat(found.group(1) + fraction + zone))


def _go_fields(key: str, data: dict) -> tuple:
    """(name, instance id, fields) of a Go service's entry, in the words of its layout."""
    adapter = ADAPTER_KEY.match(key)
    if adapter:
        instance_id = data.get("ServiceID")
        if instance_id != adapter.group(2):
            raise Unreadable(f"ServiceID {str(instance_id)[:70]!r} is not the key's {adapter.group(2)[:70]!r}")
        return data.get("ServiceName"), instance_id, {
            "host": data.get("Address"), "http_port": data.get("Port"), "grpc_port": None, "status": "healthy",
            "version": data.get("Version"), "metadata": data.get("Metadata"),
            "registered_at": data.get("RegisteredAt"), "last_heartbeat": data.get("LastHeartbeat")}
    name, _, rest = key[len(SERVICES_PREFIX):].partition(":")
    if (data.get("name") or data.get("service_name")) != name:
        raise Unreadable(f"its name is not the key's {name[:70]!r}")
    return name, str(data.get("id") or data.get("instance_id") or rest), {
        "host": data.get("host") or data.get("address"), "http_port": data.get("http_port") or data.get("port"),
        "grpc_port": data.get("grpc_port"), "status": GO_STATUSES.get(data.get("status"), data.get("status")),
        "version": data.get("version") or data.get("service_version"), "metadata": data.get("metadata"),
        "registered_at": data.get("registered_at") or data.get("last_seen"),
        "last_heartbeat": data.get("last_heartbeat") or data.get("last_seen")}


def read_json_entry(key: str, text: str, ttl: Optional[int]) -> Dict[str, str]:
    """The instance a Go service's JSON string holds, as a hash of the registry's own layout; raises
    Unreadable when it is none."""
    try:
        data = json.loads(text)
    except ValueError:
        raise Unreadable("not JSON") from None
    if not isinstance(data, dict):
        raise Unreadable("not a JSON object")
    name, instance_id, fields = _go_fields(key, data)
    if not isinstance(name, str) or not re.match(NAME, name):
        raise Unreadable(f"{str(name)[:70]!r} is not a service name")
    if not isinstance(instance_id, str) or not re.match(INSTANCE, instance_id.replace(":", "-")):
        raise Unreadable(f"{str(instance_id)[:70]!r} is not an instance id")
    if fields["status"] not in STATUSES:
        raise Unreadable(f"status {str(fields['status'])[:40]!r} is none of {', '.join(STATUSES)}")
    if not isinstance(fields["host"], str) or not fields["host"]:
        raise Unreadable("no host")
    if fields["metadata"] is not None and not isinstance(fields["metadata"], dict):
        raise Unreadable("metadata is not a JSON object")
    ports = {p: _port({p: str(fields[p] if fields[p] is not None else "")}, p) for p in ("http_port", "grpc_port")}
    host = fields["host"]
    endpoints = {**({"http": f"http://{host}:{ports['http_port']}"} if ports["http_port"] else {}),
                 **({"grpc": f"{host}:{ports['grpc_port']}"} if ports["grpc_port"] else {})}
    return {
        "name": name, "instance_id": instance_id, "version": str(fields["version"] or "unknown")[:64],
        "host": host[:253], **ports, "status": fields["status"], "endpoints": json.dumps(endpoints),
        "metadata": json.dumps(fields["metadata"] or {}), "tags": "[]",
        "ttl_seconds": str(ttl) if ttl and ttl > 0 else "",
        "registered_at": _go_time(fields["registered_at"], "registered_at"),
        "last_heartbeat": _go_time(fields["last_heartbeat"], "last_heartbeat"),
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
