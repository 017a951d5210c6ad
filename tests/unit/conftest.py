"""Fixtures of the registry's unit tests: the app on an in-memory Redis (fakeredis). The
configuration service's tests define their own `redis_client` and `client`, which win in their
modules."""
from __future__ import annotations

import fakeredis
import pytest
from fastapi.testclient import TestClient

from registry.app import create_app
from registry.settings import Settings


@pytest.fixture
def redis_client():
    return fakeredis.FakeRedis(decode_responses=True)


@pytest.fixture
def client(redis_client):
    with TestClient(create_app(Settings(), redis_client)) as test_client:
        yield test_client
