"""How the host's probes reach the stack's published ports: as they are in development mode, or, in
production mode, over TLS to Redis and PostgreSQL and HTTPS to every HTTP port (the registry, the
configuration service, Prometheus, Alertmanager, the alert receiver), each server's certificate and
name (127.0.0.1 is in every server's certificate) verified against the stack's CA. The harness sets
it once the stack is up (`use`); every probe reads it."""
from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import docker

from steps.probes import docker_engine
from steps.probes.facts import ProbeError


@dataclass(frozen=True)
class Transport:
    ca_file: str | None = None                       # None: development mode, nothing encrypted
    https_ports: frozenset = field(default_factory=frozenset)

    @property
    def encrypted(self) -> bool:
        return self.ca_file is not None

    def redis_options(self) -> dict:
        return {"ssl": True, "ssl_ca_certs": self.ca_file, "ssl_cert_reqs": "required",
                "ssl_check_hostname": True} if self.encrypted else {}

    def postgres_options(self) -> dict:
        return {"sslmode": "verify-full", "sslrootcert": self.ca_file} if self.encrypted else {}

    def ca_file_path(self) -> Path:
        if self.ca_file is None:
            raise ProbeError("development mode: the stack has no CA (only production mode encrypts)")
        return Path(self.ca_file)

    def base_url(self, port: int) -> str:
        scheme = "https" if port in self.https_ports else "http"
        return f"{scheme}://127.0.0.1:{port}"

    def http_verify(self, port: int) -> str | bool:
        """requests' `verify`: the stack's CA for its HTTPS ports."""
        return self.ca_file if port in self.https_ports else True


_current = Transport()


def use(transport: Transport) -> None:
    global _current
    _current = transport


def current() -> Transport:
    return _current


def stack_ca(project: str, service: str, folder: Path) -> Path:
    """The stack's CA certificate, as the secrets service handed it to `service` (a copy in `folder`;
    read from the container, which it never changes)."""
    container = docker_engine.container(project, service)
    try:
        chunks, _ = container.get_archive("/run/secrets/ca.crt")
    except docker.errors.DockerException as error:
        raise ProbeError(f"production mode, but {service} holds no /run/secrets/ca.crt ({error}): "
                         "is the stack started in production mode (TSE_MODE=production)?") from error
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        data = archive.extractfile("ca.crt").read()
    path = folder / "stack-ca.crt"
    path.write_bytes(data)
    return path
