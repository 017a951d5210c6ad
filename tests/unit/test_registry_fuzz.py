"""Fuzz the registry's API from its own OpenAPI document (schemathesis): whatever a client sends,
the registry never answers with a 5xx. Runs in-process, on an in-memory Redis (fakeredis)."""
from __future__ import annotations

import fakeredis
import schemathesis
from hypothesis import HealthCheck, settings

from tests.unit.service_fakes import SIBLING_AUTH, configuration_service_stub, registry_app, stub_url

# The configuration reads it forwards reach a stand-in configuration service, up until the process
# ends (a shutdown at exit would wait for its thread, which is gone by then).
app = registry_app(fakeredis.FakeRedis(decode_responses=True),
                   configuration_url=stub_url(configuration_service_stub()))
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_registry_answer_5xx(case):
    # Signed in, so the fuzzed writes reach the code behind the sign-in.
    response = case.call(auth=SIBLING_AUTH)
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
