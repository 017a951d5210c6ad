"""An in-memory Store for the configuration service's unit tests, with the semantics of the
PostgreSQL one: versions per (environment, service, key) that never go backwards, a history row per
change, the expected-version (If-Match) check, and an outage switch (`failing`)."""
from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence, Tuple

from configsvc.model import Change, HistoryEntry, Row
from configsvc.store import HISTORY_LIMIT, Store, StoreUnavailable, check_expected

RowId = Tuple[str, str, str]


class MemoryStore(Store):
    def __init__(self):
        self.rows: Dict[RowId, Row] = {}
        self.histories: Dict[RowId, List[HistoryEntry]] = {}   # oldest first, as inserted
        self.failing: Optional[str] = None                     # set: every call raises StoreUnavailable
        self.tables_created = False
        self._lock = threading.Lock()

    def _available(self) -> None:
        if self.failing:
            raise StoreUnavailable(self.failing)

    def _record(self, row_id: RowId, change: str, old: Optional[str], new: Optional[str], version: int,
                at: datetime, by: str) -> None:
        self.histories.setdefault(row_id, []).append(HistoryEntry(change, old, new, version, at, by))

    def ping(self) -> None:
        self._available()

    def create_tables(self) -> None:
        self._available()
        self.tables_created = True

    def get_rows(self, environment: str, key: str, services: Sequence[str]) -> List[Row]:
        self._available()
        with self._lock:
            return [row for (env, svc, k), row in self.rows.items() if env == environment and k == key
                    and svc in services]

    def list_rows(self, environment: str, services: Optional[Sequence[str]] = None, prefix: str = "") -> List[Row]:
        self._available()
        with self._lock:
            found = [row for (env, svc, key), row in self.rows.items() if env == environment
                     and (services is None or svc in services) and key.startswith(prefix)]
        return sorted(found, key=lambda row: (row.key, row.service))

    def upsert(self, environment: str, service: str, key: str, type_: str, value: str,
               description: Optional[str], updated_by: str, expected_version: Optional[int] = None) -> Change:
        self._available()
        row_id = (environment, service, key)
        with self._lock:
            current = self.rows.get(row_id)
            check_expected(current, expected_version)
            wanted = (current.description if current else "") if description is None else description
            if current and (current.type, current.value, current.description) == (type_, value, wanted):
                return Change("unchanged", current)
            past = [entry.version for entry in self.histories.get(row_id, [])]
            version = current.version + 1 if current else max(past, default=0) + 1
            now = datetime.now(timezone.utc)
            row = Row(environment, service, key, type_, value, wanted, version, now, updated_by)
            self.rows[row_id] = row
            change = "updated" if current else "created"
            self._record(row_id, change, current.value if current else None, value, version, now, updated_by)
            return Change(change, row, current.value if current else None)

    def delete(self, environment: str, service: str, key: str, deleted_by: str,
               expected_version: Optional[int] = None) -> Optional[Change]:
        self._available()
        row_id = (environment, service, key)
        with self._lock:
            current = self.rows.get(row_id)
            if current is None:
                return None
            check_expected(current, expected_version)
            del self.rows[row_id]
            now = datetime.now(timezone.utc)
            self._record(row_id, "deleted", current.value, None, current.version + 1, now, deleted_by)
            gone = Row(environment, service, key, current.type, current.value, current.description,
                       current.version + 1, now, deleted_by)
            return Change("deleted", gone, current.value)

    def history(self, environment: str, service: str, key: str, limit: int = HISTORY_LIMIT,
                before_version: Optional[int] = None) -> List[HistoryEntry]:
        self._available()
        with self._lock:
            entries = reversed(self.histories.get((environment, service, key), []))
            return [e for e in entries if before_version is None or e.version < before_version][:limit]
