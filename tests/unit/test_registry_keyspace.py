"""The registry hears the siblings' own writes and deletions in Redis (registry/keyspace.py; fakeredis
announces every change whatever notify-keyspace-events says): a new entry is discovered without
waiting for a walk, and a deletion or an expiry drops the answers kept."""
from __future__ import annotations

import json
import time

from registry.keyspace import PATTERN, KeyspaceWatch
from registry.store import Store
from tests.unit.test_registry_go_layouts import GO_ENTRIES, NAMES

KEY = "exchange:service:exchange-okx"


def _watch(redis_client):
    changes = []
    return KeyspaceWatch(Store(redis_client), lambda: changes.append(time.monotonic())), changes


def test_a_new_entry_is_indexed_as_it_is_written(redis_client):
    watch, changes = _watch(redis_client)
    watch.step()  # subscribes (answers kept before are dropped: one change)
    assert watch.subscribed() and len(changes) == 1
    redis_client.set(KEY, json.dumps(GO_ENTRIES[KEY]), ex=90)
    watch.step()
    name, instance_id = NAMES[KEY]
    assert [i["instance_id"] for i in Store(redis_client).instances(name)] == [instance_id]
    assert len(changes) == 2
    redis_client.set(KEY, json.dumps(GO_ENTRIES[KEY]), ex=90)  # written again: nothing new to tell
    watch.step()
    assert len(changes) == 2


def test_a_deletion_or_an_expiry_drops_the_answers_kept(redis_client):
    watch, changes = _watch(redis_client)
    watch.step()
    for event in ("del", "expired", "evicted", "rename_from"):
        assert watch.handle(KEY, event)
    assert len(changes) == 5


def test_keys_of_no_layout_and_other_events_are_ignored(redis_client):
    watch, changes = _watch(redis_client)
    assert not watch.handle("market_data:quotes:service-level", "del")  # no layout of the registry's
    assert not watch.handle(KEY, "expire")  # a TTL renewed: the entry is the same
    redis_client.set(KEY, "not json", ex=90)
    assert not watch.handle(KEY, "set")  # unreadable: skipped, never indexed
    assert changes == []


def test_the_running_registry_discovers_a_go_entry_without_a_walk(client, redis_client):
    name, instance_id = NAMES[KEY]
    deadline = time.monotonic() + 3
    while not redis_client.pubsub_numpat() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis_client.pubsub_numpat() == 1, f"the registry never subscribed to {PATTERN}"
    redis_client.set(KEY, json.dumps(GO_ENTRIES[KEY]), ex=90)
    while time.monotonic() < deadline:
        found = client.get(f"/api/v1/services/{name}")
        if found.status_code == 200 and found.json()["instances"]:
            break
        time.sleep(0.05)
    assert [i["instance_id"] for i in found.json()["instances"]] == [instance_id]
