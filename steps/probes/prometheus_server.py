"""Facts from Prometheus's HTTP API on 127.0.0.1: its targets, series, rules and alerts."""
from __future__ import annotations

import requests

from steps.probes.facts import Fact, ProbeError

TIMEOUT_S = 5


def _get(port: int, path: str, params: dict | None = None) -> dict:
    url = f"http://127.0.0.1:{port}{path}"
    try:
        response = requests.get(url, params=params, timeout=TIMEOUT_S)
    except requests.RequestException as error:
        raise ProbeError(f"GET {url}: no answer ({error.__class__.__name__}: {error})") from error
    try:
        body = response.json()
    except ValueError:
        raise ProbeError(f"GET {url}: answered {response.status_code} without JSON: {response.text[:200]}") from None
    if body.get("status") != "success":
        raise ProbeError(f"GET {url} {params or ''}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def targets(port: int) -> Fact:
    """Active scrape targets: [{"job", "url", "health", "error"}], one per target."""
    data = _get(port, "/api/v1/targets", {"state": "active"})
    observed = [{"job": t["labels"].get("job"), "url": t["scrapeUrl"], "health": t["health"],
                 "error": t.get("lastError", "")} for t in data["activeTargets"]]
    return Fact("GET /api/v1/targets?state=active", f"127.0.0.1:{port}", observed)


def query(port: int, expression: str) -> Fact:
    """An instant query: [(labels, value as float)], one per series. ProbeError when it does not parse."""
    data = _get(port, "/api/v1/query", {"query": expression})
    if data["resultType"] == "scalar":
        observed = [({}, float(data["result"][1]))]
    else:
        observed = [(item["metric"], float(item["value"][1])) for item in data["result"]]
    return Fact(f"GET /api/v1/query?query={expression}", f"127.0.0.1:{port}", observed)


def metric_names(port: int) -> Fact:
    """Every metric name Prometheus holds series for."""
    return Fact("GET /api/v1/label/__name__/values", f"127.0.0.1:{port}",
                set(_get(port, "/api/v1/label/__name__/values")))


def alert_rules(port: int) -> Fact:
    """The alerting rules Prometheus has loaded: {name: {"query", "state", "file"}}."""
    data = _get(port, "/api/v1/rules", {"type": "alert"})
    observed = {rule["name"]: {"query": rule["query"], "state": rule["state"], "file": group["file"]}
                for group in data["groups"] for rule in group["rules"]}
    return Fact("GET /api/v1/rules?type=alert", f"127.0.0.1:{port}", observed)


def alerts(port: int) -> Fact:
    """Alerts now pending or firing: [{"name", "state", "labels"}]."""
    data = _get(port, "/api/v1/alerts")
    observed = [{"name": a["labels"].get("alertname"), "state": a["state"], "labels": a["labels"]}
                for a in data["alerts"]]
    return Fact("GET /api/v1/alerts", f"127.0.0.1:{port}", observed)


def endpoint_status(port: int, method: str, path: str) -> Fact:
    """The HTTP status of one request (for endpoints that must be refused)."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        response = requests.request(method, url, timeout=TIMEOUT_S)
    except requests.RequestException as error:
        raise ProbeError(f"{method} {url}: no answer ({error.__class__.__name__}: {error})") from error
    return Fact(f"{method} {path}", f"127.0.0.1:{port}", response.status_code, raw=response.text[:300])
