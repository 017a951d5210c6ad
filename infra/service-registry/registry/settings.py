"""Settings from the environment, read once at start."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from servicekit.secrets import secret


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://redis:6379/0"
    redis_user: str = "registry-service"
    redis_password: str = ""
    # The Host names requests may carry (the port aside): loopback and the stack's own names; any other
    # is refused, so a web page on a rebound DNS name cannot reach the API from a developer's browser.
    # An entry "a.b.c.d/n" allows every address of that network (servicekit/hosts.py).
    allowed_hosts: tuple = ("localhost", "127.0.0.1", "::1", "service-registry")
    cors_origins: tuple = ("http://localhost:3000", "http://127.0.0.1:3000")
    default_ttl_s: int = 90
    probe_interval_s: float = 5.0
    infrastructure: list = field(default_factory=list)  # the stack's own services, probed live
    postgres_password: str = ""               # the probe role's (its entry's "user"), for the SQL round trip
    # Where the configuration reads sent to the registry's address go (registry/configuration_route.py).
    configuration_url: str = "http://configuration-service:8090"
    # A service's metrics path where it is not /metrics, for Prometheus's discovery
    # (registry/prometheus_sd.py): REGISTRY_METRICS_PATHS="name=/path,...".
    metrics_paths: dict = field(default_factory=dict)

    @property
    def reserved_names(self) -> frozenset:
        """The stack's own services: the registry alone registers them."""
        return frozenset(entry["name"] for entry in self.infrastructure)

    @classmethod
    def from_environment(cls, env=os.environ) -> "Settings":
        declared = env.get("REGISTRY_INFRASTRUCTURE_FILE", "")
        infrastructure = json.loads(Path(declared).read_text()) if declared else []
        origins = _names(env.get("REGISTRY_CORS_ORIGINS", ",".join(cls.cors_origins)))
        return cls(
            redis_url=env.get("REGISTRY_REDIS_URL", cls.redis_url),
            redis_user=env.get("REGISTRY_REDIS_USER", cls.redis_user),
            redis_password=secret(env, "REGISTRY_REDIS_PASSWORD"),
            allowed_hosts=_names(env.get("REGISTRY_ALLOWED_HOSTS", ",".join(cls.allowed_hosts))),
            cors_origins=origins,
            default_ttl_s=int(env.get("REGISTRY_DEFAULT_TTL_SECONDS", cls.default_ttl_s)),
            probe_interval_s=float(env.get("REGISTRY_PROBE_INTERVAL_SECONDS", cls.probe_interval_s)),
            infrastructure=infrastructure,
            postgres_password=secret(env, "REGISTRY_POSTGRES_PASSWORD"),
            configuration_url=env.get("REGISTRY_CONFIGURATION_URL", cls.configuration_url),
            metrics_paths=dict(pair.split("=", 1) for pair in _names(env.get("REGISTRY_METRICS_PATHS", ""))
                               if "=" in pair),
        )


def _names(text: str) -> tuple:
    """"a, b,c" -> ("a", "b", "c")."""
    return tuple(part.strip() for part in text.split(",") if part.strip())
