"""The observability configuration as files: Prometheus's configuration and alert rules checked and
unit-tested by promtool (from the same Debian package the stack runs), and the parsers the
section-7 scenarios use to read the collector's, Jaeger's and Grafana's files."""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from steps.probes import telemetry_files

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "infra/prometheus"
IMAGE = "tse-promtool"


@contextlib.contextmanager
def image_of(folder: Path, tag: str):
    """The stack's image built from `folder` (on the Debian base) as `tag`, removed afterwards."""
    subprocess.run([str(ROOT / "infra/host/ensure-base-image")], check=True, capture_output=True)
    base = os.environ.get("BASE_IMAGE", "debian:trixie-slim")
    subprocess.run(["docker", "build", "-q", "--build-arg", f"BASE_IMAGE={base}", "-t", tag, str(folder)],
                   check=True, capture_output=True)
    try:
        yield tag
    finally:
        subprocess.run(["docker", "image", "rm", tag], capture_output=True)


def broken_copy(folder: Path, tmp_path: Path, relative: str, old: str, new: str) -> Path:
    """A copy of `folder` whose file `relative` has `old` replaced by `new`."""
    copy = tmp_path / folder.name
    subprocess.run(["cp", "-r", str(folder), str(copy)], check=True)
    edited = copy / relative
    edited.write_text(edited.read_text().replace(old, new))
    return copy


@pytest.fixture(scope="module")
def promtool():
    """Run promtool from the stack's Prometheus image with infra/prometheus at /etc/prometheus."""
    with image_of(PROMETHEUS, IMAGE):
        def run(*args: str, folder: Path = PROMETHEUS) -> subprocess.CompletedProcess:
            return subprocess.run(
                ["docker", "run", "--rm", "--network", "none", "-v", f"{folder}:/etc/prometheus:ro",
                 "--entrypoint", "promtool", IMAGE, *args],
                capture_output=True, text=True, timeout=120)

        yield run


