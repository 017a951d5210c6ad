"""Static checks of the servers' configuration files, and PostgreSQL's entrypoint run by bash with a
stand-in `postgres`: the hardening docs/security.md describes (idle clients, sign-in time,
connections per role, the superuser never over TCP whatever its name)."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = ROOT / "infra" / "postgres"


def settings(path: Path, separator: str = " ") -> dict[str, str]:
    """name -> value of a redis.conf / postgresql.conf style file (the last one wins, as in both)."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, value = line.partition(separator)
            found[name.strip()] = value.strip().strip("'")
    return found


def test_redis_closes_idle_clients_but_not_before_the_services_health_checks():
    timeout = int(settings(ROOT / "infra" / "redis" / "redis.conf")["timeout"])
    client = (ROOT / "infra" / "servicekit" / "servicekit" / "redis_client.py").read_text()
    health_check_interval = int(re.search(r"health_check_interval=(\d+)", client).group(1))
    assert 0 < timeout and timeout >= 10 * health_check_interval


def test_postgres_gives_a_client_a_few_seconds_to_sign_in():
    value = settings(POSTGRES / "postgresql.conf", "=")["authentication_timeout"]
    assert re.fullmatch(r"\d+s", value) and 0 < int(value[:-1]) <= 15


def login_roles(sql: str) -> set[str]:
    domain_rows = re.search(r"INSERT INTO domain VALUES\n(.*?);\n", sql, re.S).group(1)
    return set(re.findall(r"^CREATE ROLE (\w+) LOGIN", sql, re.M)) | \
        set(re.findall(r"^\s+\('\w+',\s+'(\w+)'", domain_rows, re.M))


def test_every_login_role_has_a_connection_limit_below_max_connections():
    sql = (POSTGRES / "init" / "01-init-schemas.sql").read_text()
    limits = {role: int(n) for role, n in re.findall(r"^(?:CREATE|ALTER) ROLE (\w+) .*CONNECTION LIMIT (\d+)", sql,
                                                   re.M)}
    roles = login_roles(sql)
    assert len(roles) == 10 and roles <= set(limits), f"no CONNECTION LIMIT: {sorted(roles - set(limits))}"
    max_connections = int(settings(POSTGRES / "postgresql.conf", "=")["max_connections"])
    # The configuration service's pools: max_size 10 per worker, 2 workers, 2 replicas on swarm.
    assert limits["config_service"] >= 40
    assert all(0 < limit <= max_connections // 2 for limit in limits.values()), limits


SUPERUSER_INCLUDE = re.compile(r"^include\s+(\S+)$", re.M)


def test_pg_hba_includes_the_entrypoints_superuser_rule_before_any_tcp_rule():
    hba = (POSTGRES / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    entrypoint = (POSTGRES / "docker-entrypoint.sh").read_text()
    written = re.search(r'PG_HBA_SUPERUSER_FILE:=([^}]+)\}', entrypoint).group(1)
    assert ["include", written] in rules, "pg_hba.conf does not include the file the entrypoint writes"
    first_host = min(i for i, rule in enumerate(rules) if rule[0].startswith("host"))
    assert rules.index(["include", written]) < first_host
    assert not any(rule[0].startswith("host") and rule[2] == "postgres" for rule in rules), \
        "a rule naming postgres misses a superuser named otherwise"


def run_entrypoint(tmp_path: Path, **environment) -> subprocess.CompletedProcess:
    """The entrypoint on an initialised data directory (no initdb), `postgres` a stand-in that prints
    the superuser rule file it would read."""
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "PG_VERSION").write_text("17\n")
    fake = tmp_path / "bin" / "postgres"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text('#!/bin/sh\necho "server started: $*"\ncat "$PG_HBA_SUPERUSER_FILE"\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:{os.environ['PATH']}", "PGDATA": str(tmp_path / "data"),
           "PG_HBA_SUPERUSER_FILE": str(tmp_path / "superuser.conf"), **environment}
    return subprocess.run(["bash", str(POSTGRES / "docker-entrypoint.sh"), "postgres", "-c", "x=y"], env=env,
                          capture_output=True, text=True, timeout=30)


def test_the_entrypoint_refuses_the_superuser_over_tcp_by_its_own_name(tmp_path):
    result = run_entrypoint(tmp_path, POSTGRES_USER="dba")
    assert result.returncode == 0, result.stderr
    assert "server started: -c x=y" in result.stdout
    rules = [line for line in result.stdout.splitlines() if line.startswith("host")]
    assert rules == ['host all "dba" all reject']


def test_the_entrypoint_names_postgres_by_default(tmp_path):
    result = run_entrypoint(tmp_path)
    assert 'host all "postgres" all reject' in result.stdout.splitlines()


def test_a_superuser_name_pg_hba_cannot_hold_stops_the_start(tmp_path):
    result = run_entrypoint(tmp_path, POSTGRES_USER='a" all all trust\nhost all "b')
    assert result.returncode == 1 and "POSTGRES_USER" in result.stderr
    assert "server started" not in result.stdout and not (tmp_path / "superuser.conf").exists()
