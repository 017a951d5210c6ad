"""The rooms keep their word: a step module (steps/*_steps.py) defines the steps of one concern and
imports no other (what two share lives in a module of its own, such as steps/service_checks.py);
the operator tools and services under infra/ use the library (probes, harness, report), never a
step module."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_lint import python_files

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports by name (`import a.b`, `from a.b import c` gives a.b and a.b.c)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def step_modules() -> set[str]:
    return {f"steps.{path.stem}" for path in (ROOT / "steps").glob("*_steps.py")}


def test_no_step_module_imports_another():
    steps = step_modules()
    crossing = {f"steps/{path.name}": sorted(imported_modules(path) & (steps - {f"steps.{path.stem}"}))
                for path in (ROOT / "steps").glob("*_steps.py")}
    assert not {name: found for name, found in crossing.items() if found}, \
        "step modules importing another (move what they share to a module of its own)"


def test_no_file_under_infra_imports_a_step_module():
    steps = step_modules()
    found = {str(path.relative_to(ROOT)): sorted(imported_modules(path) & steps)
             for path in python_files(ROOT / "infra")}
    assert not {name: modules for name, modules in found.items() if modules}, \
        "infra/ importing step modules (use the probes, the harness or the report code)"


def test_the_checks_see_extensionless_scripts():
    """The scan (and the linter, tests/unit/test_lint.py) reaches the operator's extensionless Python
    scripts, not only *.py files, and not the shell ones."""
    names = {path.name for path in python_files(ROOT / "infra/host")}
    assert {"benchmark", "benchmark-registry", "stackctl.py"} <= names and "swarm-nodes" not in names, names
