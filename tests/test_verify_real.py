"""verify's signature check against real signatures: a Fedora 44-signed document (text mode) and
coreos-installer's snake-oil key (binary mode, made by a signing subkey). Fixtures in ../shared."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tasks.verify import VerificationError, check_signature
from tests.tools import require_tool, shared_dir

FEDORA_43 = "C6E7F081CF80E13146676E88829B606631645531"
FEDORA_44 = "36F612DCF27F7D1A48A835E4DBFCF71C6D9F90A6"
SNAKEOIL_PRIMARY = "1A304569BFADFB3E3F96F0C3AA2A69A46EC352FC"
SNAKEOIL_SUBKEY = "FC51AC9FED914ECAD67EDB2A5FBDA8071BF24B78"
PAYLOAD = "Fedora-Cloud-44-1.7-aarch64-CHECKSUM.payload"


@pytest.fixture
def real(tmp_path: Path) -> Path:
    require_tool("gpg", "gpgv")
    signed = shared_dir("fixtures", "real-signature")
    keys = shared_dir("fixtures", "fedora-keys")
    for name in (PAYLOAD, PAYLOAD + ".sig", PAYLOAD + ".asc"):
        shutil.copyfile(signed / name, tmp_path / name)
    shutil.copyfile(keys / "RPM-GPG-KEY-fedora-44-primary.asc", tmp_path / "fedora-44.asc")
    shutil.copyfile(keys / "RPM-GPG-KEY-fedora-43-primary.asc", tmp_path / "fedora-43.asc")
    (tmp_path / "fedora-43-44.asc").write_bytes((keys / "RPM-GPG-KEY-fedora-43-primary.asc").read_bytes()
                                                + (keys / "RPM-GPG-KEY-fedora-44-primary.asc").read_bytes())
    snakeoil = signed / "coreos-installer-snakeoil"
    for name in ("test-key.pub.asc", "test-key.priv.asc", "test-key.priv.asc.sig",
                 "test-key.priv.asc.random.sig", "1M.sig"):
        shutil.copyfile(snakeoil / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize("signature", [".sig", ".asc"], ids=["binary", "armored"])
def test_real_fedora_signature_verifies_with_the_pinned_fedora_44_key(real: Path, signature: str) -> None:
    good, sha256 = check_signature(real / PAYLOAD, real / (PAYLOAD + signature), real / "fedora-44.asc",
                                   (FEDORA_44,))
    assert good.signer == FEDORA_44 and good.digest == "SHA256"
    assert sha256 == "1e411ef2d4430e622b5551d1eff978b8f7ff4037b6108c6c0d0e0b18210fa09d"


def test_text_mode_signature_accepts_crlf_line_endings(real: Path) -> None:
    crlf = real / "crlf.payload"
    crlf.write_bytes((real / PAYLOAD).read_bytes().replace(b"\n", b"\r\n"))
    good, _ = check_signature(crlf, real / (PAYLOAD + ".sig"), real / "fedora-44.asc", (FEDORA_44,))
    assert good.signer == FEDORA_44


def test_real_fedora_signature_rejected_after_one_byte_changes(real: Path) -> None:
    data = bytearray((real / PAYLOAD).read_bytes())
    data[100] ^= 0x20
    (real / PAYLOAD).write_bytes(bytes(data))
    with pytest.raises(VerificationError, match="BAD signature"):
        check_signature(real / PAYLOAD, real / (PAYLOAD + ".sig"), real / "fedora-44.asc", (FEDORA_44,))


def test_real_fedora_signature_rejected_with_only_fedora_43_pinned(real: Path) -> None:
    # Both keys in the keyring, only 43 pinned: being in the keyring is not enough.
    with pytest.raises(VerificationError) as excinfo:
        check_signature(real / PAYLOAD, real / (PAYLOAD + ".sig"), real / "fedora-43-44.asc", (FEDORA_43,))
    assert f"signed by key {FEDORA_44}, which is not trusted" in str(excinfo.value)
    assert "in the keyring as" in str(excinfo.value) and "not pinned" in str(excinfo.value)


def test_real_fedora_signature_rejected_with_only_the_fedora_43_key(real: Path) -> None:
    with pytest.raises(VerificationError, match="not trusted \\(not in the keyring\\)"):
        check_signature(real / PAYLOAD, real / (PAYLOAD + ".sig"), real / "fedora-43.asc", (FEDORA_43,))


def test_subkey_signature_counts_as_its_primary_key(real: Path) -> None:
    good, _ = check_signature(real / "test-key.priv.asc", real / "test-key.priv.asc.sig",
                              real / "test-key.pub.asc", (SNAKEOIL_PRIMARY,))
    assert (good.signer, good.signing_key) == (SNAKEOIL_PRIMARY, SNAKEOIL_SUBKEY)


def test_snakeoil_binary_signature_over_a_mebibyte_of_zeros(real: Path) -> None:
    zeros = real / "1M"
    zeros.write_bytes(bytes(1 << 20))
    check_signature(zeros, real / "1M.sig", real / "test-key.pub.asc", (SNAKEOIL_PRIMARY,))
    zeros.write_bytes(bytes((1 << 20) + 1))
    with pytest.raises(VerificationError, match="BAD signature"):
        check_signature(zeros, real / "1M.sig", real / "test-key.pub.asc", (SNAKEOIL_PRIMARY,))


def test_snakeoil_signature_by_an_unrelated_key(real: Path) -> None:
    with pytest.raises(VerificationError, match="not trusted"):
        check_signature(real / "test-key.priv.asc", real / "test-key.priv.asc.random.sig",
                        real / "test-key.pub.asc", (SNAKEOIL_PRIMARY,))


def test_truncated_data_fails(real: Path) -> None:
    (real / "short").write_bytes((real / "test-key.priv.asc").read_bytes()[:1000])
    with pytest.raises(VerificationError, match="BAD signature"):
        check_signature(real / "short", real / "test-key.priv.asc.sig", real / "test-key.pub.asc",
                        (SNAKEOIL_PRIMARY,))
