"""The code's own checks: ruff and mypy --strict on the pipeline, the transpiler, dodo.py and the tests."""

from __future__ import annotations

import subprocess
import sys

from tests.tools import REPO, require_tool

# Test modules being rewritten on other branches (issue 11, the butane work) join once those are merged.
NOT_YET: set[str] = set()
TESTS = sorted(f"tests/{path.name}" for path in (REPO / "tests").glob("*.py") if path.name not in NOT_YET)
CODE = ["tasks", "butane", "dodo.py", *TESTS, "tests/bench", "tests/twin"]


def test_ruff_is_clean() -> None:
    require_tool("ruff")
    result = subprocess.run(["ruff", "check", *CODE], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy", *CODE], cwd=REPO, capture_output=True, text=True)
    if "No module named mypy" in result.stderr:
        require_tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
