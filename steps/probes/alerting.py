"""Facts about alert notifications: what the alert receiver kept, what Alertmanager holds. Plain
functions over the published ports on 127.0.0.1 (the receiver's reads are open, Alertmanager's API
signs in as Prometheus)."""
from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlencode

from steps.probes import http_api
from steps.probes.facts import Fact, ProbeError


def notifications(port: int) -> Fact:
    """The notifications the alert receiver kept, newest first: Alertmanager's webhook body
    ({"receiver", "status", "alerts": [{"status", "labels", ...}], ...}) with "received_at"."""
    fact = http_api.call(port, "GET", "/api/notifications")
    if fact.observed["status"] != 200 or not isinstance(fact.observed["body"], list):
        raise ProbeError(f"{fact.probe} on {fact.where}: answered {fact.observed['status']}: {fact.raw[:200]}")
    return Fact(fact.probe, fact.where, fact.observed["body"])


def received_at(notification: dict) -> float:
    """When the receiver got `notification`, in epoch seconds."""
    return datetime.fromisoformat(notification["received_at"]).timestamp()


def delivered(kept: list, alertname: str, status: str, receiver: str | None = None, labels: dict | None = None,
              since: float = 0.0) -> list:
    """The notifications in `kept` received at `since` or later that carry `alertname` in `status`
    (firing, resolved) with every label of `labels`, routed to `receiver` when given; oldest first."""
    found = []
    for notification in kept:
        if received_at(notification) < since or (receiver and notification.get("receiver") != receiver):
            continue
        for alert in notification.get("alerts", []):
            alert_labels = alert.get("labels", {})
            if (alert_labels.get("alertname") == alertname and alert.get("status") == status
                    and all(alert_labels.get(k) == v for k, v in (labels or {}).items())):
                found.append(notification)
                break
    return sorted(found, key=received_at)


def alertmanager_alerts(port: int, auth: tuple, **matchers: str) -> Fact:
    """The alerts Alertmanager holds matching label=value `matchers` (silenced and inhibited ones
    included): [{"labels", "state" (active, suppressed), "inhibited_by", "starts_at" (epoch seconds: when
    it began firing)}]."""
    query = urlencode([("filter", f'{name}="{value}"') for name, value in matchers.items()])
    fact = http_api.call(port, "GET", f"/api/v2/alerts?{query}", auth=auth)
    if fact.observed["status"] != 200 or not isinstance(fact.observed["body"], list):
        raise ProbeError(f"{fact.probe} on {fact.where}: answered {fact.observed['status']}: {fact.raw[:200]}")
    observed = [{"labels": a.get("labels", {}), "state": a.get("status", {}).get("state"),
                 "inhibited_by": a.get("status", {}).get("inhibitedBy") or [],
                 "starts_at": _epoch(a.get("startsAt"))} for a in fact.observed["body"]]
    return Fact(fact.probe, fact.where, observed, raw=json.dumps(observed)[:2000])


def _epoch(timestamp: str | None) -> float | None:
    """Alertmanager's RFC 3339 time (nanoseconds, Z) in epoch seconds."""
    if not timestamp:
        return None
    whole, _, fraction = timestamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float(f"0.{fraction or 0}")
