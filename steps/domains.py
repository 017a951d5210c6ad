"""The ecosystem's domains as the milestone names them: each has a PostgreSQL schema and a role of
its own, which the database, security and ecosystem steps all check."""
from __future__ import annotations

DOMAIN_SCHEMAS = ("market_data", "exchange", "custodian", "risk", "trading", "test_coordination", "audit")


def domain_role(schema: str) -> str:
    """The role of a domain's own service (test_coordination's is test_coordinator_adapter)."""
    return f"{schema.replace('test_coordination', 'test_coordinator')}_adapter"


DOMAIN_ROLES = tuple(domain_role(schema) for schema in DOMAIN_SCHEMAS)
