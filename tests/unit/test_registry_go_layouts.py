"""The registry with the entries the Go services write themselves (fakeredis): each layout their code
uses is an instance once a reconciliation pass has seen it, gone as soon as its key is, and what does
not parse is skipped and counted, never a 5xx."""
from __future__ import annotations

import json

import pytest

from tests.unit.service_fakes import reconciled

NOW = "2026-12-07T10:00:00.123456789Z"
# What each one's code SETs (the notes beside each: the sibling repository and file).
GO_ENTRIES = {
    # audit-data-adapter-go internal/redis/service_discovery.go (audit-correlator): ServiceRegistration
    "services:audit-correlator:audit-correlator": {
        "id": "audit-correlator", "name": "audit-correlator", "version": "1.0.0", "host": "4f1c2a9e0b7d",
        "grpc_port": 50051, "http_port": 8080, "status": "healthy", "metadata": {"environment": "docker"},
        "last_seen": NOW, "registered_at": NOW},
    # custodian-simulator-go internal/infrastructure/service_discovery.go: ServiceInfo, key host:grpc port
    "services:custodian-simulator:localhost:50051": {
        "name": "custodian-simulator", "version": "1.0.0", "host": "localhost", "grpc_port": 50051,
        "http_port": 8080, "status": "healthy", "last_seen": NOW},
    # market-data-simulator-go internal/infrastructure/service_discovery.go
    "services:market-data-simulator:market-data-simulator-1765101600": {
        "service_name": "market-data-simulator", "service_version": "1.0.0",
        "instance_id": "market-data-simulator-1765101600", "address": "localhost", "port": 8080,
        "grpc_port": 50051, "http_port": 8080, "health": "healthy", "status": "active", "registered_at": NOW,
        "last_heartbeat": NOW, "metadata": {"environment": "development"}, "tags": ["market-data"]},
    # exchange-data-adapter-go pkg/adapters/redis_service_discovery.go: interfaces.ServiceInfo, no json tags
    "exchange:service:exchange-okx": {
        "ServiceName": "exchange-simulator", "ServiceID": "exchange-okx", "Address": "172.20.0.82", "Port": 8080,
        "Version": "1.0.0", "Metadata": {"namespace": "exchange"}, "RegisteredAt": NOW, "LastHeartbeat": NOW},
}
NAMES = {"services:audit-correlator:audit-correlator": ("audit-correlator", "audit-correlator"),
         "services:custodian-simulator:localhost:50051": ("custodian-simulator", "localhost:50051"),
         "services:market-data-simulator:market-data-simulator-1765101600":
             ("market-data-simulator", "market-data-simulator-1765101600"),
         "exchange:service:exchange-okx": ("exchange-simulator", "exchange-okx")}


@pytest.mark.parametrize("key", list(GO_ENTRIES))
def test_each_go_layout_is_discovered_once_a_pass_saw_it_and_gone_with_its_key(client, redis_client, key):
    name, instance_id = NAMES[key]
    redis_client.set(key, json.dumps(GO_ENTRIES[key]), ex=90)
    reconciled(client)
    found = client.get(f"/api/v1/services/{name}")
    assert found.status_code == 200, found.text
    (instance,) = found.json()["instances"]
    assert instance["instance_id"] == instance_id and instance["registered_via"] == "redis"
    assert instance["status"] == "healthy" and instance["endpoints"]["http"].endswith(":8080")
    assert instance["last_heartbeat"] == "2026-12-07T10:00:00.123Z"
    assert name in {s["name"] for s in client.get("/api/v1/services").json()["services"]}
    redis_client.delete(key)
    client.app.state.registry.cache.changed()  # what a pass's invalidation does; a DEL needs no pass
    assert client.get(f"/api/v1/services/{name}").status_code == 404


@pytest.mark.parametrize("text", ["not json", "[1, 2]", json.dumps({**GO_ENTRIES["exchange:service:exchange-okx"],
                                                                     "ServiceID": "another"}),
                                  json.dumps({"name": "custodian-simulator", "host": "h", "status": "healthy",
                                              "last_seen": "yesterday"}),
                                  json.dumps({"name": "someone-else", "host": "h", "status": "healthy",
                                              "last_seen": NOW})])
def test_a_go_entry_that_does_not_parse_is_skipped_and_counted(client, redis_client, text):
    key = "exchange:service:exchange-okx" if "Service" in text else "services:custodian-simulator:localhost:50051"
    redis_client.set(key, text, ex=90)
    reconciled(client)
    assert client.get("/api/v1/services").status_code == 200
    assert client.get("/health").status_code == 200
    assert 'registry_unreadable_entries 1.0' in client.get("/metrics").text


def test_the_sets_and_heartbeats_beside_them_are_no_entries(client, redis_client):
    redis_client.sadd("service_index:audit-correlator", "audit-correlator")
    redis_client.set("exchange:heartbeat:exchange-okx", "1765101600", ex=90)
    redis_client.hset("services:test-coordinator", mapping={"name": "test-coordinator"})
    reconciled(client)
    assert 'registry_unreadable_entries 0.0' in client.get("/metrics").text
