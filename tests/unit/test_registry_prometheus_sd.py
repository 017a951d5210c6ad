"""Prometheus's HTTP service discovery from the registry (registry/prometheus_sd.py): a target per
registered instance with an HTTP port, named by its service, the stack's own services left out."""
from __future__ import annotations

import json

from fastapi.testclient import TestClient

from registry.prometheus_sd import target_groups
from tests.unit.service_fakes import SIBLING_AUTH, registry_app
from tests.unit.test_registry_go_layouts import GO_ENTRIES

RISK = {"name": "risk-monitor", "instance_id": "risk-1", "version": "1.0.0", "host": "172.20.0.85",
        "endpoints": {"http": "http://172.20.0.85:8080"}, "ttl_seconds": 60}


def test_each_registered_instance_is_a_target_named_by_its_service(redis_client):
    declared = [{"name": "redis", "kind": "redis", "host": "redis", "port": 6379, "endpoints": {}}]
    with TestClient(registry_app(redis_client, infrastructure=declared,
                                 metrics_paths={"trading-system-engine": "/api/v1/metrics"})) as client:
        assert client.post("/api/v1/services", json=RISK, auth=SIBLING_AUTH).status_code == 201
        engine = {**RISK, "name": "trading-system-engine", "instance_id": "engine-1", "host": "172.20.0.86",
                  "endpoints": {"http": "http://172.20.0.86:8080"}}
        assert client.post("/api/v1/services", json=engine, auth=SIBLING_AUTH).status_code == 201
        key = "services:audit-correlator:audit-correlator"
        redis_client.set(key, json.dumps({**GO_ENTRIES[key], "host": "172.20.0.80"}), ex=60)
        client.app.state.registry.reconciler.full_pass()
        answer = client.get("/api/v1/prometheus/targets")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == [
        {"targets": ["172.20.0.80:8080"],
         "labels": {"job": "audit-correlator", "instance_id": "audit-correlator", "registered": "true",
                    "__metrics_path__": "/metrics"}},
        {"targets": ["172.20.0.85:8080"],
         "labels": {"job": "risk-monitor", "instance_id": "risk-1", "registered": "true",
                    "__metrics_path__": "/metrics"}},
        {"targets": ["172.20.0.86:8080"],
         "labels": {"job": "trading-system-engine", "instance_id": "engine-1", "registered": "true",
                    "__metrics_path__": "/api/v1/metrics"}},
    ]


def test_what_prometheus_could_not_scrape_is_left_out():
    instances = [{"name": "redis", "host": "redis", "http_port": 6379},                # the stack's own
                 {"name": "grpc-only", "host": "10.0.0.1", "http_port": None},         # no HTTP port
                 {"name": "odd", "host": "http://x/", "http_port": 80},                # not a host
                 {"name": "own-path", "host": "h", "http_port": 1, "instance_id": "a",
                  "metadata": {"metrics_path": "/custom"}},
                 {"name": "bad-path", "host": "h", "http_port": 2, "instance_id": "b",
                  "metadata": {"metrics_path": "no-slash"}},
                 {"name": "listening", "host": "0.0.0.0", "http_port": 8080, "instance_id": "c"}]
    groups = target_groups(instances, frozenset({"redis"}), {})
    assert [(g["targets"], g["labels"]["job"], g["labels"]["__metrics_path__"]) for g in groups] == [
        (["h:2"], "bad-path", "/metrics"), (["listening:8080"], "listening", "/metrics"),
        (["h:1"], "own-path", "/custom")]
