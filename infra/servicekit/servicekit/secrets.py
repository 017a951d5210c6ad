"""Passwords, read from the file `<NAME>_FILE` names: in the stack, compose secrets handed out by the
secrets service (docker-compose.yml), so no password sits in a container's environment. Outside a
stack (a developer running a service by hand), `<NAME>` itself is still read."""
from __future__ import annotations

from pathlib import Path


def secret(env, name: str) -> str:
    """The secret `name`; raises ValueError naming the file and the remedy when it cannot be read."""
    path = env.get(name + "_FILE")
    if not path:
        return env.get(name, "")
    try:
        # A file written by hand often ends with a newline, which is never part of a password.
        return Path(path).read_text().rstrip("\r\n")
    except OSError as error:
        raise ValueError(f"{name}_FILE={path!r} cannot be read ({error.strerror}): the stack's secrets service "
                         "hands it out; run `docker compose up` (docker-compose.yml, service secrets)") from None
