"""The settings of the stack under test: the env file's values (ports, subnet, passwords), the
environment over them, options over both."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from steps.probes.facts import StackError

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {
    "TSE_NETWORK_NAME": "trading-ecosystem",
    "TSE_SUBNET_PREFIX": "172.20",
    # The monitoring network's: in 172.16.0.0/16, which Docker never picks for a network itself.
    "TSE_MONITORING_SUBNET": "172.16.20.0/24",
    "REDIS_HOST_PORT": "6379",
    "POSTGRES_HOST_PORT": "5432",
    "REGISTRY_HOST_PORT": "8080",
    "CONFIG_HOST_PORT": "8090",
    "PROMETHEUS_HOST_PORT": "9090",
    "ALERTMANAGER_HOST_PORT": "9095",
    "ALERT_RECEIVER_HOST_PORT": "9097",
    # The `telemetry` profile's ports (used only when it runs).
    "GRAFANA_HOST_PORT": "3000",
    "JAEGER_UI_HOST_PORT": "16686",
    "OTEL_GRPC_HOST_PORT": "4317",
    "OTEL_HTTP_HOST_PORT": "4318",
    "OTEL_HEALTH_HOST_PORT": "13133",
    "POSTGRES_DB": "trading_ecosystem",
    "TSE_MODE": "development",   # production: see production_refusals
}
PORT_VARIABLES = tuple(variable for variable in DEFAULTS if variable.endswith("_HOST_PORT"))
# Grafana, Jaeger and the collector: upstream images, started (up mode) only when all are on this machine.
TELEMETRY_PROFILE = "telemetry"
DEFAULT_WAIT_TIMEOUT = 180  # seconds for every service to be healthy (PostgreSQL's start period is 60)
# Each option of `pytest features/` (conftest.py) and the variable that stands for it when it is not given.
OPTION_VARIABLES = {"stack": "TSE_STACK", "project_name": "TSE_PROJECT", "compose_file": "TSE_COMPOSE_FILE",
                    "env_file": "TSE_ENV_FILE", "wait_timeout": "TSE_WAIT_TIMEOUT", "keep_stack": "TSE_KEEP_STACK"}


def read_env_file(path: Path) -> dict:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


# Production mode (TSE_MODE=production): no password the repository publishes, none shorter than this.
PRODUCTION, MIN_PASSWORD_LENGTH = "production", 16
MAKE_ENV_HINT = "make an env file of your own: infra/host/make-env --production > .env"


def production_refusals(values: dict, example: dict) -> list[str]:
    """The passwords production mode refuses, each with why: its .env.example value, or too short
    (infra/secrets/distribute applies the same rule to a plain `docker compose up`)."""
    refused = []
    for variable, value in sorted(values.items()):
        if "PASSWORD" not in variable:
            continue
        if example.get(variable) and value == example[variable]:
            refused.append(f"{variable} (its .env.example value)")
        elif len(value) < MIN_PASSWORD_LENGTH:
            refused.append(f"{variable} (shorter than {MIN_PASSWORD_LENGTH} characters)")
    return refused


def option_or_variable(getoption, option: str):
    """An option's value when given, else its variable's (OPTION_VARIABLES), else None."""
    value = getoption(option)
    return value if value is not None else os.environ.get(OPTION_VARIABLES[option])


def refuse_production_start(stack: str, values: dict, example_file: Path, env_file: Path) -> None:
    """StackError when production mode cannot start: on swarm, or with a password it refuses."""
    if stack == "swarm":
        raise StackError("production mode runs on compose only: on swarm nothing makes the certificates yet "
                         "(the secrets service's job). Hint: --stack=up --mode=production, or --mode=development "
                         "on swarm.")
    refused = production_refusals(values, read_env_file(example_file))
    if refused:
        raise StackError(f"production mode refuses these passwords of {env_file}: {', '.join(refused)}. "
                         f"Hint: {MAKE_ENV_HINT}")


def stack_mode(getoption) -> str:
    """up (the default), attach or swarm."""
    return option_or_variable(getoption, "stack") or "up"


@dataclass(frozen=True)
class StackSettings:
    """Where the stack is described and which host resources it claims.

    `values` are the variables compose interpolates: the env file, then the defaults, with the
    process environment taking precedence as compose itself does. `explicit` names the variables
    the user set (environment or options), which up mode must not move.
    """

    mode: str = "up"
    project: str = "tse-acceptance"
    compose_file: Path = ROOT / "docker-compose.yml"
    env_file: Path = ROOT / ".env.example"
    keep: bool = False
    wait_timeout: int = DEFAULT_WAIT_TIMEOUT
    values: dict = field(default_factory=dict)
    explicit: frozenset = frozenset()

    @classmethod
    def resolve(cls, mode="up", project=None, compose_file=None, env_file=None, keep=False,
                wait_timeout=DEFAULT_WAIT_TIMEOUT, overrides=None) -> "StackSettings":
        compose_file = Path(compose_file or ROOT / "docker-compose.yml").resolve()
        if env_file is None:
            env_file = compose_file.parent / ".env"
            if not env_file.exists():
                env_file = compose_file.parent / ".env.example"
        env_file = Path(env_file).resolve()
        if not compose_file.exists():
            raise StackError(f"compose file {compose_file} does not exist. Hint: pass --compose-file.")
        if not env_file.exists():
            raise StackError(f"env file {env_file} does not exist. Hint: copy .env.example to .env.")
        values = {**DEFAULTS, **read_env_file(env_file)}
        explicit = {k for k in values if k in os.environ}
        values.update({k: os.environ[k] for k in explicit})
        for key, value in (overrides or {}).items():
            if value is not None:
                values[key] = str(value)
                explicit.add(key)
        if values.get("TSE_MODE") == PRODUCTION:
            refuse_production_start(mode, values, compose_file.parent / ".env.example", env_file)
        if project is None:
            # Up mode runs a project of its own; attach mode tests the stack compose users started,
            # under the COMPOSE_PROJECT_NAME they set (environment or env file), as compose itself does.
            project = {"up": "tse-acceptance", "swarm": "tse-swarm"}.get(mode) or (
                os.environ.get("COMPOSE_PROJECT_NAME") or values.get("COMPOSE_PROJECT_NAME") or "trading-ecosystem")
        return cls(mode, project, compose_file, env_file, keep, wait_timeout, values, frozenset(explicit))

    @classmethod
    def from_options(cls, getoption) -> "StackSettings":
        """The settings of a run of `pytest features/`: its options (`getoption`, as pytest's
        config.getoption), else their variables, else the defaults."""
        keep = option_or_variable(getoption, "keep_stack") in (True, "1", "true", "yes")
        return cls.resolve(mode=stack_mode(getoption), project=option_or_variable(getoption, "project_name"),
                           compose_file=option_or_variable(getoption, "compose_file"),
                           env_file=option_or_variable(getoption, "env_file"), keep=keep,
                           wait_timeout=int(option_or_variable(getoption, "wait_timeout") or DEFAULT_WAIT_TIMEOUT),
                           overrides={"TSE_MODE": getoption("security_mode")})

    def as_dict(self) -> dict:
        """Plain values, for another process (a parallel run's workers) to rebuild the same settings."""
        return {"mode": self.mode, "project": self.project, "compose_file": str(self.compose_file),
                "env_file": str(self.env_file), "keep": self.keep, "wait_timeout": self.wait_timeout,
                "values": dict(self.values), "explicit": sorted(self.explicit)}

    @classmethod
    def from_dict(cls, data: dict) -> "StackSettings":
        return cls(data["mode"], data["project"], Path(data["compose_file"]), Path(data["env_file"]), data["keep"],
                   data["wait_timeout"], dict(data["values"]), frozenset(data["explicit"]))

    @property
    def network_name(self) -> str:
        return self.values["TSE_NETWORK_NAME"]

    @property
    def subnet(self) -> str:
        return f"{self.values['TSE_SUBNET_PREFIX']}.0.0/16"

    @property
    def gateway(self) -> str:
        return f"{self.values['TSE_SUBNET_PREFIX']}.0.1"

    def address(self, last_two: str) -> str:
        """The static address ending in `last_two` (e.g. "0.10") on the stack's subnet."""
        return f"{self.values['TSE_SUBNET_PREFIX']}.{last_two}"

    def port(self, variable: str) -> int:
        return int(self.values[variable])

    def secret(self, variable: str) -> str:
        if variable not in self.values:
            raise StackError(f"{variable} is not set in {self.env_file}. Hint: copy it from .env.example.")
        return self.values[variable]


