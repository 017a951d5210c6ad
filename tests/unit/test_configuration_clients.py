"""The sibling services' configuration clients, played against the service: the requests they send
(path style, query style, X-Service-Name) and what they parse out of the answers (value always a
string: int(float(v)) for numbers, "true"/"false", json.loads; last_updated in RFC 3339; version int)."""
from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import fakeredis
import pytest

from configsvc.seed import load_environments, seed
from configsvc.settings import Settings
from tests.unit.configuration_memory_store import MemoryStore
from tests.unit.service_fakes import config_app, editor_client

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ENTRIES, PROBLEMS = load_environments(Path(__file__).resolve().parents[2] / "infra/configuration-service/environments")
DEVELOPMENT = sorted({e.key for e in ENTRIES if e.environment == "development" and not e.service})


@pytest.fixture(scope="module")
def client():
    store = MemoryStore()
    with editor_client(config_app(Settings(), store, fakeredis.FakeRedis(decode_responses=True))) as test_client:
        seed(store, ENTRIES, test_client.app.state.notifier)
        yield test_client


def parsed(parameter: dict):
    """The value as a sibling's typed getter reads it; raises when it could not."""
    value, type_ = parameter["value"], parameter["type"]
    assert isinstance(value, str), f"{parameter['key']}: value must be a string, got {value!r}"
    if type_ == "number":
        float(value)
        return int(float(value)) if float(value).is_integer() else float(value)
    if type_ == "boolean":
        assert value in ("true", "false")
        return value == "true"
    if type_ == "json":
        return json.loads(value)
    return value


def check_flat_object(parameter: dict, key: str, environment: str):
    assert set(parameter) >= {"key", "value", "type", "environment", "service", "version", "last_updated",
                              "description", "updated_by"}
    assert parameter["key"] == key and parameter["environment"] == environment
    assert type(parameter["version"]) is int and parameter["version"] >= 1
    assert RFC3339.match(parameter["last_updated"]) and datetime.fromisoformat(
        parameter["last_updated"].replace("Z", "+00:00")).tzinfo is not None
    parsed(parameter)


def test_shipped_files_are_valid():
    assert PROBLEMS == [] and DEVELOPMENT


@pytest.mark.parametrize("key", DEVELOPMENT)
def test_path_style_get_parses(client, key):
    response = client.get(f"/api/v1/configuration/{key}", params={"environment": "development"})
    assert response.status_code == 200, response.text
    check_flat_object(response.json(), key, "development")
    assert response.headers["etag"] == f'"{response.json()["version"]}"'


@pytest.mark.parametrize("key", DEVELOPMENT)
def test_query_style_get_parses_the_same(client, key):
    by_query = client.get("/api/v1/configuration", params={"key": key, "environment": "development"})
    assert by_query.status_code == 200, by_query.text
    check_flat_object(by_query.json(), key, "development")
    assert by_query.json() == client.get(f"/api/v1/configuration/{key}", params={"environment": "dev"}).json()


def test_typed_getters_read_the_seeded_values(client):
    def get(key, environment="development", **headers):
        return parsed(client.get(f"/api/v1/configuration/{key}", params={"environment": environment},
                                 headers=headers).json())

    assert get("trading.order_rate_limit_per_second") == 1000
    assert get("trading.order_rate_limit_per_second", "production") == 100
    assert get("features.paper_trading") is True and get("features.paper_trading", "production") is False
    assert get("risk.var_confidence") == 0.99
    assert isinstance(get("trading.allowed_venues"), list)
    assert get("endpoints.redis") == "redis://redis:6379/0"


def test_x_service_name_selects_the_services_own_value(client):
    plain = client.get("/api/v1/configuration/exchange.simulated_latency_ms", params={"environment": "development"})
    own = client.get("/api/v1/configuration/exchange.simulated_latency_ms", params={"environment": "development"},
                     headers={"X-Service-Name": "exchange-simulator"})
    other = client.get("/api/v1/configuration", params={"key": "exchange.simulated_latency_ms",
                                                        "environment": "development"},
                       headers={"X-Service-Name": "risk-monitor"})
    assert parsed(plain.json()) == 5 and plain.json()["service"] is None
    assert parsed(own.json()) == 50 and own.json()["service"] == "exchange-simulator"
    assert parsed(other.json()) == 5


def test_a_client_that_writes_reads_back_strings(client):
    for value, type_, expected in ((250, "number", "250"), ("0.25", "number", "0.25"), (False, "boolean", "false"),
                                   ({"a": [1, 2]}, "json", '{"a":[1,2]}'), ("abc", "string", "abc")):
        written = client.post("/api/v1/configuration", json={"key": "client.roundtrip", "value": value, "type": type_,
                                                              "environment": "testing"},
                              headers={"X-Service-Name": "risk-monitor"})
        assert written.status_code in (200, 201) and written.json()["value"] == expected
        check_flat_object(written.json(), "client.roundtrip", "testing")
        read = client.get("/api/v1/configuration/client.roundtrip", params={"environment": "testing"}).json()
        assert read["value"] == expected and read["updated_by"] == "config-editor-production"
