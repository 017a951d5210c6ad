"""The start-order rule of scenarios 3.4 and 5.4, source by source, on made-up engine facts (no
Docker needed): each source is used only while it still covers the dependency's start."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from steps.probes.start_order import (ContainerRun, StartRecord, health_log_first_healthy, order_verdict,
                                      parse_depends_on_label)

T0 = datetime(2026, 11, 27, 9, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ns(seconds: float) -> int:
    return int(at(seconds).timestamp() * 1e9)


def run(service, started, health_log=(), depends_on=None, restarts=0) -> ContainerRun:
    return ContainerRun(service, f"{service}-id", at(started), restarts,
                        tuple((at(s), at(e), code) for s, e, code in health_log), depends_on or {})


def record(*events) -> StartRecord:
    """events: (service, action, seconds)."""
    return StartRecord("p", ns(-10), [{"id": f"{service}-id", "service": service, "action": action,
                                       "time_ns": ns(when)} for service, action, when in events])


# A health log that rotated: five checks, all long after the start.
ROTATED = [(600 + 15 * i, 600.1 + 15 * i, 0) for i in range(5)]
HEALTHY_LABEL = {"redis": "service_healthy"}


def test_compose_label_reads_as_conditions():
    assert parse_depends_on_label("redis:service_healthy:false,postgres:service_started:true") == {
        "redis": "service_healthy", "postgres": "service_started"}
    assert parse_depends_on_label("") == {}


def test_the_start_record_proves_a_start_after_healthy():
    redis, registry = run("redis", 0, ROTATED), run("service-registry", 3, depends_on=HEALTHY_LABEL)
    heard = record(("redis", "start", 0), ("redis", "health_status:starting", 0.1),
                   ("redis", "health_status:healthy", 1.4), ("service-registry", "start", 3))
    verdict = order_verdict(registry, redis, heard)
    assert (verdict.ok, verdict.source, verdict.healthy_at) == (True, "start record", at(1.4))


def test_the_start_record_catches_a_start_before_healthy_whatever_the_label_says():
    redis, registry = run("redis", 0, ROTATED), run("service-registry", 1, depends_on=HEALTHY_LABEL)
    heard = record(("redis", "start", 0), ("service-registry", "start", 1), ("redis", "health_status:healthy", 1.4))
    verdict = order_verdict(registry, redis, heard)
    assert (verdict.ok, verdict.source) == (False, "start record")


def test_a_record_that_missed_the_dependencys_start_is_not_used():
    """Heard from a later `up` only: its first healthy event is not the first one."""
    redis, registry = run("redis", 0, ROTATED), run("service-registry", 3, depends_on={"redis": "service_started"})
    heard = StartRecord("p", ns(500), [{"id": "redis-id", "service": "redis", "action": "health_status:healthy",
                                        "time_ns": ns(501)}])
    verdict = order_verdict(registry, redis, heard)
    assert (verdict.ok, verdict.source) == (False, "depends_on label")


def test_engine_events_count_only_while_they_still_hold_the_dependencys_start():
    redis, registry = run("redis", 0, ROTATED), run("service-registry", 1, depends_on=HEALTHY_LABEL)
    held = record(("redis", "start", 0), ("redis", "health_status:healthy", 2))
    assert (lambda v: (v.ok, v.source))(order_verdict(registry, redis, None, held)) == (False, "engine events")
    # The buffer moved on: a later healthy event (after a flap) must not be taken for the first.
    moved_on = record(("redis", "health_status:healthy", 700))
    assert (lambda v: (v.ok, v.source))(order_verdict(registry, redis, None, moved_on)) == (True, "depends_on label")


def test_a_health_log_counts_only_while_nothing_rotated_out():
    young = run("redis", 0, [(0.5, 0.6, 1), (1.0, 1.1, 0)])
    assert health_log_first_healthy(young) == (True, at(1.1))
    assert order_verdict(run("service-registry", 2, depends_on=HEALTHY_LABEL), young).source == "health log"
    assert not order_verdict(run("service-registry", 0.8, depends_on=HEALTHY_LABEL), young).ok
    complete, _ = health_log_first_healthy(run("redis", 0, ROTATED))
    assert not complete


def test_a_long_running_stack_rests_on_compose_label_and_start_times():
    """The operator's case: record absent, buffer and health log rotated (issue 12)."""
    redis = run("redis", 0, ROTATED)
    verdict = order_verdict(run("service-registry", 3, depends_on=HEALTHY_LABEL), redis)
    assert (verdict.ok, verdict.source) == (True, "depends_on label")
    assert "started 3.0 s after redis" in verdict.detail
    started_only = order_verdict(run("service-registry", 3, depends_on={"redis": "service_started"}), redis)
    assert not started_only.ok and "service_started" in started_only.detail
    assert not order_verdict(run("service-registry", 3), redis).ok  # started by hand, no label


def test_a_dependency_restarted_since_does_not_fail_its_dependent():
    """Redis restarted by its policy after a crash, a day after the registry started against it."""
    redis = run("redis", 86_400, ROTATED, restarts=1)
    verdict = order_verdict(run("service-registry", 3, depends_on=HEALTHY_LABEL), redis, record())
    assert (verdict.ok, verdict.source) == (True, "depends_on label")
    assert "redis restarted after service-registry started" in verdict.detail
