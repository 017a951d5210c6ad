"""Settings from the environment, read once at start."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from servicekit.secrets import secret


@dataclass(frozen=True)
class Settings:
    postgres_host: str = "postgres"
    postgres_port: int = 5432
    postgres_db: str = "trading_ecosystem"
    postgres_user: str = "config_service"
    postgres_password: str = ""
    redis_url: str = "redis://redis:6379/0"
    redis_user: str = "config-service"
    redis_password: str = ""
    environments_dir: str = "environments"
    default_environment: str = "development"
    port: int = 8090
    max_wait_s: float = 30.0                  # the longest a client may wait for a change (?timeout=)
    max_waiting: int = 64                     # clients waiting for a change at once; past it, 429
    max_waiting_per_client: int = 16          # of those, from one client address; past it, 429 too
    workers: int = 1                          # processes serving the API (CONFIG_WORKERS)
    # Who may write (Redis ACL users, signed in with HTTP Basic): editors write development and
    # testing; production editors write every environment, production included.
    editors: tuple = ("config-editor",)
    production_editors: tuple = ("config-editor-production",)
    # The Host names requests may carry (the port aside): loopback and the stack's own names; any other
    # is refused, so a web page on a rebound DNS name cannot reach the API from a developer's browser.
    # An entry "a.b.c.d/n" allows every address of that network (servicekit/hosts.py).
    allowed_hosts: tuple = ("localhost", "127.0.0.1", "::1", "configuration-service")

    @property
    def max_waiting_per_worker(self) -> int:
        """Each worker's share of max_waiting: together they never hold more (a worker holds its own)."""
        return max(1, self.max_waiting // self.workers)

    @property
    def max_waiting_per_client_per_worker(self) -> int:
        """Each worker's share of max_waiting_per_client, as for max_waiting."""
        return max(1, self.max_waiting_per_client // self.workers)

    def may_write(self, user: str, environment: str) -> bool:
        return user in self.production_editors or (environment != "production" and user in self.editors)

    def with_passwords(self, env=os.environ) -> "Settings":
        """These settings with the PostgreSQL and Redis passwords (read from their files); read apart
        from the rest so that `--check`, and a start on a bad environment file, need no secret.
        Raises ValueError naming a file that cannot be read."""
        return dataclasses.replace(self, postgres_password=secret(env, "CONFIG_POSTGRES_PASSWORD"),
                                   redis_password=secret(env, "CONFIG_REDIS_PASSWORD"))

    @classmethod
    def from_environment(cls, env=os.environ) -> "Settings":
        """Everything but the passwords (with_passwords). Raises ValueError naming the variable that
        is not a (positive) number or not a Redis URL."""

        def number(name: str, default, kind=int):
            try:
                value = kind(env.get(name, default))
            except ValueError:
                raise ValueError(f"{name}={env.get(name)!r} is not a number") from None
            if not value > 0:
                raise ValueError(f"{name}={env.get(name)!r} must be above 0")
            return value

        redis_url = env.get("CONFIG_REDIS_URL", cls.redis_url)
        if not redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"CONFIG_REDIS_URL={redis_url!r} is not a redis://, rediss:// or unix:// URL")
        return cls(
            postgres_host=env.get("CONFIG_POSTGRES_HOST", cls.postgres_host),
            postgres_port=number("CONFIG_POSTGRES_PORT", cls.postgres_port),
            postgres_db=env.get("CONFIG_POSTGRES_DB", cls.postgres_db),
            postgres_user=env.get("CONFIG_POSTGRES_USER", cls.postgres_user),
            redis_url=redis_url,
            redis_user=env.get("CONFIG_REDIS_USER", cls.redis_user),
            environments_dir=env.get("CONFIG_ENVIRONMENTS_DIR", cls.environments_dir),
            default_environment=env.get("CONFIG_DEFAULT_ENVIRONMENT", cls.default_environment),
            port=number("CONFIG_PORT", cls.port),
            max_wait_s=number("CONFIG_MAX_WAIT_SECONDS", cls.max_wait_s, float),
            max_waiting=number("CONFIG_MAX_WAITING", cls.max_waiting),
            max_waiting_per_client=number("CONFIG_MAX_WAITING_PER_CLIENT", cls.max_waiting_per_client),
            workers=number("CONFIG_WORKERS", cls.workers),
            editors=_names(env.get("CONFIG_EDITORS", ",".join(cls.editors))),
            production_editors=_names(env.get("CONFIG_PRODUCTION_EDITORS", ",".join(cls.production_editors))),
            allowed_hosts=_names(env.get("CONFIG_ALLOWED_HOSTS", ",".join(cls.allowed_hosts))),
        )


def _names(text: str) -> tuple:
    """"a, b,c" -> ("a", "b", "c")."""
    return tuple(part.strip() for part in text.split(",") if part.strip())
