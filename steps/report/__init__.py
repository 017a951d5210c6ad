"""The evidence and the reports people sign off on: each step's facts (evidence.py), the milestone
checklist computed from the scenarios' outcomes (checklist.py), and the sign-off that writes the
reports and merges a parallel run's workers (signoff.py). Pytest plugins and plain functions; no step
definitions."""
