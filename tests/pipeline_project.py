"""A throw-away copy of the project wired to a local FCOS mirror, and a doit runner for it.

End-to-end tests run `python -m doit` as a subprocess in the copy (the way users run it), against
a synthetic ISO on a local HTTP mirror signed with a throw-away key.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from tests.mirror import Mirror, publish_fcos
from tests.signing import SigningKey
from tests.synthetic_iso import build_fcos_iso
from tests.tools import REPO

PROJECT_FILES = ("dodo.py", "tasks", "butane", "jsonnet")


def ssh_keygen(path: Path, comment: str) -> str:
    """A real ed25519 key pair; returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", os.fspath(path)],
                   check=True)
    path.unlink()  # only the public half belongs in keys/
    return path.with_suffix(".pub").read_text().strip()


def cluster_jsonnet(published: dict[str, str], nodes: list[dict[str, str]], k3s: dict[str, object]) -> str:
    cluster = {
        "name": "test",
        "fcos": {"stream": "stable", "architecture": "x86_64", "stream_url": published["stream_url"],
                 "keyring": published["keyring_url"], "fingerprints": [published["fingerprint"]]},
        "k3s": k3s,
        "nodes": nodes,
    }
    return json.dumps(cluster, indent=2) + "\n"


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
    def __init__(self, root: Path, home: Path) -> None:
        self.root, self.home = root, home

    @classmethod
    def create(cls, root: Path, mirror: Mirror, *, iso_bytes: int = 0,
               nodes: list[dict[str, str]] | None = None, k3s: dict[str, object] | None = None) -> Project:
        root.mkdir(parents=True)
        for name in PROJECT_FILES:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, root / name)
        home = root.parent / f"{root.name}-home"
        home.mkdir()
        iso = root.parent / f"{root.name}-upstream.iso"
        build_fcos_iso(iso, pad_to=iso_bytes)
        key = SigningKey.generate(root.parent)
        published = publish_fcos(mirror.root, iso, key, base_url=mirror.url(""))
        (root / "keys").mkdir()
        ssh_keygen(root / "keys" / "alice", "alice@example.test")
        nodes = nodes or [{"name": "node1", "role": "server"}]
        (root / "jsonnet" / "cluster.jsonnet").write_text(cluster_jsonnet(published, nodes, k3s or {}))
        project = cls(root, home)
        project.published = published
        return project

    def doit(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> DoitRun:
        environment = {k: v for k, v in os.environ.items() if k != "K3S_TOKEN"}
        environment.update({"HOME": os.fspath(self.home), "PYTHONDONTWRITEBYTECODE": "1"})
        environment.update(env or {})
        result = subprocess.run([sys.executable, "-m", "doit", *args], cwd=self.root, env=environment,
                                capture_output=True, text=True, timeout=timeout, check=False)
        return DoitRun(result.returncode, result.stdout, result.stderr)


def decode_data_url(url: str) -> bytes:
    """The contents of an Ignition `data:` source (percent-escaped or base64, maybe gzip)."""
    match = re.match(r"^data:([^,]*),(.*)$", url, re.S)
    assert match, url
    meta, payload = match.groups()
    data = base64.b64decode(payload) if meta.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
    return data


def file_contents(ignition: dict[str, object], path: str) -> bytes:
    """The decoded contents of one storage.files entry of an Ignition config."""
    for entry in ignition.get("storage", {}).get("files", []):  # type: ignore[union-attr]
        if entry["path"] == path:
            contents = entry["contents"]
            data = decode_data_url(contents["source"])
            return gzip.decompress(data) if contents.get("compression") == "gzip" else data
    raise AssertionError(f"{path} not in the config's storage.files")
