"""Fuzz the configuration service's API from its own OpenAPI document (schemathesis): whatever a
client sends, it never answers with a 5xx. Runs in-process, on the in-memory Store seeded with the
shipped environment files and an in-memory Redis (fakeredis)."""
from __future__ import annotations

from pathlib import Path

import fakeredis
import schemathesis
from hypothesis import HealthCheck, settings

from configsvc.seed import load_environments, seed
from configsvc.settings import Settings
from tests.unit.configuration_memory_store import MemoryStore
from tests.unit.service_fakes import PRODUCTION_EDITOR_AUTH, config_app

store = MemoryStore()
# Waits are bounded to 0.2 s (the documented maximum of ?timeout= follows it), so wait_version cases stay fast.
app = config_app(Settings(max_wait_s=0.2), store, fakeredis.FakeRedis(decode_responses=True), listen=False)
seed(store, load_environments(Path(__file__).resolve().parents[2] / "infra/configuration-service/environments")[0],
     app.state.notifier)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_makes_the_configuration_service_answer_5xx(case):
    # Signed in as the production editor, so the fuzzed writes reach the code behind the sign-in.
    response = case.call(auth=PRODUCTION_EDITOR_AUTH)
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
