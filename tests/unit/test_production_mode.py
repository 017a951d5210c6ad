"""Production mode (TSE_MODE=production): nothing starts while a password is one the repository
publishes (.env.example) or shorter than 16 characters; the harness and stackctl say so before
anything starts, the secrets service for a plain `docker compose up`, by the same rule.
infra/host/make-env makes an env file that passes."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from steps.harness.settings import StackSettings, production_refusals, read_env_file
from steps.probes import StackError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = read_env_file(ROOT / ".env.example")


def _made_env(tmp_path: Path, *args: str) -> Path:
    path = tmp_path / "made.env"
    done = subprocess.run([sys.executable, str(ROOT / "infra/host/make-env"), *args, "--output", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return path


def test_the_example_passwords_are_all_refused_and_named():
    refused = production_refusals(EXAMPLE, EXAMPLE)
    passwords = [variable for variable in EXAMPLE if "PASSWORD" in variable]
    assert len(refused) == len(passwords) and all("(its .env.example value)" in line for line in refused)
    assert production_refusals({"REDIS_PASSWORD_ADMIN": "short-but-new"}, EXAMPLE) == [
        "REDIS_PASSWORD_ADMIN (shorter than 16 characters)"]


def test_a_made_env_file_passes_and_keeps_everything_but_the_passwords(tmp_path):
    made = read_env_file(_made_env(tmp_path, "--production"))
    assert made["TSE_MODE"] == "production" and production_refusals(made, EXAMPLE) == []
    assert {k: v for k, v in made.items() if "PASSWORD" not in k and k != "TSE_MODE"} == {
        k: v for k, v in EXAMPLE.items() if "PASSWORD" not in k and k != "TSE_MODE"}
    assert len({v for k, v in made.items() if "PASSWORD" in k}) == len([k for k in made if "PASSWORD" in k])
    assert oct((tmp_path / "made.env").stat().st_mode & 0o777) == "0o600"


def test_make_env_never_overwrites_a_file(tmp_path):
    existing = tmp_path / "made.env"
    existing.write_text("REDIS_PASSWORD_ADMIN=keep-me\n")
    done = subprocess.run([sys.executable, str(ROOT / "infra/host/make-env"), "--output", str(existing)],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "exists" in done.stderr and existing.read_text() == "REDIS_PASSWORD_ADMIN=keep-me\n"


def test_the_harness_refuses_production_mode_with_the_example_passwords(monkeypatch):
    monkeypatch.delenv("TSE_MODE", raising=False)
    with pytest.raises(StackError) as raised:
        StackSettings.resolve(env_file=ROOT / ".env.example", overrides={"TSE_MODE": "production"})
    message = str(raised.value)
    assert "production mode refuses these passwords" in message
    assert "REDIS_PASSWORD_ADMIN (its .env.example value)" in message
    assert "infra/host/make-env --production > .env" in message
    assert StackSettings.resolve(env_file=ROOT / ".env.example").values["TSE_MODE"] == "development"


def test_the_harness_accepts_production_mode_with_a_made_env_file(tmp_path, monkeypatch):
    monkeypatch.delenv("TSE_MODE", raising=False)
    settings = StackSettings.resolve(env_file=_made_env(tmp_path, "--production"))
    assert settings.values["TSE_MODE"] == "production"


def _distribute(tmp_path: Path, secrets: dict, mode: str) -> subprocess.CompletedProcess:
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    for name, value in secrets.items():
        (source / name).write_text(value)
    (tmp_path / "handout").write_text("")
    env = {"PATH": os.environ["PATH"], "TSE_MODE": mode, "SECRETS_SOURCE": str(source),
           "SECRETS_TARGET": str(tmp_path / "target"), "SECRETS_HANDOUT": str(tmp_path / "handout"),
           "SECRETS_EXAMPLE_ENV": str(ROOT / ".env.example")}
    return subprocess.run(["sh", str(ROOT / "infra/secrets/distribute")], env=env, capture_output=True, text=True)


def test_the_secrets_service_refuses_by_the_same_rule(tmp_path):
    secrets = {"redis_password_admin": EXAMPLE["REDIS_PASSWORD_ADMIN"], "pg_password_monitor": "short",
               "postgres_password": "a-long-enough-password-of-mine"}
    done = _distribute(tmp_path, secrets, "production")
    assert done.returncode == 1, done.stderr
    assert "REDIS_PASSWORD_ADMIN (its .env.example value)" in done.stderr
    assert "PG_PASSWORD_MONITOR (shorter than 16 characters)" in done.stderr
    assert "POSTGRES_PASSWORD" not in done.stderr and "infra/host/make-env --production" in done.stderr
    python_rule = production_refusals({name.upper(): value for name, value in secrets.items()}, EXAMPLE)
    assert python_rule == ["PG_PASSWORD_MONITOR (shorter than 16 characters)",
                           "REDIS_PASSWORD_ADMIN (its .env.example value)"]
    assert _distribute(tmp_path, secrets, "development").returncode == 0
