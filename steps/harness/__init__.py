"""The acceptance harness: the stack's settings (settings.py), moving an up-mode stack off what
others hold (isolation.py), driving docker compose (compose.py), and the pytest plugin that brings
the stack up, hands it to the scenarios and takes it down, also after Ctrl-C or SIGTERM
(fixtures.py). Not probes: they change the stack; probes only ask it."""
