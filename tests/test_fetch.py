"""fetch: stream parsing, release resolution, resumable downloads and every bad input, against a
local mirror on 127.0.0.1 with faults injected by the test server.

The `site` fixture (also used by test_verify*.py) runs in a fresh project directory (the build paths
are relative) with a mirror serving a signed 3 MB "ISO".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tasks import fetch as fetch_module
from tasks.common import BuildError
from tasks.download import download
from tasks.fetch import (
    UPSTREAM,
    iso_from_meta,
    iso_from_stream,
    mirrored,
    parse_stream,
    version_key,
)
from tests.fcos_site import FILES, ISO_SIZE, NEWER, POLICY, RELEASE, Site, one_line_error
from tests.mirror import Mirror, publish_fcos
from tests.tools import REPO, sha256_file, shared_dir


def iso_gets(site: Site) -> list[tuple[str, str, str | None]]:
    return [r for r in site.mirror.requests_for(site.iso_rel) if r[0] == "GET"]


# --- pure functions ------------------------------------------------------------------------------------

def test_real_stream_metadata_names_the_live_iso() -> None:
    text = (shared_dir("fixtures", "fcos-stream") / "stable.json").read_bytes()
    doc = parse_stream(text, url="stable.json")
    release = iso_from_stream(doc, stream="stable", architecture="x86_64", url="stable.json")
    assert release.release == "44.20260707.3.1"
    assert release.sha256 == "8ffd0d0fc218eae95c578ec12839fe598d60f96de85fab63d424ad021ed1a62f"
    assert release.iso_name == "fedora-coreos-44.20260707.3.1-live-iso.x86_64.iso"
    assert release.signature == release.location + ".sig"
    assert release.location.startswith(UPSTREAM)
    aarch64 = iso_from_stream(doc, stream="stable", architecture="aarch64", url="stable.json")
    assert aarch64.iso_name.endswith("live-iso.aarch64.iso")


def test_stream_without_the_architecture_or_iso_is_refused() -> None:
    doc = json.loads((shared_dir("fixtures", "fcos-stream") / "stable.json").read_text())
    del doc["architectures"]["s390x"]
    with pytest.raises(BuildError) as excinfo:
        iso_from_stream(doc, stream="stable", architecture="s390x", url="U")
    one_line_error(excinfo, "U has no s390x builds", "aarch64, ppc64le, x86_64")
    del doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["iso"]
    with pytest.raises(BuildError) as excinfo:
        iso_from_stream(doc, stream="stable", architecture="x86_64", url="U")
    one_line_error(excinfo, "no live ISO for x86_64", "metal.formats.iso.disk")


@pytest.mark.parametrize("text", [b"{not json", b"<html>oops</html>", b"[]", b'{"stream": "stable"}'])
def test_malformed_stream_metadata_is_one_line(text: bytes) -> None:
    with pytest.raises(BuildError) as excinfo:
        parse_stream(text, url="http://m/streams/stable.json")
    one_line_error(excinfo, "stream metadata http://m/streams/stable.json")


def test_mirror_replaces_only_the_upstream_prefix() -> None:
    url = UPSTREAM + "prod/streams/stable/builds/1/x86_64/a.iso"
    assert mirrored(url, "http://mirror.lan/fcos") == "http://mirror.lan/fcos/prod/streams/stable/builds/1/x86_64/a.iso"
    assert mirrored(url, "file:///srv/fcos/") == "file:///srv/fcos/prod/streams/stable/builds/1/x86_64/a.iso"
    assert mirrored(url, None) == url
    assert mirrored("https://fedoraproject.org/fedora.gpg", "http://m/") == "https://fedoraproject.org/fedora.gpg"


def test_versions_compare_field_by_field() -> None:
    assert version_key("44.20260721.3.0") > version_key("44.20260707.3.1")
    assert version_key("45.20260101.1.0") > version_key("44.20261231.3.9")


def test_pinned_release_from_build_directory_and_meta_json() -> None:
    meta = json.dumps({"images": {"live-iso": {"path": "custom-name.iso", "sha256": "ab" * 32}}}).encode()
    release = iso_from_meta(meta, stream="stable", release="43.1.2.3", architecture="x86_64")
    assert release.location == UPSTREAM + "prod/streams/stable/builds/43.1.2.3/x86_64/custom-name.iso"
    assert release.sha256 == "ab" * 32 and release.sha256_source == "meta.json"
    bare = iso_from_meta(None, stream="stable", release="43.1.2.3", architecture="x86_64")
    assert bare.iso_name == "fedora-coreos-43.1.2.3-live-iso.x86_64.iso"
    assert bare.sha256 is None and bare.sha256_source == "none"


# --- fetching from the mirror --------------------------------------------------------------------------

def test_fetch_records_the_release_and_downloads_iso_signature_keyring(site: Site) -> None:
    fetched = site.fetch()
    iso, signature = (FILES.downloaded_iso, FILES.downloaded_signature)
    assert iso.read_bytes() == site.iso.read_bytes()
    assert signature.is_file() and FILES.keyring.read_bytes() == site.key.public_armored
    recorded = json.loads(FILES.release.read_text())
    assert recorded["release"] == RELEASE == fetched.release
    assert recorded["downloaded_sha256"] == recorded["sha256"] == site.published["sha256"]
    assert not list(iso.parent.glob("*.part*"))


def test_connection_dropped_twice_then_resumed_byte_identical(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.mirror.drop_after(site.iso_rel, 1_000_000)
    site.mirror.drop_after(site.iso_rel, 700_000)
    site.fetch()
    site.verify()
    assert FILES.verified_iso.read_bytes() == site.iso.read_bytes()
    assert [r[2] for r in iso_gets(site)] == [None, "bytes=1000000-", "bytes=1700000-"]
    log = capsys.readouterr().err
    assert "connection dropped mid-transfer at byte 1,000,000" in log
    assert "resuming at byte 1,000,000" in log and "resuming at byte 1,700,000" in log


def test_restart_after_an_interrupted_run_resumes_the_part(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    # Every attempt of the first run drops: it gives up (as after Ctrl-C), keeping the part.
    site.mirror.drop_after(site.iso_rel, 1_200_000, times=1)
    site.mirror.fail(site.iso_rel, 503, times=2)
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "HTTP 503", "3 attempts", "run doit again to resume")
    part = FILES.downloaded_iso.with_name("fedora-coreos-live.x86_64.iso.part")
    assert part.stat().st_size == 1_200_000
    capsys.readouterr()
    site.fetch()  # a new run: hashes the part on disk, then asks for the rest
    assert iso_gets(site)[-1][2] == "bytes=1200000-"
    assert "resuming at byte 1,200,000" in capsys.readouterr().err
    site.verify()
    assert FILES.verified_iso.read_bytes() == site.iso.read_bytes()


def test_server_ignoring_range_falls_back_to_a_full_download(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.mirror.drop_after(site.iso_rel, 1_000_000)
    site.mirror.ignore_range(site.iso_rel, times=1)
    site.fetch()
    site.verify()
    assert FILES.verified_iso.read_bytes() == site.iso.read_bytes()
    assert "ignored the Range request; downloading from the start" in capsys.readouterr().err


def test_part_of_another_release_is_not_resumed(site: Site) -> None:
    iso, _ = (FILES.downloaded_iso, FILES.downloaded_signature)
    iso.parent.mkdir(parents=True)
    part = iso.with_name(iso.name + ".part")
    part.write_bytes(b"x" * 500_000)
    part.with_name(part.name + ".source").write_text(json.dumps({"identity": "something else"}))
    site.fetch()
    assert [r[2] for r in iso_gets(site)] == [None]
    assert iso.read_bytes() == site.iso.read_bytes()


def test_transient_5xx_is_retried(site: Site) -> None:
    site.mirror.fail("streams/stable.json", 503, times=2)
    site.mirror.fail(site.iso_rel, 500, times=1)
    site.fetch()
    assert len(site.mirror.requests_for("streams/stable.json")) == 3


def test_fetch_is_offline_once_downloaded(site: Site) -> None:
    site.fetch()
    site.mirror.stop()
    fetched = site.fetch()  # e.g. after a config slice change: nothing to download
    assert fetched.release == RELEASE


def test_loading_the_tasks_does_not_import_the_http_client() -> None:
    """Every doit command imports dodo.py; only fetch needs requests (about 80 ms to import)."""
    check = "import sys, dodo; print(sorted(m for m in ('requests', 'urllib3') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --- bad input: one line, non-zero, nothing unverified where the build looks -----------------------------

def test_iso_404(site: Site) -> None:
    (site.mirror.root / site.iso_rel).unlink()
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "not found: HTTP 404", site.iso_rel)
    assert not FILES.downloaded_iso.exists()


def test_iso_5xx_after_retries(site: Site) -> None:
    site.mirror.fail(site.iso_rel, 503, times=None)
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "HTTP 503", "3 attempts")
    assert len(iso_gets(site)) == POLICY.attempts
    assert not FILES.downloaded_iso.exists()


def test_html_page_instead_of_the_iso(site: Site) -> None:
    site.mirror.serve_html(site.iso_rel)
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "served an HTML page instead of the file")
    assert not FILES.downloaded_iso.exists()


def test_truncated_download_gives_up_and_keeps_the_part(site: Site) -> None:
    site.mirror.drop_after(site.iso_rel, 0, times=None)  # drops every time, before any body byte
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "connection dropped mid-transfer", "3 attempts")
    assert not FILES.downloaded_iso.exists()


def test_truncated_file_on_the_mirror_is_a_sha256_mismatch(site: Site) -> None:
    mirror_iso = site.mirror.root / site.iso_rel
    data = mirror_iso.read_bytes()
    mirror_iso.unlink()  # it is a hard link to the pristine file: replace it, do not write through
    mirror_iso.write_bytes(data[:-4096])
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "sha256 mismatch", "moved aside to build/fcos/rejected/REJECTED-")
    assert not FILES.downloaded_iso.exists()
    assert sorted(p.name for p in Path("build/fcos/rejected").iterdir()) == [
        "REASON.txt", f"REJECTED-fedora-coreos-{RELEASE}-live-iso.x86_64.iso"]
    assert "sha256 mismatch" in Path("build/fcos/rejected/REASON.txt").read_text()


def test_missing_signature_file(site: Site) -> None:
    (site.mirror.root / (site.iso_rel + ".sig")).unlink()
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "ISO signature not found: HTTP 404", ".iso.sig")
    assert not iso_gets(site)  # the 800 MB ISO is not even started
    assert not FILES.downloaded_iso.exists()


def test_html_page_instead_of_the_signature(site: Site) -> None:
    site.mirror.serve_html(site.iso_rel + ".sig")
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "is not an OpenPGP signature")


@pytest.mark.parametrize("change", ["no-arch", "no-iso", "malformed"])
def test_bad_stream_metadata_from_the_mirror(site: Site, change: str) -> None:
    stream = site.mirror.root / "streams" / "stable.json"
    doc = json.loads(stream.read_text())
    if change == "no-arch":
        doc["architectures"] = {"aarch64": doc["architectures"]["x86_64"]}
        expected = "has no x86_64 builds (it lists: aarch64)"
    elif change == "no-iso":
        del doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["iso"]
        expected = "has no live ISO for x86_64"
    stream.write_text(json.dumps(doc)[:-20] if change == "malformed" else json.dumps(doc))
    if change == "malformed":
        expected = "is not valid JSON"
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "stream metadata http://127.0.0.1", expected)
    assert not iso_gets(site)


def test_unreachable_keyring(site: Site) -> None:
    with Mirror(site.project.parent / "gone") as gone:
        url = gone.url("keys/fedora.asc")
    site.fcos = replace(site.fcos, keyring=url)  # that port is closed now
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "keyring (fcos.keyring): connection refused from " + url, "3 attempts")
    assert not iso_gets(site)


def test_keyring_that_is_not_a_keyring(site: Site) -> None:
    site.mirror.serve_html("keys/test.asc")
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "holds no OpenPGP public keys")


def test_disk_full_while_writing_is_one_line(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC by monkeypatching the chunk writer (test_disk_full_on_a_tiny_tmpfs uses a real one)."""
    import errno

    from tasks import download as download_module

    real_write = download_module._write
    written = {"bytes": 0}

    def write_until_full(file: Any, chunk: bytes, state: Any, part: Path) -> None:
        if written["bytes"] + len(chunk) > 1_500_000:
            raise download_module.disk_error(OSError(errno.ENOSPC, "No space left on device"), part)
        written["bytes"] += len(chunk)
        real_write(file, chunk, state, part)

    monkeypatch.setattr(download_module, "_write", write_until_full)
    with pytest.raises(BuildError) as excinfo:
        site.fetch()
    one_line_error(excinfo, "disk full while writing build/fcos/download/fedora-coreos-live.x86_64.iso.part",
                   "the download resumes")
    assert not FILES.downloaded_iso.exists()
    monkeypatch.setattr(download_module, "_write", real_write)
    site.fetch()  # space freed: resumes and completes
    assert iso_gets(site)[-1][2] is not None


