"""Prometheus's HTTP service discovery (http_sd_configs) from what is registered: one target group per
live instance with an HTTP port, so Prometheus scrapes whatever joins the ecosystem and InstanceDown
names the service that stops answering.

GET /api/v1/prometheus/targets answers Prometheus's format: a JSON list of
{"targets": ["<host>:<http_port>"], "labels": {...}}, labelled `job` (the service's name: Prometheus
keeps a target's own job label), `instance_id`, `registered` "true" (what the registry lists, not
the stack's own), and `__metrics_path__` (the instance's metadata
`metrics_path`, else the service's path in REGISTRY_METRICS_PATHS, else /metrics); a host of 0.0.0.0
(where a service listens) becomes the service's name, which the network resolves. The stack's own
services (the registry's reserved names) are left out: Prometheus scrapes them by their own jobs.
"""
from __future__ import annotations

import re

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from registry.deps import RegistryState, state
from registry.models import instance_view

router = APIRouter()
DEFAULT_METRICS_PATH = "/metrics"
# The host risk-monitor-py and trading-engine-py register (their settings' default).
LISTENING_ADDRESSES = ("0.0.0.0", "::")
# What Prometheus accepts as a host: a name or an IPv4 address (an IPv6 one would need brackets).
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")


def target_groups(instances: list, reserved: frozenset, metrics_paths: dict) -> list:
    """Prometheus's target groups for `instances` (as the API shows them), in a stable order."""
    groups = []
    for instance in sorted(instances, key=lambda i: (i.get("name") or "", i.get("instance_id") or "")):
        name, host, port = instance.get("name"), instance.get("host"), instance.get("http_port")
        if host in LISTENING_ADDRESSES:
            host = name  # where it listens, not where to reach it: its name, as the network resolves it
        if not name or name in reserved or not port or not isinstance(host, str) or not _HOST.match(host):
            continue
        path = (instance.get("metadata") or {}).get("metrics_path") or metrics_paths.get(name, DEFAULT_METRICS_PATH)
        if not isinstance(path, str) or not path.startswith("/"):
            path = DEFAULT_METRICS_PATH
        groups.append({"targets": [f"{host}:{port}"],
                       "labels": {"job": name, "instance_id": instance.get("instance_id") or name,
                                  "registered": "true", "__metrics_path__": path}})
    return groups


@router.get("/api/v1/prometheus/targets")
def prometheus_targets(registry: RegistryState = Depends(state)):
    instances = [instance_view(fields) for fields in registry.store.instances()]
    return JSONResponse(target_groups(instances, registry.settings.reserved_names, registry.settings.metrics_paths))
