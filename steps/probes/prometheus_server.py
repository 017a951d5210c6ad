"""Facts from Prometheus's HTTP API on 127.0.0.1: its targets, series, rules and alerts."""
from __future__ import annotations

from urllib.parse import urlencode

from steps.probes import http_api
from steps.probes.facts import Fact, ProbeError


def _data(port: int, path: str, params: dict | None = None) -> tuple[Fact, object]:
    """GET an API path; (the call's Fact, its `data`). ProbeError unless Prometheus says success."""
    fact = http_api.call(port, "GET", path + (f"?{urlencode(params)}" if params else ""))
    body = fact.observed["body"]
    if not isinstance(body, dict):
        raise ProbeError(f"{fact.probe}: answered {fact.observed['status']} without JSON: {fact.raw[:200]}")
    if body.get("status") != "success":
        raise ProbeError(f"{fact.probe}: {body.get('errorType')}: {body.get('error')}")
    return fact, body["data"]


def targets(port: int) -> Fact:
    """Active scrape targets: [{"job", "url", "health", "error", "last_scrape"}], one per target
    (last_scrape: when Prometheus last scraped it, as it says it)."""
    fact, data = _data(port, "/api/v1/targets", {"state": "active"})
    observed = [{"job": t["labels"].get("job"), "url": t["scrapeUrl"], "health": t["health"],
                 "error": t.get("lastError", ""), "last_scrape": t.get("lastScrape", "")}
                for t in data["activeTargets"]]
    return Fact(fact.probe, fact.where, observed)


def query(port: int, expression: str) -> Fact:
    """An instant query: [(labels, value as float)], one per series. ProbeError when it does not parse."""
    fact, data = _data(port, "/api/v1/query", {"query": expression})
    if data["resultType"] == "scalar":
        observed = [({}, float(data["result"][1]))]
    else:
        observed = [(item["metric"], float(item["value"][1])) for item in data["result"]]
    return Fact(f"GET /api/v1/query?query={expression}", fact.where, observed)


def metric_names(port: int, within_seconds: int = 300) -> Fact:
    """The metric names of series Prometheus scraped in the last `within_seconds` (not of its whole
    retention: on an old stack a series nobody exports any more would still count)."""
    import time

    fact, data = _data(port, "/api/v1/label/__name__/values", {"start": f"{time.time() - within_seconds:.0f}"})
    return Fact(fact.probe, fact.where, set(data))


def alert_rules(port: int) -> Fact:
    """The alerting rules Prometheus has loaded: {name: {"query", "state", "file"}}."""
    fact, data = _data(port, "/api/v1/rules", {"type": "alert"})
    observed = {rule["name"]: {"query": rule["query"], "state": rule["state"], "file": group["file"]}
                for group in data["groups"] for rule in group["rules"]}
    return Fact(fact.probe, fact.where, observed)


def alerts(port: int) -> Fact:
    """Alerts now pending or firing: [{"name", "state", "labels"}]."""
    fact, data = _data(port, "/api/v1/alerts")
    observed = [{"name": a["labels"].get("alertname"), "state": a["state"], "labels": a["labels"]}
                for a in data["alerts"]]
    return Fact(fact.probe, fact.where, observed)


def alertmanagers(port: int) -> Fact:
    """The Alertmanagers Prometheus sends its alerts to: {"active": [url], "dropped": [url]}."""
    fact, data = _data(port, "/api/v1/alertmanagers")
    observed = {"active": [a["url"] for a in data.get("activeAlertmanagers", [])],
                "dropped": [a["url"] for a in data.get("droppedAlertmanagers", [])]}
    return Fact(fact.probe, fact.where, observed)


def loaded_configuration(port: int) -> Fact:
    """The configuration Prometheus runs with (GET /api/v1/status/config), parsed."""
    import yaml

    fact, data = _data(port, "/api/v1/status/config")
    return Fact(fact.probe, fact.where, yaml.safe_load(data["yaml"]) or {})
