"""fetch and verify under a real doit, in a throw-away copy of the project (`doit verify`): offline
rebuilds, unrelated config changes, `doit clean`, Ctrl-C and resume, and failures as one line with a
non-zero exit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mirror import Mirror, publish_fcos
from tests.pipeline_project import Project
from tests.signing import SigningKey
from tests.tools import require_tool, ssh_keygen

VERIFIED = Path("build/fcos/fedora-coreos-live.x86_64.iso")


@pytest.fixture
def project(tmp_path: Path, signing_key: SigningKey, iso_bytes: bytes) -> Iterator[Project]:
    require_tool("gpg", "gpgv", "ssh-keygen")
    iso = tmp_path / "fcos.iso"
    iso.write_bytes(iso_bytes)
    with Mirror(tmp_path / "mirror") as mirror:
        project = Project.create(tmp_path / "project", mirror, upstream_iso=iso, key=signing_key)
        project.doit_vars = ("fetch_backoff=0.01", "fetch_attempts=3")
        yield project


def test_offline_and_up_to_date_after_a_verified_fetch(project: Project) -> None:
    first = project.doit("verify")
    assert first.returncode == 0, first.stderr
    assert project.path(VERIFIED).read_bytes() == project.upstream_iso.read_bytes()
    stamp = json.loads(project.path("build/fcos/verified.json").read_text())
    assert stamp["release"] == "44.20260707.3.1"

    project.mirror.stop()
    offline = project.doit("verify")
    assert offline.returncode == 0, offline.stderr
    assert "-- fetch" in offline.stdout and "-- verify" in offline.stdout, offline.stdout

    # SSH keys and k3s settings are no business of fetch/verify.
    ssh_keygen(project.path("keys/second"))
    project.k3s = {"channel": "latest", "disable": ["traefik"]}
    project.write_config()
    changed = project.doit("verify")
    assert changed.returncode == 0, changed.stderr
    assert "-- fetch" in changed.stdout and "-- verify" in changed.stdout, changed.stdout

    cleaned = project.doit("clean")  # the default task's dependencies too: never the download
    assert cleaned.returncode == 0, cleaned.stderr
    assert project.path(VERIFIED).exists() and project.path("build/fcos/download").is_dir()
    again = project.doit("verify")
    assert "-- fetch" in again.stdout and "-- verify" in again.stdout, again.stdout


def test_dropped_twice_then_resumed_under_doit(project: Project) -> None:
    rel = project.published["iso_relpath"]
    project.mirror.drop_after(rel, 1_000_000)
    project.mirror.drop_after(rel, 800_000)
    result = project.doit("verify")
    assert result.returncode == 0, result.stderr
    assert "resuming at byte 1,000,000" in result.stderr and "resuming at byte 1,800,000" in result.stderr
    ranges = [r[2] for r in project.mirror.requests_for(rel)]
    assert ranges == [None, "bytes=1000000-", "bytes=1800000-"]
    assert project.path(VERIFIED).read_bytes() == project.upstream_iso.read_bytes()


def test_ctrl_c_then_rerun_resumes(project: Project) -> None:
    rel = project.published["iso_relpath"]
    project.mirror.stall_after(rel, 1_300_000, seconds=30)
    process = subprocess.Popen(project.argv("verify"), cwd=project.root, env=project.env(), text=True,
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

    rerun = project.doit("verify")
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming at byte 1,300,000" in rerun.stderr
    assert project.mirror.requests_for(rel)[-1][2] == "bytes=1300000-"
    assert project.path(VERIFIED).read_bytes() == project.upstream_iso.read_bytes()


def test_untrusted_signature_fails_with_one_line_and_exit_1(project: Project, other_key: SigningKey) -> None:
    project.fcos["fingerprints"] = [other_key.fingerprint]
    project.write_config()
    result = project.doit("verify")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("‣ error:")]
    assert len(errors) == 1 and "none of the 1 keys pinned in fcos.fingerprints" in errors[0], result.stderr
    # printed once: doit's reporter neither repeats it nor adds an empty "verify <stdout>:" block
    assert "none of the 1 keys" not in result.stdout and "<stdout>" not in result.stdout, result.stdout
    assert not project.path(VERIFIED).exists()


def test_update_task_moves_to_a_newer_release(project: Project, tmp_path: Path,
                                              signing_key: SigningKey) -> None:
    assert project.doit("verify").returncode == 0
    newer = tmp_path / "newer.iso"
    newer.write_bytes(os.urandom(1_000_000))
    publish_fcos(project.mirror.root, newer, signing_key, release="44.20260721.3.0",
                 base_url=project.mirror.url(""))
    quiet = project.doit("verify")
    assert "-- fetch" in quiet.stdout and "-- verify" in quiet.stdout  # no silent moves
    updated = project.doit("update")
    assert updated.returncode == 0, updated.stderr
    assert "now at 44.20260721.3.0 (was 44.20260707.3.1)" in updated.stderr
    rebuilt = project.doit("verify")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert ".  verify" in rebuilt.stdout
    assert json.loads(project.path("build/fcos/verified.json").read_text())["release"] == "44.20260721.3.0"
    assert project.path(VERIFIED).read_bytes() == newer.read_bytes()


def test_list_is_cheap_and_offline(project: Project) -> None:
    project.mirror.stop()
    listed = project.doit("list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == [
        "butane", "embed", "fetch", "inline", "pxe", "render", "smoke", "update", "verify"]