def test_disk_full_on_a_tiny_tmpfs(site: Site, tmp_path: Path) -> None:
    """A real ENOSPC: a 1 MiB tmpfs (needs root and mount; skipped, saying why, where impossible)."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("needs root and mount(8) for a tmpfs")
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", os.fspath(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not privileged)")
    try:
        with pytest.raises(BuildError) as excinfo:
            download(site.mirror.url(site.iso_rel), small / "live.iso.part", what="ISO", policy=POLICY,
                     progress=False)
        one_line_error(excinfo, f"disk full while writing {small}/live.iso.part", "free some space")
    finally:
        subprocess.run(["umount", os.fspath(small)], check=True)


# --- which release ---------------------------------------------------------------------------------------

def newer_iso(site: Site, tmp_path: Path) -> Path:
    newer = tmp_path / "newer.iso"
    newer.write_bytes(os.urandom(ISO_SIZE // 2))
    return newer


def test_recorded_release_is_kept_and_update_moves_to_a_newer_one(site: Site, tmp_path: Path) -> None:
    site.fetch()
    site.verify()
    newer = newer_iso(site, tmp_path)
    site.publish(newer, release=NEWER)  # the stream moves on
    assert site.fetch().release == RELEASE  # a plain fetch keeps what it recorded
    fetch_module.update(site.fcos, FILES, POLICY)  # `doit update`
    assert json.loads(FILES.release.read_text())["release"] == NEWER
    assert FILES.downloaded_iso.read_bytes() == newer.read_bytes()
    assert json.loads(FILES.verified_stamp.read_text())["release"] == RELEASE  # not verified yet
    site.verify()
    assert json.loads(FILES.verified_stamp.read_text())["release"] == NEWER
    assert FILES.verified_iso.read_bytes() == newer.read_bytes()


def test_update_without_a_newer_release_downloads_nothing(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    site.fetch()
    fetch_module.update(site.fcos, FILES, POLICY)
    assert len(iso_gets(site)) == 1
    assert "already at the stream's latest release" in capsys.readouterr().err


def test_pin_to_a_release_the_stream_no_longer_lists(site: Site, tmp_path: Path) -> None:
    older = site.iso
    site.publish(newer_iso(site, tmp_path), release=NEWER)  # stream now at NEWER, RELEASE still on disk
    site.fcos = replace(site.fcos, release=RELEASE)
    fetched = site.fetch()
    assert (fetched.release, fetched.sha256_source) == (RELEASE, "meta.json")
    site.verify()
    assert FILES.verified_iso.read_bytes() == older.read_bytes()


def test_pin_without_meta_json_relies_on_the_signature(site: Site, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    (site.mirror.root / site.iso_rel).with_name("meta.json").unlink()
    site.publish(newer_iso(site, tmp_path), release=NEWER)
    site.fcos = replace(site.fcos, release=RELEASE)
    fetched = site.fetch()
    assert fetched.sha256 is None and fetched.sha256_source == "none"
    stamp = site.verify()
    assert stamp["sha256"] == sha256_file(site.iso) and stamp["sha256_source"] == "none"
    assert "signature alone" in capsys.readouterr().err


# --- mirrors -----------------------------------------------------------------------------------------------

def test_fcos_mirror_rewrites_stream_and_artifact_urls(site: Site) -> None:
    """The tree says https://builds.coreos.fedoraproject.org/...; fcos.mirror points it all at 127.0.0.1."""
    published = site.publish(site.iso, base_url=UPSTREAM)
    site.fcos = replace(site.fcos, stream_url=published["stream_url"], mirror=site.mirror.url(""))
    site.fetch()
    site.verify()
    assert site.mirror.requests_for("streams/stable.json")
    assert iso_gets(site)


