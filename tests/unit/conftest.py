"""Fixtures of the registry's unit tests: the app on an in-memory Redis (fakeredis), writes signed in
as a sibling's ACL user through `FakeAcl`. The configuration service's tests define their own
`redis_client` and `client`, which win in their modules."""
from __future__ import annotations

import fakeredis
import pytest
from fastapi.testclient import TestClient

from tests.unit.service_fakes import SIBLING_AUTH, registry_app


@pytest.fixture
def redis_client():
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def client(redis_client):
    """A test client that signs its writes in as the risk adapter."""
    with TestClient(registry_app(redis_client)) as test_client:
        test_client.auth = SIBLING_AUTH
        yield test_client
