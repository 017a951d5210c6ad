"""The alert receiver: where Alertmanager's webhook notifications arrive on a developer's machine.

    POST /webhook              a notification, as Alertmanager's webhook sends it; HTTP Basic as
                               `alertmanager`, its password in /run/secrets/alert_receiver_password
    GET  /api/notifications    the last ones kept, newest first, as JSON (each with received_at)
    GET  /                     the same, as a plain-text page
    GET  /-/healthy            200 once it serves (the container's healthcheck: receiver.py --healthcheck)

In production mode (TSE_MODE=production) it serves HTTPS only, with the certificate the secrets
service made for it.

It keeps the last MAX_KEPT notifications in memory (a restart forgets them: Alertmanager's own
notification log, on its volume, is the record) and logs one line per notification. Python's
standard library only: nothing beyond Debian's python3 in the image. A real channel (email, chat)
replaces it in alertmanager.yml's receivers, not here (docs/observability.md, "Alert notifications").
"""
from __future__ import annotations

import base64
import collections
import hmac
import json
import logging
import os
import signal
import ssl
import sys
import threading
import urllib.request
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_KEPT = 500
MAX_BODY = 1 << 20            # Alertmanager caps a group's alerts; a megabyte is far beyond a real one
IDLE_TIMEOUT_S = 5            # a socket silent this long (no request, half a request or body) is dropped
SECRETS = "/run/secrets"      # its files, handed out by the secrets service
MAX_HANDLERS = 16             # connections served at once; beyond them 503 (the container's pids limit is 32)
USER = "alertmanager"
log = logging.getLogger("alert-receiver")


