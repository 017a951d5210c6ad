"""The API's request bodies, and its answers as /openapi.json documents them."""
from __future__ import annotations

from typing import Any, Dict, List, Literal, Optional

from pydantic import BaseModel, Field

from configsvc.model import MAX_DESCRIPTION_CHARS, MAX_KEY_CHARS

ParameterType = Literal["string", "number", "boolean", "json"]
VALUE_DOC = ("The value: its native JSON form (42, true, {\"a\": 1}) or its string form (\"42\", \"true\", "
             "\"{\\\"a\\\":1}\"); a string parameter takes a JSON string. Stored and served as a string.")


class ParameterIn(BaseModel):
    """POST /api/v1/configuration. Unknown fields are ignored."""

    key: str = Field(max_length=MAX_KEY_CHARS, examples=["risk.max_position_usd"])
    value: Any = Field(description=VALUE_DOC)
    type: ParameterType
    environment: Optional[str] = Field(default=None, max_length=64, description="default: the service's default")
    service: Optional[str] = Field(default=None, max_length=63, description="none: environment-wide")
    description: Optional[str] = Field(default=None, max_length=MAX_DESCRIPTION_CHARS,
                                       description="none: keep the current one")


class ParameterUpdate(BaseModel):
    """PUT /api/v1/configuration/{key}, with If-Match: <version>."""

    value: Any = Field(description=VALUE_DOC)
    type: Optional[ParameterType] = Field(default=None, description="none: keep the current type")
    description: Optional[str] = Field(default=None, max_length=MAX_DESCRIPTION_CHARS,
                                       description="none: keep the current one")


class Parameter(BaseModel):
    key: str
    value: str
    type: ParameterType
    environment: str
    service: Optional[str]
    version: int
    last_updated: str = Field(description="RFC 3339, UTC")
    description: str
    updated_by: str


class ParameterList(BaseModel):
    environment: str
    service: Optional[str]
    prefix: str
    count: int
    # Lists come in pages: `total` parameters match, this page starts at `offset`; `next_offset`
    # asks for the next page (null on the last one).
    total: int
    offset: int
    next_offset: Optional[int]
    parameters: List[Parameter]


class HistoryEntryOut(BaseModel):
    change: Literal["created", "updated", "deleted"]
    old_value: Optional[str]
    new_value: Optional[str]
    version: int
    changed_at: str
    changed_by: str


class History(BaseModel):
    key: str
    environment: str
    service: Optional[str]
    # Newest first, in pages: `next_before_version` asks for the older changes (null on the last page).
    next_before_version: Optional[int]
    history: List[HistoryEntryOut]


class Endpoints(BaseModel):
    environment: str
    endpoints: Dict[str, str]


class Dependency(BaseModel):
    status: Literal["healthy", "unhealthy"]
    latency_ms: Optional[float] = None
    error: Optional[str] = None


class Health(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    timestamp: str
    postgres: Dependency
    redis: Dependency


class Problem(BaseModel):
    detail: Any
