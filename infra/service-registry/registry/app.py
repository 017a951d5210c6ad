"""The registry's HTTP API (FastAPI). Compatible with Debian 13's FastAPI 0.115 / pydantic 2.10 /
redis-py 6 and with the newer releases pip installs on the host."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Optional

import redis
from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from redis.backoff import NoBackoff
from redis.retry import Retry

from registry.infrastructure import InfrastructureMonitor
from registry.models import Heartbeat, Registration, instance_fields, instance_view
from registry.settings import Settings
from registry.store import Store, now_rfc3339

MAX_BODY_BYTES = 64 * 1024
log = logging.getLogger("registry")


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.registrations = Counter("registry_registrations_total", "Registrations", ["outcome"],
                                     registry=self.registry)
        self.heartbeats = Counter("registry_heartbeats_total", "Heartbeats", ["outcome"], registry=self.registry)
        self.expiries = Counter("registry_expiries_total", "Instances that disappeared when their TTL ended",
                                registry=self.registry)
        # Known label values exist from the start, so dashboards and alerts see 0 rather than no series.
        for outcome in ("new", "replaced"):
            self.registrations.labels(outcome)
        for outcome in ("renewed", "unknown"):
            self.heartbeats.labels(outcome)
        self.redis_errors = Counter("registry_redis_errors_total", "Redis commands that failed", registry=self.registry)
        self.instances = Gauge("registry_instances", "Live instances", registry=self.registry)
        # Keys under registry:services: that no layout reads (a client's malformed or foreign entry):
        # skipped, never an error; this says how many the last full read skipped.
        self.unreadable = Gauge("registry_unreadable_entries",
                                "Keys under registry:services: the last full read skipped as unreadable",
                                registry=self.registry)
        self.requests = Counter("registry_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        # 1 while the last probe of a declared infrastructure service passed: the alert on "no healthy
        # instance of a registered infrastructure service" reads it.
        self.infrastructure_healthy = Gauge("registry_infrastructure_healthy",
                                            "1 if the last probe of the infrastructure service passed",
                                            ["service"], registry=self.registry)
        self.latency = Histogram("registry_request_seconds", "Request latency", ["method", "route"],
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
                                 registry=self.registry)


def create_app(settings: Optional[Settings] = None, client: Optional[redis.Redis] = None) -> FastAPI:
    settings = settings or Settings.from_environment()
    # One immediate retry (a connection dropped by a Redis restart), no backoff: while Redis is away
    # the registry answers 503 at once instead of stalling its clients and its healthcheck.
    client = client or redis.Redis.from_url(
        settings.redis_url, username=settings.redis_user, password=settings.redis_password or None,
        decode_responses=True, socket_timeout=2, socket_connect_timeout=2, health_check_interval=10,
        retry=Retry(NoBackoff(), 1),
    )
    store, metrics = Store(client), Metrics()
    monitor = InfrastructureMonitor(store, settings.infrastructure, settings.probe_interval_s,
                                    settings.postgres_password, lambda event: metrics.redis_errors.inc(),
                                    lambda name, healthy: metrics.infrastructure_healthy.labels(name).set(healthy))
    seen: set = set()

    def read_all():
        """Every readable instance; counts the skipped keys and the expiries."""
        listing = store.listing()
        metrics.unreadable.set(len(listing.unreadable))
        track_expiries(list(listing.instances))
        return list(listing.instances.values())

    def track_expiries(keys: list) -> None:
        """Instances seen before and gone now, without a DELETE, expired."""
        current = set(keys)
        metrics.expiries.inc(len(seen - current))
        seen.clear()
        seen.update(current)
        metrics.instances.set(len(current))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(monitor.run()) if settings.infrastructure else None
        yield
        if task:
            task.cancel()

    app = FastAPI(title="Trading ecosystem service registry", version="1.0.0", lifespan=lifespan)
    app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["*"],
                       allow_headers=["*"])

    @app.middleware("http")
    async def limits_and_latency(request: Request, call_next):
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        if request.method in ("POST", "PUT", "PATCH") and length is None:
            body = await request.body()
            if len(body) > MAX_BODY_BYTES:
                return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.latency.labels(request.method, route).observe(time.perf_counter() - started)
        metrics.requests.labels(request.method, route, str(response.status_code)).inc()
        return response

    @app.exception_handler(redis.RedisError)
    async def redis_unavailable(request: Request, error: redis.RedisError):
        metrics.redis_errors.inc()
        return JSONResponse({"status": "unhealthy", "detail": f"Redis is unavailable: {error}"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        problems = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "problem": e.get("msg")}
                    for e in error.errors()]
        return JSONResponse({"detail": problems}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        # Nothing a client sends may produce a 500: log the bug, answer that the service cannot serve it.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "the registry could not process this request"}, status_code=503)

    def authorise(authorization: Optional[str]) -> None:
        if settings.api_token and authorization != f"Bearer {settings.api_token}":
            raise HTTPException(status_code=401, detail="writes need Authorization: Bearer <REGISTRY_API_TOKEN>",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.post("/api/v1/services", status_code=201)
    def register(body: Registration, response: Response, authorization: Optional[str] = Header(default=None)):
        authorise(authorization)
        ttl = body.ttl_seconds or settings.default_ttl_s
        body = body.model_copy(update={"ttl_seconds": ttl, "instance_id": body.instance_id or body.name})
        fields = instance_fields(body, now_rfc3339(), store.registered_at(body.name, body.instance_id))
        replaced = store.put(fields, ttl)
        metrics.registrations.labels("replaced" if replaced else "new").inc()
        response.status_code = 200 if replaced else 201
        return instance_view(fields)

    @app.put("/api/v1/services/{name}/instances/{instance_id}/heartbeat")
    def heartbeat(name: str, instance_id: str, body: Optional[Heartbeat] = None,
                  authorization: Optional[str] = Header(default=None)):
        authorise(authorization)
        fields = store.heartbeat(name, instance_id, body.status if body else None, settings.default_ttl_s)
        if fields is None:
            metrics.heartbeats.labels("unknown").inc()
            raise HTTPException(status_code=404, detail=f"no live instance {instance_id} of {name}: register again")
        metrics.heartbeats.labels("renewed").inc()
        return instance_view(fields)

    @app.delete("/api/v1/services/{name}/instances/{instance_id}", status_code=204)
    def deregister(name: str, instance_id: str, authorization: Optional[str] = Header(default=None)):
        authorise(authorization)
        if not store.delete(name, instance_id):
            raise HTTPException(status_code=404, detail=f"no instance {instance_id} of {name}")
        seen.discard(f"registry:services:{name}:{instance_id}")
        return Response(status_code=204)

    @app.get("/api/v1/services")
    def services():
        instances = read_all()
        summary = {}
        for instance in instances:
            entry = summary.setdefault(instance["name"], {"name": instance["name"], "instances": 0, "healthy": 0})
            entry["instances"] += 1
            entry["healthy"] += instance.get("status") == "healthy"
        return {"services": sorted(summary.values(), key=lambda s: s["name"])}

    @app.get("/api/v1/services/{name}")
    def service(name: str, status: Optional[str] = Query(default=None, max_length=32)):
        instances = [instance_view(i) for i in store.instances(name) if i.get("name") == name]
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

    @app.get("/health")
    def health():
        try:
            store.ping()
            instances = read_all()
        except redis.RedisError as error:
            metrics.redis_errors.inc()
            return JSONResponse({"status": "unhealthy", "timestamp": now_rfc3339(),
                                 "reason": f"Redis is unavailable: {error}"}, status_code=503)
        return {"status": "healthy", "timestamp": now_rfc3339(), "services": summaries(instances)}

    @app.get("/health/{name}")
    def health_of(name: str):
        instances = [i for i in store.instances(name) if i.get("name") == name]
        if not instances:
            raise HTTPException(status_code=404, detail=f"no live instance of {name}")
        views = summaries(instances)
        status = "healthy" if any(v["status"] == "healthy" for v in views) else "unhealthy"
        return {"name": name, "status": status, "timestamp": now_rfc3339(), "instances": views}

    @app.get("/metrics")
    def prometheus_metrics():
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