class Notifications:
    """The last notifications, newest first, safe across the server's threads."""

    def __init__(self, kept: int = MAX_KEPT):
        self._lock = threading.Lock()
        self._kept: collections.deque = collections.deque(maxlen=kept)

    def add(self, notification: dict) -> dict:
        entry = {"received_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), **notification}
        with self._lock:
            self._kept.appendleft(entry)
        return entry

    def newest_first(self) -> list:
        with self._lock:
            return list(self._kept)


def summary(notification: dict) -> str:
    """One line: the receiver it was routed to, its status, and each alert with its labels."""
    alerts = []
    for alert in notification.get("alerts", []):
        labels = dict(alert.get("labels", {}))
        name = labels.pop("alertname", "?")
        alerts.append(f"{name}{{{', '.join(f'{k}={v}' for k, v in sorted(labels.items()))}}} {alert.get('status')}")
    return f"{notification.get('receiver')} {notification.get('status')}: {'; '.join(alerts)}"


def page(notifications: list) -> str:
    lines = [f"{len(notifications)} notifications kept (newest first, at most {MAX_KEPT}); "
             "JSON at /api/notifications", ""]
    lines += [f"{n['received_at']}  {summary(n)}" for n in notifications]
    return "\n".join(lines) + "\n"


def signed_in(header: str | None, password: str) -> bool:
    """True for HTTP Basic as USER with `password` (compared in constant time)."""
    if not header or not header.startswith("Basic "):
        return False
    try:
        user, _, given = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(user.encode(), USER.encode()) & hmac.compare_digest(given.encode(), password.encode())


def body_length(headers) -> tuple[int, str] | int:
    """The declared Content-Length of a request body, or the (status, reason) refusing it: missing
    (411), not one non-negative decimal number (400), over MAX_BODY (413). Nothing is read before."""
    declared = set(headers.get_all("Content-Length") or [])
    if not declared:
        return 411, "a notification needs a Content-Length"
    value = declared.pop().strip()
    if declared or not value.isascii() or not value.isdigit():
        return 400, "Content-Length must be one non-negative number"
    if int(value) > MAX_BODY:
        return 413, f"a notification is at most {MAX_BODY} bytes"
    return int(value)


def readable(body: bytes) -> dict:
    """The notification in `body`; ValueError naming what is wrong otherwise."""
    notification = json.loads(body)
    if not isinstance(notification, dict) or not isinstance(notification.get("alerts"), list):
        raise ValueError("not an Alertmanager webhook notification (an object with an alerts list)")
    return notification


class ReceiverHandler(BaseHTTPRequestHandler):
    """The receiver's requests. http.server makes a handler per request from the class alone, so what
    it serves is set on a subclass: handler_for's."""

    server_version = "alert-receiver"
    # StreamRequestHandler sets it on the connection's socket: a client that sends nothing, or stops
    # halfway through its request line, headers or body, is dropped after it instead of holding a thread.
    timeout = IDLE_TIMEOUT_S
    notifications: Notifications
    password: str
    allowed_hosts: set

    def log_message(self, format, *args):
        pass  # one line per notification is logged instead, not one per request

    def answer(self, status: int, body: str, content_type: str = "text/plain; charset=utf-8", **headers):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(data)

    def host_allowed(self) -> bool:
        # A page in a browser must not read the notifications through a name that resolves here
        # (DNS rebinding): only the names this receiver is reached by.
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        if host in self.allowed_hosts:
            return True
        self.answer(421, f"unknown Host {host[:60]!r}\n")
        return False

    def do_GET(self):
        if not self.host_allowed():
            return
        path = self.path.split("?", 1)[0]
        if path == "/-/healthy":
            self.answer(200, "ok\n")
        elif path == "/api/notifications":
            self.answer(200, json.dumps(self.notifications.newest_first()), "application/json")
        elif path == "/":
            self.answer(200, page(self.notifications.newest_first()))
        else:
            self.answer(404, "not found: /, /api/notifications, /-/healthy\n")

    def do_POST(self):
        if not self.host_allowed():
            return
        if self.path.split("?", 1)[0] != "/webhook":
            self.answer(404, "not found: notifications go to POST /webhook\n")
            return
        if not signed_in(self.headers.get("Authorization"), self.password):
            self.answer(401, "sign in as alertmanager (HTTP Basic)\n", WWW_Authenticate='Basic realm="alerts"')
            return
        length = body_length(self.headers)
        if isinstance(length, tuple):
            # The body is left unread: the connection closes after the answer (HTTP/1.0, and said so).
            self.close_connection = True
            self.answer(length[0], f"{length[1]}\n", Connection="close")
            return
        try:
            entry = self.notifications.add(readable(self.rfile.read(length)))
        except ValueError as error:
            self.answer(400, f"unreadable notification: {str(error)[:200]}\n")
            return
        log.info("notification: %s", summary(entry))
        self.answer(200, "kept\n")


class BoundedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer starts a thread per connection, without limit: this one serves at most
    `max_handlers` connections at once and answers any beyond them 503 at once, unread, from the
    accepting thread, so that a flood of connections cannot exhaust the container's threads."""

    def __init__(self, address, handler, max_handlers: int = MAX_HANDLERS, tls: ssl.SSLContext | None = None):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(max_handlers)
        self.tls = tls   # production mode: HTTPS only

    def finish_request(self, request, client_address):
        if self.tls is not None:
            # The handshake in the connection's own thread, bounded like a request: a client that never
            # finishes it holds one slot for IDLE_TIMEOUT_S, never the accepting thread.
            request.settimeout(IDLE_TIMEOUT_S)
            request = self.tls.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        log.info("connection from %s dropped: %s", client_address[0], f"{type(error).__name__}: {error}"[:200])

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def refuse(self, request) -> None:
        body = b"busy: too many connections, retry later\n"
        try:
            request.settimeout(1)
            request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                            b"Retry-After: 1\r\nConnection: close\r\n"
                            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            pass
        self.shutdown_request(request)


def handler_for(notifications: Notifications, password: str, allowed_hosts: set) -> type[ReceiverHandler]:
    """The handler class for a server that keeps `notifications`, takes them with `password` and
    answers to the Host names `allowed_hosts`."""
    return type("Handler", (ReceiverHandler,),
                {"notifications": notifications, "password": password, "allowed_hosts": allowed_hosts})


def server_tls(env) -> ssl.SSLContext | None:
    """Production mode (TSE_MODE=production): the certificate the secrets service made for it."""
    if env.get("TSE_MODE") != "production":
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(f"{SECRETS}/tls.crt", f"{SECRETS}/tls.key")
    return context


def healthcheck(env) -> int:
    """The container's healthcheck: GET /-/healthy on itself (over HTTPS, verifying its certificate,
    in production mode); one line out, exit 0 when it answers 200."""
    port = env.get("ALERT_RECEIVER_PORT", "9097")
    production = env.get("TSE_MODE") == "production"
    context = ssl.create_default_context(cafile=f"{SECRETS}/ca.crt") if production else None
    url = f"{'https' if production else 'http'}://127.0.0.1:{port}/-/healthy"
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as answer:
            print(answer.status)
            return 0 if answer.status == 200 else 1
    except OSError as error:
        print(f"no answer: {error}"[:300])
        return 1


def main() -> int:
    if sys.argv[1:] == ["--healthcheck"]:
        return healthcheck(os.environ)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    password_file = Path(os.environ.get("ALERT_RECEIVER_PASSWORD_FILE", "/run/secrets/alert_receiver_password"))
    try:
        password = password_file.read_text().strip()
    except OSError as error:
        print(f"alert-receiver: cannot read its password: {error} (the secrets service hands it out from "
              "ALERT_RECEIVER_PASSWORD in .env)", file=sys.stderr)
        return 2
    if not password:
        print(f"alert-receiver: {password_file} is empty: set ALERT_RECEIVER_PASSWORD in .env", file=sys.stderr)
        return 2
    port = int(os.environ.get("ALERT_RECEIVER_PORT", "9097"))
    hosts = {"localhost", "127.0.0.1", "alert-receiver", *filter(None, os.environ.get("ALERT_RECEIVER_HOSTS", "")
                                                                       .split(","))}
    try:
        tls = server_tls(os.environ)
    except OSError as error:
        print(f"alert-receiver: production mode, but {error} (the secrets service hands out its certificate)",
              file=sys.stderr)
        return 2
    server = BoundedHTTPServer(("0.0.0.0", port), handler_for(Notifications(), password, hosts), tls=tls)
    # As the container's PID 1 the process ignores SIGTERM unless it handles it: `docker stop` would
    # wait its 10 s grace period and kill it. Handled before the line saying it listens, which is
    # when a supervisor (or the unit test) may stop it.
    signal.signal(signal.SIGTERM, _stop)
    log.info("receiving Alertmanager's notifications on :%d (POST /webhook)", port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _stop(signum, frame) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())
