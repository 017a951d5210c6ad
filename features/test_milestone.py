"""Binds every feature file of this folder; the step definitions live in steps/ (see conftest.py)."""
from pytest_bdd import scenarios

scenarios(".")
