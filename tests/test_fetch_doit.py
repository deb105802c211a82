"""fetch and verify under a real doit, in a throw-away project: offline rebuilds, unrelated config
changes, `doit clean`, Ctrl-C and resume, and failures as one line with a non-zero exit.

The project holds a tiny dodo.py importing only task_fetch and task_verify (the real dodo.py belongs to
the whole pipeline), a cluster.jsonnet pointing at the local mirror and one generated SSH key.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests import test_fetch
from tests.mirror import Mirror, publish_fcos
from tests.signing import SigningKey
from tests.tools import REPO, require_tool

# Fixtures from test_fetch.py: the signing keys and the ISO's bytes.
signing_key, other_key, iso_bytes = test_fetch.signing_key, test_fetch.other_key, test_fetch.iso_bytes

DODO = """\
from pathlib import Path

Path("build").mkdir(exist_ok=True)

from tasks.fetch import task_fetch, task_update  # noqa: E402,F401
from tasks.verify import task_verify  # noqa: E402,F401
from tasks.doit_glue import OneLineReporter  # noqa: E402

DOIT_CONFIG = {"default_tasks": ["verify"], "dep_file": "build/.doit.json", "backend": "json",
               "check_file_uptodate": "md5", "reporter": OneLineReporter}
"""
VERIFIED = Path("build/fcos/fedora-coreos-live.x86_64.iso")


class Project:
    def __init__(self, root: Path, published: dict[str, str], fingerprint: str) -> None:
        self.root = root
        (root / "jsonnet").mkdir(parents=True)
        (root / "keys").mkdir()
        (root / "dodo.py").write_text(DODO)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin",
                        "-f", os.fspath(root / "admin")], check=True)
        os.replace(root / "admin.pub", root / "keys" / "admin.pub")
        self.fcos = {"stream": "stable", "architecture": "x86_64", "stream_url": published["stream_url"],
                     "keyring": published["keyring_url"], "fingerprints": [fingerprint]}
        self.k3s: dict[str, object] = {"channel": "stable"}
        self.write_config()

    def write_config(self) -> None:
        config = {"name": "test", "fcos": self.fcos, "k3s": self.k3s,
                  "nodes": [{"name": "server-1", "role": "server"}]}
        (self.root / "jsonnet" / "cluster.jsonnet").write_text(json.dumps(config, indent=2))

    def env(self) -> dict[str, str]:
        env = dict(os.environ, PYTHONPATH=os.fspath(REPO))
        env.pop("DOIT_CONFIG", None)
        return env

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "doit", *args, "fetch_backoff=0.01", "fetch_attempts=3"]

    def doit(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), cwd=self.root, env=self.env(), capture_output=True, text=True,
                              timeout=60)

    def path(self, relative: Path | str) -> Path:
        return self.root / relative


@pytest.fixture
def project(tmp_path: Path, signing_key: SigningKey, iso_bytes: bytes):
    require_tool("gpg", "gpgv", "ssh-keygen")
    iso = tmp_path / "fcos.iso"
    iso.write_bytes(iso_bytes)
    with Mirror(tmp_path / "mirror") as mirror:
        published = publish_fcos(mirror.root, iso, signing_key, base_url=mirror.url(""))
        proj = Project(tmp_path / "project", published, signing_key.fingerprint)
        proj.mirror, proj.published, proj.iso = mirror, published, iso  # type: ignore[attr-defined]
        yield proj


def test_offline_and_up_to_date_after_a_verified_fetch(project: Project) -> None:
    first = project.doit()
    assert first.returncode == 0, first.stderr
    assert project.path(VERIFIED).read_bytes() == project.iso.read_bytes()  # type: ignore[attr-defined]
    stamp = json.loads(project.path("build/fcos/verified.json").read_text())
    assert stamp["release"] == "44.20260707.3.1"

    project.mirror.stop()  # type: ignore[attr-defined]
    offline = project.doit()
    assert offline.returncode == 0, offline.stderr
    assert "-- fetch" in offline.stdout and "-- verify" in offline.stdout, offline.stdout

    # SSH keys and k3s settings are no business of fetch/verify.
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.fspath(project.path("second"))],
                   check=True)
    os.replace(project.path("second.pub"), project.path("keys/second.pub"))
    project.k3s = {"channel": "latest", "disable": ["traefik"]}
    project.write_config()
    changed = project.doit()
    assert changed.returncode == 0, changed.stderr
    assert "-- fetch" in changed.stdout and "-- verify" in changed.stdout, changed.stdout

    cleaned = project.doit("clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert project.path(VERIFIED).exists() and project.path("build/fcos/download").is_dir()
    again = project.doit()
    assert "-- fetch" in again.stdout and "-- verify" in again.stdout, again.stdout


def test_dropped_twice_then_resumed_under_doit(project: Project) -> None:
    rel = project.published["iso_relpath"]  # type: ignore[attr-defined]
    project.mirror.drop_after(rel, 1_000_000)  # type: ignore[attr-defined]
    project.mirror.drop_after(rel, 800_000)  # type: ignore[attr-defined]
    result = project.doit()
    assert result.returncode == 0, result.stderr
    assert "resuming at byte 1,000,000" in result.stderr and "resuming at byte 1,800,000" in result.stderr
    ranges = [r[2] for r in project.mirror.requests_for(rel)]  # type: ignore[attr-defined]
    assert ranges == [None, "bytes=1000000-", "bytes=1800000-"]
    assert project.path(VERIFIED).read_bytes() == project.iso.read_bytes()  # type: ignore[attr-defined]


def test_ctrl_c_then_rerun_resumes(project: Project) -> None:
    rel = project.published["iso_relpath"]  # type: ignore[attr-defined]
    project.mirror.stall_after(rel, 1_300_000, seconds=30)  # type: ignore[attr-defined]
    process = subprocess.Popen(project.argv(), cwd=project.root, env=project.env(), text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    part = project.path("build/fcos/download/fedora-coreos-live.x86_64.iso.part")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (part.exists() and part.stat().st_size >= 1_300_000):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=20)
    assert process.returncode != 0
    assert part.stat().st_size == 1_300_000
    assert not project.path(VERIFIED).exists()

    rerun = project.doit()
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming at byte 1,300,000" in rerun.stderr
    assert project.mirror.requests_for(rel)[-1][2] == "bytes=1300000-"  # type: ignore[attr-defined]
    assert project.path(VERIFIED).read_bytes() == project.iso.read_bytes()  # type: ignore[attr-defined]


def test_untrusted_signature_fails_with_one_line_and_exit_1(project: Project, other_key: SigningKey) -> None:
    project.fcos["fingerprints"] = [other_key.fingerprint]
    project.write_config()
    result = project.doit()
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("‣ error:")]
    assert len(errors) == 1 and "none of the 1 keys pinned in fcos.fingerprints" in errors[0], result.stderr
    # printed once: doit's reporter neither repeats it nor adds an empty "verify <stdout>:" block
    assert "none of the 1 keys" not in result.stdout and "<stdout>" not in result.stdout, result.stdout
    assert not project.path(VERIFIED).exists()


def test_update_task_moves_to_a_newer_release(project: Project, tmp_path: Path,
                                              signing_key: SigningKey) -> None:
    assert project.doit().returncode == 0
    newer = tmp_path / "newer.iso"
    newer.write_bytes(os.urandom(1_000_000))
    publish_fcos(project.mirror.root, newer, signing_key, release="44.20260721.3.0",  # type: ignore[attr-defined]
                 base_url=project.mirror.url(""))  # type: ignore[attr-defined]
    quiet = project.doit()
    assert "-- fetch" in quiet.stdout and "-- verify" in quiet.stdout  # no silent moves
    updated = project.doit("update")
    assert updated.returncode == 0, updated.stderr
    assert "now at 44.20260721.3.0 (was 44.20260707.3.1)" in updated.stderr
    rebuilt = project.doit()
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert ".  verify" in rebuilt.stdout
    assert json.loads(project.path("build/fcos/verified.json").read_text())["release"] == "44.20260721.3.0"
    assert project.path(VERIFIED).read_bytes() == newer.read_bytes()


def test_list_is_cheap_and_offline(project: Project) -> None:
    project.mirror.stop()  # type: ignore[attr-defined]
    listed = project.doit("list")
    assert listed.returncode == 0, listed.stderr
    assert "fetch" in listed.stdout and "verify" in listed.stdout and "update" in listed.stdout
    assert textwrap.dedent(listed.stdout).count("\n") == 3
