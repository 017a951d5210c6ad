"""The configuration parameters the scenarios write: as whom, in which environment, and how each
scenario leaves the stack as it found it (the configuration and security steps both write some)."""
from __future__ import annotations

from steps.probes import ProbeError, config_api, postgres_server

ENVIRONMENT = "development"
# The editor the scenarios write as (HTTP Basic, a Redis ACL user): it may write development.
EDITOR = "config-editor"
# The role that owns the config schema: the only one that may read its tables (monitor may not).
OWNER_ROLE = "config_service"


def forget_parameter(stack, key: str, environment: str = ENVIRONMENT, editor: str = EDITOR) -> None:
    """Leave the stack as the scenario found it: the parameter and its history gone."""
    try:
        config_api.delete(stack.config_port(), key, environment, stack.signed_in_as(editor))
    except ProbeError:
        pass
    try:
        postgres_server.execute(*stack.postgres(OWNER_ROLE),
                                "DELETE FROM config.parameter_history WHERE key = %s",
                                (key,))
    except Exception:  # noqa: BLE001 - the table may not exist in a broken copy of the stack
        pass
