"""The parameter model: environments, keys, service names, the four types and the one string form
every value is stored and served in."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional
from urllib.parse import urlsplit

ENVIRONMENTS = ("development", "testing", "production")
# "docker" is the name risk-monitor-py and test-coordinator-py give (ENVIRONMENT=docker in the original
# compose) to "running inside this stack": that is what development.yaml describes (its endpoints are
# the in-network addresses), so it is read as development rather than kept as a copy that would drift
# from it and miss the changes an operator makes there.
ALIASES = {"dev": "development", "test": "testing", "prod": "production", "docker": "development"}
TYPES = ("string", "number", "boolean", "json")
KEY = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*(\.[a-zA-Z][a-zA-Z0-9_]*)*$")
SERVICE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_KEY_CHARS = 200
MAX_VALUE_BYTES = 16 * 1024
MAX_DESCRIPTION_CHARS = 1000
ENDPOINT_PREFIX = "endpoints."
# JSON's number grammar: the text form of a number must be what a JSON parser in any client accepts.
NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$")


class Invalid(ValueError):
    """Bad input: `field` names what is wrong (key, type, value, environment, service), the message why."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field, self.problem = field, problem


@dataclass(frozen=True)
class Entry:
    """One parameter, its value in its stored string form. service "" means environment-wide."""

    environment: str
    service: str
    key: str
    type: str
    value: str
    description: str


@dataclass(frozen=True)
class Row(Entry):
    """One stored parameter: an Entry with its version and who changed it last, when."""

    version: int
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class Change:
    """What a write did: created, updated, deleted or unchanged. For deleted, `row` is the row as it
    was, with the deletion's version, time and author."""

    change: str
    row: Row
    old_value: Optional[str] = None


@dataclass(frozen=True)
class HistoryEntry:
    change: str
    old_value: Optional[str]
    new_value: Optional[str]
    version: int
    changed_at: datetime
    changed_by: str


def rfc3339(moment: datetime) -> str:
    """UTC with milliseconds and a Z, e.g. 2026-11-26T19:38:37.948Z."""
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_rfc3339() -> str:
    return rfc3339(datetime.now(timezone.utc))


def canonical_environment(name: Optional[str], default: str = "development") -> str:
    """The canonical name of `name` (or of `default` when none is given); raises Invalid when unknown."""
    given = default if name is None or name == "" else name
    lowered = given.strip().lower()
    canonical = ALIASES.get(lowered, lowered)
    if canonical not in ENVIRONMENTS:
        accepted = ", ".join(ENVIRONMENTS) + " (or " + ", ".join(ALIASES) + ")"
        raise Invalid("environment", f"unknown environment {given[:64]!r}: accepted are {accepted}")
    return canonical


def check_key(key: Any) -> str:
    """The key itself; raises Invalid when it is not dotted identifiers of at most 200 characters."""
    if not isinstance(key, str) or len(key) > MAX_KEY_CHARS or not KEY.match(key):
        raise Invalid("key", f"invalid key {str(key)[:MAX_KEY_CHARS]!r}: dotted names such as risk.max_position_usd, "
                             f"each starting with a letter, at most {MAX_KEY_CHARS} characters")
    return key


def check_service(service: Any) -> str:
    """The stored form of a service name: "" for none (environment-wide); raises Invalid when malformed."""
    if service is None or service == "":
        return ""
    if not isinstance(service, str) or not SERVICE.match(service):
        raise Invalid("service", f"invalid service name {str(service)[:80]!r}: lower-case letters, digits and "
                                 f"hyphens, at most 63 characters")
    return service


def check_description(description: Any) -> str:
    """The description itself; raises Invalid when it is not text PostgreSQL can store, of at most 1000 characters."""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS or "\x00" in description:
        raise Invalid("description", f"a description is text of at most {MAX_DESCRIPTION_CHARS} characters")
    try:
        description.encode()
    except UnicodeEncodeError:
        raise Invalid("description", "a description must be valid Unicode text") from None
    return description


