"""Unit tests of the registry service (infra/service-registry), on an in-memory Redis (fakeredis)."""
from __future__ import annotations

import asyncio
import time

import fakeredis
import pytest
import redis
from fastapi.testclient import TestClient

from registry.app import create_app
from registry.infrastructure import InfrastructureMonitor
from registry.models import Registration, instance_fields, instance_view
from registry.settings import Settings
from registry.store import Store
from tests.unit.service_fakes import SIBLING_AUTH, TEST_HOSTS, FakeAcl, registry_app

SIBLING = {
    "name": "risk-monitor", "version": "0.1.0",
    "endpoints": {"http": "http://risk-monitor:8080", "grpc": "risk-monitor:50051",
                  "health": "http://risk-monitor:8080/api/v1/health", "metrics": "http://risk-monitor:8080/metrics"},
    "metadata": {"environment": "docker", "capabilities": ["http", "grpc"]},
}


def test_sibling_payload_registers_with_the_fields_siblings_read(client, redis_client):
    response = client.post("/api/v1/services", json=SIBLING)
    assert response.status_code == 201
    stored = redis_client.hgetall("registry:services:risk-monitor:risk-monitor")
    assert {k: stored[k] for k in ("name", "instance_id", "host", "http_port", "grpc_port", "status")} == {
        "name": "risk-monitor", "instance_id": "risk-monitor", "host": "risk-monitor", "http_port": "8080",
        "grpc_port": "50051", "status": "healthy"}
    assert 0 < redis_client.ttl("registry:services:risk-monitor:risk-monitor") <= 90
    assert client.post("/api/v1/services", json=SIBLING).status_code == 200


def test_null_optional_fields_take_their_defaults(client):
    """risk-monitor-py's ServiceInfo sends "metadata": null by default; other clients null any optional field."""
    payload = {**SIBLING, "metadata": None, "tags": None, "endpoints": None, "version": None, "ttl_seconds": None}
    response = client.post("/api/v1/services", json=payload)
    assert response.status_code in (200, 201), response.text
    assert response.json()["metadata"] == {} and response.json()["tags"] == []
    assert client.post("/api/v1/services", json={**SIBLING, "name": None}).status_code == 422


def test_registered_at_survives_re_registration(client):
    first = client.post("/api/v1/services", json=SIBLING).json()
    time.sleep(0.01)
    again = client.post("/api/v1/services", json=SIBLING).json()
    assert again["registered_at"] == first["registered_at"]
    assert again["last_heartbeat"] >= first["last_heartbeat"]


def test_heartbeat_renews_and_unknown_instances_are_404(client, redis_client):
    client.post("/api/v1/services", json={**SIBLING, "ttl_seconds": 30})
    redis_client.expire("registry:services:risk-monitor:risk-monitor", 5)
    response = client.put("/api/v1/services/risk-monitor/instances/risk-monitor/heartbeat",
                          json={"status": "unhealthy"})
    assert response.status_code == 200 and response.json()["status"] == "unhealthy"
    assert redis_client.ttl("registry:services:risk-monitor:risk-monitor") > 5
    assert client.put("/api/v1/services/risk-monitor/instances/nope/heartbeat").status_code == 404


def test_discovery_lists_filters_and_404s(client):
    client.post("/api/v1/services", json=SIBLING)
    client.post("/api/v1/services", json={**SIBLING, "instance_id": "b", "status": "unhealthy"})
    listed = client.get("/api/v1/services").json()
    assert listed == {"services": [{"name": "risk-monitor", "instances": 2, "healthy": 1}], "total": 1, "offset": 0,
                      "next_offset": None}
    healthy = client.get("/api/v1/services/risk-monitor?status=healthy").json()["instances"]
    assert [i["instance_id"] for i in healthy] == ["risk-monitor"]
    assert client.get("/api/v1/services/unknown").status_code == 404


def test_delete_then_404(client):
    client.post("/api/v1/services", json=SIBLING)
    assert client.delete("/api/v1/services/risk-monitor/instances/risk-monitor").status_code == 204
    assert client.delete("/api/v1/services/risk-monitor/instances/risk-monitor").status_code == 404


