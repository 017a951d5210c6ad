"""The code passes the linter configured in pyproject.toml ([tool.ruff]): the suite's own tests run
it, so a finding fails `pytest tests/` like any other defect. Every Python file: ruff finds the *.py
ones itself; the extensionless scripts (infra/host/benchmark...) are named to it."""
from __future__ import annotations

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
