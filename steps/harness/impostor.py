"""A server that takes over the stack's service names, and the services' own clients sent to it: the
proof that in production mode a name alone earns no connection. Not a probe: it starts containers.

The impostor's certificate names redis, postgres, service-registry, configuration-service and
127.0.0.1 (made by openssl in a scratch container of the secrets service's image), signed by itself,
not by the stack's CA. The clients run in a scratch container of the registry's image with no
network, where those names resolve to the impostor (impostor_clients.py, beside this file)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from docker.errors import DockerException

from steps.harness.scratch import run_scratch
from steps.probes.docker_engine import container
from steps.probes.facts import Fact, ProbeError

CLIENT_SCRIPT = Path(__file__).with_name("impostor_clients.py")
NAMES = ("redis", "postgres", "service-registry", "configuration-service")


def impostor_certificate(project: str) -> str:
    """A key and a self-signed certificate (PEM, one text) for every service name and 127.0.0.1."""
    names = ",".join([*(f"DNS:{name}" for name in NAMES), "IP:127.0.0.1"])
    exit_code, output = run_scratch(
        container(project, "secrets").image.id, project=project, probe="impostor-certificate", network_mode="none",
        entrypoint=["openssl"], stderr=False,
        command=["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-noenc", "-days", "1",
                 "-subj", "/CN=redis", "-addext", f"subjectAltName={names}",
                 "-keyout", "/dev/stdout", "-out", "/dev/stdout"])
    if exit_code != 0:
        raise ProbeError(f"openssl could not make the impostor's certificate (exit {exit_code}): {output[-300:]!r}")
    return output.decode()


def clients_against_impostor(project: str, stack_ca: Path) -> Fact:
    """The services' clients, in production mode with the stack's CA, sent by name to the impostor.
    Observed: {"clients": {name: {"port", "outcome"}}, "impostor": {port: {"accepted",
    "received_after_handshake"}}}."""
    pem = impostor_certificate(project)
    registry = container(project, "service-registry")
    with tempfile.TemporaryDirectory(prefix="tse-impostor-") as folder:
        files = {"ca.crt": stack_ca.read_text(), "impostor.pem": pem, "tls.crt": pem, "tls.key": pem,
                 "impostor_clients.py": CLIENT_SCRIPT.read_text()}
        for name, text in files.items():
            (Path(folder) / name).write_text(text)
            (Path(folder) / name).chmod(0o644)
        Path(folder).chmod(0o755)
        try:
            exit_code, output = run_scratch(
                registry.image.id, project=project, probe="impostor", network_mode="none", stderr=False,
                extra_hosts={name: "127.0.0.1" for name in NAMES},
                environment={"TSE_MODE": "production", "PYTHONPATH": "/app"},
                volumes={folder: {"bind": "/run/secrets", "mode": "ro"}},
                command=["python3", "/run/secrets/impostor_clients.py"], timeout=60)
        except DockerException as error:
            raise ProbeError(f"could not run the clients against the impostor: {error}") from error
    text = output.decode(errors="replace").strip()
    try:
        observed = json.loads(text.splitlines()[-1])
    except (ValueError, IndexError):
        raise ProbeError(f"the impostor's run ended with exit {exit_code} and no result: {text[-500:]}") from None
    return Fact("the services' clients (production mode, the stack's CA) connect by name to a server holding a "
                "certificate of its own for every name", "registry image, names resolved to the impostor",
                observed, raw=text[-2000:])