@pytest.mark.parametrize("payload, field", [
    ({"name": "Bad Name"}, "name"),
    ({"name": "ok", "ttl_seconds": 0}, "ttl_seconds"),
    ({"name": "ok", "ttl_seconds": 999999}, "ttl_seconds"),
    ({"name": "ok", "endpoints": {"http": 1}}, "endpoints.http"),
    ({"name": "ok", "status": "great"}, "status"),
    ({"version": "1"}, "name"),
])
def test_bad_registrations_are_422_naming_the_field(client, payload, field):
    response = client.post("/api/v1/services", json=payload)
    assert response.status_code == 422
    assert field in [d["field"] for d in response.json()["detail"]]


def test_bodies_over_64_kib_are_413_and_junk_is_never_500(client):
    big = b"{" + b" " * 70000 + b"}"
    assert client.post("/api/v1/services", content=big, headers={"content-type": "application/json"}).status_code == 413

    def streamed():                                           # no Content-Length: counted while it arrives
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    response = client.post("/api/v1/services", content=streamed(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "65536" in response.json()["detail"]
    not_json = client.post("/api/v1/services", content=b"not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 422
    assert client.get("/nowhere").status_code == 404 and client.get("/nowhere").json()


def test_writes_need_the_callers_redis_user_and_reads_need_nothing(redis_client):
    acl = FakeAcl(redis_client)
    with TestClient(registry_app(redis_client, acl)) as client:
        anonymous = client.post("/api/v1/services", json=SIBLING)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == 'Basic realm="service-registry"'
        assert "HTTP Basic" in anonymous.json()["detail"] and "Redis ACL user" in anonymous.json()["detail"]
        wrong = client.post("/api/v1/services", json=SIBLING, auth=("risk-adapter", "guess"))
        assert wrong.status_code == 401 and "risk-adapter" in wrong.json()["detail"]
        assert client.post("/api/v1/services", json=SIBLING, auth=SIBLING_AUTH).status_code == 201
        assert acl.signed_in == ["risk-adapter"]  # the write went through the caller's own sign-in
        for method, path in (("PUT", "/api/v1/services/risk-monitor/instances/risk-monitor/heartbeat"),
                             ("DELETE", "/api/v1/services/risk-monitor/instances/risk-monitor")):
            assert client.request(method, path).status_code == 401
            assert client.request(method, path, auth=SIBLING_AUTH).status_code in (200, 204)
        assert acl.signed_in == ["risk-adapter"]  # one sign-in, kept for the user's next writes
        assert client.get("/api/v1/services").status_code == 200


def test_the_stacks_own_services_are_written_by_the_registry_alone(redis_client):
    declared = [{"name": "redis", "kind": "redis", "host": "redis", "port": 6379, "endpoints": {}}]
    with TestClient(registry_app(redis_client, infrastructure=declared)) as client:
        forged = {**SIBLING, "name": "redis", "endpoints": {"redis": "redis://attacker:6379"}}
        refused = client.post("/api/v1/services", json=forged, auth=SIBLING_AUTH)
        assert refused.status_code == 403 and "only the registry" in refused.json()["detail"]
        assert client.delete("/api/v1/services/redis/instances/redis", auth=SIBLING_AUTH).status_code == 403


def test_a_write_the_callers_acl_refuses_is_403_naming_why(redis_client):
    class RefusingRedis(fakeredis.FakeRedis):
        def pipeline(self, *args, **kwargs):
            raise redis.exceptions.NoPermissionError("No permissions to access a key")

    refusing = RefusingRedis(decode_responses=True)
    with TestClient(registry_app(redis_client, FakeAcl(refusing))) as client:
        response = client.post("/api/v1/services", json={**SIBLING, "name": "trading-engine"}, auth=SIBLING_AUTH)
        assert response.status_code == 403
        assert "key patterns" in response.json()["detail"]


def test_an_endpoint_that_is_not_a_url_is_422_naming_it(client):
    # Found by the fuzz test: urlsplit raises on "[" (an unclosed IPv6 literal), which was a 503.
    response = client.post("/api/v1/services", json={**SIBLING, "endpoints": {"grpc": "["}}, auth=SIBLING_AUTH)
    assert response.status_code == 422
    assert [p["field"] for p in response.json()["detail"]] == ["endpoints.grpc"]


def test_a_read_the_registrys_own_acl_refuses_is_503_not_the_callers_fault(redis_client):
    class RefusingRedis(fakeredis.FakeRedis):
        def pipeline(self, *args, **kwargs):
            raise redis.exceptions.NoPermissionError("No permissions to access a key")

    with TestClient(registry_app(RefusingRedis(decode_responses=True))) as client:
        response = client.get("/api/v1/services")
        assert response.status_code == 503 and response.json()["detail"].startswith("Redis is unavailable")


def test_requests_for_a_foreign_host_name_are_refused(client):
    # DNS rebinding: a page on attacker.example, resolved to 127.0.0.1, sends its own name as Host.
    assert client.get("/api/v1/services", headers={"Host": "attacker.example"}).status_code == 400
    assert client.get("/api/v1/services", headers={"Host": "localhost:8080"}).status_code == 200


def test_health_is_503_while_redis_is_away(caplog):
    # The app's own client, pointed at a port where nothing listens: answers must come at once.
    started = time.monotonic()
    with TestClient(create_app(Settings(redis_url="redis://127.0.0.1:1/0", allowed_hosts=TEST_HOSTS))) as client:
        response = client.get("/health", headers={"X-Request-ID": "health-check.9"})
        assert response.status_code == 503 and response.json()["status"] == "unhealthy"
        assert response.json()["dependencies"] == {"redis": "unavailable"}
        assert "Redis is unavailable" in response.json()["reason"] and "health-check.9" in response.json()["reason"]
        assert response.headers["x-request-id"] == "health-check.9"
        # The driver's message (its address, its errno) is the log's, under the request id, not the answer's.
        assert "127.0.0.1" not in response.text and "refused" not in response.text.lower()
        assert any("health-check.9" in r.getMessage() and "127.0.0.1" in r.getMessage() for r in caplog.records)
        assert client.get("/api/v1/services").status_code == 503
    assert time.monotonic() - started < 2


def test_cors_allows_the_configured_origin_only(redis_client):
    with TestClient(registry_app(redis_client, cors_origins=("http://dash",))) as client:
        allowed = client.options("/health", headers={"Origin": "http://dash", "Access-Control-Request-Method": "GET"})
        denied = client.options("/health", headers={"Origin": "http://evil", "Access-Control-Request-Method": "GET"})
        assert allowed.headers.get("access-control-allow-origin") == "http://dash"
        assert "access-control-allow-origin" not in denied.headers


def test_infrastructure_monitor_registers_what_it_probes(redis_client):
    declared = [{"name": "redis", "kind": "redis", "host": "redis", "port": 6379, "endpoints": {"redis": "redis://redis:6379"}},
                {"name": "nowhere", "kind": "tcp", "host": "127.0.0.1", "port": 1, "endpoints": {}}]
    monitor = InfrastructureMonitor(Store(redis_client), declared, 5, "")
    assert monitor.cycle() == {"redis": "healthy", "nowhere": "unhealthy"}
    stored = redis_client.hgetall("registry:services:nowhere:nowhere")
    assert stored["status"] == "unhealthy" and 0 < redis_client.ttl("registry:services:nowhere:nowhere") <= 15


def test_instance_view_survives_damaged_fields():
    fields = instance_fields(Registration(**SIBLING), "t", None)
    fields.update({"metadata": "{not json", "http_port": "x"})
    view = instance_view(fields)
    assert view["metadata"] == {} and view["http_port"] is None and view["grpc_port"] == 50051


def test_sign_ins_are_kept_per_user_and_password_bounded_and_failures_never(redis_client):
    from servicekit.signin import RedisSignIns

    acl = FakeAcl(redis_client, {"a": "1", "b": "2", "c": "3"})
    writers = RedisSignIns(acl, size=2)
    for user, password in (("a", "1"), ("a", "1"), ("b", "2"), ("c", "3"), ("a", "1")):
        writers.client_for(user, password)
    assert acl.signed_in == ["a", "b", "c", "a"]  # "a" kept once, then evicted by "c" (two kept)
    with pytest.raises(redis.AuthenticationError):
        writers.client_for("a", "not-1")  # another password is another sign-in, checked by Redis
    assert len(writers.clients) == 2


def test_discovery_by_name_reads_the_index_and_never_walks_the_keyspace(client, redis_client):
    client.post("/api/v1/services", json={**SIBLING, "instance_id": "a"})
    client.post("/api/v1/services", json={**SIBLING, "instance_id": "b", "ttl_seconds": 30})
    redis_client.mset({f"risk:cache:{n}": "x" for n in range(2000)})  # a domain's cache beside it
    assert sorted(redis_client.zrange("registry:index:risk-monitor", 0, -1)) == ["a", "b"]
    scans = []
    original = redis_client.scan

    def counted_scan(*args, **kwargs):
        scans.append(args)
        return original(*args, **kwargs)

    redis_client.scan = counted_scan
    for path in ("/api/v1/services/risk-monitor", "/health/risk-monitor"):
        assert client.get(path).status_code == 200, path
    assert scans == [], "discovery by name must not SCAN"
    found = client.get("/api/v1/services/risk-monitor").json()["instances"]
    assert [i["instance_id"] for i in found] == ["a", "b"]


def test_the_index_follows_deregistration_heartbeats_and_expiry(client, redis_client):
    client.post("/api/v1/services", json={**SIBLING, "instance_id": "a", "ttl_seconds": 30})
    assert client.delete("/api/v1/services/risk-monitor/instances/a").status_code == 204
    assert redis_client.zrange("registry:index:risk-monitor", 0, -1) == []
    assert client.get("/api/v1/services/risk-monitor").status_code == 404
    client.post("/api/v1/services", json={**SIBLING, "instance_id": "b", "ttl_seconds": 30})
    before = redis_client.zscore("registry:index:risk-monitor", "b")
    time.sleep(0.01)
    assert client.put("/api/v1/services/risk-monitor/instances/b/heartbeat").status_code == 200
    assert redis_client.zscore("registry:index:risk-monitor", "b") > before
    assert 0 < redis_client.ttl("registry:index:risk-monitor") <= 30
    # Expired: the member's score has passed; the next discovery sweeps it.
    redis_client.zadd("registry:index:risk-monitor", {"b": time.time() - 1})
    redis_client.delete("registry:services:risk-monitor:b")
    assert client.get("/api/v1/services/risk-monitor").status_code == 404
    assert redis_client.zrange("registry:index:risk-monitor", 0, -1) == []


def test_an_instance_written_into_redis_directly_is_found_once_the_reconciliation_saw_it(redis_client, monkeypatch):
    """On a Redis that announces no change (registry/keyspace.py hears nothing), the walk finds it."""
    async def deaf(self):
        await asyncio.Event().wait()  # until the app's end cancels it

    monkeypatch.setattr("registry.keyspace.KeyspaceWatch.run", deaf)
    with TestClient(registry_app(redis_client)) as client:
        _found_by_the_walk(client, redis_client)


def _found_by_the_walk(client, redis_client):
    fields = instance_fields(Registration(name="risk-monitor", instance_id="direct"), "2026-11-28T00:00:00.000Z",
                             None)
    redis_client.hset("registry:services:risk-monitor:direct", mapping=fields)
    redis_client.expire("registry:services:risk-monitor:direct", 60)
    assert client.get("/api/v1/services/risk-monitor").status_code == 404  # not through the API: not indexed
    deadline = time.monotonic() + 5  # the app's own background pass (one a second on a small keyspace)
    while client.get("/api/v1/services/risk-monitor").status_code == 404 and time.monotonic() < deadline:
        time.sleep(0.05)
    found = client.get("/api/v1/services/risk-monitor").json()["instances"]
    assert [i["instance_id"] for i in found] == ["direct"]
    assert {"name": "risk-monitor", "instances": 1, "healthy": 1} in client.get("/api/v1/services").json()["services"]


def test_the_reconciliation_walks_a_bounded_batch_per_step_and_counts_unreadable_keys_per_pass(redis_client):
    from registry.reconcile import Reconciler

    redis_client.mset({f"risk:cache:{n}": "x" for n in range(5000)})
    redis_client.hset("registry:services:risk-monitor", mapping={"last_heartbeat": "1"})  # unreadable
    passes = []
    began = time.time()
    reconciler = Reconciler(Store(redis_client), lambda unreadable, at: passes.append((unreadable, at)),
                            keys_per_step=500)
    steps = 1
    while not reconciler.step():
        steps += 1
    assert steps >= 5000 // 500 and passes == [({"registry:services:risk-monitor": passes[0][0][
        "registry:services:risk-monitor"]}, passes[0][1])]
    assert began <= passes[0][1] <= time.time()


