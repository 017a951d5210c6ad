"""The swarm stack file made from compose's model (steps/harness/swarm_file.py)."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from steps.harness.settings import ROOT
from steps.harness.swarm_file import (
    NAME_LIMIT,
    NO_NEW_PRIVS,
    object_name,
    read_handout,
    secret_values,
    size_bytes,
    stack_file,
    without_privilege_gain,
)

HANDOUT = read_handout("# comment\nredis 100:101 redis_password_healthcheck\nsecrets-less 1:1 none\n")


def model(tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text("maxmemory 1gb\n")
    script = tmp_path / "tests" / "route-tests"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return {
        "name": "proj",
        "services": {
            "secrets": {"image": "secrets:local", "restart": "no"},
            "redis": {
                "image": "redis:local", "restart": "unless-stopped", "read_only": True, "shm_size": "64m",
                "security_opt": ["no-new-privileges:true"], "tmpfs": ["/tmp:size=16m,mode=1777"],
                "ports": [{"target": 6379, "published": "6379", "host_ip": "127.0.0.1"}],
                "depends_on": {"secrets": {"condition": "service_completed_successfully"}},
                "networks": {"trading-ecosystem": {"ipv4_address": "172.20.0.10"}},
                "deploy": {"resources": {"limits": {"cpus": 0.5, "memory": "256m"}}},
                "volumes": [{"type": "volume", "source": "secrets", "target": "/run/secrets",
                             "volume": {"subpath": "redis"}},
                            {"type": "volume", "source": "redis-data", "target": "/data", "volume": {}},
                            {"type": "bind", "source": str(conf), "target": "/etc/redis.conf",
                             "bind": {"create_host_path": True}},
                            {"type": "bind", "source": str(script.parent), "target": "/tests"}],
            },
            "service-registry": {"image": "registry:local", "command": ["python3", "-m", "registry"],
                                 "environment": {"REGISTRY_ALLOWED_HOSTS": "localhost,service-registry"},
                                 "networks": {"trading-ecosystem": None, "monitoring": None}},
            "configuration-service": {"image": "registry:local", "command": ["python3", "-m", "configsvc"],
                                      "environment": {"CONFIG_ALLOWED_HOSTS": "localhost,configuration-service"},
                                      "networks": {"trading-ecosystem": None, "monitoring": None}},
        },
        "networks": {"trading-ecosystem": {"name": "trading-ecosystem", "driver": "bridge",
                                           "ipam": {"config": [{"subnet": "172.20.0.0/16", "gateway": "172.20.0.1"}]}},
                     "monitoring": {"name": "proj_monitoring", "ipam": {"config": [{"subnet": "172.16.20.0/24"}]}}},
        "volumes": {"secrets": {}, "redis-data": {"name": "proj_redis-data"}},
        "secrets": {"redis_password_healthcheck": {"environment": "REDIS_PASSWORD_HEALTHCHECK"}},
    }


IMAGES = {"redis:local": (None, ["redis-server", "/etc/redis.conf"]), "registry:local": (None, ["python3"]),
          "secrets:local": (["distribute"], None)}


def test_what_swarm_refuses_or_drops_is_rewritten(tmp_path):
    out = stack_file(model(tmp_path), "tse-swarm", HANDOUT, IMAGES)
    assert "secrets" not in out["services"]  # the one-shot hand-out: swarm secrets do its job
    redis = out["services"]["redis"]
    for key in ("restart", "shm_size", "security_opt", "tmpfs", "ports", "depends_on"):
        assert key not in redis
    assert redis["deploy"]["endpoint_mode"] == "dnsrr"
    assert redis["deploy"]["restart_policy"]["condition"] == "any"
    assert redis["deploy"]["resources"]["limits"]["cpus"] == "0.5"
    assert redis["deploy"]["placement"]["constraints"] == ["node.labels.tse.data == true"]
    assert redis["networks"] == {"trading-ecosystem": None}
    assert {"type": "tmpfs", "target": "/tmp", "tmpfs": {"size": 16 * 2**20}} in redis["volumes"]
    assert {"type": "tmpfs", "target": "/dev/shm", "tmpfs": {"size": 64 * 2**20}} in redis["volumes"]
    assert {"type": "volume", "source": "redis-data", "target": "/data"} in redis["volumes"]
    assert not any(v.get("source") == "secrets" for v in redis["volumes"])
    assert redis["secrets"] == [{"source": "redis_password_healthcheck", "target": "redis_password_healthcheck",
                                 "uid": "100", "gid": "101", "mode": 0o400}]
    assert out["secrets"] == {"redis_password_healthcheck": {"external": True,
                                                             "name": "tse-swarm_redis_password_healthcheck"}}
    assert out["volumes"] == {"redis-data": {}}


def test_bind_mounted_files_become_configs_named_by_content_and_keep_their_execute_bit(tmp_path):
    out = stack_file(model(tmp_path), "tse-swarm", HANDOUT, IMAGES)
    configs = {c["target"]: c for c in out["services"]["redis"]["configs"]}
    assert configs["/etc/redis.conf"]["mode"] == 0o444 and configs["/tests/route-tests"]["mode"] == 0o555
    assert all(len(f"tse-swarm_{key}") <= NAME_LIMIT for key in out["configs"])
    edited = object_name("tse-swarm", "redis_redis.conf", b"maxmemory 2gb\n")
    assert edited not in out["configs"]  # an edit makes a new config, which rolls the service


def test_networks_become_attachable_overlays_and_the_named_one_keeps_its_name(tmp_path):
    networks = stack_file(model(tmp_path), "tse-swarm", HANDOUT, IMAGES)["networks"]
    assert networks["trading-ecosystem"] == {"driver": "overlay", "attachable": True, "name": "trading-ecosystem",
                                             "ipam": {"config": [{"subnet": "172.20.0.0/16"}]}}
    assert "name" not in networks["monitoring"]  # the stack prefixes it, as compose prefixed it


def test_the_stateless_services_are_replicated_and_allow_their_networks_addresses(tmp_path):
    services = stack_file(model(tmp_path), "tse-swarm", HANDOUT, IMAGES)["services"]
    registry, config = services["service-registry"], services["configuration-service"]
    assert registry["deploy"]["replicas"] == 2 and registry["deploy"]["update_config"]["order"] == "start-first"
    assert registry["environment"]["REGISTRY_ALLOWED_HOSTS"] == \
        "localhost,service-registry,172.20.0.0/16,172.16.20.0/24"
    assert config["environment"]["CONFIG_ALLOWED_HOSTS"] == \
        "localhost,configuration-service,172.20.0.0/16,172.16.20.0/24"


def test_every_program_starts_unable_to_gain_privileges():
    assert without_privilege_gain({}, (None, ["redis-server"])) == {"entrypoint": NO_NEW_PRIVS,
                                                                    "command": ["redis-server"]}
    assert without_privilege_gain({"command": ["x"]}, (["entry"], ["default"])) == {
        "entrypoint": [*NO_NEW_PRIVS, "entry"], "command": ["x"]}
    # An entrypoint set drops the image's Cmd, as in compose.
    assert without_privilege_gain({"entrypoint": "run"}, (["entry"], ["default"])) == {
        "entrypoint": [*NO_NEW_PRIVS, "run"], "command": []}
    with pytest.raises(ValueError):
        without_privilege_gain({"image": "empty"}, (None, None))


def test_sizes_and_secret_values():
    assert size_bytes("512m") == 512 * 2**20 and size_bytes("1gb") == 2**30 and size_bytes(4096) == 4096
    with pytest.raises(ValueError):
        size_bytes("lots")
    declared = {"secrets": {"a": {"environment": "A"}, "b": {"environment": "B"}, "c": {"file": "x"}}}
    assert secret_values(declared, {"A": "1", "B": ""}) == {"a": "1"}


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI on this machine")
def test_docker_stack_config_accepts_the_file_made_from_this_repository():
    compose = subprocess.run(["docker", "compose", "--env-file", str(ROOT / ".env.example"), "config", "--format",
                              "json"], cwd=ROOT, capture_output=True, text=True, check=True)
    declared = json.loads(compose.stdout)
    images = {service["image"]: (None, ["true"]) for service in declared["services"].values()}
    handout = read_handout((ROOT / "infra/secrets/handout").read_text())
    made = yaml.safe_dump(stack_file(declared, "tse-swarm", handout, images))
    checked = subprocess.run(["docker", "stack", "config", "--compose-file", "-"], input=made, capture_output=True,
                             text=True)
    assert checked.returncode == 0, checked.stderr
    assert "Ignoring unsupported options" not in checked.stderr, checked.stderr


def test_secret_names_stay_within_swarms_limit_and_apart():
    from steps.harness.swarm_file import secret_name

    assert secret_name("tse-swarm", "postgres_password") == "tse-swarm_postgres_password"
    long_stack = "tse-fault-swarm-killed-replica-not-replaced"
    made = {secret_name(long_stack, "pg_password_test_coordinator_adapter"),
            secret_name(long_stack + "-2", "pg_password_test_coordinator_adapter")}
    assert len(made) == 2 and all(len(name) <= NAME_LIMIT for name in made)


def test_the_start_waves_follow_the_declared_dependencies():
    from steps.harness.swarm_file import start_waves

    declared = {"redis": {}, "postgres": {}, "service-registry": {"redis": "service_healthy"},
                "configuration-service": {"redis": "service_healthy", "postgres": "service_healthy"},
                "prometheus": {"service-registry": "service_healthy"}}
    assert start_waves(declared) == [["postgres", "redis"], ["configuration-service", "service-registry"],
                                     ["prometheus"]]
    with pytest.raises(ValueError):
        start_waves({"a": {"b": "service_healthy"}, "b": {"a": "service_healthy"}})
