"""The pipeline's real output for the twin: a copy of the project whose cluster config points at a
local mirror publishing the twin live ISO as the Fedora CoreOS release (signed with a throw-away key)
and at the twin HTTP server for the k3s install script; `python -m doit` then builds one ISO per node
exactly as users build theirs."""

from __future__ import annotations

from pathlib import Path

from tests.mirror import Mirror
from tests.pipeline_project import Project


def twin_project(root: Path, mirror: Mirror, live_iso: Path, *, nodes: list[dict[str, object]],
                 k3s: dict[str, object], install: dict[str, object] | None = None) -> Project:
    """A checkout at `root` configured for the twin (the twin ISO published as the FCOS release, signed
    by a throw-away key the config pins); call .doit() to build its ISOs."""
    project = Project.create(root, mirror, upstream_iso=live_iso, nodes=nodes, k3s=k3s)
    project.extra = {"name": "twin", **({"install": install} if install is not None else {})}
    project.write_config()
    return project


def node_iso(project: Project, node: str) -> Path:
    return project.root / "build" / "iso" / f"{node}.iso"


def build(project: Project, timeout: float = 600) -> None:
    run = project.doit(timeout=timeout)
    if run.returncode != 0:
        raise AssertionError(f"doit failed in {project.root}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")


def public_key(project: Project) -> str:
    return (project.root / "keys" / "alice.pub").read_text().strip()

