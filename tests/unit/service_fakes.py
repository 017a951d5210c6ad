"""Sign-ins for the two services' unit tests (`FakeAcl`: Redis ACL users from a table), the
registry on an in-memory Redis (fakeredis), and a stand-in configuration service for the reads the
registry forwards."""
from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis

from registry.app import create_app
from registry.settings import Settings

# The risk adapter's Redis ACL user, as .env.example gives it (a development value).
SIBLING_AUTH = ("risk-adapter", "risk-pass")
# The configuration editors, as .env.example gives them (development values).
EDITOR_AUTH = ("config-editor", "config-editor-dev-password")
PRODUCTION_EDITOR_AUTH = ("config-editor-production", "config-editor-production-dev-password")
# TestClient's and schemathesis' Host names.
TEST_HOSTS = ("testserver", "localhost")


class FakeAcl:
    """connect_as for the registry: signs users in against a table, as Redis's AUTH would, and hands
    out the one in-memory Redis (fakeredis checks no ACL: key patterns are proven on the real stack)."""

    def __init__(self, client: redis.Redis, users: dict | None = None):
        self.client = client
        self.users = dict(users or [SIBLING_AUTH, EDITOR_AUTH, PRODUCTION_EDITOR_AUTH])
        self.signed_in: list = []

    def __call__(self, user: str, password: str) -> redis.Redis:
        if self.users.get(user) != password:
            raise redis.AuthenticationError("WRONGPASS invalid username-password pair or user is disabled.")
        self.signed_in.append(user)
        return self.client


def registry_app(redis_client, acl: FakeAcl | None = None, **settings):
    """The registry over `redis_client`, its Host check admitting the test clients' names."""
    return create_app(Settings(allowed_hosts=TEST_HOSTS, **settings), redis_client, acl or FakeAcl(redis_client))


def reconciled(client) -> None:
    """A whole reconciliation pass of the registry behind `client` (its background one takes up to a second)."""
    client.app.state.registry.reconciler.full_pass()


def config_app(settings, store, redis_client, **options):
    """The configuration service over `store` and `redis_client`, its editors signed in by FakeAcl, its
    Host check admitting the test clients' names beside the settings' own."""
    from configsvc.app import create_app as create_config_app

    settings = dataclasses.replace(settings, allowed_hosts=(*TEST_HOSTS, *settings.allowed_hosts))
    return create_config_app(settings, store, redis_client, connect_as=FakeAcl(redis_client), **options)


def editor_client(app, auth: tuple | None = PRODUCTION_EDITOR_AUTH):
    """A test client whose writes sign in as `auth` (the production editor: it may write everything)."""
    from fastapi.testclient import TestClient

    client = TestClient(app)
    client.auth = auth
    return client


PARAMETER = {"key": "risk.max_position_usd", "value": "1000000", "type": "number", "environment": "development",
             "service": None, "version": 3, "last_updated": "2026-12-07T10:00:00Z"}


class ConfigurationService(BaseHTTPRequestHandler):
    """Answers GET: PARAMETER for its key, 404 otherwise; keeps (path, X-Service-Name) of each request."""

    asked: list = []

    def do_GET(self):
        type(self).asked.append((self.path, self.headers.get("X-Service-Name")))
        found = "risk.max_position_usd" in self.path
        body = PARAMETER if found else {"detail": "no parameter missing.key in development"}
        payload = json.dumps(body).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def configuration_service_stub() -> ThreadingHTTPServer:
    """A configuration service on a loopback port that knows one parameter (PARAMETER), served by a
    daemon thread (stub_url gives its URL); shut it down when done, or leave it to the process's end."""
    ConfigurationService.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ConfigurationService)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def stub_url(server: ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"