def test_file_urls_for_stream_iso_signature_and_keyring(site: Site, tmp_path: Path) -> None:
    tree = tmp_path / "usb-stick"
    published = publish_fcos(tree, site.iso, site.key, base_url=UPSTREAM)
    site.fcos = replace(site.fcos, stream_url=published["stream_url"], mirror=tree.as_uri() + "/",
                         keyring=(tree / "keys" / "test.asc").as_uri())
    site.mirror.stop()
    site.fetch()
    site.verify()
    assert FILES.verified_iso.read_bytes() == site.iso.read_bytes()


def test_local_keyring_path(site: Site, tmp_path: Path) -> None:
    keyring = Path("keyring.asc")
    keyring.write_bytes(site.key.public_armored)
    site.fcos = replace(site.fcos, keyring=os.fspath(keyring))
    site.fetch()
    assert FILES.keyring.read_bytes() == site.key.public_armored


def test_a_complete_part_left_before_the_rename_is_not_downloaded_again(site: Site) -> None:
    iso, _ = (FILES.downloaded_iso, FILES.downloaded_signature)
    iso.parent.mkdir(parents=True)
    part = iso.with_name(iso.name + ".part")
    part.write_bytes(site.iso.read_bytes())  # killed right after the last byte, before the rename
    identity = f"{site.published['iso_url']} {site.published['sha256']}"
    part.with_name(part.name + ".source").write_text(json.dumps({"identity": identity}))
    site.fetch()
    assert [r[2] for r in iso_gets(site)] == [f"bytes={ISO_SIZE}-"]  # answered 416: nothing left
    assert iso.read_bytes() == site.iso.read_bytes()


def test_progress_bar_on_a_terminal(site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    done = download(site.mirror.url(site.iso_rel), Path("iso.part"), what="ISO", policy=POLICY, progress=True)
    assert done.size == ISO_SIZE and done.sha256 == site.published["sha256"]
    assert "ISO: 100%" in capsys.readouterr().err  # tqdm's bar, not the plain quarter lines
