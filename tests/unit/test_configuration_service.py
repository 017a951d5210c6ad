"""Unit tests of the configuration service (infra/configuration-service), on an in-memory Store
(tests/unit/configuration_memory_store.py) and an in-memory Redis (fakeredis): no Docker, no PostgreSQL."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import fakeredis
import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from configsvc.metrics import Metrics
from configsvc.model import Invalid, canonical_environment, check_key, check_service, normalise_value
from configsvc.notifier import CHANNEL, ChangeSignal, Notifier
from configsvc.seed import load_environments, seed
from configsvc.settings import Settings
from tests.unit.configuration_memory_store import MemoryStore
from tests.unit.service_fakes import EDITOR_AUTH, PRODUCTION_EDITOR_AUTH, config_app, editor_client

SERVICE_DIR = Path(__file__).resolve().parents[2] / "infra/configuration-service"
API = "/api/v1/configuration"


@pytest.fixture
def store():
    return MemoryStore()


@pytest.fixture
def redis_client():
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def client(store, redis_client):
    with editor_client(config_app(Settings(max_wait_s=5), store, redis_client)) as test_client:
        yield test_client


def create(client, key, value, type_, **fields):
    response = client.post(API, json={"key": key, "value": value, "type": type_, **fields})
    assert response.status_code in (200, 201), response.text
    return response.json()


def problems(response):
    """{field: problem} of a 422 answer."""
    assert response.status_code == 422, response.text
    return {p["field"]: p["problem"] for p in response.json()["detail"]}


# --- the model --------------------------------------------------------------------------------------

@pytest.mark.parametrize("type_, given, stored", [
    ("number", 42, "42"), ("number", "42", "42"), ("number", 0.5, "0.5"), ("number", "0.5", "0.5"),
    ("number", -3.25, "-3.25"), ("number", "1e3", "1000"), ("number", 42.0, "42"), ("number", " 7 ", "7"),
    ("boolean", True, "true"), ("boolean", False, "false"), ("boolean", "true", "true"), ("boolean", "FALSE", "false"),
    ("json", {"a": 1, "b": [1, 2]}, '{"a":1,"b":[1,2]}'), ("json", '{"a": 1}', '{"a":1}'),
    ("json", [1, "x"], '[1,"x"]'),
    ("json", '"text"', '"text"'), ("json", None, "null"),
    ("string", "GTC", "GTC"), ("string", "", ""), ("string", "42", "42"),
])
def test_values_are_stored_in_their_string_form(type_, given, stored):
    assert normalise_value("some.key", type_, given) == stored


@pytest.mark.parametrize("type_, given", [
    ("number", True), ("number", "abc"), ("number", "NaN"), ("number", float("nan")), ("number", float("inf")),
    ("number", "1e999"), ("number", "0x10"), ("number", [1]), ("number", None),
    ("boolean", 1), ("boolean", "yes"), ("boolean", None),
    ("json", "{bad"), ("json", "NaN"), ("json", "[1,]"),
    ("string", 5), ("string", None), ("string", {"a": 1}), ("string", "x" * (16 * 1024 + 1)), ("string", "a\x00b"),
])
def test_values_that_do_not_parse_as_their_type_are_refused_naming_key_and_type(type_, given):
    with pytest.raises(Invalid) as refused:
        normalise_value("risk.limit", type_, given)
    assert refused.value.field == "value"
    assert "risk.limit" in refused.value.problem and type_ in refused.value.problem


def test_unknown_types_are_refused():
    with pytest.raises(Invalid) as refused:
        normalise_value("risk.limit", "integer", 1)
    assert refused.value.field == "type" and "integer" in refused.value.problem


@pytest.mark.parametrize("given, canonical", [
    ("development", "development"), ("dev", "development"), ("DEV", "development"), ("Development", "development"),
    ("test", "testing"), ("testing", "testing"), ("prod", "production"), ("PRODUCTION", "production"),
    (None, "development"), ("", "development"), ("docker", "development"),
])
def test_environments_and_their_aliases(given, canonical):
    assert canonical_environment(given, "development") == canonical


def test_unknown_environments_name_the_accepted_ones():
    with pytest.raises(Invalid) as refused:
        canonical_environment("staging")
    assert refused.value.field == "environment"
    assert all(name in refused.value.problem for name in ("staging", "development", "testing", "production"))


@pytest.mark.parametrize("key", ["a", "risk.max_position_usd", "A.b_C.d9", "x" * 200])
def test_valid_keys(key):
    assert check_key(key) == key


@pytest.mark.parametrize("key", ["", "1a", "a..b", "a.", ".a", "a-b", "a b", "a.1b", "_a", "x" * 201, None])
def test_invalid_keys(key):
    with pytest.raises(Invalid):
        check_key(key)


@pytest.mark.parametrize("service, valid", [
    ("exchange-simulator", True), ("risk-monitor", True), ("a", True), ("0svc", True), ("a" * 63, True),
    (None, True), ("", True), ("Risk", False), ("-svc", False), ("svc_1", False), ("a" * 64, False), ("a b", False),
])
def test_service_names(service, valid):
    if valid:
        assert check_service(service) == (service or "")
    else:
        with pytest.raises(Invalid):
            check_service(service)


@pytest.mark.parametrize("url, service, valid", [
    ("redis://redis:6379/0", "", True), ("http://grafana:3000", "", True),
    ("postgresql://user:secret@postgres:5432/db", "", False), ("http://user@host", "", False),
    ("grafana:3000", "", False), ("http://", "", False), ("/path/only", "", False),
    ("http://grafana:3000", "risk-monitor", False),
])
def test_endpoint_urls(url, service, valid):
    if valid:
        assert normalise_value("endpoints.x", "string", url, service) == url
    else:
        with pytest.raises(Invalid):
            normalise_value("endpoints.x", "string", url, service)


# --- writing and reading ----------------------------------------------------------------------------

def test_post_creates_201_then_changes_200_then_unchanged_200(client, store):
    created = client.post(API, json={"key": "risk.max_position_usd", "value": 1000000, "type": "number",
                                     "description": "limit"})
    assert created.status_code == 201 and created.headers["etag"] == '"1"'
    assert created.json() == {**created.json(), "key": "risk.max_position_usd", "value": "1000000", "type": "number",
                              "environment": "development", "service": None, "version": 1, "description": "limit",
                              "updated_by": "config-editor-production"}
    changed = client.post(API, json={"key": "risk.max_position_usd", "value": "2000000", "type": "number"})
    assert changed.status_code == 200 and changed.json()["version"] == 2 and changed.json()["value"] == "2000000"
    assert changed.json()["description"] == "limit", "an omitted description is kept"
    same = client.post(API, json={"key": "risk.max_position_usd", "value": 2000000.0, "type": "number"})
    assert same.status_code == 200 and same.json()["version"] == 2
    assert len(store.history("development", "", "risk.max_position_usd")) == 2
    described = client.post(API, json={"key": "risk.max_position_usd", "value": 2000000, "type": "number",
                                       "description": "new words"})
    assert described.json()["version"] == 3, "a new description is a change"


def test_writes_sign_in_as_an_editor_whose_name_the_history_records(client):
    body = {"key": "a.two", "value": "x", "type": "string"}
    anonymous = client.post(API, json=body, auth=None)
    assert anonymous.status_code == 401 and "HTTP Basic" in anonymous.json()["detail"]
    assert anonymous.headers["www-authenticate"] == 'Basic realm="configuration-service"'
    assert client.post(API, json=body, auth=("config-editor", "guess")).status_code == 401
    claimed = client.post(API, json=body, auth=EDITOR_AUTH, headers={"X-Updated-By": "someone-else"})
    assert claimed.status_code == 201 and claimed.json()["updated_by"] == "config-editor"  # the claim is not taken
    assert client.get(f"{API}/a.two", auth=None).status_code == 200  # reads need no sign-in


def test_production_takes_a_production_editor(client):
    body = {"key": "risk.max_daily_loss_usd", "value": 1, "type": "number", "environment": "production"}
    refused = client.post(API, json=body, auth=EDITOR_AUTH)
    assert refused.status_code == 403 and "production editor" in refused.json()["detail"]
    assert client.post(API, json={**body, "environment": "testing"}, auth=EDITOR_AUTH).status_code == 201
    written = client.post(API, json=body, auth=PRODUCTION_EDITOR_AUTH)
    assert written.status_code == 201 and written.json()["updated_by"] == "config-editor-production"
    for method in ("PUT", "DELETE"):
        answer = client.request(method, f"{API}/risk.max_daily_loss_usd", params={"environment": "prod"},
                                json={"value": 2} if method == "PUT" else None, headers={"If-Match": "1"},
                                auth=EDITOR_AUTH)
        assert answer.status_code == 403, method


@pytest.mark.parametrize("body, field, words", [
    ({"key": "9bad", "value": "x", "type": "string"}, "key", ["9bad"]),
    ({"key": "a.b", "value": "x", "type": "integer"}, "type", []),
    ({"key": "a.b", "value": "abc", "type": "number"}, "value", ["a.b", "number"]),
    ({"key": "a.b", "value": "maybe", "type": "boolean"}, "value", ["a.b", "boolean"]),
    ({"key": "a.b", "value": "{x", "type": "json"}, "value", ["a.b", "json"]),
    ({"key": "a.b", "value": 5, "type": "string"}, "value", ["a.b", "string"]),
    ({"key": "a.b", "value": "x", "type": "string", "environment": "staging"}, "environment",
     ["staging", "development", "testing", "production"]),
    ({"key": "a.b", "value": "x", "type": "string", "service": "Bad Name"}, "service", []),
    ({"key": "endpoints.db", "value": "postgresql://u:p@db/x", "type": "string"}, "value", ["credentials"]),
    ({"value": "x", "type": "string"}, "key", []),
    ({"key": "a.b", "type": "string"}, "value", []),
])
def test_bad_writes_are_422_naming_what_is_wrong(client, body, field, words):
    found = problems(client.post(API, json=body))
    assert field in found, found
    assert all(word in found[field] for word in words), found[field]


def test_unknown_fields_are_ignored(client):
    assert client.post(API, json={"key": "a.b", "value": "x", "type": "string", "colour": "red"}).status_code == 201


def test_service_specific_values_win_over_environment_wide_ones(client):
    create(client, "exchange.latency_ms", 5, "number")
    create(client, "exchange.latency_ms", 50, "number", service="exchange-simulator")
    assert client.get(f"{API}/exchange.latency_ms").json()["value"] == "5"
    by_query = client.get(f"{API}/exchange.latency_ms", params={"service": "exchange-simulator"}).json()
    assert by_query["value"] == "50" and by_query["service"] == "exchange-simulator"
    by_header = client.get(f"{API}/exchange.latency_ms", headers={"X-Service-Name": "exchange-simulator"})
    assert by_header.json()["value"] == "50"
    query_wins = client.get(f"{API}/exchange.latency_ms", params={"service": "risk-monitor"},
                            headers={"X-Service-Name": "exchange-simulator"})
    assert query_wins.json()["value"] == "5" and query_wins.json()["service"] is None


def test_each_environment_has_its_own_values(client):
    create(client, "trading.order_rate_limit_per_second", 1000, "number", environment="development")
    create(client, "trading.order_rate_limit_per_second", 100, "number", environment="prod")
    assert client.get(f"{API}/trading.order_rate_limit_per_second").json()["value"] == "1000"
    production = client.get(f"{API}/trading.order_rate_limit_per_second", params={"environment": "production"})
    assert production.json()["value"] == "100" and production.json()["environment"] == "production"
    assert client.get(f"{API}/trading.order_rate_limit_per_second", params={"environment": "test"}).status_code == 404
    assert client.get(API, params={"key": "trading.order_rate_limit_per_second", "environment": "PROD"}).json()[
        "value"] == "100"


def test_reads_of_missing_or_malformed_parameters(client):
    missing = client.get(f"{API}/no.such.key")
    assert missing.status_code == 404 and "no.such.key" in missing.json()["detail"]
    assert "key" in problems(client.get(f"{API}/bad..key"))
    assert "environment" in problems(client.get(f"{API}/a.b", params={"environment": "staging"}))
    assert "service" in problems(client.get(f"{API}/a.b", params={"service": "NOT OK"}))


def test_list_is_every_row_or_the_resolved_view_of_a_service(client):
    create(client, "risk.limit", 1, "number")
    create(client, "risk.limit", 2, "number", service="risk-monitor")
    create(client, "risk.var", 0.99, "number")
    create(client, "trading.venue", "XNAS", "string")
    create(client, "risk.limit", 3, "number", environment="production")
    everything = client.get(API).json()
    assert everything["environment"] == "development" and everything["count"] == 4
    assert [(p["key"], p["service"]) for p in everything["parameters"]] == [
        ("risk.limit", None), ("risk.limit", "risk-monitor"), ("risk.var", None), ("trading.venue", None)]
    resolved = client.get(API, params={"prefix": "risk."}, headers={"X-Service-Name": "risk-monitor"}).json()
    assert resolved["service"] == "risk-monitor" and resolved["prefix"] == "risk."
    assert [(p["key"], p["value"]) for p in resolved["parameters"]] == [("risk.limit", "2"), ("risk.var", "0.99")]
    assert client.get(API, params={"environment": "prod"}).json()["count"] == 1
    assert "prefix" in problems(client.get(API, params={"prefix": "a\x00"}))


def test_put_needs_the_version_read(client, store):
    create(client, "features.paper_trading", True, "boolean")
    missing = client.put(f"{API}/features.paper_trading", json={"value": False})
    assert missing.status_code == 428 and "If-Match" in missing.json()["detail"]
    changed = client.put(f"{API}/features.paper_trading", json={"value": "false"}, headers={"If-Match": '"1"'})
    assert changed.status_code == 200 and changed.json()["value"] == "false" and changed.json()["version"] == 2
    assert changed.json()["type"] == "boolean" and changed.headers["etag"] == '"2"'
    stale = client.put(f"{API}/features.paper_trading", json={"value": True}, headers={"If-Match": "1"})
    assert stale.status_code == 412 and stale.json()["current_version"] == 2 and "2" in stale.json()["detail"]
    assert store.get_rows("development", "features.paper_trading", [""])[0].value == "false", "no lost update"
    weak = client.put(f"{API}/features.paper_trading", json={"value": True}, headers={"If-Match": 'W/"2"'})
    assert weak.status_code == 200 and weak.json()["version"] == 3
    retyped = client.put(f"{API}/features.paper_trading", json={"value": {"on": True}, "type": "json"},
                         headers={"If-Match": "3"})
    assert retyped.json()["type"] == "json" and retyped.json()["value"] == '{"on":true}'


def test_put_refuses_absent_parameters_and_bad_input(client):
    assert client.put(f"{API}/no.such", json={"value": 1}, headers={"If-Match": "1"}).status_code == 404
    create(client, "risk.limit", 1, "number")
    assert "value" in problems(client.put(f"{API}/risk.limit", json={"value": "lots"}, headers={"If-Match": "1"}))
    assert "If-Match" in problems(client.put(f"{API}/risk.limit", json={"value": 2}, headers={"If-Match": "v1"}))
    assert client.put(f"{API}/risk.limit", json={"value": 2}, params={"service": "risk-monitor"},
                      headers={"If-Match": "1"}).status_code == 404, "PUT writes the exact row, not the resolved one"


def test_delete_then_404_and_versions_never_go_backwards(client):
    create(client, "risk.limit", 1, "number")
    create(client, "risk.limit", 2, "number")
    assert client.delete(f"{API}/risk.limit").status_code == 204
    assert client.get(f"{API}/risk.limit").status_code == 404
    assert client.delete(f"{API}/risk.limit").status_code == 404
    again = create(client, "risk.limit", 1, "number")
    assert again["version"] == 4, "a re-created key goes on from its history (2 versions and a deletion)"


def test_lists_come_in_bounded_pages(client):
    for n in range(5):
        create(client, f"risk.p{n}", n, "number")
    first = client.get(API, params={"limit": 2}).json()
    assert (first["count"], first["total"], first["offset"], first["next_offset"]) == (2, 5, 0, 2)
    keys = [p["key"] for p in first["parameters"]]
    offset = first["next_offset"]
    while offset is not None:
        page = client.get(API, params={"limit": 2, "offset": offset}).json()
        keys += [p["key"] for p in page["parameters"]]
        offset = page["next_offset"]
    assert keys == [f"risk.p{n}" for n in range(5)], "the pages together are the list, once each"
    assert client.get(API).json()["next_offset"] is None, "the default page holds every parameter"
    assert "query.limit" in problems(client.get(API, params={"limit": 1001}))
    assert "query.limit" in problems(client.get(API, params={"limit": 0}))


def test_history_comes_in_pages_newest_first(client):
    for n in range(5):
        create(client, "risk.limit", n, "number")
    first = client.get(f"{API}/risk.limit/history", params={"limit": 2}).json()
    assert [h["version"] for h in first["history"]] == [5, 4] and first["next_before_version"] == 4
    rest = client.get(f"{API}/risk.limit/history", params={"limit": 10, "before_version": 4}).json()
    assert [h["version"] for h in rest["history"]] == [3, 2, 1] and rest["next_before_version"] is None
    beyond = client.get(f"{API}/risk.limit/history", params={"before_version": 1})
    assert beyond.status_code == 200 and beyond.json()["history"] == [], "past the oldest: an empty page, not 404"
    assert "query.limit" in problems(client.get(f"{API}/risk.limit/history", params={"limit": 1001}))


def test_history_is_newest_first_with_every_change(client):
    assert client.get(f"{API}/risk.limit/history").status_code == 404
    create(client, "risk.limit", 1, "number")
    client.put(f"{API}/risk.limit", json={"value": 2}, headers={"If-Match": "1"}, auth=EDITOR_AUTH)
    client.delete(f"{API}/risk.limit")
    history = client.get(f"{API}/risk.limit/history").json()
    assert history["key"] == "risk.limit" and history["environment"] == "development" and history["service"] is None
    rows = [(h["change"], h["old_value"], h["new_value"], h["version"], h["changed_by"]) for h in history["history"]]
    assert rows == [
        ("deleted", "2", None, 3, "config-editor-production"), ("updated", "1", "2", 2, "config-editor"),
        ("created", None, "1", 1, "config-editor-production")]
    assert all(h["changed_at"].endswith("Z") for h in history["history"])
    assert client.get(f"{API}/risk.limit/history", params={"environment": "prod"}).status_code == 404


# --- notifications and waiting ----------------------------------------------------------------------

def messages(pubsub, count, within_s=2.0):
    found, deadline = [], time.monotonic() + within_s
    while len(found) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.1)
        if message and message["type"] == "message":
            found.append(json.loads(message["data"]))
    return found


def test_every_change_is_announced_on_config_changes(client, redis_client):
    pubsub = redis_client.pubsub()
    pubsub.subscribe(CHANNEL)
    create(client, "risk.limit", 1, "number", service="risk-monitor", environment="prod")
    create(client, "risk.limit", 1, "number", service="risk-monitor", environment="prod")   # unchanged: silent
    client.put(f"{API}/risk.limit", params={"environment": "prod", "service": "risk-monitor"}, json={"value": 2},
               headers={"If-Match": "1"})
    client.delete(f"{API}/risk.limit", params={"environment": "prod", "service": "risk-monitor"})
    created, updated, deleted = messages(pubsub, 3)
    assert created == {"event": "created", "key": "risk.limit", "environment": "production", "service": "risk-monitor",
                       "type": "number", "value": "1", "version": 1, "updated_by": "config-editor-production",
                       "timestamp": created["timestamp"]}
    assert created["timestamp"].endswith("Z")
    assert (updated["event"], updated["value"], updated["version"]) == ("updated", "2", 2)
    assert (deleted["event"], deleted["value"], deleted["version"]) == ("deleted", None, 3)
    assert messages(pubsub, 1, within_s=0.3) == []
    create(client, "features.x", True, "boolean")
    assert messages(pubsub, 1)[0]["service"] is None


def test_a_signed_in_editor_writes_while_redis_is_away(store):
    server = fakeredis.FakeServer()
    redis_client = fakeredis.FakeRedis(server=server, decode_responses=True)
    with editor_client(config_app(Settings(), store, redis_client)) as client:
        assert client.post(API, json={"key": "a.a", "value": 1, "type": "number"}).status_code == 201  # signs in
        server.connected = False
        assert client.post(API, json={"key": "a.b", "value": 1, "type": "number"}).status_code == 201
        assert store.get_rows("development", "a.b", [""])[0].value == "1"
        assert "config_notifications_failed_total 1.0" in client.get("/metrics").text
        # A new sign-in needs Redis: refused at once, with the reason.
        assert client.post(API, json={"key": "a.c", "value": 1, "type": "number"}, auth=EDITOR_AUTH).status_code == 503


def test_wait_answers_at_once_when_the_version_is_already_newer(client):
    create(client, "risk.limit", 1, "number")
    create(client, "risk.limit", 2, "number")
    started = time.monotonic()
    response = client.get(f"{API}/risk.limit", params={"wait_version": 1, "timeout": 3})
    assert response.status_code == 200 and response.json()["version"] == 2
    assert time.monotonic() - started < 1


def waiting_clients(client) -> float:
    found = re.search(r"^config_waiting_clients (\S+)$", client.get("/metrics").text, flags=re.M)
    return float(found.group(1))


def test_wait_answers_when_a_change_arrives(client):
    create(client, "risk.limit", 1, "number")
    seen_waiting = []

    def write():
        seen_waiting.append(waiting_clients(client))
        client.post(API, json={"key": "risk.limit", "value": 7, "type": "number"})

    writer = threading.Timer(0.3, write)
    started = time.monotonic()
    writer.start()
    response = client.get(API, params={"key": "risk.limit", "wait_version": 1, "timeout": 5})
    elapsed = time.monotonic() - started
    writer.join()
    assert response.status_code == 200 and response.json()["value"] == "7" and response.json()["version"] == 2
    assert seen_waiting == [1.0] and waiting_clients(client) == 0, "config_waiting_clients counts the waiting"
    assert 0.25 < elapsed < 0.9, f"woken by the write itself, not the 1 s recheck: {elapsed:.2f} s"


def test_wait_is_woken_by_a_change_another_instance_announces(client, store, redis_client):
    create(client, "risk.limit", 1, "number")

    def other_instance_writes():
        store.upsert("development", "", "risk.limit", "number", "9", None, "other")
        redis_client.publish(CHANNEL, json.dumps({"event": "updated", "key": "risk.limit",
                                                  "environment": "development"}))

    writer = threading.Timer(0.3, other_instance_writes)
    started = time.monotonic()
    writer.start()
    response = client.get(f"{API}/risk.limit", params={"wait_version": 1, "timeout": 5})
    elapsed = time.monotonic() - started
    writer.join()
    assert response.status_code == 200 and response.json()["value"] == "9"
    assert elapsed < 0.9, f"woken by the subscription, not the 1 s recheck: {elapsed:.2f} s"


def test_wait_ends_with_304_at_the_timeout(client):
    create(client, "risk.limit", 1, "number")
    started = time.monotonic()
    response = client.get(f"{API}/risk.limit", params={"wait_version": 1, "timeout": 1})
    assert response.status_code == 304 and response.content == b"" and response.headers["etag"] == '"1"'
    assert 0.9 < time.monotonic() - started < 2
    missing = client.get(f"{API}/not.yet", params={"wait_version": 0, "timeout": 0.3})
    assert missing.status_code == 304, "a missing key counts as version 0"


def test_waits_beyond_the_cap_are_refused_with_429(store, redis_client):
    app = config_app(Settings(max_wait_s=5, max_waiting=2), store, redis_client)
    with editor_client(app) as client:
        create(client, "risk.limit", 1, "number")
        answers = []
        waits = [threading.Thread(target=lambda: answers.append(
            client.get(f"{API}/risk.limit", params={"wait_version": 1, "timeout": 2}).status_code)) for _ in range(2)]
        for wait in waits:
            wait.start()
        deadline = time.monotonic() + 2
        while waiting_clients(client) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = client.get(f"{API}/risk.limit", params={"wait_version": 1, "timeout": 2})
        for wait in waits:
            wait.join()
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "CONFIG_MAX_WAITING" in refused.json()["detail"]
        assert answers == [304, 304], "the waits within the cap ran to their timeout"
        assert client.get(f"{API}/risk.limit").status_code == 200, "plain reads are never capped"
        after = client.get(f"{API}/risk.limit", params={"wait_version": 1, "timeout": 0.2})
        assert after.status_code == 304, "the cap frees as waits end"


def test_a_missing_key_ends_the_wait_when_it_is_created(client):
    threading.Timer(0.3, lambda: create(client, "not.yet", "here", "string")).start()
    response = client.get(f"{API}/not.yet", params={"wait_version": 0, "timeout": 3})
    assert response.status_code == 200 and response.json()["value"] == "here"


@pytest.mark.parametrize("params, field", [
    ({"timeout": 1}, "timeout"), ({"wait_version": 1, "timeout": 0}, "timeout"),
    ({"wait_version": 1, "timeout": 6}, "timeout"), ({"wait_version": -1}, "wait_version"),
])
def test_wait_parameters_are_checked(client, params, field):
    found = problems(client.get(f"{API}/risk.limit", params=params))
    assert any(field in name for name in found), found


# --- endpoints, metrics, limits, health --------------------------------------------------------------

def test_endpoints_view(client):
    create(client, "endpoints.redis", "redis://redis:6379/0", "string")
    create(client, "endpoints.grafana", "http://grafana:3000", "string")
    create(client, "endpoints.grafana", "http://grafana.prod:3000", "string", environment="production")
    create(client, "risk.limit", 1, "number")
    assert client.get("/api/v1/endpoints").json() == {"environment": "development", "endpoints": {
        "grafana": "http://grafana:3000", "redis": "redis://redis:6379/0"}}
    assert client.get("/api/v1/endpoints", params={"environment": "prod"}).json()["endpoints"] == {
        "grafana": "http://grafana.prod:3000"}
    per_service = problems(client.post(API, json={"key": "endpoints.x", "value": "http://x", "type": "string",
                                                  "service": "risk-monitor"}))
    assert "environment-wide" in per_service["value"]


def test_metrics_count_requests_reads_writes_and_notifications(client):
    create(client, "risk.limit", 1, "number")
    client.get(f"{API}/risk.limit")
    client.get(f"{API}/nothing.here")
    text = client.get("/metrics").text
    assert 'config_requests_total{method="POST",route="/api/v1/configuration",status="201"} 1.0' in text
    assert 'config_requests_total{method="GET",route="/api/v1/configuration/{key}",status="404"} 1.0' in text
    assert 'config_request_seconds_bucket{le="0.1",method="GET",route="/api/v1/configuration/{key}"}' in text
    assert 'config_reads_total{outcome="found"} 1.0' in text and 'config_reads_total{outcome="missing"} 1.0' in text
    assert 'config_writes_total{change="created"} 1.0' in text
    assert "config_notifications_published_total 1.0" in text


def test_bodies_over_64_kib_are_413_and_junk_is_never_500(client):
    big = b'{"key": "a.b", "type": "string", "value": "' + b"x" * 70 * 1024 + b'"}'
    assert client.post(API, content=big, headers={"content-type": "application/json"}).status_code == 413

    def streamed():                                           # no Content-Length: counted while it arrives
        for start in range(0, len(big), 8192):
            yield big[start:start + 8192]

    response = client.post(API, content=streamed(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "65536" in response.json()["detail"]
    assert client.post(API, content=b"not json", headers={"content-type": "application/json"}).status_code == 422
    assert client.post(API, content=b"[1]", headers={"content-type": "application/json"}).status_code == 422
    assert client.get("/nowhere").status_code == 404 and client.get("/nowhere").json()


def test_requests_for_a_foreign_host_name_are_refused(client):
    # DNS rebinding: a page on attacker.example, resolved to 127.0.0.1, sends its own name as Host.
    create(client, "risk.limit", 1, "number")
    for path in (f"{API}/risk.limit", "/health"):
        assert client.get(path, headers={"Host": "attacker.example"}).status_code == 400, path
    assert client.get(f"{API}/risk.limit", headers={"Host": "localhost:8090"}).status_code == 200


@pytest.mark.parametrize("host, status", [("127.0.0.1:8090", 200), ("configuration-service:8090", 200),
                                          ("172.20.0.35:8090", 200), ("172.20.0.36:8090", 400),
                                          ("attacker.example:8090", 400)])
def test_the_stacks_names_and_listed_networks_are_the_hosts_allowed(store, redis_client, host, status):
    from configsvc.app import create_app

    settings = Settings.from_environment({"CONFIG_ALLOWED_HOSTS": "localhost,127.0.0.1,configuration-service,"
                                                                  "172.20.0.35/32"})
    with TestClient(create_app(settings, store, redis_client, listen=False)) as client:
        assert client.get("/health", headers={"Host": host}).status_code == status


def test_one_client_cannot_take_every_wait(store, redis_client):
    from configsvc.deps import client_address

    app = config_app(Settings(max_wait_s=5, max_waiting=8, max_waiting_per_client=2), store, redis_client)

    def from_header(request: Request) -> str:
        # TestClient has one address: a header stands for the connection's remote address here.
        return request.headers.get("x-test-client", "")

    app.dependency_overrides[client_address] = from_header

    def wait(who, timeout=2):
        return client.get(f"{API}/risk.limit", params={"wait_version": 1, "timeout": timeout},
                          headers={"X-Test-Client": who})

    with editor_client(app) as client:
        create(client, "risk.limit", 1, "number")
        answers = []
        waits = [threading.Thread(target=lambda: answers.append(wait("10.0.0.1").status_code)) for _ in range(2)]
        for thread in waits:
            thread.start()
        deadline = time.monotonic() + 2
        while waiting_clients(client) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = wait("10.0.0.1")
        other = wait("10.0.0.2", timeout=0.2)
        for thread in waits:
            thread.join()
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "CONFIG_MAX_WAITING_PER_CLIENT" in refused.json()["detail"]
        assert other.status_code == 304, "another client still waits while the first holds its share"
        assert answers == [304, 304]
        assert wait("10.0.0.1", timeout=0.2).status_code == 304, "the client's share frees as its waits end"
        assert app.state.config.waiting_by_client == {}, "no entry kept per client once its waits ended"


def test_health_is_healthy_with_both_dependencies(client):
    body = client.get("/health").json()
    assert body["status"] == "healthy" and body["postgres"]["status"] == body["redis"]["status"] == "healthy"


def test_health_is_503_and_requests_are_503_while_postgres_is_away(client, store):
    store.failing = "connection refused"
    response = client.get("/health")
    assert response.status_code == 503 and response.json()["status"] == "unhealthy"
    assert response.json()["postgres"]["status"] == "unhealthy"
    for answer in (client.get(f"{API}/a.b"), client.get(API), client.post(API, json={"key": "a.b", "value": 1,
                                                                                      "type": "number"})):
        assert answer.status_code == 503 and answer.json()["detail"].startswith("PostgreSQL is unavailable")
    store.failing = None
    assert client.get("/health").status_code == 200


def test_a_backend_error_reaches_the_log_with_a_request_id_and_the_client_only_the_id(client, store, caplog):
    store.failing = "connection to 172.20.0.20 port 5432 failed: FATAL: password authentication failed"
    answer = client.get(f"{API}/a.b", headers={"X-Request-ID": "caller-trace.42"})
    body = answer.json()
    assert answer.status_code == 503 and body["request_id"] == "caller-trace.42"
    assert answer.headers["x-request-id"] == "caller-trace.42", "a plain token the caller sent is kept"
    assert "172.20" not in answer.text and "password" not in answer.text, "the driver's message stays in the log"
    logged = [r.getMessage() for r in caplog.records if "caller-trace.42" in r.getMessage()]
    assert logged and "password authentication failed" in logged[0]
    forged = client.get(f"{API}/a.b", headers={"X-Request-ID": "x\nINFO forged log line"})
    assert forged.headers["x-request-id"] != "x\nINFO forged log line" and len(forged.headers["x-request-id"]) == 32
    store.failing = None
    assert len(client.get("/health").headers["x-request-id"]) == 32, "every answer has an id"


def test_health_names_the_failed_dependency_and_logs_its_cause_under_the_request_id(client, store, caplog):
    store.failing = "connection to 172.20.0.20 port 5432 failed: FATAL: password authentication failed"
    response = client.get("/health", headers={"X-Request-ID": "health-check.7"})
    assert response.status_code == 503 and response.headers["x-request-id"] == "health-check.7"
    assert response.json()["postgres"] == {
        "status": "unhealthy", "error": "unavailable: the service's log has the cause under request id health-check.7"}
    assert "172.20" not in response.text and "password" not in response.text, "the driver's message stays in the log"
    logged = [r.getMessage() for r in caplog.records if "health-check.7" in r.getMessage()]
    assert logged and "PostgreSQL is unavailable" in logged[0] and "password authentication failed" in logged[0]


def test_health_is_degraded_without_redis(store):
    server = fakeredis.FakeServer()
    server.connected = False
    unreachable = fakeredis.FakeRedis(server=server, decode_responses=True)
    with editor_client(config_app(Settings(), store, unreachable)) as client:
        response = client.get("/health")
        assert response.status_code == 200 and response.json()["status"] == "degraded"
        assert response.json()["redis"]["status"] == "unhealthy" and response.json()["postgres"]["status"] == "healthy"


def test_health_answers_in_time_when_postgres_hangs(redis_client):
    class HangingStore(MemoryStore):
        def ping(self):
            time.sleep(5)

    with editor_client(config_app(Settings(), HangingStore(), redis_client)) as client:
        started = time.monotonic()
        response = client.get("/health")
        assert response.status_code == 503 and time.monotonic() - started < 3


# --- the environment files: validation and seeding ----------------------------------------------------

def run_service(*args, environments_dir, **env):
    """python3 -m configsvc, as the container runs it (servicekit beside it), with its environment files
    in environments_dir."""
    environment = {**os.environ, "CONFIG_ENVIRONMENTS_DIR": str(environments_dir), "CONFIG_POSTGRES_HOST": "127.0.0.1",
                   "CONFIG_POSTGRES_PORT": "1", "PYTHONPATH": str(SERVICE_DIR.parent / "servicekit"), **env}
    return subprocess.run([sys.executable, "-m", "configsvc", *args], cwd=SERVICE_DIR, env=environment,
                          capture_output=True, text=True, timeout=60)


def test_the_shipped_environment_files_validate_clean():
    result = run_service("--check", environments_dir=SERVICE_DIR / "environments")
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_the_shipped_environments_differ_where_they_should():
    entries, found = load_environments(SERVICE_DIR / "environments")
    assert found == []
    values = {(e.environment, e.service, e.key): e.value for e in entries}
    assert {e.environment for e in entries} == {"development", "testing", "production"}
    assert values[("development", "", "trading.order_rate_limit_per_second")] == "1000"
    assert values[("production", "", "trading.order_rate_limit_per_second")] == "100"
    assert [values[(env, "", "features.paper_trading")] for env in ("development", "testing", "production")] == [
        "true", "true", "false"]
    assert any(e.service and e.environment == "development" for e in entries)
    for environment in ("development", "testing", "production"):
        assert values[(environment, "", "endpoints.redis")] == "redis://redis:6379/0"
        assert {k[2] for k in values if k[0] == environment and k[2].startswith("endpoints.")} >= {
            f"endpoints.{name}" for name in ("redis", "postgres", "service_registry", "configuration_service",
                                             "prometheus", "grafana", "jaeger", "otel_collector")}
    assert {e.type for e in entries} == {"string", "number", "boolean", "json"}


BAD_FILES = {
    "development.yaml": """
