"""4.3's heartbeat steps on a simulated registry and clock: a pause of the machine past the TTL makes a
try inconclusive and it is made again; an instance missing while it was sure to be alive is the fault."""
from __future__ import annotations

import json

import pytest

from steps import registry_steps
from steps.probes import Fact
from steps.report.evidence import Evidence


class Clock:
    def __init__(self):
        self.now, self.pauses = 0.0, []  # pauses: seconds added to the next requests, one each

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def request(self) -> None:
        self.now += 0.05 + (self.pauses.pop(0) if self.pauses else 0.0)


class Registry:
    """Instances with a TTL, as the registry keeps them in Redis; `renews` False is the fault."""

    def __init__(self, clock: Clock, renews: bool = True, late_reads: int = 0):
        self.clock, self.renews, self.late_reads, self.expires = clock, renews, late_reads, {}

    def _alive(self, instance_id) -> bool:
        return self.expires.get(instance_id, -1) > self.clock.now

    def register(self, _port, payload, _auth) -> Fact:
        self.clock.request()
        existed = self._alive(payload["instance_id"])
        self.expires[payload["instance_id"]] = self.clock.now + payload["ttl_seconds"]
        return Fact("POST", "registry", {"status": 200 if existed else 201})

    def heartbeat(self, _port, _name, instance_id, _auth) -> Fact:
        self.clock.request()
        if not self._alive(instance_id):
            return Fact("PUT heartbeat", "registry", {"status": 404})
        if self.renews:
            self.expires[instance_id] = self.clock.now + 2
        return Fact("PUT heartbeat", "registry", {"status": 200})

    def service(self, _port, _name, _status=None) -> Fact:
        if self.late_reads:
            self.late_reads -= 1
            self.clock.pauses.append(3)
        self.clock.request()
        body = {"instances": [{"instance_id": i} for i in self.expires if self._alive(i)]}
        return Fact("GET", "registry", {"status": 200, "body": body}, json.dumps(body))


class Stack:
    def registry_port(self):
        return 8080

    def signed_in_as(self, _user):
        return ("risk-adapter", "secret")


@pytest.fixture()
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(registry_steps.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(registry_steps.time, "sleep", clock.sleep)
    return clock


def _scenario(monkeypatch, clock, registry):
    for name in ("register", "heartbeat", "service"):
        monkeypatch.setattr(registry_steps.registry_api, name, getattr(registry, name))
    monkeypatch.setattr(registry_steps.http_api, "json_object", lambda fact: fact.observed.get("body", {}))
    stack, evidence = Stack(), Evidence()
    registration = {"payload": {**registry_steps.SIBLING_PAYLOAD, "instance_id": "i-1", "ttl_seconds": 2}}
    registry_steps._register_with_ttl(stack, evidence, registration)
    registry_steps._heartbeats(stack, evidence, registration, 4)
    registry_steps._still_there(stack, evidence, registration)
    return evidence


def test_heartbeats_keep_the_instance(monkeypatch, clock):
    _scenario(monkeypatch, clock, Registry(clock))


def test_a_pause_past_the_ttl_is_tried_again_not_failed(monkeypatch, clock):
    clock.pauses = [0, 0, 3]  # the second heartbeat is answered 3 s late: the instance lapsed meanwhile
    evidence = _scenario(monkeypatch, clock, Registry(clock))
    assert any(f.probe == "a pause past the TTL" for _, facts in evidence.steps for f in facts)


def test_a_pause_before_the_read_is_tried_again(monkeypatch, clock):
    evidence = _scenario(monkeypatch, clock, Registry(clock, late_reads=1))
    assert any(f.probe == "a pause past the TTL" for _, facts in evidence.steps for f in facts)


def test_a_machine_that_always_pauses_is_reported_as_such(monkeypatch, clock):
    with pytest.raises(AssertionError, match="too loaded to tell"):
        _scenario(monkeypatch, clock, Registry(clock, late_reads=99))


def test_heartbeats_that_do_not_renew_fail(monkeypatch, clock):
    with pytest.raises(AssertionError, match="heartbeat"):
        _scenario(monkeypatch, clock, Registry(clock, renews=False))