@pytest.mark.docker
def test_prometheus_configuration_and_rules_are_valid(promtool):
    result = promtool("check", "config", "/etc/prometheus/prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 rules found" in result.stdout


@pytest.mark.docker
def test_every_alert_fires_on_its_series_in_promtool_unit_tests(promtool):
    result = promtool("test", "rules", "/etc/prometheus/tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    rules = yaml.safe_load((PROMETHEUS / "rules/infrastructure.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tested = (PROMETHEUS / "tests/alerts_test.yml").read_text()
    assert all(f"alertname: {name}" in tested for name in alerts), "an alert without a unit test"


@pytest.mark.docker
def test_a_rule_with_a_syntax_error_is_refused(promtool, tmp_path):
    broken = broken_copy(PROMETHEUS, tmp_path, "rules/infrastructure.yml", "expr: up == 0", "expr: up == == 0")
    result = promtool("check", "rules", "/etc/prometheus/rules/infrastructure.yml", folder=broken)
    assert result.returncode != 0 and "parse error" in (result.stdout + result.stderr)


def test_metric_names_of_promql_expressions():
    names = telemetry_files.metric_names_in
    assert names("rate(redis_commands_processed_total[1m])") == {"redis_commands_processed_total"}
    assert names('sum by (outcome) (rate(config_reads_total{outcome="a b"}[5m]))') == {"config_reads_total"}
    assert names("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))") == {"x_bucket"}
    assert names("a / on (instance) max by (instance) (b) > 0.8") == {"a", "b"}
    assert names("up offset 5m == bool 1e3") == {"up"}


def test_undefined_pipeline_components_are_named():
    config = {"receivers": {"otlp": {}}, "exporters": {"otlp/jaeger": {}}, "extensions": {},
              "service": {"extensions": ["health_check"],
                          "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlp/tempo"]}}}}
    problems = telemetry_files.undefined_references(config)
    assert any("'health_check'" in p for p in problems) and any("'otlp/tempo'" in p for p in problems)
    config["service"] = {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlp/jaeger"]}}}
    assert telemetry_files.undefined_references(config) == []


@pytest.mark.parametrize("relative", ["infra/otel-collector/config.yaml", "infra/jaeger/config.yaml"])
def test_the_repositorys_pipelines_resolve(relative):
    assert telemetry_files.undefined_references(telemetry_files.load_yaml(ROOT / relative).observed) == []


def test_otlp_ports_default_to_the_protocol_ports():
    config = {"receivers": {"otlp": {"protocols": {"grpc": None, "http": {"endpoint": "0.0.0.0:14318"}}}}}
    assert telemetry_files.otlp_ports(config) == {"grpc": 4317, "http": 14318}


def test_the_dashboard_has_a_query_per_panel():
    dashboard = json.loads((ROOT / "infra/grafana/dashboards/infrastructure-overview.json").read_text())
    assert len(telemetry_files.dashboard_queries(dashboard)) >= 12


def test_a_file_that_does_not_parse_is_named(tmp_path):
    bad = tmp_path / "config.yaml"
    bad.write_text("receivers: [unclosed\n")
    with pytest.raises(telemetry_files.ProbeError, match="config.yaml: cannot be read as YAML"):
        telemetry_files.load_yaml(bad)


ALERTMANAGER = ROOT / "infra/alertmanager"


@pytest.fixture(scope="module")
def route_tests():
    """Run infra/alertmanager/tests/route-tests (amtool) from the stack's Alertmanager image, on a
    folder holding alertmanager.yml and tests/."""
    with image_of(ALERTMANAGER, "tse-amtool") as image:
        def run(folder: Path = ALERTMANAGER) -> subprocess.CompletedProcess:
            return subprocess.run(
                ["docker", "run", "--rm", "--network", "none", "-v", f"{folder}:/etc/alertmanager:ro",
                 "--entrypoint", "/etc/alertmanager/tests/route-tests", image],
                capture_output=True, text=True, timeout=120)

        yield run


@pytest.mark.docker
def test_alertmanager_configuration_is_valid_and_routes_each_alert_to_its_receiver(route_tests):
    result = route_tests()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "route tests, all passed" in result.stdout and "FAIL" not in result.stdout


@pytest.mark.docker
def test_a_route_to_the_wrong_receiver_fails_its_route_test(route_tests, tmp_path):
    broken = broken_copy(ALERTMANAGER, tmp_path, "alertmanager.yml", "    - receiver: critical\n",
                         "    - receiver: default\n")
    result = route_tests(broken)
    assert result.returncode == 1 and "FAIL alertname=InstanceDown" in result.stdout, result.stdout


def test_every_alert_rule_has_a_route_test_naming_it_or_its_severity():
    """Each rule's severity has a route test, so a new severity cannot go untested."""
    rules = yaml.safe_load((PROMETHEUS / "rules/infrastructure.yml").read_text())
    severities = {rule["labels"]["severity"] for group in rules["groups"] for rule in group["rules"]}
    tested = (ALERTMANAGER / "tests/routes.txt").read_text()
    assert all(f"severity={severity}" in tested for severity in severities)


def test_the_inhibitions_name_alerts_that_exist_and_a_label_both_carry():
    rules = yaml.safe_load((PROMETHEUS / "rules/infrastructure.yml").read_text())
    labelled = {rule["alert"]: set(rule.get("labels", {})) for group in rules["groups"] for rule in group["rules"]}
    # InfrastructureServiceUnhealthy's service label comes from its series, not from the rule.
    labelled["InfrastructureServiceUnhealthy"].add("service")
    config = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())
    for rule in config["inhibit_rules"]:
        names = [re.search(r'"(.*)"', m).group(1) for m in rule["source_matchers"] + rule["target_matchers"]]
        for name in (n for alternatives in names for n in alternatives.split("|")):
            assert name in labelled, f"inhibition names {name}, which no rule defines"
            assert set(rule["equal"]) <= labelled[name], f"{name} lacks the label {rule['equal']}"
