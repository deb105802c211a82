"""The code's own checks: ruff and mypy --strict on the pipeline, the transpiler and dodo.py."""

from __future__ import annotations

import subprocess
import sys

from tests.tools import REPO, require_tool

CODE = ["tasks", "butane", "dodo.py"]


def test_ruff_is_clean() -> None:
    require_tool("ruff")
    result = subprocess.run(["ruff", "check", *CODE], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", *CODE], cwd=REPO, capture_output=True, text=True)
    if "No module named mypy" in result.stderr:
        require_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
