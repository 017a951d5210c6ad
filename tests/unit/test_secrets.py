"""Passwords as files: how the two services read them (servicekit.secrets) and the probe that looks
for a password where `docker inspect` or `ps` would show it (steps/probes/secrets.py), run here
against a stand-in container."""
from __future__ import annotations

import pytest

from steps.probes import secrets as secret_probes

PASSWORDS = {"PG_PASSWORD_MONITOR": "monitor-pw", "REDIS_PASSWORD_ADMIN": "admin-pw"}


def test_a_secret_is_read_from_the_file_its_variable_names(tmp_path):
    from servicekit.secrets import secret

    (tmp_path / "pw").write_text("s3cret\n")  # a file written by hand ends with a newline
    assert secret({"X_PASSWORD_FILE": str(tmp_path / "pw"), "X_PASSWORD": "ignored"}, "X_PASSWORD") == "s3cret"
    assert secret({"X_PASSWORD": "from-the-variable"}, "X_PASSWORD") == "from-the-variable"
    assert secret({}, "X_PASSWORD") == ""


def test_an_unreadable_secret_file_is_one_clear_error_naming_the_variable_and_the_remedy(tmp_path):
    from servicekit.secrets import secret

    with pytest.raises(ValueError) as raised:
        secret({"X_PASSWORD_FILE": str(tmp_path / "missing")}, "X_PASSWORD")
    assert "X_PASSWORD_FILE" in str(raised.value) and "secrets service" in str(raised.value)


def test_the_configuration_service_reads_its_passwords_only_when_it_serves(tmp_path):
    from configsvc.settings import Settings

    # --check and a start on a bad environment file read no secret: the files may not be there.
    env = {"CONFIG_POSTGRES_PASSWORD_FILE": str(tmp_path / "missing"), "CONFIG_REDIS_PASSWORD": "redis-pw"}
    settings = Settings.from_environment(env)
    assert settings.postgres_password == "" and settings.redis_password == ""
    with pytest.raises(ValueError, match="CONFIG_POSTGRES_PASSWORD_FILE"):
        settings.with_passwords(env)
    (tmp_path / "pg").write_text("pg-pw")
    served = settings.with_passwords({**env, "CONFIG_POSTGRES_PASSWORD_FILE": str(tmp_path / "pg")})
    assert (served.postgres_password, served.redis_password) == ("pg-pw", "redis-pw")


def test_the_registry_reads_its_passwords_from_files(tmp_path):
    from registry.settings import Settings

    (tmp_path / "redis").write_text("redis-pw")
    (tmp_path / "pg").write_text("pg-pw")
    settings = Settings.from_environment({"REGISTRY_REDIS_PASSWORD_FILE": str(tmp_path / "redis"),
                                          "REGISTRY_POSTGRES_PASSWORD_FILE": str(tmp_path / "pg")})
    assert (settings.redis_password, settings.postgres_password) == ("redis-pw", "pg-pw")


class StandInContainer:
    """What docker-py gives the probe: attrs (docker inspect) and top() (ps on the host)."""

    def __init__(self, env=(), cmd=(), healthcheck=(), processes=(), running=True):
        self.attrs = {"Config": {"Env": list(env), "Cmd": list(cmd), "Entrypoint": None, "Labels": {},
                                 "Healthcheck": {"Test": list(healthcheck)}},
                      "State": {"Running": running}}
        self.processes = processes

    def top(self, ps_args):
        return {"Titles": ["PID", "COMMAND"], "Processes": [list(p) for p in self.processes]}


def _exposed(monkeypatch, container):
    monkeypatch.setattr(secret_probes.docker_engine, "container", lambda project, service: container)
    return secret_probes.exposed_passwords("p", "s", PASSWORDS)


def test_the_probe_finds_a_password_wherever_docker_inspect_or_ps_shows_it_and_never_shows_it(monkeypatch):
    fact = _exposed(monkeypatch, StandInContainer(
        env=["DATA_SOURCE_PASS=monitor-pw", "DATA_SOURCE_USER=monitor"],
        cmd=["--redis.password=admin-pw"],
        healthcheck=["CMD-SHELL", "redis-cli -a admin-pw ping"],
        processes=[("42", "exporter --password monitor-pw")]))
    assert fact.observed == [("command", "REDIS_PASSWORD_ADMIN"), ("environment", "PG_PASSWORD_MONITOR"),
                             ("healthcheck", "REDIS_PASSWORD_ADMIN"),
                             ("process 42's command line", "PG_PASSWORD_MONITOR")]
    assert not any(value in repr(fact) for value in PASSWORDS.values())


def test_the_probe_finds_nothing_where_only_secret_files_are_named(monkeypatch):
    fact = _exposed(monkeypatch, StandInContainer(
        env=["DATA_SOURCE_PASS_FILE=/run/secrets/pg_password_monitor"],
        healthcheck=["CMD-SHELL", "REDISCLI_AUTH=\"$(cat /run/secrets/x)\" redis-cli ping"],
        processes=[("42", "postgres_exporter")]))
    assert fact.observed == []


def test_a_healthcheck_run_with_another_secret_gets_it_through_the_environment_only(monkeypatch):
    from steps.probes import Fact, container_exec

    test = ["CMD-SHELL", "REDISCLI_AUTH=\"$(cat /run/secrets/redis_password_healthcheck)\" redis-cli ping"]
    monkeypatch.setattr(container_exec, "healthcheck_command", lambda project, service: Fact("", "", test))
    ran = {}
    monkeypatch.setattr(container_exec, "exec_in", lambda project, service, command, env=None: ran.update(
        command=command, env=env))
    container_exec.run_healthcheck("p", "redis", secrets={"redis_password_healthcheck": "wrong-pw"})
    script = ran["command"][-1]
    assert "/run/secrets/redis_password_healthcheck" not in script and "/tmp/probe-secret-0" in script
    assert "wrong-pw" not in " ".join(ran["command"]) and ran["env"] == {"PROBE_SECRET_0": "wrong-pw"}
    with pytest.raises(Exception, match="does not read /run/secrets/other"):
        container_exec.run_healthcheck("p", "redis", secrets={"other": "x"})
