"""The code passes the linter configured in pyproject.toml ([tool.ruff]): the suite's own tests run
it, so a finding fails `pytest tests/` like any other defect. Every Python file: ruff finds the *.py
ones itself; the extensionless scripts (infra/host/benchmark...) are named to it."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def python_files(folder: Path) -> list[Path]:
    """The Python files under `folder`: *.py, and extensionless scripts whose first line runs Python."""
    def runs_python(path: Path) -> bool:
        first_line = path.read_bytes()[:100].split(b"\n")[0]
        return first_line.startswith(b"#!") and b"python" in first_line

    return [path for path in sorted(folder.rglob("*")) if path.is_file() and "__pycache__" not in path.parts
            and (path.suffix == ".py" or (not path.suffix and runs_python(path)))]


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).with_name("ruff")
    command = [str(ruff)] if ruff.exists() else [shutil.which("ruff") or "ruff"]
    scripts = [str(path) for path in python_files(ROOT / "infra") if not path.suffix]
    result = subprocess.run([*command, "check", "--no-cache", "--output-format", "concise", str(ROOT), *scripts],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, f"ruff check:\n{result.stdout}{result.stderr}"


MAX_FUNCTION_LINES = 60


def linted_python_files() -> list[Path]:
    """Every Python file the lint covers: the *.py files of the repository (not .venv, reports/, caches
    or hidden folders) and the extensionless scripts under infra/."""
    def skipped(path: Path) -> bool:
        parts = path.relative_to(ROOT).parts[:-1]
        return any(part in (".venv", "reports", "__pycache__") or part.startswith(".") for part in parts)

    modules = [path for path in sorted(ROOT.rglob("*.py")) if not skipped(path)]
    return modules + [path for path in python_files(ROOT / "infra") if not path.suffix]


def test_no_function_is_longer_than_60_lines():
    # Issue 33: a function that long does several things; its parts become helpers named for them.
    # Counted from `def` to the last line (decorators excluded).
    too_long = []
    for path in linted_python_files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {length} lines")
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(too_long)
