"""Facts about the stack as docker-compose.yml declares it: the file itself and the model
`docker compose config` makes of it. Steps compare these declarations with the running containers.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from steps.probes.facts import Fact

DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")
UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def parse_duration(text: str | int | float | None) -> float:
    """Seconds in a compose duration ("1m30s", "500ms"); numbers are nanoseconds, as Docker's."""
    if text is None or text == "":
        return 0.0
    if isinstance(text, (int, float)):
        return text / 1e9
    parts = DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a compose duration: {text!r}")
    return sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)


def top_level_keys(compose_file: Path) -> Fact:
    """The top-level keys of the compose file, as written (before any normalisation)."""
    keys = re.findall(r"^([A-Za-z_][\w.-]*)\s*:", compose_file.read_text(), flags=re.M)
    return Fact(f"top-level keys of {compose_file.name}", str(compose_file), keys)


def validation(compose_command: list[str], cwd: str) -> Fact:
    """`docker compose config --quiet`: observed is (exit code, warnings and errors it printed)."""
    result = subprocess.run([*compose_command, "config", "--quiet"], cwd=cwd, capture_output=True, text=True)
    return Fact("docker compose config --quiet", cwd, (result.returncode, result.stderr.strip()))


def declared_healthcheck(config: dict, service: str) -> dict:
    """The service's healthcheck as declared, in Docker's terms (seconds, test with $ unescaped)."""
    declared = config["services"][service].get("healthcheck") or {}
    return {
        "test": [part.replace("$$", "$") for part in declared.get("test") or []],
        "interval": parse_duration(declared.get("interval")),
        "timeout": parse_duration(declared.get("timeout")),
        "retries": declared.get("retries"),
        "start_period": parse_duration(declared.get("start_period")),
        "start_interval": parse_duration(declared.get("start_interval")),
    }


def one_shot_services(config: dict) -> set:
    """Services that others wait for to finish (depends_on condition service_completed_successfully):
    they run once at each `up` and exit (the secrets service), so they are never healthy."""
    return {dep for svc in config["services"].values() for dep, spec in (svc.get("depends_on") or {}).items()
            if (spec or {}).get("condition") == "service_completed_successfully"}


def declared_dependencies(config: dict) -> dict:
    """{service: {dependency: condition}} as declared with depends_on, between long-running services
    (a one-shot service is waited for until it has finished, not until it is healthy)."""
    one_shot = one_shot_services(config)
    return {
        name: {dep: (spec or {}).get("condition", "service_started")
               for dep, spec in (svc.get("depends_on") or {}).items() if dep not in one_shot}
        for name, svc in config["services"].items() if name not in one_shot
    }


def declared_ports(config: dict) -> dict:
    """{service: [(host_ip, published, target)]} as declared."""
    return {
        name: [(p.get("host_ip", ""), str(p.get("published", "")), int(p["target"])) for p in svc.get("ports") or []]
        for name, svc in config["services"].items()
    }


def declared_networks(config: dict) -> dict:
    """{service: {network key, ...}} as declared (a service with none is on the project's default)."""
    return {name: set(svc.get("networks") or {"default": None}) for name, svc in config["services"].items()}


def declared_addresses(config: dict, network_key: str) -> dict:
    """{service: static IPv4 address on the network}; None for a service not on it."""
    return {
        name: ((svc.get("networks") or {}).get(network_key) or {}).get("ipv4_address")
        if network_key in (svc.get("networks") or {}) else None
        for name, svc in config["services"].items()
    }


def model_as_users_run_it(folder: Path, files: list[str], env_file: str, profiles: list[str]) -> Fact:
    """The model `docker compose -f <files> --env-file <env_file> --profile <profiles> config` makes in
    `folder` with no variable of this process's environment (what a user's plain `docker compose up`
    with that env file starts). Observed: {"exit_code", "model" (None when invalid), "errors"}."""
    command = ["docker", "compose", *(arg for name in files for arg in ("-f", name)), "--env-file", env_file,
               *(arg for name in profiles for arg in ("--profile", name)), "config", "--format", "json"]
    keep = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "DOCKER_CONFIG")}
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, env=keep)
    model = json.loads(result.stdout) if result.returncode == 0 else None
    return Fact(" ".join(command), str(folder), {"exit_code": result.returncode, "model": model,
                                                 "errors": result.stderr.strip()[-2000:]})


def published_host_ports(service: dict) -> list[tuple[str, str, str]]:
    """(host_ip, host port, protocol) of each port the service publishes."""
    return [(p.get("host_ip", ""), str(p.get("published", "")), p.get("protocol", "tcp"))
            for p in service.get("ports") or [] if p.get("published")]
