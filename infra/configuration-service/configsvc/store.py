"""Parameters in PostgreSQL (schema config), behind a small Store interface the API and the seeding
use; tests put an in-memory Store with the same semantics in its place.

Every write is one transaction: the row (locked with SELECT ... FOR UPDATE for the version check) and
its history row. Versions count per (environment, service, key) and never go backwards: a key that is
created again continues from the highest version in its history.
"""
from __future__ import annotations

import abc
import functools
import select
import time
from typing import List, Optional, Sequence

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from configsvc.model import Change, HistoryEntry, Row
from configsvc.settings import Settings
from servicekit import tls
from servicekit.errors import one_line

HISTORY_LIMIT = 1000


class StoreUnavailable(Exception):
    """The storage cannot answer (PostgreSQL down, refusing the login, timing out)."""


class VersionConflict(Exception):
    """The row is not at the version the writer expected; `current` is its version (None when absent)."""

    def __init__(self, current: Optional[int]):
        super().__init__(f"current version is {current}")
        self.current = current


class Store(abc.ABC):
    """Where parameters live. service "" means environment-wide. expected_version: None writes
    whatever is there; 0 requires the row to be absent; N requires it to be at version N, else
    VersionConflict. Every method raises StoreUnavailable when the storage cannot answer."""

    @abc.abstractmethod
    def ping(self) -> None:
        """Returns when the storage answers; raises StoreUnavailable otherwise."""

    @abc.abstractmethod
    def create_tables(self) -> None:
        """Creates the tables when they do not exist yet."""

    @abc.abstractmethod
    def get_rows(self, environment: str, key: str, services: Sequence[str]) -> List[Row]:
        """The rows of `key` in `environment` whose service is one of `services`."""

    @abc.abstractmethod
    def list_rows(self, environment: str, services: Optional[Sequence[str]] = None, prefix: str = "") -> List[Row]:
        """Rows of `environment` (of `services` only, when given) whose key starts with `prefix`, by key."""

    @abc.abstractmethod
    def upsert(self, environment: str, service: str, key: str, type_: str, value: str,
               description: Optional[str], updated_by: str, expected_version: Optional[int] = None) -> Change:
        """Creates or updates a row and writes its history; change "unchanged" (no history) when value,
        type and description are already those. description None keeps the current one."""

    @abc.abstractmethod
    def delete(self, environment: str, service: str, key: str, deleted_by: str,
               expected_version: Optional[int] = None) -> Optional[Change]:
        """Deletes a row and writes its history; None when there was no such row."""

    @abc.abstractmethod
    def history(self, environment: str, service: str, key: str, limit: int = HISTORY_LIMIT,
                before_version: Optional[int] = None) -> List[HistoryEntry]:
        """The changes of one row, newest first, at most `limit`, only those below `before_version` when
        given; empty when it never existed."""


def check_expected(current: Optional[Row], expected_version: Optional[int]) -> None:
    """Raises VersionConflict when `current` is not at `expected_version` (0: absent)."""
    if expected_version is not None and (current.version if current else 0) != expected_version:
        raise VersionConflict(current.version if current else None)


COLUMNS = "environment, service, key, type, value, description, version, updated_at, updated_by"
WHERE_ROW = "environment = %(environment)s AND service = %(service)s AND key = %(key)s"