def test_listing_every_service_never_scans(redis_client):
    client = TestClient(registry_app(redis_client))  # outside `with`: no lifespan, no background walk
    client.post("/api/v1/services", json={**SIBLING, "instance_id": "a"}, auth=SIBLING_AUTH)
    scans = []
    original = redis_client.scan
    redis_client.scan = lambda *args, **kwargs: scans.append(args) or original(*args, **kwargs)
    for path in ("/api/v1/services", "/health"):
        assert client.get(path).status_code == 200, path
    assert scans == []


def test_health_is_503_while_the_reconciliation_is_refused(redis_client):
    class NoScan(fakeredis.FakeRedis):
        def scan(self, *args, **kwargs):
            raise redis.exceptions.NoPermissionError("this user has no permissions to run the 'scan' command")

    with TestClient(registry_app(NoScan(server=redis_client.connection_pool.connection_kwargs["server"],
                                        decode_responses=True))) as client:
        deadline = time.monotonic() + 5
        while client.get("/health").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        response = client.get("/health")
        assert response.status_code == 503 and "scan" in response.json()["reason"]
        assert "permissions" not in response.text, "Redis's message is the log's"


def test_the_reconciliation_tells_the_replicas_once_when_it_indexed_something_new(redis_client):
    from registry.reconcile import Reconciler

    fields = instance_fields(Registration(name="risk-monitor", instance_id="direct"), "2026-11-28T00:00:00.000Z", None)
    redis_client.hset("registry:services:risk-monitor:direct", mapping=fields)
    told = []
    reconciler = Reconciler(Store(redis_client), on_indexed=lambda: told.append(1))
    while not reconciler.step():
        pass
    while not reconciler.step():  # a second pass finds nothing new: no event
        pass
    assert told == [1]


