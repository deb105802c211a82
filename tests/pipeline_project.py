"""A throw-away copy of the project wired to a local FCOS mirror, and a doit runner for it.

End-to-end tests run `python -m doit` as a subprocess in the copy (the way users run it), against
a synthetic ISO on a local HTTP mirror signed with a throw-away key.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.mirror import Mirror, publish_fcos
from tests.signing import SigningKey
from tests.synthetic_iso import build_fcos_iso
from tests.tools import REPO, decode_data_url, ssh_keygen

PROJECT_FILES = ("dodo.py", "tasks", "butane", "jsonnet")


@dataclass
class DoitRun:
    returncode: int
    stdout: str
    stderr: str

    @property
    def executed(self) -> list[str]:
        """Tasks doit ran (". task"), in order; up-to-date ones print "-- task"."""
        return [line[2:].strip() for line in self.stdout.splitlines() if line.startswith(". ")]


class Project:
    """A copy of the project (the real dodo.py) in a throw-away directory, with its own HOME, one SSH key
    and a cluster.jsonnet pointing at a local mirror; `doit()` runs `python -m doit` there."""

    mirror: Mirror  # set by create()
    upstream_iso: Path  # what the mirror serves as the current release

    def __init__(self, root: Path, home: Path, published: dict[str, str] | None = None) -> None:
        self.root, self.home = root, home
        self.published = published or {}
        self.doit_vars: tuple[str, ...] = ()  # `doit name=value` added to every run
        self.fcos: dict[str, object] = {}
        self.k3s: dict[str, object] = {}
        self.nodes: list[dict[str, Any]] = [{"name": "node1", "role": "server"}]
        self.extra: dict[str, object] = {}  # other top-level fields (output, pxe, install)

    @classmethod
    def create(cls, root: Path, mirror: Mirror, *, iso_bytes: int = 0, upstream_iso: Path | None = None,
               key: SigningKey | None = None, nodes: list[dict[str, Any]] | None = None,
               k3s: dict[str, object] | None = None) -> Project:
        """The project, and an FCOS release on the mirror: a synthetic ISO (or upstream_iso) signed by key
        (a new one if None), the only key the config trusts."""
        root.mkdir(parents=True)
        for name in PROJECT_FILES:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, root / name)
        home = root.parent / f"{root.name}-home"
        home.mkdir()
        if upstream_iso is None:
            upstream_iso = root.parent / f"{root.name}-upstream.iso"
            build_fcos_iso(upstream_iso, pad_to=iso_bytes)
        key = key or SigningKey.generate(root.parent)
        project = cls(root, home, publish_fcos(mirror.root, upstream_iso, key, base_url=mirror.url("")))
        project.mirror, project.upstream_iso = mirror, upstream_iso
        (root / "keys").mkdir()
        ssh_keygen(root / "keys" / "alice", "alice@example.test")
        project.fcos = {"stream": "stable", "architecture": "x86_64", "stream_url": project.published["stream_url"],
                        "keyring": project.published["keyring_url"],
                        "fingerprints": [project.published["fingerprint"]]}
        project.nodes = nodes or project.nodes
        project.k3s = k3s or {}
        project.write_config()
        return project

    def write_config(self) -> None:
        cluster = {"name": "test", "fcos": self.fcos, "k3s": self.k3s, "nodes": self.nodes, **self.extra}
        (self.root / "jsonnet" / "cluster.jsonnet").write_text(json.dumps(cluster, indent=2) + "\n")

    def path(self, relative: Path | str) -> Path:
        return self.root / relative

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if k not in ("K3S_TOKEN", "K3S_AGENT_TOKEN", "DOIT_CONFIG")}
        environment.update({"HOME": os.fspath(self.home), "PYTHONDONTWRITEBYTECODE": "1"})
        environment.update(extra or {})
        return environment

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "doit", *args, *self.doit_vars]

    def doit(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> DoitRun:
        result = subprocess.run(self.argv(*args), cwd=self.root, env=self.env(env), capture_output=True,
                                text=True, timeout=timeout, check=False)
        return DoitRun(result.returncode, result.stdout, result.stderr)


def file_contents(ignition: dict[str, Any], path: str) -> bytes:
    """The decoded contents of one storage.files entry of an Ignition config."""
    for entry in ignition.get("storage", {}).get("files", []):
        if entry["path"] == path:
            contents = entry["contents"]
            data = decode_data_url(contents["source"])
            return gzip.decompress(data) if contents.get("compression") == "gzip" else data
    raise AssertionError(f"{path} not in the config's storage.files")