def _number_text(value: Any) -> str:
    """Canonical text of a number: integers without a point ("42"), others as Python's shortest repr ("0.5")."""
    if isinstance(value, bool):
        raise ValueError("true/false is a boolean, not a number")
    if isinstance(value, str):
        text = value.strip()
        if not NUMBER.match(text):
            raise ValueError(f"{value[:40]!r} is not a number")
        value = int(text) if re.fullmatch(r"-?[0-9]+", text) else float(text)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and infinity are not numbers here")
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    raise ValueError(f"a {type(value).__name__} is not a number")


def _boolean_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower()
    raise ValueError("a boolean is true or false")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _json_text(value: Any) -> str:
    """Compact JSON text; a string input is JSON text itself (so a JSON string value is "\\"text\\"")."""
    if isinstance(value, str):
        try:
            value = json.loads(value, parse_constant=_reject_constant)
        except ValueError as error:
            raise ValueError(f"not JSON text: {error}") from None
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ValueError(f"not JSON: {error}") from None


def _string_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a value of type string must be given as a string, e.g. \"5\" rather than 5")
    return value


FORMATTERS = {"string": _string_text, "number": _number_text, "boolean": _boolean_text, "json": _json_text}


def check_endpoint_url(url: str) -> None:
    """Raises ValueError unless `url` has a scheme and a host and no credentials."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError as error:
        raise ValueError(f"not a URL: {error}") from None
    if not parts.scheme or not parts.hostname:
        raise ValueError(f"{url[:80]!r} is not a URL with a scheme and a host")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("an endpoint URL must not carry credentials")


def normalise_value(key: str, type_: str, value: Any, service: str = "") -> str:
    """The stored and served string form of `value` as a `type_`; raises Invalid naming key, type and reason."""
    if type_ not in TYPES:
        raise Invalid("type", f"{key}: unknown type {str(type_)[:40]!r}: one of {', '.join(TYPES)}")
    try:
        text = FORMATTERS[type_](value)
        if "\x00" in text:
            raise ValueError("NUL characters cannot be stored")
        if len(text.encode()) > MAX_VALUE_BYTES:
            raise ValueError(f"longer than {MAX_VALUE_BYTES} bytes")
        if key.startswith(ENDPOINT_PREFIX):
            if type_ != "string":
                raise ValueError("endpoints.* parameters are URLs of type string")
            if service:
                raise ValueError("endpoints.* parameters are environment-wide, not per service")
            check_endpoint_url(text)
    except ValueError as error:
        raise Invalid("value", f"invalid value for {key} (type {type_}): {error}") from None
    return text


def resolve(rows: Iterable[Row], service: str) -> Optional[Row]:
    """The row a service sees: its own over the environment-wide one; None when neither exists."""
    by_service = {row.service: row for row in rows}
    return by_service.get(service) if service and service in by_service else by_service.get("")


def resolved_view(rows: Iterable[Row], service: str) -> List[Row]:
    """One row per key as `service` sees it, sorted by key."""
    by_key: Dict[str, List[Row]] = {}
    for row in rows:
        by_key.setdefault(row.key, []).append(row)
    chosen = (resolve(candidates, service) for candidates in by_key.values())
    return sorted((row for row in chosen if row is not None), key=lambda row: row.key)


def parameter_view(row: Row) -> Dict[str, Any]:
    """The flat object sibling clients parse; `value` is always the string form."""
    return {
        "key": row.key,
        "value": row.value,
        "type": row.type,
        "environment": row.environment,
        "service": row.service or None,
        "version": row.version,
        "last_updated": rfc3339(row.updated_at),
        "description": row.description,
        "updated_by": row.updated_by,
    }


def history_view(entry: HistoryEntry) -> Dict[str, Any]:
    return {"change": entry.change, "old_value": entry.old_value, "new_value": entry.new_value,
            "version": entry.version, "changed_at": rfc3339(entry.changed_at), "changed_by": entry.changed_by}
