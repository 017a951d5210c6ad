"""Production mode's transport, as both services use it (TSE_MODE=production): they serve HTTPS with
the certificate the secrets service handed them, and reach Redis (rediss://) and PostgreSQL
(sslmode=verify-full) over TLS, verifying each server's certificate and name against the stack's CA.
In development mode everything stays as the ecosystem's services expect it: plain."""
from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Mapping

DEVELOPMENT, PRODUCTION = "development", "production"
SECRETS = Path("/run/secrets")


@dataclass(frozen=True)
class Transport:
    production: bool = False
    ca_file: str = str(SECRETS / "ca.crt")
    cert_file: str = str(SECRETS / "tls.crt")
    key_file: str = str(SECRETS / "tls.key")

    @classmethod
    def from_environment(cls, env: Mapping[str, str], secrets: Path = SECRETS) -> "Transport":
        """The transport TSE_MODE asks for; in production mode each file must be there (one clear error
        naming the missing file otherwise: the service must not fall back to plain text)."""
        mode = env.get("TSE_MODE") or DEVELOPMENT
        if mode not in (DEVELOPMENT, PRODUCTION):
            raise ValueError(f"TSE_MODE={mode!r}: use {DEVELOPMENT} or {PRODUCTION}")
        transport = cls(mode == PRODUCTION, str(secrets / "ca.crt"), str(secrets / "tls.crt"), str(secrets / "tls.key"))
        if transport.production:
            for path in (transport.ca_file, transport.cert_file, transport.key_file):
                if not os.access(path, os.R_OK):
                    raise ValueError(f"production mode needs {path}, which is not readable: the secrets service "
                                     "hands it out at every start (docker compose up again)")
        return transport

    @property
    def http_scheme(self) -> str:
        return "https" if self.production else "http"

    def redis_url(self, url: str) -> str:
        """`url` with rediss:// in production mode (a redis:// setting cannot turn TLS off there)."""
        return "rediss://" + url.removeprefix("redis://") if self.production and url.startswith("redis://") else url

    def url(self, url: str) -> str:
        """An endpoint as clients reach it in this mode: http:// becomes https://, redis:// rediss://."""
        if self.production and url.startswith("http://"):
            return "https://" + url.removeprefix("http://")
        if self.production and url.startswith(("postgres://", "postgresql://")) and "sslmode=" not in url:
            return url + ("&" if "?" in url else "?") + "sslmode=verify-full"
        return self.redis_url(url)

    def redis_options(self) -> dict:
        return {"ssl_ca_certs": self.ca_file, "ssl_cert_reqs": "required", "ssl_check_hostname": True} \
            if self.production else {}

    def postgres_options(self) -> dict:
        return {"sslmode": "verify-full", "sslrootcert": self.ca_file} if self.production else {}

    def server_options(self) -> dict:
        """uvicorn's keyword arguments for serving HTTPS."""
        return {"ssl_certfile": self.cert_file, "ssl_keyfile": self.key_file} if self.production else {}

    def client_context(self) -> ssl.SSLContext | None:
        """For urllib: verifies the server's certificate and name against the stack's CA."""
        return ssl.create_default_context(cafile=self.ca_file) if self.production else None


@lru_cache(maxsize=1)
def current() -> Transport:
    """This process's transport, from its environment."""
    return Transport.from_environment(os.environ)
