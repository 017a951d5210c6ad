"""The start-order rule of scenarios 3.4 and 5.4, source by source, on made-up engine facts (no
Docker needed): each source is used only while it still covers the dependency's start."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from steps.probes.start_order import (
    ContainerRun,
    StartRecord,
    health_log_first_healthy,
    order_verdict,
    parse_depends_on_label,
)

T0 = datetime(2026, 11, 27, 9, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ns(seconds: float) -> int:
    return int(at(seconds).timestamp() * 1e9)


def run(service, started, health_log=(), depends_on=None, restarts=0) -> ContainerRun:
    return ContainerRun(service, f"{service}-id", at(started), restarts,
                        tuple((at(s), at(e), code) for s, e, code in health_log), depends_on or {})


def record(*events, since=-10, fresh=True) -> StartRecord:
    """events: (service, action, seconds); heard completely from `since` s."""
    return StartRecord("p", ns(since), [{"id": f"{service}-id", "service": service, "action": action,
                                         "time_ns": ns(when)} for service, action, when in events], fresh=fresh)


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


def test_a_fresh_record_catches_a_dependent_started_before_its_dependency_existed():
    """`docker compose up --no-deps prometheus` first, the rest later: the label is right, the order is not."""
    redis, registry = run("redis", 5, ROTATED), run("service-registry", 1, depends_on=HEALTHY_LABEL)
    heard = record(("service-registry", "start", 1), ("redis", "start", 5), ("redis", "health_status:healthy", 6))
    verdict = order_verdict(registry, redis, heard)
    assert (verdict.ok, verdict.source) == (False, "start record") and "no container of redis" in verdict.detail
    # Not fresh (containers ran before it began): it cannot tell, and the fallbacks decide.
    verdict = order_verdict(registry, redis, record(("service-registry", "start", 1), fresh=False))
    assert verdict.source == "depends_on label"


def test_a_record_catches_a_dependent_recreated_while_its_dependency_was_stopped():
    """`compose stop redis`, `compose up --no-deps --force-recreate redis-exporter`, `compose start redis`."""
    redis, exporter = run("redis", 60, ROTATED), run("redis-exporter", 30, depends_on=HEALTHY_LABEL)
    heard = record(("redis", "start", 0), ("redis", "health_status:healthy", 1), ("redis", "die", 20),
                   ("redis-exporter", "start", 30), ("redis", "start", 60))
    verdict = order_verdict(exporter, redis, heard)
    assert (verdict.ok, verdict.source) == (False, "start record") and "redis was not running" in verdict.detail


def test_a_record_follows_the_dependency_service_across_containers():
    """Redis recreated (a new container id) after the registry started against the old one."""
    registry = run("service-registry", 3, depends_on=HEALTHY_LABEL)
    new_redis = ContainerRun("redis", "redis-new", at(50), 0, (), {})
    heard = record(("redis", "start", 0), ("redis", "health_status:healthy", 1), ("service-registry", "start", 3))
    heard.events.append({"id": "redis-new", "service": "redis", "action": "start", "time_ns": ns(50)})
    verdict = order_verdict(registry, new_redis, heard)
    assert (verdict.ok, verdict.source, verdict.healthy_at) == (True, "start record", at(1))


def test_a_record_that_began_after_the_dependent_started_is_not_used():
    """Heard from a later `up` only: it cannot tell how the dependent's start went."""
    redis, registry = run("redis", 0, ROTATED), run("service-registry", 3, depends_on={"redis": "service_started"})
    heard = record(("redis", "health_status:healthy", 501), since=500, fresh=False)
    verdict = order_verdict(registry, redis, heard)
    assert (verdict.ok, verdict.source) == (False, "depends_on label")


def test_engine_events_count_only_while_they_still_reach_back_before_the_dependents_start():
    redis, registry = run("redis", 0, ROTATED), run("service-registry", 1, depends_on=HEALTHY_LABEL)
    held = record(("redis", "start", 0), ("redis", "health_status:healthy", 2), ("service-registry", "start", 1))
    assert (lambda v: (v.ok, v.source))(order_verdict(registry, redis, None, held)) == (False, "engine events")
    # The buffer moved on: a later healthy event (after a flap) must not be taken for the first.
    moved_on = record(("redis", "health_status:healthy", 700), since=690, fresh=False)
    assert (lambda v: (v.ok, v.source))(order_verdict(registry, redis, None, moved_on)) == (True, "depends_on label")


def test_record_survives_its_file():
    heard = record(("redis", "start", 0), since=-3)
    again = StartRecord.from_json(heard.to_json())
    assert (again.events, again.since, again.fresh) == (heard.events, at(-3), True)


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
    redis, registry = run("redis", 86_400, ROTATED, restarts=1), run("service-registry", 3, depends_on=HEALTHY_LABEL)
    heard = record(("redis", "start", 0), ("redis", "health_status:healthy", 1), ("service-registry", "start", 3),
                   ("redis", "start", 86_400), ("redis", "health_status:healthy", 86_401))
    verdict = order_verdict(registry, redis, heard)
    assert (verdict.ok, verdict.source, verdict.healthy_at) == (True, "start record", at(1))
    verdict = order_verdict(registry, redis)
    assert (verdict.ok, verdict.source) == (True, "depends_on label")
    assert "redis restarted after service-registry started" in verdict.detail