@pytest.mark.parametrize("host, status", [("172.20.3.7:8080", 200), ("service-registry:8080", 200),
                                          ("172.21.0.5:8080", 400), ("evil.example:8080", 400),
                                          ("172.20.3.7.evil.example", 400)])
def test_a_host_of_an_allowed_network_is_allowed_and_a_name_must_be_listed(redis_client, host, status):
    app = create_app(Settings(allowed_hosts=(*TEST_HOSTS, "service-registry", "172.20.0.0/16")), redis_client,
                     FakeAcl(redis_client))
    assert TestClient(app).get("/api/v1/services", headers={"Host": host}).status_code == status


def test_listings_come_in_pages_and_a_service_has_a_bounded_number_of_instances(client, monkeypatch):
    for name in ("risk-a", "risk-b", "risk-c"):
        client.post("/api/v1/services", json={**SIBLING, "name": name})
    first = client.get("/api/v1/services?limit=2").json()
    assert [s["name"] for s in first["services"]] == ["risk-a", "risk-b"] and first["next_offset"] == 2
    last = client.get("/api/v1/services?limit=2&offset=2").json()
    assert [s["name"] for s in last["services"]] == ["risk-c"] and last["next_offset"] is None
    assert client.get("/api/v1/services?limit=1001").status_code == 422
    monkeypatch.setattr("registry.routes.MAX_INSTANCES_PER_SERVICE", 2)
    monkeypatch.setattr("registry.store.MAX_INSTANCES_PER_SERVICE", 2)
    client.post("/api/v1/services", json={**SIBLING, "name": "risk-a", "instance_id": "second"})
    refused = client.post("/api/v1/services", json={**SIBLING, "name": "risk-a", "instance_id": "third"})
    assert refused.status_code == 409 and "2 live instances" in refused.json()["detail"]
    assert client.post("/api/v1/services", json={**SIBLING, "name": "risk-a"}).status_code == 200, "a renewal"


def test_an_oversized_hash_is_skipped_as_unreadable_without_reading_it_whole(client, redis_client):
    client.post("/api/v1/services", json=SIBLING)
    # A writer-owned hash of the name, grown past any instance's size by a client.
    redis_client.hset("registry:services:risk-monitor", mapping={f"field{i}": "x" for i in range(1000)})
    read_whole = []
    original = redis_client.pipeline

    def watched_pipeline(*args, **kwargs):
        pipe = original(*args, **kwargs)
        hgetall = pipe.hgetall
        pipe.hgetall = lambda k: read_whole.append(k) or hgetall(k)
        return pipe

    redis_client.pipeline = watched_pipeline
    answer = client.get("/api/v1/services/risk-monitor")
    assert answer.status_code == 200 and [i["instance_id"] for i in answer.json()["instances"]] == ["risk-monitor"]
    assert "registry:services:risk-monitor" not in read_whole
    assert client.get("/health").status_code == 200
