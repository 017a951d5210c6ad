"""A probe's throwaway container, started from one of the stack's images, belongs to the run that
probes, never to the project that built the image. Compose labels every image it builds with that
project, and a container inherits its image's labels: a CI run's fault run found a probe container
of the run beside it among its own leftovers (the shared images had last been built by it)."""
from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from steps.harness import scratch
from steps.harness.compose import IMAGE_PROJECT, compose_for, new_workdir
from steps.harness.settings import ROOT, StackSettings
from steps.probes import docker_engine
from steps.probes.waiting import wait_until

pytestmark = pytest.mark.docker

IMAGE = "trading-ecosystem/probe-label-test:local"
BUILDER = "tse-probe-label-builder"
PROBED = "tse-probe-label-probed"


@pytest.fixture(scope="module")
def image_built_by_compose():
    """An image labelled as compose labels the images it builds, by project BUILDER."""
    subprocess.run([str(ROOT / "infra/host/ensure-base-image")], check=True, capture_output=True)
    subprocess.run(["docker", "build", "-q", "-t", IMAGE, "--label", f"com.docker.compose.project={BUILDER}",
                    "--label", "com.docker.compose.service=redis", "-"], input=b"FROM debian:trixie-slim\n",
                   check=True, capture_output=True)
    yield IMAGE
    docker_engine.client().images.remove(IMAGE, force=True)


def test_a_probe_container_is_the_probing_runs_not_the_image_builders(image_built_by_compose):
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(scratch.run_scratch, image_built_by_compose, project=PROBED, probe="test",
                              entrypoint=["sleep", "8"], network_mode="none")
        wait_until(lambda: docker_engine.leftovers(PROBED)["containers"], timeout=30, interval=0.1,
                   description="the probe's container listed as the probing run's")
        assert docker_engine.leftovers(BUILDER)["containers"] == []
        assert docker_engine.project_containers(BUILDER) == []
        exit_code, _ = running.result(timeout=60)
    assert exit_code == 0
    assert docker_engine.leftovers(PROBED)["containers"] == []


def test_a_probe_container_that_cannot_start_is_removed(image_built_by_compose):
    with pytest.raises(docker_engine.DockerException):
        scratch.run_scratch(image_built_by_compose, project=PROBED, probe="test",
                            entrypoint=["/no/such/program"], network_mode="none")
    assert docker_engine.leftovers(PROBED)["containers"] == []


def test_the_stack_images_carry_one_project_whoever_builds_them():
    """Two runs' builds give the same images (no relabelling: a cached build is a no-op)."""
    images = {}
    for project in ("tse-image-label-a", "tse-image-label-b"):
        settings = StackSettings.resolve(mode="up", env_file=ROOT / ".env.example", project=project)
        workdir = new_workdir()
        try:
            compose = compose_for(settings, workdir)
            compose.ensure_images()
            names = [s["image"] for s in compose.config["services"].values() if "build" in s]
            images[project] = {name: docker_engine.client().images.get(name) for name in names}
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    first, second = images.values()
    assert {name: image.id for name, image in first.items()} == {name: image.id for name, image in second.items()}
    assert {image.labels["com.docker.compose.project"] for image in second.values()} == {IMAGE_PROJECT}
