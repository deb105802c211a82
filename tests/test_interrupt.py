"""Ctrl-C or kill at any moment never leaves a half-written file at a target path, and the next
`doit` finishes the job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mirror import Mirror
from tests.pipeline_project import Project
from tests.tools import require_tool


@pytest.fixture()
def project(tmp_path: Path) -> Iterator[Project]:
    require_tool("gpg", "gpgv", "ssh-keygen")
    with Mirror(tmp_path / "mirror") as mirror:
        yield Project.create(tmp_path / "checkout", mirror, iso_bytes=48 << 20,
                             nodes=[{"name": "s1", "role": "server"}, {"name": "a1", "role": "agent"}])


def targets_are_whole(build: Path) -> None:
    """Every output that exists is complete: the ISOs hold a config that parses, JSON parses."""
    from tasks.iso import show_ignition

    for iso in (build / "iso").glob("*.iso"):
        json.loads(show_ignition(iso))
    for ignition in (build / "nodes").rglob("*.ign"):
        json.loads(ignition.read_text())
    stamp = build / "fcos" / "verified.json"
    if stamp.exists():
        json.loads(stamp.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_builds_leave_no_partial_target(project: Project, how: signal.Signals) -> None:
    environment = {**os.environ, "HOME": os.fspath(project.home)}
    environment.pop("K3S_TOKEN", None)
    for delay in (0.3, 0.8, 1.5, 2.5):
        subprocess.run([sys.executable, "-m", "doit", "forget", "embed", "render"], cwd=project.root,
                       env=environment, capture_output=True, check=False)
        process = subprocess.Popen([sys.executable, "-m", "doit"], cwd=project.root, env=environment,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        os.killpg(process.pid, how)
        process.wait(timeout=60)
        targets_are_whole(project.root / "build")
    run = project.doit()
    assert run.returncode == 0, run.stdout + run.stderr
    targets_are_whole(project.root / "build")
    assert sorted(p.name for p in (project.root / "build" / "iso").glob("*.iso")) == ["a1.iso", "s1.iso"]
    assert project.doit().executed == []
