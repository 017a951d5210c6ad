"""Steps that bring services down and up again. Their scenarios are tagged @changes_stack: they run
last, and never in attach mode (a stack we did not start is never changed)."""
from __future__ import annotations

import uuid

from psycopg import sql
from pytest_bdd import given, parsers, then, when

from steps.expect import expect
from steps.probes import Fact, container_state, docker_engine, postgres_server, redis_server


def _marker_table(schema: str) -> sql.Identifier:
    return sql.Identifier(schema, "acceptance_lifecycle")


def _marker_rows(evidence, written_row, schema: str) -> list:
    """The rows holding the written marker; [] when the table itself is gone."""
    connection = written_row["connection"]
    table = evidence.record(postgres_server.query(
        *connection, "SELECT to_regclass(%s) IS NOT NULL", (f"{schema}.acceptance_lifecycle",))).observed[0][0]
    if not table:
        return []
    return evidence.record(postgres_server.query(
        *connection, sql.SQL("SELECT marker FROM {} WHERE marker = %s").format(_marker_table(schema)),
        (written_row["marker"],))).observed


@given(parsers.parse('a row written to the "{schema}" schema as "{role}"'), target_fixture="written_row")
def _write_row(stack, evidence, schema, role):
    marker = uuid.uuid4().hex
    connection = (stack.postgres_port(), role, stack.postgres_password(role), stack.database)
    evidence.record(postgres_server.execute(
        *connection, sql.SQL("CREATE TABLE IF NOT EXISTS {} (marker text PRIMARY KEY)").format(_marker_table(schema))))
    evidence.record(postgres_server.execute(
        *connection, sql.SQL("INSERT INTO {} VALUES (%s)").format(_marker_table(schema)), (marker,)))
    return {"connection": connection, "schema": schema, "marker": marker}


@given(parsers.parse('a key written under "{prefix}" as "{user}"'), target_fixture="written_key")
def _write_key(stack, evidence, prefix, user):
    key, value = f"{prefix}acceptance-lifecycle:{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    evidence.record(redis_server.set_value(*stack.redis(user), key, value))
    return {"user": user, "key": key, "value": value}


@when("the stack is brought down without removing its volumes")
def _down_keep_volumes(stack, evidence):
    stack.compose.stop_keeping_volumes()
    for service in stack.services:
        fact = evidence.record(docker_engine.running_containers(stack.project, service))
        expect(fact.observed == [], f"{service} after down", "no running container", fact.observed, fact)


@when("Redis and PostgreSQL are stopped and started again with docker compose")
def _stop_start(stack, evidence):
    stack.compose.stop_services("redis", "postgres")
    for service in ("redis", "postgres"):
        fact = evidence.record(container_state.state(stack.project, service))
        expect(fact.observed["status"] == "exited", f"{service} after stop", "exited", fact.observed, fact)
    stack.compose.start_services("redis", "postgres")
    for service in ("redis", "postgres"):
        evidence.record(container_state.state(stack.project, service))


@when("the stack is brought down with its volumes")
def _down_with_volumes(stack, evidence):
    stack.compose.down_with_volumes()
    evidence.record(Fact(f"docker compose -p {stack.project} down -v", stack.project, "done"))


@then("none of the stack's named volumes is left")
def _volumes_gone(stack, evidence):
    fact = evidence.record(Fact(f"docker volume ls --filter label=com.docker.compose.project={stack.project}",
                                stack.project, docker_engine.leftovers(stack.project)["volumes"]))
    expect(fact.observed == [], "the stack's volumes after down -v", "none", fact.observed, fact)


@when("the stack is brought up again")
def _up_again(stack, evidence):
    stack.compose.up()
    stack.trust_its_ca()  # production mode: `down -v` took the CA with the secrets volume
    for service in stack.services:
        fact = evidence.record(container_state.health(stack.project, service))
        expect(fact.observed == "healthy", f"{service} after up", "healthy", fact.observed, fact)


@then(parsers.parse('the row is still in the "{schema}" schema'))
def _row_kept(evidence, written_row, schema):
    rows = _marker_rows(evidence, written_row, schema)
    expect(rows == [(written_row["marker"],)], "row written before down", "still there", rows, None,
           "PostgreSQL's data directory must be on the named volume postgres-data")


@then(parsers.parse('the row is no longer in the "{schema}" schema'))
def _row_gone(evidence, written_row, schema):
    rows = _marker_rows(evidence, written_row, schema)
    expect(rows == [], "the row written before down -v", "gone with the volume", rows, None,
           "down -v must remove the named volume postgres-data")


@then("the key is still in Redis")
def _key_kept(stack, evidence, written_key):
    user = written_key["user"]
    fact = evidence.record(redis_server.get_value(*stack.redis(user),
                                                  written_key["key"]))
    expect(fact.observed == written_key["value"], "key written before down", written_key["value"],
           fact.observed, fact, "Redis needs appendonly yes and /data on the named volume redis-data")
