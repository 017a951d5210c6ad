"""Step definitions for the acceptance suite (features/), one module per concern.

The probes they call live in steps.probes: plain functions with no pytest in them, reused by the
suite's own tests (tests/) and by operator tools.
"""
