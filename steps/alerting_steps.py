"""Steps about alert notifications (section 7.7): Alertmanager's configuration and routes, Prometheus
sending to it, and notifications arriving at the alert receiver."""
from __future__ import annotations

import time

from pytest_bdd import parsers, then

from steps.expect import expect, expect_eventually
from steps.probes import Fact, ProbeError, alerting, container_exec, prometheus_server
from steps.probes.waiting import poll

ALERTMANAGER_SERVICE = "alertmanager"
ROUTES_HINT = ("infra/alertmanager/alertmanager.yml's routes and receivers; the route tests are "
               "infra/alertmanager/tests/routes.txt")


def _receiver_port(stack) -> int:
    return stack.settings.port("ALERT_RECEIVER_HOST_PORT")


def _as_prometheus(stack) -> tuple:
    """Alertmanager's API takes Prometheus's credential (it holds only its hash)."""
    return "prometheus", stack.settings.secret("REDIS_EXPORTER_SCRAPE_PASSWORD")


def _alertmanager_alerts(stack, **matchers: str) -> Fact:
    return alerting.alertmanager_alerts(stack.settings.port("ALERTMANAGER_HOST_PORT"), _as_prometheus(stack),
                                        **matchers)


@then("amtool, inside the Alertmanager container, finds its configuration valid and routes each alert of the route "
      "tests to its receiver")
def _route_tests(stack, evidence):
    fact = evidence.record(container_exec.exec_in(stack.project, ALERTMANAGER_SERVICE,
                                                  ["/etc/alertmanager/tests/route-tests"]))
    expect(fact.observed.exit_code == 0, "route-tests (amtool check-config, amtool config routes test)", "exit 0",
           f"exit {fact.observed.exit_code}: {fact.observed.output[-800:]}", fact, ROUTES_HINT)


@then(parsers.parse('Prometheus sends its alerts to "{host}" as its active Alertmanager'))
def _active_alertmanager(stack, evidence, host):
    # Prometheus finds its Alertmanagers in the background after it is ready (its discovery hands on
    # changes every 5 s): on a stack started a moment ago the list is still empty.
    port, last = stack.settings.port("PROMETHEUS_HOST_PORT"), {}

    def discovered():
        fact = last["fact"] = prometheus_server.alertmanagers(port)
        if any(f"//{host}:" in url for url in fact.observed["active"]):
            return fact
        # Loaded without any Alertmanager to find: no discovery will ever bring one.
        loaded = prometheus_server.loaded_configuration(port)
        expect(bool((loaded.observed.get("alerting") or {}).get("alertmanagers")), "Prometheus's Alertmanagers",
               f"one at {host}", "none in the configuration it runs with (alerting.alertmanagers)", loaded,
               "alerting.alertmanagers in infra/prometheus/prometheus.yml")
        return None

    found = poll(discovered, timeout=ALERTMANAGER_DISCOVERY_S, interval=0.5, transient=(ProbeError,))
    fact = evidence.record(found or last.get("fact") or prometheus_server.alertmanagers(port))
    expect(found is not None, "Prometheus's active Alertmanagers", f"one at {host} within {ALERTMANAGER_DISCOVERY_S} s",
           fact.observed, fact, "alerting.alertmanagers in infra/prometheus/prometheus.yml")


ALERTMANAGER_DISCOVERY_S = 30


@then(parsers.parse('the always-firing "{name}" alert reaches the alert receiver through the "{receiver}" route: '
                    'a notification received within the last {seconds:d} s'))
def _watchdog_delivered(stack, evidence, name, receiver, seconds):
    since, started = time.time() - seconds, {}
    hint = ("Prometheus -> Alertmanager (prometheus.yml alerting) -> the receiver's URL and password "
            "(alertmanager.yml webhook_configs); `docker compose logs alertmanager` names a failed notify")

    def received():
        fact = alerting.notifications(_receiver_port(stack))
        if alerting.delivered(fact.observed, name, "firing", receiver, since=since):
            return fact
        # Alertmanager tried while we waited and could not deliver: no later attempt will differ.
        failed = _webhook_failures(stack)
        started.setdefault("failed", failed)
        expect(failed <= started["failed"], f"a {name} notification at the alert receiver",
               "Alertmanager's webhook notifications delivered",
               f"{failed - started['failed']:g} failed while we waited (alertmanager_notifications_failed_total)",
               fact, hint)
        # An always-firing alert younger than the window (a stack started a moment ago) has its first
        # notification due within FIRST_NOTIFICATION_S of its start, not a whole window later.
        started["at"] = started.get("at") or _firing_since(stack, name)
        overdue = started["at"] is not None and time.time() > started["at"] + FIRST_NOTIFICATION_S
        expect(not overdue, f"a {name} notification at the alert receiver",
               f"one within {FIRST_NOTIFICATION_S} s of the alert's start in Alertmanager", "none", fact, hint)
        return None

    fact = expect_eventually(received, what=f"a {name} notification at the alert receiver", expected=(
        f"firing, through {receiver}, received after {time.strftime('%H:%M:%S', time.localtime(since))}"),
        timeout=seconds, interval=2, transient=(ProbeError,), hint=hint)
    evidence.record(fact)


