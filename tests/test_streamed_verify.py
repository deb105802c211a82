"""Issue 15: gpgv checks the signature while fetch downloads the ISO, and verify relies on that
check only while it covers the files as they are (same pinned keys, signature, keyring and ISO)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from tasks import verify as verify_module
from tasks.common import BuildError
from tasks.release import read_recorded
from tasks.verify import StreamedCheck
from tests.fcos_site import FILES, ISO_SIZE, Site, assert_nothing_verified
from tests.signing import SigningKey


@pytest.fixture
def pinned_site(site: Site) -> Site:
    """The site with its signing key pinned in the config, as a real one pins Fedora's."""
    site.fcos = replace(site.fcos, fingerprints=(site.key.fingerprint,))
    return site


def test_the_signature_is_checked_while_downloading_and_verify_reads_no_iso(
        pinned_site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    site = pinned_site
    site.fetch()
    release = read_recorded(FILES.release)
    assert release is not None and release.streamed_check is not None
    assert release.streamed_check["signer"] == site.key.fingerprint
    assert release.streamed_check["sha256"] == release.downloaded_sha256 == release.sha256

    def no_second_check(*args: object) -> None:
        raise AssertionError("verify checked the ISO again")

    monkeypatch.setattr(verify_module, "check_signature", no_second_check)
    stamp = site.verify()
    assert stamp["signer"] == site.key.fingerprint and stamp["sha256"] == release.sha256
    assert FILES.verified_iso.read_bytes() == site.iso.read_bytes()


def test_a_download_changed_afterwards_is_checked_again_and_rejected(pinned_site: Site) -> None:
    site = pinned_site
    site.fetch()
    assert read_recorded(FILES.release).streamed_check is not None  # type: ignore[union-attr]
    with FILES.downloaded_iso.open("r+b") as iso:  # same size, new content and mtime
        iso.seek(ISO_SIZE // 2)
        byte = iso.read(1)
        iso.seek(ISO_SIZE // 2)
        iso.write(bytes([byte[0] ^ 1]))
    with pytest.raises(BuildError, match="BAD signature"):
        site.verify()
    assert_nothing_verified()


def test_other_pinned_keys_are_checked_again(pinned_site: Site, other_key: SigningKey) -> None:
    site = pinned_site
    site.fetch()
    with pytest.raises(BuildError, match="not trusted|none of the 1 keys pinned"):
        site.verify(pinned=(other_key.fingerprint,))
    assert_nothing_verified()


def test_a_bad_signature_while_downloading_gives_no_verdict(site: Site, tmp_path: Path) -> None:
    signature = (site.mirror.root / (site.iso_rel + ".sig")).read_bytes()
    keyring = tmp_path / "keyring.asc"
    keyring.write_bytes(site.key.public_armored)
    check = StreamedCheck(keyring, signature, (site.key.fingerprint,))
    data = site.iso.read_bytes()
    check.feed(data[:1000])
    check.feed(bytes([data[1000] ^ 1]) + data[1001:])
    assert check.finish() is None
    restarted = StreamedCheck(keyring, signature, (site.key.fingerprint,))
    restarted.feed(data[:1000])
    restarted.abandon()  # the download started over: what was fed is not the file
    assert restarted.finish() is None
    whole = StreamedCheck(keyring, signature, (site.key.fingerprint,))
    whole.feed(data)
    good = whole.finish()
    assert good is not None and good.signer == site.key.fingerprint


def test_closing_after_a_lost_wakeup_does_not_hang(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C during a download: the interrupt can land inside the queue's put(), so the writer
    thread is never woken; fetch's `finally: close()` must still return (it hung doit for good)."""
    signature = (site.mirror.root / (site.iso_rel + ".sig")).read_bytes()
    keyring = tmp_path / "keyring.asc"
    keyring.write_bytes(site.key.public_armored)
    check = StreamedCheck(keyring, signature, (site.key.fingerprint,))
    check.feed(site.iso.read_bytes()[:1000])
    time.sleep(0.5)  # the writer has written that and waits on the empty queue
    monkeypatch.setattr(check.queue, "put", lambda *args, **kwargs: None)  # every wakeup lost
    started = time.monotonic()
    check.close()
    assert time.monotonic() - started < 5
    assert check.writer is None and check.process is None
