"""The registry's REST endpoints: registration, heartbeat, deregistration, discovery and health."""
from __future__ import annotations

import logging
from typing import Optional

import redis
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from registry.deps import RegistryState, state, writable, writer
from registry.models import Heartbeat, Registration, instance_fields, instance_view
from registry.store import MAX_INSTANCES_PER_SERVICE, MAX_NAMES, Store, key, now_rfc3339
from servicekit.http import log_cause, request_id

router = APIRouter()
log = logging.getLogger("registry")
# Listings answer in pages of names: the default holds every service of the stack and its siblings.
PAGE_DEFAULT, PAGE_MAX = 500, 1000


@router.post("/api/v1/services", status_code=201)
def register(body: Registration, response: Response, registry: RegistryState = Depends(state),
             store: Store = Depends(writer)):
    writable(body.name, registry)
    metrics = registry.metrics
    ttl = body.ttl_seconds or registry.settings.default_ttl_s
    body = body.model_copy(update={"ttl_seconds": ttl, "instance_id": body.instance_id or body.name})
    registered_at = store.registered_at(body.name, body.instance_id)
    if registered_at is None and registry.store.index.live(body.name) >= MAX_INSTANCES_PER_SERVICE:
        raise HTTPException(status_code=409, detail=f"{body.name} has {MAX_INSTANCES_PER_SERVICE} live instances, "
                                                    "the most a service may have: deregister one, or let it expire")
    fields = instance_fields(body, now_rfc3339(), registered_at)
    replaced = store.put(fields, ttl)
    registry.store.index.add(body.name, body.instance_id, ttl)  # as the registry: callers cannot write the index
    registry.cache.changed(body.name)
    metrics.registrations.labels("replaced" if replaced else "new").inc()
    response.status_code = 200 if replaced else 201
    return instance_view(fields)


@router.put("/api/v1/services/{name}/instances/{instance_id}/heartbeat")
def heartbeat(name: str, instance_id: str, body: Optional[Heartbeat] = None,
              registry: RegistryState = Depends(state), store: Store = Depends(writer)):
    writable(name, registry)
    fields = store.heartbeat(name, instance_id, body.status if body else None,
                                      registry.settings.default_ttl_s)
    if fields is None:
        registry.metrics.heartbeats.labels("unknown").inc()
        raise HTTPException(status_code=404, detail=f"no live instance {instance_id} of {name}: register again")
    registry.store.index.add(name, instance_id, int(fields.get("ttl_seconds") or registry.settings.default_ttl_s))
    registry.cache.changed(name)
    registry.metrics.heartbeats.labels("renewed").inc()
    return instance_view(fields)


@router.delete("/api/v1/services/{name}/instances/{instance_id}", status_code=204)
def deregister(name: str, instance_id: str, registry: RegistryState = Depends(state),
               store: Store = Depends(writer)):
    writable(name, registry)
    if not store.delete(name, instance_id):
        raise HTTPException(status_code=404, detail=f"no instance {instance_id} of {name}")
    registry.store.index.remove(name, instance_id)
    registry.cache.changed(name)
    registry.seen.discard(key(name, instance_id))
    return Response(status_code=204)


@router.get("/api/v1/services")
def services(limit: int = Query(default=PAGE_DEFAULT, ge=1, le=PAGE_MAX, description="services per page"),
             offset: int = Query(default=0, ge=0, le=MAX_NAMES, description="where the page starts: next_offset"),
             registry: RegistryState = Depends(state)):
    summary = {}
    instances, names = registry.read_page(offset, limit)
    for instance in instances:
        entry = summary.setdefault(instance["name"], {"name": instance["name"], "instances": 0, "healthy": 0})
        entry["instances"] += 1
        entry["healthy"] += instance.get("status") == "healthy"
    return {"services": sorted(summary.values(), key=lambda s: s["name"]), "total": names, "offset": offset,
            "next_offset": offset + limit if offset + limit < names else None}


@router.get("/api/v1/services/{name}")
def service(name: str, status: Optional[str] = Query(default=None, max_length=32),
            registry: RegistryState = Depends(state)):
    instances = [instance_view(i) for i in registry.store.instances(name) if i.get("name") == name]
    if status:
        instances = [i for i in instances if i["status"] == status]
    if not instances:
        raise HTTPException(status_code=404, detail=f"no live instance of {name}" + (
            f" with status {status}" if status else ""))
    return {"name": name, "instances": sorted(instances, key=lambda i: i["instance_id"] or "")}


def summaries(instances):
    return [{"name": i["name"], "instance": i["instance_id"], "status": i["status"],
             "last_heartbeat": i["last_heartbeat"], "version": i["version"], "metadata": i["metadata"]}
            for i in sorted((instance_view(i) for i in instances), key=lambda v: (v["name"], v["instance_id"]))]


@router.get("/health")
def health(request: Request, registry: RegistryState = Depends(state)):
    # An unhealthy answer names the dependency; its cause (the driver's message) is logged only.
    unhealthy = {"status": "unhealthy", "timestamp": now_rfc3339(), "dependencies": {"redis": "unavailable"},
                 "request_id": request_id(request)}
    try:
        registry.store.ping()
        # The first page of names, as a listing without paging reads it: bounded, whatever is registered.
        instances, _ = registry.read_page(0, PAGE_DEFAULT)
    except redis.RedisError as cause:
        registry.metrics.redis_errors.inc()
        error = log_cause(log, request, "Redis", cause)
        return JSONResponse({**unhealthy, "reason": f"Redis is unavailable: {error}"}, status_code=503)
    if registry.reconciler.failing:
        # Redis answers, but the walk that finds what the API did not write cannot run (its ACL?).
        log.warning("request %s: GET /health: the walk of registry:services: fails: %s", request_id(request),
                    registry.reconciler.failing)
        return JSONResponse({**unhealthy, "reason": "the walk of registry:services: fails (Redis refuses or drops "
                                                    "its scan): the service's log has the cause under request id "
                                                    f"{request_id(request)}"}, status_code=503)
    return {"status": "healthy", "timestamp": now_rfc3339(), "services": summaries(instances)}


@router.get("/health/{name}")
def health_of(name: str, registry: RegistryState = Depends(state)):
    instances = [i for i in registry.store.instances(name) if i.get("name") == name]
    if not instances:
        raise HTTPException(status_code=404, detail=f"no live instance of {name}")
    views = summaries(instances)
    status = "healthy" if any(v["status"] == "healthy" for v in views) else "unhealthy"
    return {"name": name, "status": status, "timestamp": now_rfc3339(), "instances": views}


@router.get("/metrics")
def prometheus_metrics(registry: RegistryState = Depends(state)):
    return PlainTextResponse(generate_latest(registry.metrics.registry), media_type=CONTENT_TYPE_LATEST)
