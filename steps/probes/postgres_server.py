"""Facts about the running PostgreSQL server, asked over its published port on 127.0.0.1 (and what
only the superuser may read, on the Unix socket inside the container: the superuser never signs in
over TCP).

Each function opens a short-lived connection as one role, asks one thing and returns a Fact.
Anything a probe creates is created inside a transaction that is rolled back, so probing never
changes the database.
"""
from __future__ import annotations

import uuid
from typing import Callable, TypeVar

import psycopg
from psycopg import errors, sql

from steps.probes import container_exec, transport
from steps.probes.facts import Fact, Outcome, ProbeError

HOST = "127.0.0.1"
T = TypeVar("T")
TIMEOUT_S = 5


def _where(port: int, user: str, dbname: str) -> str:
    return f"postgres 127.0.0.1:{port}/{dbname} as {user}"


def connect(port: int, user: str, password: str, dbname: str) -> psycopg.Connection:
    return psycopg.connect(
        host=HOST, port=port, user=user, password=password, dbname=dbname, connect_timeout=TIMEOUT_S,
        **transport.current().postgres_options(),   # TLS in production mode
    )


def query(port: int, user: str, password: str, dbname: str, statement: str | sql.Composable,
          params: dict | tuple | None = None) -> Fact:
    """Run one read-only query (`params` bound by the driver; names such as a schema composed with
    psycopg.sql.Identifier, never pasted into the text); observed is the list of rows (tuples)."""
    try:
        with connect(port, user, password, dbname) as conn:
            text = statement if isinstance(statement, str) else statement.as_string(conn)
            rows = conn.execute(statement, params).fetchall()
            conn.rollback()
    except psycopg.OperationalError as error:
        raise ProbeError(f"postgres 127.0.0.1:{port}: cannot connect as {user}: {error}".strip()) from error
    return Fact(text, _where(port, user, dbname), rows)


def _login_failure(port: int, error: psycopg.OperationalError) -> Outcome:
    """A refused login as an Outcome (the server's last line); ProbeError when nothing answered."""
    message = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
    if "Connection refused" in message or "timeout" in message:
        raise ProbeError(f"postgres 127.0.0.1:{port} did not answer: {message}") from error
    return Outcome(False, message)


def attempt(port: int, user: str, password: str, dbname: str, work: Callable[[psycopg.Connection], T]
            ) -> T | Outcome:
    """`work` on a connection as `user`, rolled back at the end: its result, or a refused Outcome
    when the login is refused; ProbeError when PostgreSQL does not answer at all."""
    try:
        with connect(port, user, password, dbname) as conn:
            result = work(conn)
            conn.rollback()
            return result
    except psycopg.OperationalError as error:
        return _login_failure(port, error)


def refused_statement(error: psycopg.Error) -> str:
    return f"{error.sqlstate}: {str(error).strip()}"


# A statement the role may not run: not a failure of the probe, an answer.
PRIVILEGE_ERRORS = (errors.InsufficientPrivilege, errors.InvalidSchemaName)


def setting(port: int, user: str, password: str, dbname: str, name: str) -> Fact:
    """SHOW `name`, read from the running server."""
    fact = query(port, user, password, dbname, f"SHOW {name}")
    return Fact(fact.probe, fact.where, fact.observed[0][0])


def login(port: int, user: str, password: str, dbname: str) -> Fact:
    """Try to log in; observed is an Outcome (allowed, with the server's current_user, or refused)."""
    outcome = attempt(port, user, password, dbname,
                      lambda conn: Outcome(True, conn.execute("SELECT current_user").fetchone()[0]))
    return Fact(f"login as {user}", _where(port, user, dbname), outcome, raw=outcome.reply)


def schemas(port: int, user: str, password: str, dbname: str) -> Fact:
    """The schemas outside PostgreSQL's own, with their owner and comment: {name: {...}}."""
    sql = (
        "SELECT n.nspname, pg_get_userbyid(n.nspowner), obj_description(n.oid, 'pg_namespace') "
        "FROM pg_namespace n WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
    )
    fact = query(port, user, password, dbname, sql)
    observed = {name: {"owner": owner, "comment": comment} for name, owner, comment in fact.observed}
    return Fact(sql, fact.where, observed)


def login_roles(port: int, user: str, password: str, dbname: str) -> Fact:
    """The roles that can log in."""
    sql = "SELECT rolname FROM pg_roles WHERE rolcanlogin"
    fact = query(port, user, password, dbname, sql)
    return Fact(sql, fact.where, frozenset(row[0] for row in fact.observed))


def health_check(port: int, user: str, password: str, dbname: str) -> Fact:
    """SELECT public.health_check(): observed is the jsonb as a dict."""
    sql = "SELECT public.health_check()"
    try:
        fact = query(port, user, password, dbname, sql)
    except ProbeError:
        raise
    except psycopg.Error as error:
        return Fact(sql, _where(port, user, dbname), {"error": str(error).strip()})
    return Fact(sql, fact.where, fact.observed[0][0])


