"""Unit tests of the probes' pure parts and the harness's helpers (no Docker needed)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from steps.expect import Mismatches, expect
from steps.harness import isolation as isolation_module
from steps.harness import settings as settings_module
from steps.harness.isolation import isolate
from steps.harness.settings import StackSettings, read_env_file
from steps.probes import Fact, StackError, redis_server
from steps.probes.waiting import WaitTimeout, poll, wait_until
from steps.report.evidence import Evidence
from tests.faults.faults import FAULTS, Edit, Fault

ROOT = Path(__file__).resolve().parents[2]


def test_plain_text_passwords_are_found_and_hashes_are_not():
    acl = "user default off\nuser a on #abc ~a:* +@all\nuser b on >secret ~b:*\n"
    assert redis_server.plain_text_passwords(acl) == ["b"]


def test_env_file_reading_skips_comments_and_strips_quotes(tmp_path):
    env = tmp_path / ".env"
    env.write_text("# comment\n\nA=1\nB='two'\nC = \"three\"\n")
    assert read_env_file(env) == {"A": "1", "B": "two", "C": "three"}


def test_settings_take_the_environment_over_the_env_file_and_options_over_both(tmp_path, monkeypatch):
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    (tmp_path / ".env.example").write_text("REDIS_HOST_PORT=7000\nPOSTGRES_HOST_PORT=7001\n")
    monkeypatch.setenv("POSTGRES_HOST_PORT", "7101")
    settings = StackSettings.resolve(compose_file=tmp_path / "docker-compose.yml",
                                     overrides={"TSE_SUBNET_PREFIX": "172.29"})
    assert settings.port("REDIS_HOST_PORT") == 7000
    assert settings.port("POSTGRES_HOST_PORT") == 7101
    assert settings.subnet == "172.29.0.0/16" and settings.address("0.10") == "172.29.0.10"
    assert settings.explicit == {"POSTGRES_HOST_PORT", "TSE_SUBNET_PREFIX"}
    assert settings.project == "tse-acceptance"
    attached = StackSettings.resolve(mode="attach", compose_file=tmp_path / "docker-compose.yml")
    assert attached.project == "trading-ecosystem"


def test_attach_mode_and_stackctl_honour_compose_project_name(tmp_path, monkeypatch):
    """The project compose users already name with COMPOSE_PROJECT_NAME (environment, then env file);
    an explicit project wins, and up mode keeps a project of its own."""
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services: {}\n")
    (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=from-env-file\n")
    monkeypatch.delenv("COMPOSE_PROJECT_NAME", raising=False)
    assert StackSettings.resolve(mode="attach", compose_file=compose).project == "from-env-file"
    monkeypatch.setenv("COMPOSE_PROJECT_NAME", "mine")
    assert StackSettings.resolve(mode="attach", compose_file=compose).project == "mine"
    assert StackSettings.resolve(mode="attach", project="explicit", compose_file=compose).project == "explicit"
    assert StackSettings.resolve(mode="up", compose_file=compose).project == "tse-acceptance"
    (tmp_path / ".env").write_text("REDIS_HOST_PORT=6379\n")
    assert StackSettings.resolve(mode="attach", compose_file=compose).project == "mine"


def test_settings_name_a_missing_env_file(tmp_path):
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    with pytest.raises(StackError, match="env file .* does not exist"):
        StackSettings.resolve(compose_file=tmp_path / "docker-compose.yml")


class _FakeNetworks:
    def __init__(self, names, subnets):
        self.names, self.subnets = names, subnets

    def list(self, names=None):
        if names is not None:
            return [n for n in names if n in self.names]
        return [type("N", (), {"attrs": {"IPAM": {"Config": [{"Subnet": s}]}}})() for s in self.subnets]


@pytest.fixture
def taken(monkeypatch):
    """A fake engine holding network trading-ecosystem on 172.20.0.0/16, and port 127.0.0.1:P busy."""
    fake = type("Engine", (), {"networks": _FakeNetworks({"trading-ecosystem"}, ["172.20.0.0/16"])})()
    monkeypatch.setattr(isolation_module.docker_engine, "client", lambda: fake)
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    yield busy.getsockname()[1]
    busy.close()


def _settings(port: int, explicit=frozenset()) -> StackSettings:
    # Every other port free now, whatever else runs on this machine (a stack on the default ports).
    free = {variable: str(isolation_module.free_port()) for variable in settings_module.PORT_VARIABLES}
    values = {**settings_module.DEFAULTS, **free, "REDIS_HOST_PORT": str(port)}
    return StackSettings(values=values, explicit=frozenset(explicit))


def test_up_mode_moves_off_taken_ports_network_and_subnet(taken):
    settings, notes = isolate(_settings(taken))
    assert settings.port("REDIS_HOST_PORT") != taken
    assert settings.network_name == "tse-acceptance"
    assert settings.subnet == "172.21.0.0/16"
    assert len(notes) == 3


def test_up_mode_stops_when_a_taken_resource_was_set_explicitly(taken):
    with pytest.raises(StackError, match=rf"127\.0\.0\.1:{taken} \(REDIS_HOST_PORT\) is in use.*--stack=attach"):
        isolate(_settings(taken, {"REDIS_HOST_PORT"}))


def test_wait_until_returns_the_first_truthy_value_and_retries_transient_errors():
    calls = iter([ConnectionError("no"), None, "ready"])

    def check():
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert wait_until(check, timeout=5, interval=0.01, transient=(ConnectionError,)) == "ready"


def test_wait_until_times_out_with_attempts_and_the_last_observation():
    with pytest.raises(WaitTimeout, match=r"redis healthy: failed after \d+ attempts, waited 0\.\d s: last ''"):
        wait_until(lambda: "", timeout=0.2, interval=0.05, description="redis healthy")


def test_poll_returns_the_value_or_none_and_expect_eventually_fails_in_the_standard_form():
    from steps.expect import expect_eventually
    from steps.report.evidence import Evidence

    assert poll(lambda: "", timeout=0.1, interval=0.02) is None
    assert poll(lambda: 7, timeout=0.1) == 7
    evidence = Evidence()
    fact = Fact("GET /health", "127.0.0.1:8080", {"status": 200})
    assert expect_eventually(lambda: fact, what="/health", expected=200, timeout=1, evidence=evidence) is fact
    assert evidence.steps[-1][1] == [fact]
    with pytest.raises(AssertionError, match=r"^/health: expected 200 within 0\.1 s, observed /health: failed after "
                                             r"\d+ attempts, waited 0\.\d s: last None\. Hint: ask Redis$"):
        expect_eventually(lambda: None, what="/health", expected=200, timeout=0.1, interval=0.02, hint="ask Redis")


def test_failure_messages_read_expected_observed_where_and_hint():
    fact = Fact("CONFIG GET maxmemory-policy", "redis 127.0.0.1:6379 as admin", "noeviction")
    with pytest.raises(AssertionError) as raised:
        expect(False, "Redis maxmemory-policy", "allkeys-lfu", "noeviction", fact, "is redis.conf mounted?")
    assert str(raised.value) == ("Redis maxmemory-policy: expected allkeys-lfu, observed noeviction "
                                 "(redis 127.0.0.1:6379 as admin: CONFIG GET maxmemory-policy). "
                                 "Hint: is redis.conf mounted?")


def test_mismatches_report_every_item_at_once():
    problems = Mismatches("users", "rehash")
    problems.check(False, "a", "x")
    problems.check(True, "b", "b")
    problems.check(False, "c", "y")
    expected = r"users:\n  - expected a, observed x\n  - expected c, observed y\nHint: rehash"
    with pytest.raises(AssertionError, match=expected):
        problems.raise_any()


def test_evidence_groups_facts_by_step_and_serialises_to_json():
    evidence = Evidence()
    evidence.start_step("Then Redis refuses the default user")
    evidence.record(Fact("PING", "redis", "NOAUTH", raw="NOAUTH Authentication required."))
    evidence.record(Fact("ACL GETUSER default", "redis", frozenset({"off"})))
    dumped = json.loads(json.dumps(evidence.as_dicts()))
    assert dumped[0]["step"] == "Then Redis refuses the default user"
    assert [f["observed"] for f in dumped[0]["facts"]] == ["NOAUTH", ["off"]]


def test_a_fault_whose_pattern_no_longer_matches_refuses_to_apply(tmp_path):
    (tmp_path / "f.conf").write_text("maxmemory 4gb\n")
    broken = Fault("x", "why", (Edit("f.conf", r"^maxmemory 8gb", "maxmemory 1gb"),), frozenset({"checklist_1_5"}))
    with pytest.raises(ValueError, match="matches 0 times"):
        broken.apply(tmp_path)


def test_every_fault_applies_to_the_current_repository(tmp_path):
    from tests.acceptance_copy import copy_repository

    for fault in FAULTS:
        fault.apply(copy_repository(tmp_path / fault.name))


def test_one_exec_connects_to_each_target_and_says_why_one_failed():
    """tcp_connects_from's script, run by the host's bash against 127.0.0.1 only: one listening port,
    one closed."""
    import socket

    from steps.probes import container_exec
    from steps.probes.facts import ExecResult

    with socket.socket() as listening, socket.socket() as closed:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        closed.bind(("127.0.0.1", 0))
        targets = [("127.0.0.1", listening.getsockname()[1]), ("127.0.0.1", closed.getsockname()[1])]
        done = subprocess.run(["bash", "-c", container_exec.tcp_connect_script(targets)], capture_output=True,
                              text=True)
    observed = container_exec.tcp_connect_results(targets, ExecResult(done.returncode, done.stdout))
    up, down = (f"{host}:{port}" for host, port in targets)
    assert observed[up] is None
    assert "Connection refused" in observed[down] and "\n" not in observed[down]
    assert container_exec.tcp_connect_results(targets, ExecResult(126, "")) == {
        up: "no answer (exit 126)", down: "no answer (exit 126)"}
