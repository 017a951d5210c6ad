"""Production mode's TLS: the certificates and server settings infra/secrets/distribute makes (run on
this machine, its folders pointed at tmp_path), and the services' transport (servicekit.tls)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANDOUT = ("redis 100:101 redis.tls.conf,tls.crt,ca.crt\n"
           "postgres 100:102 postgres.tls.conf,pg_hba.tls.conf,tls.crt\n"
           "service-registry 999:999 tls.crt,ca.crt\n")
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="distribute gives each file to its service's user: root only")


def _distribute(tmp_path: Path, mode: str, operator: Path | None = None) -> subprocess.CompletedProcess:
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    (source / "redis_password_admin").write_text("a-long-password-of-the-operator")
    (tmp_path / "handout").write_text(HANDOUT)
    (tmp_path / "example.env").write_text("REDIS_PASSWORD_ADMIN=admin-password-change-me\n")
    if operator is None:
        operator = tmp_path / "no-operator-certificates"
        operator.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "SECRETS_SOURCE": str(source), "SECRETS_TARGET": str(tmp_path / "target"),
           "SECRETS_HANDOUT": str(tmp_path / "handout"), "SECRETS_ACL_RULES": str(ROOT / "infra/redis/users.acl"),
           "SECRETS_EXAMPLE_ENV": str(tmp_path / "example.env"), "SECRETS_OPERATOR_TLS": str(operator),
           "TSE_MODE": mode, "TSE_SUBNET_PREFIX": "172.31"}
    return subprocess.run(["sh", str(ROOT / "infra/secrets/distribute")], env=env, capture_output=True, text=True)


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


def _operator_ca(folder: Path) -> Path:
    """A folder holding an operator's own CA (ca.crt, ca.key)."""
    folder.mkdir()
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc", "-days", "1",
             "-subj", "/CN=operator CA", "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.crt"))
    return folder


@as_root
def test_production_mode_makes_a_private_ca_and_certificates_naming_each_server(tmp_path):
    done = _distribute(tmp_path, "production")
    assert done.returncode == 0, done.stderr
    target = tmp_path / "target"
    for server, address in (("redis", "172.31.0.10"), ("postgres", "172.31.0.20"),
                            ("service-registry", "172.31.0.30")):
        certificate = target / server / "tls.crt"
        _openssl("verify", "-CAfile", str(target / ".ca/ca.crt"), str(certificate))
        names = _openssl("x509", "-noout", "-ext", "subjectAltName", "-in", str(certificate))
        assert f"DNS:{server}" in names and f"IP Address:{address}" in names and "IP Address:127.0.0.1" in names
        for name in ("tls.crt", "tls.key"):
            assert oct((target / server / name).stat().st_mode & 0o777) == "0o400"
    assert (target / "redis/ca.crt").read_text() == (target / ".ca/ca.crt").read_text()
    redis_settings = (target / "redis/redis.tls.conf").read_text()
    assert "port 0\n" in redis_settings and "tls-port 6379\n" in redis_settings
    assert "ssl = on" in (target / "postgres/postgres.tls.conf").read_text()
    assert "hostnossl all all all reject" in (target / "postgres/pg_hba.tls.conf").read_text()
    assert "made a private CA" in done.stderr


@as_root
def test_the_private_ca_is_kept_from_one_start_to_the_next(tmp_path):
    assert _distribute(tmp_path, "production").returncode == 0
    first = (tmp_path / "target/.ca/ca.crt").read_text()
    again = _distribute(tmp_path, "production")
    assert again.returncode == 0 and "made a private CA" not in again.stderr
    assert (tmp_path / "target/.ca/ca.crt").read_text() == first
    _openssl("verify", "-CAfile", str(tmp_path / "target/.ca/ca.crt"), str(tmp_path / "target/redis/tls.crt"))


@as_root
def test_development_mode_makes_no_certificate_and_no_tls_setting(tmp_path):
    done = _distribute(tmp_path, "development")
    assert done.returncode == 0, done.stderr
    target = tmp_path / "target"
    assert not (target / ".ca").exists()
    assert sorted(p.name for p in (target / "redis").iterdir()) == ["redis.tls.conf"]
    for settings in ("redis/redis.tls.conf", "postgres/postgres.tls.conf", "postgres/pg_hba.tls.conf"):
        assert all(line.startswith("#") for line in (target / settings).read_text().splitlines())


@as_root
def test_the_operators_certificates_are_used_when_given(tmp_path):
    operator = _operator_ca(tmp_path / "operator")
    for server in ("redis", "postgres", "service-registry"):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc", "-days", "1",
                 "-subj", f"/CN={server}", "-CA", str(operator / "ca.crt"), "-CAkey", str(operator / "ca.key"),
                 "-keyout", str(operator / f"{server}.key"), "-out", str(operator / f"{server}.crt"))
    done = _distribute(tmp_path, "production", operator)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "target/redis/ca.crt").read_text() == (operator / "ca.crt").read_text()
    assert (tmp_path / "target/postgres/tls.crt").read_text() == (operator / "postgres.crt").read_text()
    assert not (tmp_path / "target/.ca").exists()


@as_root
def test_an_operators_ca_without_a_servers_certificate_is_one_error_naming_the_files(tmp_path):
    operator = _operator_ca(tmp_path / "operator")
    done = _distribute(tmp_path, "production", operator)
    assert done.returncode == 1
    assert "has ca.crt but no redis.crt and redis.key" in done.stderr


def test_the_services_transport_is_plain_in_development_mode():
    from servicekit.tls import Transport

    transport = Transport.from_environment({})
    assert transport.redis_options() == {} and transport.postgres_options() == {}
    assert transport.server_options() == {} and transport.client_context() is None
    assert transport.url("http://x:1/health") == "http://x:1/health"
    assert transport.redis_url("redis://redis:6379/0") == "redis://redis:6379/0"


def test_the_services_transport_verifies_every_server_in_production_mode(tmp_path):
    from servicekit.tls import Transport

    for name in ("ca.crt", "tls.crt", "tls.key"):
        (tmp_path / name).write_text("x")
    transport = Transport.from_environment({"TSE_MODE": "production"}, secrets=tmp_path)
    assert transport.redis_options() == {"ssl_ca_certs": str(tmp_path / "ca.crt"), "ssl_cert_reqs": "required",
                                         "ssl_check_hostname": True}
    assert transport.postgres_options() == {"sslmode": "verify-full", "sslrootcert": str(tmp_path / "ca.crt")}
    assert transport.server_options() == {"ssl_certfile": str(tmp_path / "tls.crt"),
                                          "ssl_keyfile": str(tmp_path / "tls.key")}
    assert transport.redis_url("redis://redis:6379/0") == "rediss://redis:6379/0"
    assert transport.url("http://service-registry:8080/health") == "https://service-registry:8080/health"
    assert transport.url("postgresql://postgres:5432/db") == "postgresql://postgres:5432/db?sslmode=verify-full"


def test_production_mode_without_its_files_is_one_error_naming_the_file(tmp_path):
    from servicekit.tls import Transport

    (tmp_path / "ca.crt").write_text("x")
    with pytest.raises(ValueError, match=r"tls.crt, which is not readable: the secrets service"):
        Transport.from_environment({"TSE_MODE": "production"}, secrets=tmp_path)
    with pytest.raises(ValueError, match="TSE_MODE='prod': use development or production"):
        Transport.from_environment({"TSE_MODE": "prod"}, secrets=tmp_path)
