"""The alert receiver (infra/alert-receiver/receiver.py) served in-process, and the probe that reads
what it kept (steps/probes/alerting.py)."""
from __future__ import annotations

import base64
import socket
import threading
import time

import pytest
import receiver
import requests

from steps.probes import alerting

PASSWORD = "receiver-test-password"


def notification(name: str, status: str = "firing", route: str = "critical", **labels) -> dict:
    """A webhook body as Alertmanager sends it (the fields the receiver and the probe read)."""
    return {"version": "4", "receiver": route, "status": status, "groupLabels": {"alertname": name},
            "alerts": [{"status": status, "labels": {"alertname": name, **labels}, "annotations": {}}]}


def start(timeout: float = receiver.IDLE_TIMEOUT_S, max_handlers: int = receiver.MAX_HANDLERS):
    """The receiver on a free port of 127.0.0.1, as main() serves it (its handlers' socket timeout
    and bound may be shortened); the server."""
    handler = receiver.handler_for(receiver.Notifications(), PASSWORD, {"127.0.0.1", "localhost"})
    server = receiver.BoundedHTTPServer(("127.0.0.1", 0), type("Handler", (handler,), {"timeout": timeout}),
                                        max_handlers=max_handlers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def served():
    """The receiver on a free port of 127.0.0.1; its port."""
    server = start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def post(port: int, body, auth=("alertmanager", PASSWORD)) -> requests.Response:
    return requests.post(f"http://127.0.0.1:{port}/webhook", json=body, auth=auth, timeout=5)


def test_a_notification_is_kept_and_shown_newest_first(served):
    assert post(served, notification("Watchdog", route="watchdog", severity="none")).status_code == 200
    assert post(served, notification("InstanceDown", service="configuration-service")).status_code == 200
    kept = alerting.notifications(served).observed
    assert [n["alerts"][0]["labels"]["alertname"] for n in kept] == ["InstanceDown", "Watchdog"]
    page = requests.get(f"http://127.0.0.1:{served}/", timeout=5).text
    assert "critical firing: InstanceDown{service=configuration-service} firing" in page


@pytest.mark.parametrize("auth", [None, ("alertmanager", "wrong"), ("someone", PASSWORD)])
def test_a_notification_without_alertmanagers_password_is_refused_and_not_kept(served, auth):
    answer = post(served, notification("InstanceDown"), auth=auth)
    assert answer.status_code == 401 and "alertmanager" in answer.text
    assert alerting.notifications(served).observed == []


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"alerts": "none"}'])
def test_an_unreadable_notification_is_refused_with_why(served, body):
    answer = requests.post(f"http://127.0.0.1:{served}/webhook", data=body, auth=("alertmanager", PASSWORD),
                           timeout=5)
    assert answer.status_code == 400 and answer.text.startswith("unreadable notification")


def test_an_unknown_host_is_refused_dns_rebinding(served):
    answer = requests.get(f"http://127.0.0.1:{served}/api/notifications", headers={"Host": "evil.example"}, timeout=5)
    assert answer.status_code == 421


def test_at_most_the_last_notifications_are_kept():
    kept = receiver.Notifications(kept=3)
    for i in range(5):
        kept.add(notification(f"A{i}"))
    assert [n["alerts"][0]["labels"]["alertname"] for n in kept.newest_first()] == ["A4", "A3", "A2"]


def test_delivered_matches_name_status_route_labels_and_time():
    now = time.time()
    older = {**notification("InstanceDown", service="configuration-service"),
             "received_at": "2000-01-01T00:00:00.000+00:00"}
    firing = {**notification("InstanceDown", service="configuration-service"),
              "received_at": receiver.datetime.fromtimestamp(now, receiver.timezone.utc).isoformat()}
    resolved = {**notification("InstanceDown", "resolved", service="configuration-service"),
                "received_at": firing["received_at"]}
    kept = [resolved, firing, older]
    assert alerting.delivered(kept, "InstanceDown", "firing", "critical", {"service": "configuration-service"},
                              since=now - 1) == [firing]
    assert alerting.delivered(kept, "InstanceDown", "resolved", since=now - 1) == [resolved]
    assert alerting.delivered(kept, "InstanceDown", "firing", "default", since=now - 1) == []
    assert alerting.delivered(kept, "InstanceDown", "firing", labels={"service": "redis"}) == []
    assert len(alerting.delivered(kept, "InstanceDown", "firing")) == 2