parameters:
  - key: 9starts.with.digit
    type: string
    value: x
  - key: risk.limit
    type: integer
    value: 5
  - key: risk.max
    type: number
    value: lots
  - key: endpoints.db
    type: string
    value: postgresql://admin:secret@postgres:5432/db
  - key: fine.one
    type: boolean
    value: true
  - key: fine.one
    type: boolean
    value: false
""",
    "testing.yaml": "parameters:\n  - key: a.b\n    type: string\n   value: [unclosed\n",
    "staging.yaml": "parameters: []\n",
}


def test_invalid_environment_files_stop_the_start_with_one_line_per_problem(tmp_path):
    for name, text in BAD_FILES.items():
        (tmp_path / name).write_text(text)
    for args in (("--check",), ()):
        started = time.monotonic()
        result = run_service(*args, environments_dir=tmp_path)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert time.monotonic() - started < 10, "validation comes before any attempt to reach PostgreSQL"
        lines = result.stderr.strip().splitlines()
        assert all(line.startswith("configuration invalid: ") for line in lines), lines
        expected = [("development.yaml: parameters[0]: ", "9starts.with.digit"),
                    ("development.yaml: risk.limit: ", "integer"),
                    ("development.yaml: risk.max: ", "number"),
                    ("development.yaml: endpoints.db: ", "credentials"),
                    ("development.yaml: fine.one: ", "twice"),
                    ("staging.yaml: file: ", "not an environment"),
                    ("testing.yaml: file: ", "YAML")]
        for prefix, word in expected:
            assert any(line.startswith(f"configuration invalid: {prefix}") and word in line for line in lines), (
                prefix, lines)
        assert len(lines) == len(expected), lines


def test_entries_missing_fields_are_named(tmp_path):
    (tmp_path / "production.yaml").write_text("parameters:\n  - key: a.b\n  - type: string\n    value: x\n  - 5\n")
    _, found = load_environments(tmp_path)
    assert [(p.where, p.reason) for p in found] == [
        ("a.b", "missing type"), ("a.b", "missing value"), ("parameters[1]", "missing key"),
        ("parameters[2]", "an entry is a mapping with key, type and value")]


def seeded(store, directory):
    notifier = Notifier(fakeredis.FakeRedis(decode_responses=True), ChangeSignal(), Metrics())
    entries, found = load_environments(directory)
    assert found == []
    return seed(store, entries, notifier), notifier


def write_development(directory, rate, description="orders per second"):
    (directory / "development.yaml").write_text(f"""parameters:
  - key: trading.order_rate_limit_per_second
    type: number
    value: {rate}
    description: {description}
  - key: features.paper_trading
    type: boolean
    value: true
  - key: risk.limit
    type: number
    value: 10
    service: risk-monitor
