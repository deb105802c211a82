"""The pipeline's real output for the twin: a copy of the project whose cluster config points at a
local mirror publishing the twin live ISO as the Fedora CoreOS release (signed with a throw-away key)
and at the twin HTTP server for the k3s install script; `python -m doit` then builds one ISO per node
exactly as users build theirs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.mirror import Mirror, publish_fcos
from tests.pipeline_project import PROJECT_FILES, Project, cluster_jsonnet, ssh_keygen
from tests.signing import SigningKey
from tests.tools import REPO


def twin_project(root: Path, mirror: Mirror, live_iso: Path, *, nodes: list[dict[str, object]],
                 k3s: dict[str, object], install: dict[str, object] | None = None) -> Project:
    """A checkout at `root` configured for the twin; call .doit() to build its ISOs."""
    root.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    home = root.parent / f"{root.name}-home"
    home.mkdir()
    key = SigningKey.generate(root.parent)
    published = publish_fcos(mirror.root, live_iso, key, base_url=mirror.url(""))
    (root / "keys").mkdir()
    ssh_keygen(root / "keys" / "admin", "admin@twin.test")
    cluster = json.loads(cluster_jsonnet(published, nodes, k3s))  # type: ignore[arg-type]
    cluster["name"] = "twin"
    if install is not None:
        cluster["install"] = install
    (root / "jsonnet" / "cluster.jsonnet").write_text(json.dumps(cluster, indent=2) + "\n")
    project = Project(root, home)
    project.published = published  # type: ignore[attr-defined]
    return project


def node_iso(project: Project, node: str) -> Path:
    return project.root / "build" / "iso" / f"{node}.iso"


def build(project: Project, timeout: float = 600) -> None:
    run = project.doit(timeout=timeout)
    if run.returncode != 0:
        raise AssertionError(f"doit failed in {project.root}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")


def public_key(project: Project) -> str:
    return (project.root / "keys" / "admin.pub").read_text().strip()

