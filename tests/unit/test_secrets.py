"""Passwords as files: how the two services read them (servicekit.secrets) and the probe that looks
for a password where `docker inspect` or `ps` would show it (steps/probes/secrets.py), run here
against a stand-in container."""
from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from steps.harness import swarm_file
from steps.harness.settings import read_env_file
from steps.probes import redis_server
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


# Redis's ACL, made at every start from infra/redis/users.acl (users and rules, no password) and the
# passwords of the env file: by infra/secrets/distribute for compose, by swarm_file.redis_acl on swarm.
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "infra/redis/users.acl"


def _example_secrets() -> dict:
    model = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return swarm_file.secret_values(model, read_env_file(ROOT / ".env.example"))


def _distribute(tmp_path: Path, secrets: dict, handout: str) -> subprocess.CompletedProcess:
    """infra/secrets/distribute on this machine, its folders pointed at tmp_path."""
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    for name, value in secrets.items():
        (source / name).write_text(value)
    (tmp_path / "handout").write_text(handout)
    env = {"PATH": os.environ["PATH"], "SECRETS_SOURCE": str(source), "SECRETS_TARGET": str(target),
           "SECRETS_HANDOUT": str(tmp_path / "handout"), "SECRETS_ACL_RULES": str(RULES)}
    return subprocess.run(["sh", str(ROOT / "infra/secrets/distribute")], env=env, capture_output=True, text=True)


def test_the_repository_holds_no_password_of_a_redis_user():
    for line in RULES.read_text().splitlines():
        tokens = line.split()
        assert not any(t.startswith((">", "<", "#")) and len(t) > 1 for t in tokens[2:]), line
        assert "nopass" not in tokens, line


def test_every_redis_user_signing_in_has_a_password_secret_the_secrets_service_gets():
    model = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    given = set(model["services"]["secrets"]["secrets"])
    users = [line.split()[1] for line in RULES.read_text().splitlines() if line.startswith("user ") and " on" in line]
    missing = [u for u in users if f"redis_password_{u.replace('-', '_')}" not in given]
    assert missing == [], f"users of users.acl whose password the secrets service never gets: {missing}"


def test_the_acl_holds_the_hash_of_each_users_password_and_no_password():
    acl = swarm_file.redis_acl(RULES.read_text(), {"redis_password_admin": "s3cret"})
    admin = next(line for line in acl.splitlines() if line.startswith("user admin "))
    assert admin == f"user admin on #{hashlib.sha256(b's3cret').hexdigest()} ~* &* +@all"
    assert "s3cret" not in acl and not any(line.startswith("#") for line in acl.splitlines())
    assert redis_server.plain_text_passwords(acl) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="distribute gives each file to its service's user: root only")
def test_compose_and_swarm_make_the_same_acl(tmp_path):
    secrets = _example_secrets()
    done = _distribute(tmp_path, secrets, "redis 100:101 users.acl\n")
    assert done.returncode == 0, done.stderr
    made = (tmp_path / "target/redis/users.acl").read_text()
    assert made == swarm_file.redis_acl(RULES.read_text(), secrets)
    assert made.count("#") == len([s for s in secrets if s.startswith("redis_password_")])
    assert oct((tmp_path / "target/redis/users.acl").stat().st_mode & 0o777) == "0o400"


@pytest.mark.skipif(os.geteuid() != 0, reason="distribute gives each file to its service's user: root only")
def test_an_empty_redis_password_is_one_error_naming_its_variable(tmp_path):
    secrets = {**_example_secrets(), "redis_password_monitor": ""}
    done = _distribute(tmp_path, secrets, "redis 100:101 users.acl\n")
    assert done.returncode == 1
    assert "Redis user monitor has no password: set REDIS_PASSWORD_MONITOR in .env" in done.stderr
