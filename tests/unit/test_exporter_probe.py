"""The in-network probe of the Redis exporter (steps/probes/exporters.py), run here against a
stand-in exporter: an HTTP server that, for a caller signed in as prometheus, connects to the target
it is given and sends what redis_exporter sends, and answers 401 to anyone else."""
from __future__ import annotations

import base64
import http.server
import socket
import subprocess
import sys
import threading
from urllib.parse import parse_qs, urlsplit

import pytest

from steps.probes import ExecResult, Fact, exporters

PASSWORD = "scrape-pw"


class StandInExporter(http.server.BaseHTTPRequestHandler):
    sends = b"*1\r\n$4\r\nINFO\r\n"

    def do_GET(self):
        expected = "Basic " + base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.end_headers()
            return
        target = urlsplit(parse_qs(urlsplit(self.path).query)["target"][0])
        with socket.create_connection((target.hostname, target.port), timeout=2) as conn:
            conn.sendall(self.sends)
            conn.recv(100)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def exporter():
    server = http.server.HTTPServer(("127.0.0.1", 0), StandInExporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def run_here(monkeypatch):
    """docker exec replaced by running the program on this machine."""
    def exec_in(project, service, command, env=None):
        result = subprocess.run([sys.executable, *command[1:]], env=env or {}, capture_output=True, text=True,
                                timeout=30)
        return Fact("exec", service, ExecResult(result.returncode, result.stdout + result.stderr))
    monkeypatch.setattr(exporters.container_exec, "exec_in", exec_in)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_without_credentials_401_and_the_listener_gets_nothing(exporter, run_here):
    port = _free_port()
    fact = exporters.request_from("p", "s", f"{exporter}/scrape?target=redis://127.0.0.1:{port}",
                                       listen_port=port)
    assert fact.observed == {"status": 401, "received": ""}
    assert "no credentials" in fact.probe


def test_with_credentials_the_listener_records_what_the_exporter_sends(exporter, run_here):
    port = _free_port()
    fact = exporters.request_from("p", "s", f"{exporter}/scrape?target=redis://127.0.0.1:{port}", PASSWORD,
                                       listen_port=port)
    assert fact.observed == {"status": 200, "received": StandInExporter.sends.decode()}
    assert "as prometheus" in fact.probe and PASSWORD not in fact.probe