def test_the_receiver_refuses_to_start_without_its_password(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALERT_RECEIVER_PASSWORD_FILE", str(tmp_path / "missing"))
    assert receiver.main() == 2
    assert "ALERT_RECEIVER_PASSWORD" in capsys.readouterr().err


def test_the_receiver_stops_at_once_on_sigterm(tmp_path):
    """`docker stop` sends SIGTERM to PID 1, which ignores it unless handled: the stack's teardown
    would wait 10 s for this one container."""
    import signal
    import socket
    import subprocess
    import sys

    password = tmp_path / "password"
    password.write_text("secret\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = subprocess.Popen([sys.executable, receiver.__file__], stderr=subprocess.PIPE, text=True,
                              env={"ALERT_RECEIVER_PASSWORD_FILE": str(password), "ALERT_RECEIVER_PORT": str(port)})
    try:
        for line in served.stderr:  # the log line says it listens
            if "receiving" in line:
                break
        served.send_signal(signal.SIGTERM)
        assert served.wait(timeout=5) == 0
    finally:
        served.kill()


# Hardening (docs/security.md, "The alert receiver"): raw sockets, to send what no HTTP library would.

AUTH = base64.b64encode(f"alertmanager:{PASSWORD}".encode()).decode()


def exchange(port: int, data: bytes, wait_s: float = 3) -> bytes:
    """Sends `data` and returns all the server sends back until it closes the connection; fails
    when it neither answers nor closes within `wait_s` (it would be waiting for more)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as client:
        client.sendall(data)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
        return received


def webhook_headers(*lines: str) -> bytes:
    return ("POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Basic {AUTH}\r\n" + "".join(f"{line}\r\n" for line in lines) + "\r\n").encode()


@pytest.mark.parametrize(("headers", "status"), [
    ((), b"411"),
    (("Transfer-Encoding: chunked",), b"411"),
    (("Content-Length: abc",), b"400"),
    (("Content-Length: -1",), b"400"),
    (("Content-Length: 10", "Content-Length: 20"), b"400"),
    ((f"Content-Length: {receiver.MAX_BODY + 1}",), b"413"),
])
def test_a_bad_content_length_is_refused_before_any_body_is_read(headers, status):
    """The headers alone are sent: the answer comes at once, and the connection closes, without the
    receiver waiting for a body (a negative length used to read until the client left)."""
    server = start(timeout=10)
    try:
        answer = exchange(server.server_address[1], webhook_headers(*headers))
        assert answer.split(b"\r\n", 1)[0].split(b" ")[1] == status, answer[:200]
        assert alerting.notifications(server.server_address[1]).observed == []
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("sent", [
    b"",                                                            # connects and says nothing
    b"POST /webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n",                # half the headers
    webhook_headers("Content-Length: 100") + b'{"alerts": [',       # half the body
])
def test_a_silent_client_is_dropped_after_the_idle_timeout(sent):
    server = start(timeout=0.5)
    try:
        began = time.monotonic()
        assert exchange(server.server_address[1], sent, wait_s=5) == b""
        assert time.monotonic() - began < 3
    finally:
        server.shutdown()
        server.server_close()


def test_the_idle_timeout_is_a_few_seconds():
    assert 0 < receiver.ReceiverHandler.timeout <= 10


def test_connections_beyond_the_bound_are_answered_503_and_a_freed_slot_serves_again():
    server = start(timeout=30, max_handlers=2)
    port = server.server_address[1]
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
    try:
        time.sleep(0.2)  # both accepted, each holding a handler that waits for its request
        answer = exchange(port, b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert answer.startswith(b"HTTP/1.0 503 "), answer[:200]
        idle.pop().close()
        deadline = time.monotonic() + 3
        while (answer := exchange(port, b"GET /-/healthy HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")) \
                .startswith(b"HTTP/1.0 503 ") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert answer.split(b"\r\n", 1)[0].endswith(b" 200 OK"), answer[:200]
    finally:
        for connection in idle:
            connection.close()
        server.shutdown()
        server.server_close()


def test_main_serves_with_the_bounded_server():
    assert "BoundedHTTPServer" in receiver.main.__code__.co_names
