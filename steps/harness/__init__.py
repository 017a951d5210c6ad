"""The acceptance harness: the stack's settings (settings.py), moving an up-mode stack off what
others hold (isolation.py), driving docker compose (compose.py) or docker stack on a swarm (swarm.py,
with the stack file swarm_file.py makes from compose's model), the pytest plugin that brings the
stack up, hands it to the scenarios and takes it down, also after Ctrl-C or SIGTERM (fixtures.py),
what scenarios do to a running service (interventions.py: pause, kill, swarm updates) and throwaway
containers of the stack's images (scratch.py). Not probes: they change the stack; probes only ask
it."""

import sys

# `pytest features/` as a child process (the operator's validate, the suite's own tests). The
# plugins the acceptance suite never uses are not loaded: schemathesis brings hypothesis, about 1.3 s
# of CPU per start, and the fault suite starts over a hundred of these runs.
ACCEPTANCE_PYTEST = [sys.executable, "-m", "pytest", "features/", "-q", "-p", "no:cacheprovider",
                     "-p", "no:schemathesis", "-p", "no:hypothesispytest", "-p", "no:anyio"]
