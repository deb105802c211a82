"""verify: sha256 and pinned-key signature checks on what fetch downloaded; publishing and rejecting."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.common import BuildError, FcosFiles
from tasks.verify import good_signature, parse_key_listing, trusted_keys, verify
from tests.fcos_site import FILES, ISO_SIZE, NEWER, POLICY, RELEASE, Site, assert_nothing_verified, one_line_error
from tests.mirror import publish_fcos
from tests.signing import SigningKey
from tests.tools import REPO


def rejected_files() -> list[str]:
    directory = Path("build/fcos/rejected")
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.mark.parametrize("armor", [False, True], ids=["binary", "armored"])
@pytest.mark.parametrize("textmode", [False, True], ids=["binary-mode", "text-mode"])
def test_every_signature_form_verifies(site: Site, armor: bool, textmode: bool) -> None:
    site.publish(site.iso, armor=armor, textmode=textmode)
    site.fetch()
    stamp = site.verify()
    assert FILES.verified_iso.read_bytes() == site.iso.read_bytes()
    assert json.loads(FILES.verified_stamp.read_text()) == stamp
    assert stamp["signer"] == site.key.fingerprint
    assert stamp["iso_name"] == f"fedora-coreos-{RELEASE}-live-iso.x86_64.iso"
    assert {"release", "stream", "architecture", "sha256", "iso_name", "signer"} <= set(stamp)
    # The verified ISO is the download itself (a hard link): no second 800 MB copy.
    assert os.path.samefile(FILES.verified_iso, FILES.downloaded_iso)


def test_verified_paths_are_static() -> None:
    from tasks.config import parse

    config = parse({"fcos": {"architecture": "aarch64"}}, "c.jsonnet")
    files = FcosFiles(config.fcos.architecture)
    assert (files.verified_iso, files.verified_stamp) == (Path("build/fcos/fedora-coreos-live.aarch64.iso"),
                                      Path("build/fcos/verified.json"))


def test_bad_signature_is_rejected_and_moved_aside(site: Site, tmp_path: Path) -> None:
    good_sig = (site.mirror.root / (site.iso_rel + ".sig")).read_bytes()
    tampered = tmp_path / "tampered.iso"
    data = bytearray(site.iso.read_bytes())
    data[ISO_SIZE // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    site.publish(tampered)  # stream sha256 matches the tampered file...
    (site.mirror.root / (site.iso_rel + ".sig")).write_bytes(good_sig)  # ...the signature does not
    site.fetch()
    with pytest.raises(BuildError) as excinfo:
        site.verify()
    one_line_error(excinfo, "BAD signature", "moved aside to build/fcos/rejected/REJECTED-fedora-coreos-")
    assert_nothing_verified()
    assert not FILES.downloaded_iso.exists()  # so the next fetch downloads afresh
    assert f"REJECTED-fedora-coreos-{RELEASE}-live-iso.x86_64.iso" in rejected_files()


def test_signature_by_a_key_in_the_keyring_but_not_pinned(site: Site, other_key: SigningKey) -> None:
    site.publish(site.iso, key=other_key)
    (site.mirror.root / "keys" / "test.asc").write_bytes(site.key.public_armored + other_key.public_armored)
    site.fetch()
    with pytest.raises(BuildError) as excinfo:
        site.verify(pinned=(site.key.fingerprint,))
    one_line_error(excinfo, f"signed by key {other_key.fingerprint}", "which is not trusted",
                   "in the keyring as", "but not pinned in fcos.fingerprints")
    assert_nothing_verified()


def test_signature_by_a_key_not_in_the_keyring(site: Site, other_key: SigningKey) -> None:
    site.publish(site.iso, key=other_key)
    (site.mirror.root / "keys" / "test.asc").write_bytes(site.key.public_armored)
    site.fetch()
    with pytest.raises(BuildError) as excinfo:
        site.verify(pinned=(site.key.fingerprint, other_key.fingerprint))
    one_line_error(excinfo, "which is not trusted (not in the keyring)")
    assert_nothing_verified()


def test_keyring_without_any_pinned_key(site: Site, other_key: SigningKey) -> None:
    site.fetch()
    with pytest.raises(BuildError) as excinfo:
        site.verify(pinned=(other_key.fingerprint,))
    one_line_error(excinfo, "none of the 1 keys pinned in fcos.fingerprints is in the keyring "
                            "build/fcos/keyring.asc")
    assert_nothing_verified()


def test_sha256_mismatch_with_the_recorded_metadata(site: Site) -> None:
    site.fetch()
    recorded = json.loads(FILES.release.read_text())
    recorded["sha256"] = "0" * 64
    FILES.release.write_text(json.dumps(recorded))
    with pytest.raises(BuildError) as excinfo:
        site.verify()
    one_line_error(excinfo, "sha256 mismatch", "moved aside")
    assert_nothing_verified()


def test_signature_file_that_is_not_a_signature(site: Site) -> None:
    site.fetch()
    FILES.downloaded_signature.write_bytes(b"\x89garbage that is no OpenPGP packet")
    with pytest.raises(BuildError) as excinfo:
        site.verify()
    one_line_error(excinfo, ".sig")
    assert_nothing_verified()


def test_a_failed_check_never_replaces_the_verified_iso(site: Site, tmp_path: Path,
                                                        other_key: SigningKey) -> None:
    site.fetch()
    first = site.verify()
    newer = tmp_path / "newer.iso"
    newer.write_bytes(os.urandom(ISO_SIZE // 3))
    site.publish(newer, release=NEWER, key=other_key)  # a newer release signed by an untrusted key
    (site.mirror.root / "keys" / "test.asc").write_bytes(site.key.public_armored)
    from tasks.fetch import update

    update(site.fcos, FILES, POLICY)
    with pytest.raises(BuildError):
        site.verify()
    assert FILES.verified_iso.read_bytes() == site.iso.read_bytes()
    assert json.loads(FILES.verified_stamp.read_text()) == first


def test_action_turns_failures_into_task_failed(site: Site, other_key: SigningKey) -> None:
    from doit.exceptions import TaskFailed

    site.fetch()
    result = verify(FILES, (other_key.fingerprint,))
    assert isinstance(result, TaskFailed)
    assert "none of the 1 keys pinned" in str(result)


# --- pure parsing ----------------------------------------------------------------------------------------

LISTING = """\
tru::1:1700000000:0:3:1:5
pub:-:3072:1:AA2A69A46EC352FC:1632500000:::-:::scSC::::::23::0:
fpr:::::::::1A304569BFADFB3E3F96F0C3AA2A69A46EC352FC:
uid:-::::1632500000::X::coreos-installer snake oil key <coreos-installer@example.com>::::::::::0:
sub:-:3072:1:5FBDA8071BF24B78:1632500000::::::s::::::23:
fpr:::::::::FC51AC9FED914ECAD67EDB2A5FBDA8071BF24B78:
pub:-:4096:1:DBFCF71C6D9F90A6:1736812800:::-:::scSC::::::23::0:
fpr:::::::::36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6:
uid:-::::1736812800::Y::Fedora (44) <fedora-44-primary@fedoraproject.org>::::::::::0:
"""


def test_key_listing_and_pinning_by_primary_or_subkey() -> None:
    keys = parse_key_listing(LISTING)
    assert [key.primary for key in keys] == ["1A304569BFADFB3E3F96F0C3AA2A69A46EC352FC",
                                            "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6"]
    assert keys[0].fingerprints[1] == "FC51AC9FED914ECAD67EDB2A5FBDA8071BF24B78"
    assert keys[1].uid.startswith("Fedora (44)")
    assert trusted_keys(keys, ["36f612dcf27f7d1a48a835e4dbfcf71c6d9f90a6"]) == [keys[1]]
    assert trusted_keys(keys, ["FC51AC9FED914ECAD67EDB2A5FBDA8071BF24B78"]) == [keys[0]]
    assert trusted_keys(keys, ["C6E7F081CF80E13146676E88829B606631645531"]) == []


def validsig(key: str, primary: str, digest: int) -> str:
    return (f"[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG {key[-16:]} someone\n"
            f"[GNUPG:] VALIDSIG {key} 2026-04-24 1777000000 0 4 0 1 {digest} 00 {primary}\n")


def test_validsig_must_name_a_pinned_key_and_a_strong_digest() -> None:
    sub, primary = "FC51AC9FED914ECAD67EDB2A5FBDA8071BF24B78", "1A304569BFADFB3E3F96F0C3AA2A69A46EC352FC"
    good = good_signature(validsig(sub, primary, 8), [primary])
    assert good is not None and (good.signer, good.signing_key, good.digest) == (primary, sub, "SHA256")
    assert good_signature(validsig(sub, primary, 10), [primary]) is not None
    assert good_signature(validsig(sub, primary, 2), [primary]) is None  # SHA-1
    assert good_signature(validsig(sub, primary, 8), ["36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6"]) is None
    assert good_signature("[GNUPG:] BADSIG 5FBDA8071BF24B78 x\n", [primary]) is None


def test_a_fresh_publish_lays_out_the_real_tree(tmp_path: Path, signing_key: SigningKey) -> None:
    iso = tmp_path / "a.iso"
    iso.write_bytes(b"\0" * 4096)
    published = publish_fcos(tmp_path / "tree", iso, signing_key, base_url="http://example.test/")
    assert published["iso_url"] == ("http://example.test/prod/streams/stable/builds/44.20260707.3.1/x86_64/"
                                    "fedora-coreos-44.20260707.3.1-live-iso.x86_64.iso")
    doc = json.loads((tmp_path / "tree/streams/stable.json").read_text())
    disk = doc["architectures"]["x86_64"]["artifacts"]["metal"]["formats"]["iso"]["disk"]
    assert disk["location"] == published["iso_url"] and disk["signature"] == published["sig_url"]


# --- issue 12: a tool failure is a tool failure; no temporary files pile up --------------------------

def fake_gpg(directory: Path, failing_option: str) -> Path:
    """A gpg on PATH that fails (exit 2) when given `failing_option`, and is the real gpg otherwise."""
    real = shutil.which("gpg")
    assert real
    directory.mkdir()
    script = directory / "gpg"
    script.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = {failing_option} ] && '
                      f'{{ echo "gpg: {failing_option} broke" >&2; exit 2; }}; done\nexec {real} "$@"\n')
    script.chmod(0o755)
    return directory


def test_failing_gpg_export_is_a_tool_failure_and_keeps_the_download(
        site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site.fetch()
    monkeypatch.setenv("PATH", f"{fake_gpg(tmp_path / 'bin', '--export')}:{os.environ['PATH']}")
    with pytest.raises(BuildError) as excinfo:
        site.verify()
    one_line_error(excinfo, "--export", "exited 2", "gpg: --export broke")
    assert "not trusted" not in excinfo.value.line
    assert FILES.downloaded_iso.read_bytes() == site.iso.read_bytes()  # kept: nothing was wrong with it
    assert rejected_files() == []
    assert_nothing_verified()


KILLED_PUBLISH = """
import os, shutil, signal, sys
from tasks import verify
from tests.fcos_site import FILES

