"""The configuration reads the registry answers at its address (registry/configuration_route.py), in
each sibling's shape, against a stand-in configuration service on a loopback port."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.unit.service_fakes import (
    PARAMETER,
    ConfigurationService,
    configuration_service_stub,
    registry_app,
    stub_url,
)


@pytest.fixture
def configuration_service():
    server = configuration_service_stub()
    yield stub_url(server)
    server.shutdown()
    server.server_close()


@pytest.fixture
def registry(redis_client, configuration_service):
    with TestClient(registry_app(redis_client, configuration_url=configuration_service)) as client:
        yield client


def test_path_and_query_reads_answer_flat(registry):
    by_path = registry.get("/api/v1/configuration/risk.max_position_usd")
    by_query = registry.get("/api/v1/configuration", params={"key": "risk.max_position_usd", "environment": "docker"})
    assert by_path.status_code == by_query.status_code == 200
    assert by_path.json() == by_query.json() == PARAMETER
    assert ConfigurationService.asked == [("/api/v1/configuration/risk.max_position_usd", None),
                                          ("/api/v1/configuration?key=risk.max_position_usd&environment=docker", None)]


def test_a_service_name_header_gets_the_envelope(registry):
    found = registry.get("/api/v1/configuration/risk.max_position_usd",
                         headers={"X-Service-Name": "exchange-simulator"})
    assert found.json() == {"success": True, "error": "", "data": [{
        "key": "risk.max_position_usd", "value": "1000000", "environment": "development",
        "service": "exchange-simulator", "updated_at": "2026-12-07T10:00:00Z"}]}
    assert ConfigurationService.asked[-1][1] == "exchange-simulator"
    missing = registry.get("/api/v1/configuration/missing.key", headers={"X-Service-Name": "exchange-simulator"})
    assert missing.status_code == 404
    assert missing.json() == {"success": False, "data": [], "error": "no parameter missing.key in development"}


def test_the_path_without_api_v1_numbers_the_type(registry):
    answer = registry.get("/configuration", params={"key": "risk.max_position_usd"})
    assert answer.status_code == 200 and answer.json()["type"] == 1
    assert registry.get("/configuration").status_code == 400


def test_waits_and_writes_stay_with_the_configuration_service(registry):
    waiting = registry.get("/api/v1/configuration/risk.max_position_usd", params={"wait_version": 3})
    assert waiting.status_code == 400 and "directly" in waiting.json()["detail"]
    assert registry.post("/api/v1/configuration", json={"key": "a", "value": "b"}).status_code == 405
    assert ConfigurationService.asked == []


def test_an_unreachable_configuration_service_is_a_502_naming_it(redis_client):
    with TestClient(registry_app(redis_client, configuration_url="http://127.0.0.1:9")) as client:
        answer = client.get("/api/v1/configuration/risk.max_position_usd")
    assert answer.status_code == 502 and "configuration service" in answer.json()["detail"]
