"""The registry with what its users really store under registry:services: (fakeredis): the hash
risk-monitor-py and trading-engine-py write themselves is an instance like any other, and no foreign
or malformed key makes an endpoint answer 5xx."""
from __future__ import annotations

import json
import time

import fakeredis
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servicekit.readcache import MAX_AGE_S
from tests.unit.service_fakes import reconciled, registry_app

DIRECT_KEY = "registry:services:risk-monitor"


def risk_monitor_hash(now: float) -> dict:
    """What risk-monitor-py's ServiceDiscovery.register_service() HSETs (infrastructure/
    service_discovery.py): asdict(ServiceInfo), str() on each value, metadata as JSON text."""
    return {"name": "risk-monitor", "version": "0.1.0", "host": "risk-monitor", "http_port": "8080",
            "grpc_port": "50051", "status": "healthy",
            "metadata": json.dumps({"environment": "docker", "capabilities": ["http", "grpc", "metrics", "health"]}),
            "registered_at": str(now), "last_heartbeat": str(now)}


def write_directly(redis_client, key=DIRECT_KEY, fields=None, ttl=90):
    redis_client.hset(key, mapping=fields or risk_monitor_hash(time.time()))
    redis_client.expire(key, ttl)


def test_a_hash_written_directly_is_an_instance_like_any_other(client, redis_client):
    write_directly(redis_client)
    found = client.get("/api/v1/services/risk-monitor")  # by its key: at once
    assert found.status_code == 200
    (instance,) = found.json()["instances"]
    assert instance["instance_id"] == "risk-monitor" and instance["registered_via"] == "redis"
    assert instance["endpoints"] == {"http": "http://risk-monitor:8080", "grpc": "risk-monitor:50051"}
    assert instance["http_port"] == 8080 and instance["grpc_port"] == 50051
    assert 0 < instance["ttl_seconds"] <= 90
    assert instance["metadata"]["environment"] == "docker"
    assert instance["registered_at"].endswith("Z") and instance["last_heartbeat"].endswith("Z")
    reconciled(client)  # listings read the names the reconciliation found
    listed = client.get("/api/v1/services")
    assert listed.status_code == 200
    assert {"name": "risk-monitor", "instances": 1, "healthy": 1} in listed.json()["services"]
    health = client.get("/health")
    assert health.status_code == 200 and any(s["name"] == "risk-monitor" for s in health.json()["services"])
    assert client.get("/health/risk-monitor").json()["status"] == "healthy"
    assert client.get("/api/v1/services/risk-monitor?status=unhealthy").status_code == 404


def test_a_direct_hash_and_an_http_registration_of_the_same_service_are_both_shown(client, redis_client):
    write_directly(redis_client)
    registered = client.post("/api/v1/services", json={"name": "risk-monitor", "version": "0.1.0",
                                                       "endpoints": {"http": "http://risk-monitor:8080"}})
    assert registered.status_code == 201 and registered.json()["registered_via"] == "api"
    instances = client.get("/api/v1/services/risk-monitor").json()["instances"]
    assert sorted(i["registered_via"] for i in instances) == ["api", "redis"]
    for path in ("/api/v1/services", "/health", "/health/risk-monitor"):
        assert client.get(path).status_code == 200, path


def test_the_writer_renews_and_removes_its_own_hash(client, redis_client):
    write_directly(redis_client, ttl=5)
    redis_client.hset(DIRECT_KEY, "last_heartbeat", str(time.time() + 30))   # its heartbeat loop
    redis_client.expire(DIRECT_KEY, 90)
    assert client.get("/api/v1/services/risk-monitor").json()["instances"][0]["ttl_seconds"] > 5
    # The registry renews only what it registered; the writer's heartbeat renews its own hash.
    assert client.put("/api/v1/services/risk-monitor/instances/risk-monitor/heartbeat").status_code == 404
    redis_client.delete(DIRECT_KEY)                                           # its shutdown
    # Written by the sibling, not through the registry: no change event, seen within the read cache's bound.
    deadline = time.monotonic() + MAX_AGE_S
    while client.get("/api/v1/services/risk-monitor").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get("/api/v1/services/risk-monitor").status_code == 404


