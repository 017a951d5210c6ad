"""The registration schema: what clients send and what the registry stores and returns."""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

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


class Heartbeat(BaseModel):
    status: Optional[str] = Field(default=None, pattern="^(" + "|".join(STATUSES) + ")$")


def _host_and_port(url: Optional[str]) -> tuple:
    """("risk-monitor", 8080) from "http://risk-monitor:8080/x" or "risk-monitor:50051"."""
    if not url:
        return None, None
    parts = urlsplit(url if "://" in url else f"//{url}")
    try:
        return parts.hostname, parts.port
    except ValueError:
        return parts.hostname, None


def instance_fields(request: Registration, now: str, registered_at: Optional[str]) -> Dict[str, str]:
    """The Redis hash of one instance, with the field names sibling services already read."""
    import json

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
    }


def instance_view(fields: Dict[str, str]) -> Dict[str, Any]:
    """A stored hash as the API returns it (JSON fields decoded, ports as numbers)."""
    import json

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
    }
