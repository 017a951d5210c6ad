"""Facts from HTTP APIs published on 127.0.0.1 (the registry and, later, the other services)."""
from __future__ import annotations

import json as jsonlib

import requests

from steps.probes import transport
from steps.probes.facts import Fact, ProbeError

TIMEOUT_S = 5


def call(port: int, method: str, path: str, *, json=None, data=None, headers=None, auth=None,
         timeout: float = TIMEOUT_S) -> Fact:
    """One request to http://127.0.0.1:`port``path` (https:// to a port the stack serves over TLS, in
    production mode), with HTTP Basic `auth` (user, password) when given; observed: {"status",
    "body", "headers"}, the body parsed as JSON when it is JSON. Raises ProbeError when nothing answers."""
    url = transport.current().base_url(port) + path
    try:
        response = requests.request(method, url, json=json, data=data, headers=headers, auth=auth, timeout=timeout,
                                    verify=transport.current().http_verify(port))
    except requests.RequestException as error:
        raise ProbeError(f"{method} {url}: no answer ({error.__class__.__name__}: {error})") from error
    try:
        body = response.json()
    except ValueError:
        body = response.text
    observed = {"status": response.status_code, "body": body,
                "headers": {k.lower(): v for k, v in response.headers.items()}}
    sent = "" if json is None else " " + jsonlib.dumps(json)[:300]
    signed_in = f" (signed in as {auth[0]})" if auth else ""
    return Fact(f"{method} {path}{sent}{signed_in}", f"127.0.0.1:{port}", observed, raw=response.text[:2000])


def json_object(fact: Fact) -> dict:
    """The body of an answer when it is a JSON object, else {} (the raw text stays in fact.raw)."""
    body = fact.observed["body"]
    return body if isinstance(body, dict) else {}


def text(fact: Fact) -> str:
    """The body of an answer that is not JSON (Prometheus metrics, plain text), else ""."""
    body = fact.observed["body"]
    return body if isinstance(body, str) else ""


def metric_value(fact: Fact, name: str) -> float | None:
    """The value of an unlabelled sample `name` in a Prometheus /metrics answer; None when absent."""
    for line in text(fact).splitlines():
        sample, _, value = line.partition(" ")
        if sample == name:
            return float(value)
    return None