def create_table(port: int, user: str, password: str, dbname: str, schema: str) -> Fact:
    """As `user`, CREATE TABLE in `schema` inside a transaction that is rolled back.

    observed is an Outcome: allowed when the table was created, refused with the server's error."""
    statement = sql.SQL("CREATE TABLE {} (id int)").format(
        sql.Identifier(schema, f"acceptance_probe_{uuid.uuid4().hex[:8]}"))

    def work(conn) -> Outcome:
        try:
            conn.execute(statement)
            return Outcome(True, "created")
        except PRIVILEGE_ERRORS as error:
            return Outcome(False, refused_statement(error))

    outcome = attempt(port, user, password, dbname, work)
    return Fact(f"{statement.as_string(None)}; ROLLBACK", _where(port, user, dbname), outcome, raw=outcome.reply)


def read_table(port: int, user: str, password: str, dbname: str, schema: str, table: str) -> Fact:
    """As `user`, SELECT from `schema`.`table`; observed is an Outcome: allowed (the row count) or
    refused with the server's error (a schema the role may not use is refused before the table is
    looked up, so a table that does not exist still proves the refusal)."""
    statement = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, table))

    def work(conn) -> Outcome:
        try:
            return Outcome(True, str(conn.execute(statement).fetchone()[0]))
        except (*PRIVILEGE_ERRORS, errors.UndefinedTable) as error:
            return Outcome(False, refused_statement(error))

    outcome = attempt(port, user, password, dbname, work)
    return Fact(statement.as_string(None), _where(port, user, dbname), outcome, raw=outcome.reply)


def landing_schema(port: int, user: str, password: str, dbname: str) -> Fact:
    """As `user`, where an unqualified name lands: its search_path, current_schema(), and the schema
    a table created without a schema name is in (created in a transaction that is rolled back).

    observed: {"search_path", "current_schema", "created_in"}, or an Outcome when refused."""
    table = f"acceptance_probe_{uuid.uuid4().hex[:8]}"
    probe = f"SHOW search_path; SELECT current_schema(); CREATE TABLE {table} (id int); ROLLBACK"

    def work(conn) -> dict:
        path = conn.execute("SHOW search_path").fetchone()[0]
        current = conn.execute("SELECT current_schema()").fetchone()[0]
        try:
            conn.execute(sql.SQL("CREATE TABLE {} (id int)").format(sql.Identifier(table)))
            created = conn.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = %s",
                                   (table,)).fetchone()[0]
        except PRIVILEGE_ERRORS as error:
            created = f"refused: {refused_statement(error)}"
        return {"search_path": path, "current_schema": current, "created_in": created}

    return Fact(probe, _where(port, user, dbname), attempt(port, user, password, dbname, work))


def superuser_rows(project: str, service: str, password: str, dbname: str, statement: str) -> Fact:
    """`statement` as the superuser, signed in on the Unix socket inside the service's container
    (psql; the password in its environment, never on its command line): rows of text."""
    command = ["psql", "-X", "-A", "-t", "-q", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", dbname,
               "-c", statement]
    fact = container_exec.exec_in(project, service, command, {"PGPASSWORD": password})
    if fact.observed.exit_code != 0:
        raise ProbeError(f"{fact.where}: {statement!r} as postgres on the socket: {fact.observed.output[:300]}")
    rows = [tuple(line.split("\t")) for line in fact.observed.output.splitlines() if line]
    return Fact(fact.probe, fact.where, rows, raw=fact.raw)


def hba_rules(project: str, service: str, password: str, dbname: str) -> Fact:
    """The pg_hba.conf rules the server loaded: [(type, auth_method, address)] (superuser only)."""
    sql = "SELECT type, auth_method, coalesce(address, '') FROM pg_hba_file_rules WHERE error IS NULL"
    return superuser_rows(project, service, password, dbname, sql)


def execute(port: int, user: str, password: str, dbname: str, statement: str | sql.Composable,
            params: tuple = ()) -> Fact:
    """Run one statement and commit it (for scenarios that must leave data behind on purpose)."""
    with connect(port, user, password, dbname) as conn:
        text = statement if isinstance(statement, str) else statement.as_string(conn)
        cursor = conn.execute(statement, params)
        rows = cursor.fetchall() if cursor.description else cursor.rowcount
    return Fact(text, _where(port, user, dbname), rows)


def timed_login(port: int, user: str, password: str, dbname: str, timeout: int) -> Fact:
    """Log in and SELECT 1 with connect_timeout `timeout` s; observed: {"answer", "seconds"}."""
    import time

    started = time.monotonic()
    try:
        with psycopg.connect(host=HOST, port=port, user=user, password=password, dbname=dbname,
                             connect_timeout=timeout, **transport.current().postgres_options()) as conn:
            answer = "ok" if conn.execute("SELECT 1").fetchone() == (1,) else "no answer"
    except psycopg.Error as error:
        answer = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
    seconds = round(time.monotonic() - started, 3)
    return Fact(f"login and SELECT 1 (connect_timeout {timeout} s)", _where(port, user, dbname),
                {"answer": answer, "seconds": seconds})
