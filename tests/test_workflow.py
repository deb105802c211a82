"""The GitHub Actions workflow: lint-clean, caches what makes rebuilds cheap, uploads the ISOs, and
reads the cluster token only from the repository secret."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from typing import Any

import pytest
import yaml

from tasks.common import DEP_FILE
from tests.tools import REPO, require_tool

WORKFLOW = REPO / ".github" / "workflows" / "build.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def steps(workflow: dict[str, Any], job: str) -> list[dict[str, Any]]:
    job_steps: list[dict[str, Any]] = workflow["jobs"][job]["steps"]
    return job_steps


def step_using(workflow: dict[str, Any], job: str, action: str) -> dict[str, Any]:
    return next(step for step in steps(workflow, job) if step.get("uses", "").startswith(action + "@"))


def covered(patterns: str, path: str) -> bool:
    """actions/cache and upload-artifact semantics: later `!pattern` lines exclude, others include."""
    included = False
    for pattern in (line.strip() for line in patterns.splitlines() if line.strip()):
        negate, glob = pattern.startswith("!"), pattern.lstrip("!").rstrip("/")
        if path == glob or fnmatch.fnmatch(path, glob) or path.startswith(glob + "/"):
            included = not negate
    return included


def dodo_dep_file() -> str:
    assert '"dep_file": str(DEP_FILE)' in (REPO / "dodo.py").read_text()
    return str(DEP_FILE)


def test_actionlint_is_clean() -> None:
    require_tool("actionlint")
    result = subprocess.run(["actionlint", "-no-color", str(WORKFLOW)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_triggers(workflow: dict[str, Any]) -> None:
    raw: dict[Any, Any] = workflow
    triggers = raw["on"] if "on" in raw else raw[True]  # PyYAML reads a bare `on` as YAML 1.1 true
    assert {"push", "pull_request", "workflow_dispatch", "schedule"} <= set(triggers)
    update = next(step for step in steps(workflow, "iso") if "doit update" in step.get("run", ""))
    assert "schedule" in update["if"], "the weekly run moves to the newest release"


def test_test_job_runs_the_readme_test_command(workflow: dict[str, Any]) -> None:
    runs = " ".join(step.get("run", "") for step in steps(workflow, "test"))
    assert "bash .ci/run" in runs
    assert "./test.sh" in (REPO / ".ci" / "run").read_text()
    assert "./test.sh" in (REPO / "README.md").read_text()


def test_cache_covers_the_download_and_doits_dependency_file(workflow: dict[str, Any]) -> None:
    restore = step_using(workflow, "iso", "actions/cache/restore")["with"]
    save = step_using(workflow, "iso", "actions/cache/save")["with"]
    for cache in (restore, save):
        for path in (dodo_dep_file(), "build/fcos/fedora-coreos-live.x86_64.iso", "build/fcos/verified.json",
                     "build/fcos/release.json"):
            assert covered(cache["path"], path), f"{path} is not cached"
        for secret in ("build/secrets/k3s-token", "build/nodes/node1/k3s-autoinstall.ign", "build/iso/node1.iso"):
            assert not covered(cache["path"], secret), f"{secret} carries the token and must not be cached"
    assert "stream" in restore["key"] and "hashFiles(" in restore["key"]
    prefix = restore["key"].split("${{ hashFiles")[0]
    assert prefix in restore["restore-keys"].splitlines(), "a partly stale cache of the same stream is still restored"
    # saved under the release as well, so a weekly update with unchanged inputs is cached too
    assert "cache-primary-key" in save["key"] and "release" in save["key"]


def test_upload_covers_the_isos_and_checksums(workflow: dict[str, Any]) -> None:
    upload = step_using(workflow, "iso", "actions/upload-artifact")["with"]
    assert covered(upload["path"], "build/iso/node1.iso")
    assert covered(upload["path"], "build/iso/SHA256SUMS")
    assert "nodes" in upload["name"] and "release" in upload["name"]


def test_token_only_from_secrets(workflow: dict[str, Any]) -> None:
    text = WORKFLOW.read_text()
    expressions = re.findall(r"\$\{\{([^}]*)\}\}", text)
    token_expressions = [e.strip() for e in expressions if "TOKEN" in e.upper()]
    assert token_expressions == ["secrets.K3S_TOKEN", "secrets.K3S_AGENT_TOKEN"], token_expressions
    for job in workflow["jobs"].values():
        for step in job["steps"]:
            env = step.get("env", {})
            script = step.get("run", "")
            assert "secrets." not in script, "secrets go through env, never into script text"
            for name in ("K3S_TOKEN", "K3S_AGENT_TOKEN"):
                if name in env:
                    assert env[name] == f"${{{{ secrets.{name} }}}}"
                for use in re.findall(rf".*\$\{{?{name}.*", script):
                    assert re.search(rf'\[ -z "\${name}" \]', use), f"token used beyond an emptiness test: {use}"