""")


def test_seeding_inserts_what_is_missing(store, tmp_path):
    write_development(tmp_path, 1000)
    counts, notifier = seeded(store, tmp_path)
    assert counts == {"created": 3, "updated": 0, "unchanged": 0, "kept": 0}
    row = store.get_rows("development", "trading.order_rate_limit_per_second", [""])[0]
    assert (row.value, row.version, row.updated_by, row.description) == ("1000", 1, "seed", "orders per second")
    assert store.get_rows("development", "risk.limit", ["risk-monitor"])[0].value == "10"
    assert [h.change for h in store.history("development", "", "features.paper_trading")] == ["created"]
    assert notifier.metrics.notifications_published._value.get() == 3
    assert seeded(store, tmp_path)[0] == {"created": 0, "updated": 0, "unchanged": 3, "kept": 0}


def test_seeding_updates_what_the_seed_wrote_and_keeps_run_time_changes(store, tmp_path):
    write_development(tmp_path, 1000)
    seeded(store, tmp_path)
    store.upsert("development", "", "features.paper_trading", "boolean", "false", None, "ops")
    store.delete("development", "risk-monitor", "risk.limit", "ops")
    write_development(tmp_path, 2000, "orders per second, raised")
    (tmp_path / "development.yaml").write_text((tmp_path / "development.yaml").read_text().replace(
        "value: true", "value: true\n    description: now described"))
    counts, _ = seeded(store, tmp_path)
    assert counts == {"created": 0, "updated": 1, "unchanged": 0, "kept": 2}
    rate = store.get_rows("development", "trading.order_rate_limit_per_second", [""])[0]
    assert (rate.value, rate.version, rate.updated_by, rate.description) == ("2000", 2, "seed",
                                                                              "orders per second, raised")
    assert store.get_rows("development", "features.paper_trading", [""])[0].value == "false", "the API change stays"
    assert store.get_rows("development", "risk.limit", ["risk-monitor"]) == [], "a deletion at run time stays"


def test_seeding_is_served_by_the_api(store, tmp_path, redis_client):
    seeded(store, SERVICE_DIR / "environments")
    with editor_client(config_app(Settings(), store, redis_client)) as client:
        assert client.get(f"{API}/trading.order_rate_limit_per_second", params={"environment": "prod"}).json()[
            "value"] == "100"
        assert client.get("/api/v1/endpoints").json()["endpoints"]["service_registry"] == "http://service-registry:8080"


class IdleConnection:
    """What the pool's check sees of a pooled connection: its socket, and what it was asked to run."""

    def __init__(self, sock):
        self.sock, self.closed, self.autocommit, self.executed = sock, False, False, []

    def fileno(self) -> int:
        return self.sock.fileno()

    def execute(self, query):
        self.executed.append(query)


def test_a_pooled_connection_costs_a_round_trip_only_once_the_server_has_spoken():
    import socket

    from configsvc.store import check_when_told

    ours, server = socket.socketpair()
    with ours, server:
        conn = IdleConnection(ours)
        check_when_told(conn)
        assert conn.executed == []  # nothing arrived: handed out as it is
        server.close()  # a restart: the server ends the stream
        check_when_told(conn)
        assert conn.executed == [""]  # ConnectionPool.check_connection's empty query
        conn.closed = True
        check_when_told(conn)
        assert len(conn.executed) == 2
