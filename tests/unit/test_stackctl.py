"""stackctl's output without a stack (infra/host/stackctl.py): `validate` prints every reason whole,
wrapped to the terminal under the VERDICT column, never cut."""
from __future__ import annotations

import stackctl

WIDTH = 80
REASON = ("redis health: expected healthy within 60 s, observed starting after 61.2 s "
          "(where: docker inspect trading-ecosystem-redis-1 State.Health). Hint: the healthcheck signs in as "
          "healthcheck with REDIS_PASSWORD_HEALTHCHECK; compare infra/redis/users.acl with the env file and "
          "run stackctl logs redis to read why the server refused it")


def _report(reason: str) -> dict:
    return {"criterion": "failed", "items": [
        {"id": "1.1", "title": "Redis Docker service definition", "verdict": "passed", "reason": "",
         "scenarios": [{"name": "x", "outcome": "passed", "reason": ""}]},
        {"id": "5.6", "title": "Health check validation script that names every unhealthy service and its cause",
         "verdict": "failed", "reason": reason,
         "scenarios": [{"name": "Redis becomes healthy", "outcome": "failed", "reason": reason}]},
    ]}


def _words(text: str) -> list[str]:
    return text.split()


def test_a_long_reason_is_printed_whole_and_wrapped_under_the_verdict_column():
    assert len(REASON) >= 300
    printed = stackctl.checklist_lines(_report(REASON), WIDTH)
    lines = printed.splitlines()
    assert max(len(line) for line in lines) <= WIDTH, printed
    verdict_column = lines[0].index("VERDICT")
    table = lines[:lines.index(next(line for line in lines if line.startswith("FAILED ")))]
    failed_row = next(n for n, line in enumerate(table) if line.startswith("5.6 "))
    verdict_text = " ".join(line[verdict_column:] for line in table[failed_row:])
    assert _words(verdict_text) == _words(f"failed ({REASON})")
    assert all(line[verdict_column - 2:verdict_column] == "  " for line in table[failed_row + 1:])
    failed_text = " ".join(line.strip() for line in lines[len(table):])
    assert _words(failed_text) == _words(f"FAILED Redis becomes healthy: {REASON}")


def test_the_item_title_is_wrapped_in_its_column_not_cut():
    lines = stackctl.checklist_lines(_report("short"), 60).splitlines()
    assert max(len(line) for line in lines) <= 60
    item_column = " ".join(line[:lines[0].index("VERDICT")].strip() for line in lines[2:] if line[:2] != "FA")
    assert "that names every unhealthy service and its cause" in item_column


def test_without_a_width_the_table_is_as_before():
    table = stackctl.format_table(("SERVICE", "HEALTH"), [("redis", "healthy"), ("postgres", "starting")])
    assert table.splitlines() == ["SERVICE   HEALTH", "redis     healthy", "postgres  starting"]
