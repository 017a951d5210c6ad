"""The registry on an in-memory Redis (fakeredis) for unit tests, writes signed in as a sibling's ACL
user through `FakeAcl`."""
from __future__ import annotations

import redis

from registry.app import create_app
from registry.settings import Settings

# The risk adapter's Redis ACL user, as .env.example gives it (a development value).
SIBLING_AUTH = ("risk-adapter", "risk-pass")
# TestClient's and schemathesis' Host names.
TEST_HOSTS = ("testserver", "localhost")


class FakeAcl:
    """connect_as for the registry: signs users in against a table, as Redis's AUTH would, and hands
    out the one in-memory Redis (fakeredis checks no ACL: key patterns are proven on the real stack)."""

    def __init__(self, client: redis.Redis, users: dict | None = None):
        self.client, self.users = client, dict(users or [SIBLING_AUTH])
        self.signed_in: list = []

    def __call__(self, user: str, password: str) -> redis.Redis:
        if self.users.get(user) != password:
            raise redis.AuthenticationError("WRONGPASS invalid username-password pair or user is disabled.")
        self.signed_in.append(user)
        return self.client


def registry_app(redis_client, acl: FakeAcl | None = None, **settings):
    """The registry over `redis_client`, its Host check admitting the test clients' names."""
    return create_app(Settings(allowed_hosts=TEST_HOSTS, **settings), redis_client, acl or FakeAcl(redis_client))