CREATE_TABLES = [
    # Two instances starting together must not race on CREATE TABLE.
    "SELECT pg_advisory_xact_lock(hashtext('configsvc.create_tables'))",
    """CREATE TABLE IF NOT EXISTS config.parameters (
        environment text NOT NULL,
        service     text NOT NULL DEFAULT '',
        key         text NOT NULL,
        type        text NOT NULL CHECK (type IN ('string', 'number', 'boolean', 'json')),
        value       text NOT NULL,
        description text NOT NULL DEFAULT '',
        version     bigint NOT NULL CHECK (version > 0),
        updated_at  timestamptz NOT NULL DEFAULT now(),
        updated_by  text NOT NULL,
        PRIMARY KEY (environment, service, key))""",
    """CREATE TABLE IF NOT EXISTS config.parameter_history (
        id          bigserial PRIMARY KEY,
        environment text NOT NULL,
        service     text NOT NULL,
        key         text NOT NULL,
        change      text NOT NULL CHECK (change IN ('created', 'updated', 'deleted')),
        old_value   text,
        new_value   text,
        version     bigint NOT NULL,
        changed_at  timestamptz NOT NULL DEFAULT now(),
        changed_by  text NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS parameter_history_row ON config.parameter_history (environment, service, key, id)",
]
SELECT_ROWS = (f"SELECT {COLUMNS} FROM config.parameters WHERE environment = %(environment)s AND key = %(key)s "
               "AND service = ANY(%(services)s::text[])")
LIST_ROWS = (f"SELECT {COLUMNS} FROM config.parameters WHERE environment = %(environment)s "
             "AND (%(services)s::text[] IS NULL OR service = ANY(%(services)s::text[])) "
             "AND left(key, length(%(prefix)s)) = %(prefix)s ORDER BY key, service")
LOCK_ROW = f"SELECT {COLUMNS} FROM config.parameters WHERE {WHERE_ROW} FOR UPDATE"
UPDATE_ROW = ("UPDATE config.parameters SET type = %(type)s, value = %(value)s, description = %(description)s, "
              f"version = version + 1, updated_at = now(), updated_by = %(by)s WHERE {WHERE_ROW} RETURNING {COLUMNS}")
# The first version of a row continues from its history, so versions never go backwards. A concurrent
# insert of the same new key makes this insert nothing: the caller then tries again and sees that row.
INSERT_ROW = (f"INSERT INTO config.parameters ({COLUMNS}) VALUES (%(environment)s, %(service)s, %(key)s, %(type)s, "
              "%(value)s, %(description)s, (SELECT coalesce(max(version), 0) + 1 FROM config.parameter_history "
              f"WHERE {WHERE_ROW}), now(), %(by)s) ON CONFLICT (environment, service, key) DO NOTHING "
              f"RETURNING {COLUMNS}")
# A write and its history row in one statement (one round trip): the history row is made of what the
# write returned, so a write that wrote nothing (a concurrent insert won) leaves no history either.
WRITE_WITH_HISTORY = ("WITH written AS ({write}), history AS (INSERT INTO config.parameter_history (environment, "
                      "service, key, change, old_value, new_value, version, changed_at, changed_by) "
                      "SELECT environment, service, key, %(change)s, %(old_value)s, value, version, updated_at, "
                      f"updated_by FROM written) SELECT {COLUMNS} FROM written")
UPDATE_WITH_HISTORY = WRITE_WITH_HISTORY.format(write=UPDATE_ROW)
INSERT_WITH_HISTORY = WRITE_WITH_HISTORY.format(write=INSERT_ROW)
DELETE_ROW = f"DELETE FROM config.parameters WHERE {WHERE_ROW} RETURNING now() AS deleted_at"
INSERT_HISTORY = ("INSERT INTO config.parameter_history (environment, service, key, change, old_value, new_value, "
                  "version, changed_at, changed_by) VALUES (%(environment)s, %(service)s, %(key)s, %(change)s, "
                  "%(old_value)s, %(new_value)s, %(version)s, now(), %(by)s)")
SELECT_HISTORY = ("SELECT change, old_value, new_value, version, changed_at, changed_by "
                  f"FROM config.parameter_history WHERE {WHERE_ROW} "
                  "AND (%(before)s::bigint IS NULL OR version < %(before)s) ORDER BY id DESC LIMIT %(limit)s")


def _unavailable_on_error(method):
    """Turns every psycopg error (PoolTimeout is one) into StoreUnavailable."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except psycopg.Error as error:
            raise StoreUnavailable(one_line(error)) from error

    return wrapper


def record_history(cur: psycopg.Cursor, where: dict, change: str, old_value: Optional[str],
                   new_value: Optional[str], version: int, by: str) -> None:
    """The history row of a change, in the transaction of the change itself."""
    cur.execute(INSERT_HISTORY, {**where, "change": change, "old_value": old_value, "new_value": new_value,
                                 "version": version, "by": by})


def connection_arguments(settings: Settings) -> dict:
    return {"host": settings.postgres_host, "port": settings.postgres_port, "dbname": settings.postgres_db,
            "user": settings.postgres_user, "password": settings.postgres_password, "connect_timeout": 3,
            "application_name": "configuration-service", **tls.current().postgres_options()}


def wait_for_postgres(settings: Settings, timeout_s: float) -> None:
    """Returns once PostgreSQL accepts the login; raises StoreUnavailable with the last error after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(**connection_arguments(settings)) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.Error as error:
            if time.monotonic() >= deadline:
                raise StoreUnavailable(one_line(error)) from error
            time.sleep(1)


# How long the pool retries a lost connection, with its doubling delay (1, 2, 4 ... s), before it
# gives up until the next request asks for one (which tries at once). Its default, 300 s, let the
# delay grow with the outage: a worker answered 503 for 11 s after a 20 s outage of PostgreSQL had
# ended. With 5 s no retry is more than 2 s after the last.
RECONNECT_TIMEOUT_S = 5


def check_when_told(conn: psycopg.Connection) -> None:
    """The pool's check of a connection before handing it out: a connection dropped by a PostgreSQL
    restart is replaced, not handed out. An idle connection's socket has nothing to read unless the
    server said something (its goodbye, or the end of the stream), so the round trip of
    ConnectionPool.check_connection is made only then."""
    if conn.closed or select.select([conn.fileno()], [], [], 0)[0]:
        ConnectionPool.check_connection(conn)


class PostgresStore(Store):
    def __init__(self, pool: ConnectionPool):
        self.pool = pool

    @classmethod
    def open(cls, settings: Settings) -> "PostgresStore":
        pool = ConnectionPool("", kwargs=connection_arguments(settings), min_size=1, max_size=10, timeout=3,
                              name="configsvc", open=True, check=check_when_told,
                              reconnect_timeout=RECONNECT_TIMEOUT_S)
        return cls(pool)

    def close(self) -> None:
        self.pool.close()

    @_unavailable_on_error
    def ping(self) -> None:
        with self.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")

    @_unavailable_on_error
    def create_tables(self) -> None:
        with self.pool.connection() as conn, conn.transaction():
            for statement in CREATE_TABLES:
                conn.execute(statement)

    @_unavailable_on_error
    def get_rows(self, environment: str, key: str, services: Sequence[str]) -> List[Row]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(SELECT_ROWS, {"environment": environment, "key": key, "services": list(services)})
            return [Row(**r) for r in cur.fetchall()]

    @_unavailable_on_error
    def list_rows(self, environment: str, services: Optional[Sequence[str]] = None, prefix: str = "") -> List[Row]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(LIST_ROWS, {"environment": environment, "prefix": prefix,
                                    "services": None if services is None else list(services)})
            return [Row(**r) for r in cur.fetchall()]

    @_unavailable_on_error
    def upsert(self, environment: str, service: str, key: str, type_: str, value: str,
               description: Optional[str], updated_by: str, expected_version: Optional[int] = None) -> Change:
        where = {"environment": environment, "service": service, "key": key}
        for _ in range(3):
            with self.pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
                found = cur.execute(LOCK_ROW, where).fetchone()
                current = Row(**found) if found else None
                check_expected(current, expected_version)
                wanted = (current.description if current else "") if description is None else description
                if current and (current.type, current.value, current.description) == (type_, value, wanted):
                    return Change("unchanged", current)
                change = "updated" if current else "created"
                params = {**where, "type": type_, "value": value, "description": wanted, "by": updated_by,
                          "change": change, "old_value": current.value if current else None}
                written = cur.execute(UPDATE_WITH_HISTORY if current else INSERT_WITH_HISTORY, params).fetchone()
                if written is None:
                    continue  # another writer created this key meanwhile: lock and compare its row instead
                return Change(change, Row(**written), current.value if current else None)
        raise StoreUnavailable(f"concurrent writers kept colliding on {key}")

    @_unavailable_on_error
    def delete(self, environment: str, service: str, key: str, deleted_by: str,
               expected_version: Optional[int] = None) -> Optional[Change]:
        where = {"environment": environment, "service": service, "key": key}
        with self.pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            found = cur.execute(LOCK_ROW, where).fetchone()
            if found is None:
                return None
            current = Row(**found)
            check_expected(current, expected_version)
            deleted_at = cur.execute(DELETE_ROW, where).fetchone()["deleted_at"]
            # The deletion is a version of its own: a waiting client sees it, and a re-created key goes on from it.
            record_history(cur, where, "deleted", current.value, None, current.version + 1, deleted_by)
            gone = Row(environment, service, key, current.type, current.value, current.description,
                       current.version + 1, deleted_at, deleted_by)
            return Change("deleted", gone, current.value)

    @_unavailable_on_error
    def history(self, environment: str, service: str, key: str, limit: int = HISTORY_LIMIT,
                before_version: Optional[int] = None) -> List[HistoryEntry]:
        with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(SELECT_HISTORY, {"environment": environment, "service": service, "key": key, "limit": limit,
                                         "before": before_version})
            return [HistoryEntry(**r) for r in cur.fetchall()]