def no_hard_links(*args, **kwargs):
    raise OSError(18, "Invalid cross-device link")

def copy_then_die(source, target, **kwargs):
    with open(target, "wb") as partial:
        partial.write(b"x" * 100_000)
    os.kill(os.getpid(), signal.SIGKILL)  # no `finally` runs: what a kill -9 or an OOM kill leaves

os.link, shutil.copyfile = no_hard_links, copy_then_die
verify.verify_release(FILES, (sys.argv[1],))
"""


def test_killed_publishes_leave_one_temporary_file_at_most(site: Site) -> None:
    site.fetch()
    env = dict(os.environ, PYTHONPATH=os.fspath(REPO))
    for _ in range(3):  # each run has another pid
        killed = subprocess.run([sys.executable, "-c", KILLED_PUBLISH, site.key.fingerprint], env=env,
                                capture_output=True, text=True, timeout=60)
        assert killed.returncode == -9, killed.stderr
    leftovers = [path.name for path in FILES.verified_iso.parent.iterdir() if path.name.endswith(".part")]
    assert len(leftovers) <= 1, leftovers
    site.verify()
    assert FILES.verified_iso.read_bytes() == site.iso.read_bytes()
    assert not [path for path in FILES.verified_iso.parent.iterdir() if path.name.endswith(".part")]