MALFORMED = {
    "a string": ("set", "registry:services:risk-monitor", "not a hash"),
    "a list": ("rpush", "registry:services:risk-monitor", "x"),
    "a heartbeat after expiry (only last_heartbeat)": ("hset", DIRECT_KEY, {"last_heartbeat": "1728400000.5"}),
    "a garbage port": ("hset", DIRECT_KEY, {**risk_monitor_hash(1.0), "http_port": "eighty"}),
    "a garbage time": ("hset", DIRECT_KEY, {**risk_monitor_hash(1.0), "registered_at": "yesterday"}),
    "metadata not JSON": ("hset", DIRECT_KEY, {**risk_monitor_hash(1.0), "metadata": "{oops"}),
    "an unknown status": ("hset", DIRECT_KEY, {**risk_monitor_hash(1.0), "status": "green"}),
    "a name not the key's": ("hset", DIRECT_KEY, {**risk_monitor_hash(1.0), "name": "exchange"}),
    "an own-layout hash without instance_id": ("hset", "registry:services:risk-monitor:a", risk_monitor_hash(1.0)),
    "a key that is no service name": ("hset", "registry:services:Risk Monitor!", risk_monitor_hash(1.0)),
}


@pytest.mark.parametrize("kind", MALFORMED)
def test_a_malformed_key_is_skipped_counted_and_logged_once(client, redis_client, caplog, kind):
    command, key, value = MALFORMED[kind]
    if command == "hset":
        redis_client.hset(key, mapping=value)
    else:
        getattr(redis_client, command)(key, value)
    client.post("/api/v1/services", json={"name": "exchange-simulator", "endpoints": {"http": "http://x:8080"}})
    reconciled(client)
    for _ in range(3):
        for path in ("/api/v1/services", "/health", "/api/v1/services/risk-monitor", "/health/risk-monitor"):
            assert client.get(path).status_code in (200, 404), path
    assert [s["name"] for s in client.get("/api/v1/services").json()["services"]] == ["exchange-simulator"]
    assert client.get("/health").status_code == 200
    assert "registry_unreadable_entries 1.0" in client.get("/metrics").text
    assert sum("skipping" in r.getMessage() for r in caplog.records) == 1
    assert redis_client.exists(key), "the registry leaves a client's key as it is"


def test_a_heartbeat_to_a_malformed_own_layout_key_is_404_not_5xx(client, redis_client):
    redis_client.set("registry:services:risk-monitor:a", "x")
    assert client.put("/api/v1/services/risk-monitor/instances/a/heartbeat").status_code == 404
    redis_client.hset("registry:services:risk-monitor:b", mapping={"last_heartbeat": "x"})
    assert client.put("/api/v1/services/risk-monitor/instances/b/heartbeat").status_code == 404


def test_registering_over_a_key_a_client_left_in_another_type_replaces_it(client, redis_client):
    redis_client.set("registry:services:risk-monitor:risk-monitor", "left over")
    assert client.post("/api/v1/services", json={"name": "risk-monitor"}).status_code in (200, 201)
    assert client.get("/api/v1/services/risk-monitor").status_code == 200


text = st.text(max_size=12)
field_values = st.dictionaries(st.sampled_from(["name", "version", "host", "http_port", "grpc_port", "status",
                                                "metadata", "registered_at", "last_heartbeat", "instance_id",
                                                "endpoints", "tags", "ttl_seconds"]),
                               st.one_of(text, st.sampled_from(["risk-monitor", "healthy", "8080", "1e400", "nan",
                                                                "-1", "null", "[]", "{}", "70000"])), min_size=1)


@given(suffix=st.sampled_from(["risk-monitor", "risk-monitor:risk-monitor", "risk-monitor:x:y", "", ":"]),
       fields=field_values)
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_whatever_a_client_stores_no_endpoint_answers_5xx(suffix, fields):
    redis_client = fakeredis.FakeRedis(decode_responses=True)
    redis_client.hset(f"registry:services:{suffix}", mapping=fields)
    with TestClient(registry_app(redis_client)) as client:
        for path in ("/api/v1/services", "/health", "/api/v1/services/risk-monitor", "/health/risk-monitor",
                     "/metrics"):
            response = client.get(path)
            assert response.status_code < 500, f"{path} -> {response.status_code}: {response.text}"
