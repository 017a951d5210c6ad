"""Facts about the observability configuration files as written: the OpenTelemetry Collector's and
Jaeger's pipelines, Grafana's provisioning and dashboards, and the metric names a PromQL query uses.

These are checked in every run, also where the upstream images cannot run.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from steps.probes.facts import Fact, ProbeError

COMPONENT_KINDS = ("receivers", "processors", "exporters", "connectors")
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
                   "offset", "bool", "inf", "nan", "atan2"}
# Aggregations may put their grouping clause before the parenthesis: `sum by (job) (...)`.
PROMQL_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                       "bottomk", "topk", "quantile", "limitk", "limit_ratio"}


def load_yaml(path: Path) -> Fact:
    """The parsed YAML file; ProbeError naming the file and the parser's complaint."""
    try:
        observed = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ProbeError(f"{path}: cannot be read as YAML: {error}") from None
    if not isinstance(observed, dict):
        raise ProbeError(f"{path}: expected a mapping at the top, found {type(observed).__name__}")
    return Fact(f"parse {path.name} as YAML", str(path), observed)


def load_json(path: Path) -> Fact:
    try:
        observed = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ProbeError(f"{path}: cannot be read as JSON: {error}") from None
    return Fact(f"parse {path.name} as JSON", str(path), observed)


def dig(data, *keys, default=None):
    """data[k1][k2]… of parsed YAML, or `default` where a key is missing or a value is empty (YAML
    writes an empty section as null)."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
        if data is None:
            return default
    return data


def undefined_references(config: dict) -> list[str]:
    """What an OpenTelemetry Collector configuration (the collector's or Jaeger v2's) uses but does
    not define: pipeline components and enabled extensions. Empty when every name resolves."""
    problems = []
    for name in dig(config, "service", "extensions", default=[]):
        if name not in dig(config, "extensions", default={}):
            problems.append(f"service.extensions names {name!r}, which extensions: does not define")
    pipelines = dig(config, "service", "pipelines", default={})
    if not pipelines:
        problems.append("service.pipelines is empty")
    connectors = set(dig(config, "connectors", default={}))
    for pipeline, parts in pipelines.items():
        if not dig(parts, "receivers") or not dig(parts, "exporters"):
            problems.append(f"pipeline {pipeline} needs at least one receiver and one exporter")
        for kind in COMPONENT_KINDS:
            # A connector is the exporter of one pipeline and the receiver of another.
            defined = set(dig(config, kind, default={})) | (connectors if kind in ("receivers", "exporters") else set())
            for name in dig(parts, kind, default=[]):
                if name not in defined:
                    problems.append(f"pipeline {pipeline} names {kind[:-1]} {name!r}, which {kind}: does not define")
    return problems


def endpoint_port(endpoint: str | None) -> int | None:
    """The port of "host:port" (None when there is none)."""
    match = re.search(r":(\d+)$", endpoint or "")
    return int(match.group(1)) if match else None


def otlp_ports(config: dict) -> dict:
    """{"grpc": port, "http": port} of the otlp receiver (a protocol without an endpoint listens on
    the OTLP default: 4317 for gRPC, 4318 for HTTP)."""
    protocols = dig(config, "receivers", "otlp", "protocols", default={})
    defaults = {"grpc": 4317, "http": 4318}
    return {name: endpoint_port(dig(settings, "endpoint")) or defaults[name]
            for name, settings in protocols.items() if name in defaults}


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL expression) of every query of every panel, rows included."""
    found = []

    def walk(panels):
        for panel in panels or []:
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    found.append((panel.get("title", "?"), target["expr"]))
            walk(panel.get("panels"))

    walk(dashboard.get("panels"))
    return found


def metric_names_in(expression: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are neither functions,
    keywords, label names (inside braces or grouping clauses) nor parts of strings and durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)               # string literals
    text = re.sub(r"\{[^}]*\}", "", text)                               # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                              # ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end():].lstrip()
        if following.startswith("(") or match.group(0).lower() in PROMQL_KEYWORDS:
            continue
        if match.group(0) in PROMQL_AGGREGATIONS and re.match(r"(by|without)\b", following):
            continue
        if match.start() and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue                                                      # 1e3, 0.99
        names.add(match.group(0))
    return names