def _webhook_failures(stack) -> float:
    """Alertmanager's failed webhook notifications so far, as Prometheus last scraped them."""
    fact = prometheus_server.query(stack.settings.port("PROMETHEUS_HOST_PORT"),
                                   'sum(alertmanager_notifications_failed_total{integration="webhook"})')
    return sum(value for _, value in fact.observed)


# Prometheus hands a new alert to Alertmanager within its next evaluation or resend (5 s, 10 s),
# which sends it after the route's group wait (5 s for the watchdog): 60 s leaves a busy machine room.
FIRST_NOTIFICATION_S = 60


def _firing_since(stack, name) -> float | None:
    """When Alertmanager's `name` alert began firing (epoch seconds); None when it holds none yet."""
    try:
        held = _alertmanager_alerts(stack, alertname=name).observed
    except ProbeError:
        return None
    return min((a["starts_at"] for a in held if a["starts_at"]), default=None)


def _await_notification(stack, evidence, name, status, label, value, receiver, since, seconds) -> Fact:
    """Waits for a `status` notification of `name` with `label`=`value` through `receiver`, received
    after `since`; records it with its delay from `since`. A firing alert that Alertmanager holds
    suppressed (inhibited or silenced) is never sent: that fails at once, naming what mutes it."""
    def received():
        if status == "firing":
            _not_suppressed(stack, evidence, name, label, value)
        fact = alerting.notifications(_receiver_port(stack))
        found = alerting.delivered(fact.observed, name, status, receiver, {label: value}, since=since)
        return (fact, found[0]) if found else None

    fact, notification = expect_eventually(
        received, what=f"a {status} {name} notification for {label}={value}", timeout=seconds, interval=1,
        expected=f"through {receiver}, within {seconds} s", transient=(ProbeError,), hint=ROUTES_HINT)
    delay = round(alerting.received_at(notification) - since, 1)
    return evidence.record(Fact(f"{fact.probe}: {status} {name} {{{label}={value}}}", fact.where,
                                {"delay_s": delay, "notification": notification}))


def _not_suppressed(stack, evidence, name, label, value) -> None:
    fact = _alertmanager_alerts(stack, alertname=name, **{label: value})
    muted = [a for a in fact.observed if a["state"] == "suppressed"]
    if muted:
        evidence.record(fact)
        expect(False, f"{name} {{{label}={value}}} in Alertmanager", "active, so that it is sent",
               {k: muted[0][k] for k in ("state", "inhibited_by")}, fact,
               "inhibit_rules in infra/alertmanager/alertmanager.yml: the cause (source) mutes what it causes "
               "(target), never the other way round")


@then(parsers.parse('the alert receiver gets the firing "{name}" notification for {label} "{value}" through the '
                    '"{receiver}" route, with the service\'s labels, within {seconds:d} s of the stop'))
def _firing_delivered(stack, evidence, stopped_at, name, label, value, receiver, seconds):
    fact = _await_notification(stack, evidence, name, "firing", label, value, receiver, stopped_at, seconds)
    alert = next(a for a in fact.observed["notification"]["alerts"] if a["labels"].get("alertname") == name)
    wanted = {"job": value, "service": value, "severity": "critical"}
    labels = {k: alert["labels"].get(k) for k in wanted}
    expect(labels == wanted, f"the labels of the {name} notification", wanted, labels, fact,
           "InstanceDown's labels in infra/prometheus/rules/infrastructure.yml")


@then(parsers.parse('Alertmanager holds "{target}" for {label} "{value}" inhibited by "{source}" within {seconds:d} s'))
def _inhibited(stack, evidence, target, label, value, source, seconds):
    def suppressed():
        fact = _alertmanager_alerts(stack, alertname=target, **{label: value})
        held = [a for a in fact.observed if a["state"] == "suppressed" and a["inhibited_by"]]
        return fact if held else None

    evidence.record(expect_eventually(
        suppressed, what=f"{target} {{{label}={value}}} in Alertmanager", timeout=seconds, interval=1,
        expected=f"suppressed: inhibited by {source}", transient=(ProbeError,),
        hint="inhibit_rules in infra/alertmanager/alertmanager.yml: the cause (source) mutes what it causes "
             "(target), equal on service"))


@then(parsers.parse('the alert receiver gets the resolved "{name}" notification for {label} "{value}" through the '
                    '"{receiver}" route within {seconds:d} s of the start'))
def _resolved_delivered(stack, evidence, started_at, name, label, value, receiver, seconds):
    _await_notification(stack, evidence, name, "resolved", label, value, receiver, started_at, seconds)
