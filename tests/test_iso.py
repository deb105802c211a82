"""tasks.iso on synthetic FCOS ISOs: library, CLI, output modes, network keyfiles, error handling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tasks import iso
from tasks.common import BuildError
from tasks.iso import iso9660
from tests.synthetic_iso import DEFAULT_KARGS, build_fcos_iso
from tests.tools import REPO, sha256_file

CONFIG = b'{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core"}]}}\n'



def cli(*args: str | Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "tasks.iso", *map(str, args)],
        input=stdin,
        capture_output=True,
        cwd=REPO,
        timeout=60,
    )


# ---------------------------------------------------------------------------------------------- cpio


def test_cpio_matches_the_worked_example() -> None:
    """shared/reference/iso-embed.md §3.5: 284-byte newc, 148-byte xz."""
    config = b'{"ignition":{"version":"3.3.0"}}\n'
    archive = iso.encode_cpio({"config.ign": config})
    assert len(archive) == 284
    assert archive[:110] == (
        b"070701" + b"00000000" + b"00008180" + b"00000000" * 2 + b"00000001" + b"00000000" + b"00000021"
        + b"00000000" * 4 + b"0000000b" + b"00000000"
    )
    assert archive[110:124] == b"config.ign\0\0\0\0"
    assert archive[270:284] == b"TRAILER!!!\0\0\0\0"
    compressed = iso.compress_initrd({"config.ign": config})
    assert len(compressed) == 148 and compressed[:8] == bytes.fromhex("fd377a585a000001")


def test_cpio_directories_and_inode_numbers() -> None:
    members = {"config.ign": b"{}", f"{iso.NETWORK_DIR}/eth0.nmconnection": b"[connection]\n"}
    archive = iso.encode_cpio(members)
    names = []
    position = 0
    while True:
        header = archive[position : position + 110]
        ino, mode, size, namesize = (int(header[6 + 8 * i : 14 + 8 * i], 16) for i in (0, 1, 6, 11))
        name = archive[position + 110 : position + 110 + namesize - 1].decode()
        names.append((ino, oct(mode), name))
        position += 110 + namesize + (-(110 + namesize) % 4)
        position += size + (-size % 4)
        if name == "TRAILER!!!":
            break
    assert names == [
        (0, "0o100600", "config.ign"),
        (1, "0o40755", "etc"),
        (2, "0o40755", "etc/coreos-firstboot-network"),
        (3, "0o100600", "etc/coreos-firstboot-network/eth0.nmconnection"),
        (0, "0o0", "TRAILER!!!"),
    ]
    assert iso.decode_initrd(iso.compress_initrd(members) + bytes(100)) == members


def test_decode_accepts_gzip_and_rejects_trailing_garbage() -> None:
    import gzip
    import lzma

    archive = iso.encode_cpio({"config.ign": b"{}"})
    assert iso.decode_initrd(gzip.compress(archive) + bytes(16)) == {"config.ign": b"{}"}
    assert iso.decode_initrd(archive + bytes(8)) == {"config.ign": b"{}"}
    with pytest.raises(BuildError, match="^found trailing garbage inside compressed archive$"):
        iso.decode_initrd(lzma.compress(archive + b"junk", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32))


# ------------------------------------------------------------------------------------------- library


def test_synthetic_iso_layout(fcos_iso: Path) -> None:
    live = iso.read_live_iso(fcos_iso)
    assert live.volume.volume_id == "fedora-coreos-44.20260707.3.1"
    assert live.ignition_area.length == 256 * 1024
    assert live.initrd == {}
    assert live.kargs_layout is not None and live.kargs_layout.default == DEFAULT_KARGS
    assert len(live.kargs_layout.areas) == 2
    assert live.features["live-initrd-network"] is True
    assert iso.show_kargs(fcos_iso) == DEFAULT_KARGS


def test_iso9660_plain_names_only(fcos_iso: Path) -> None:
    fd = os.open(fcos_iso, os.O_RDONLY)
    try:
        volume = iso9660.open_volume(fd)
        assert iso9660.lookup(fd, volume, "/images/../COREOS/./IGNINFO.JSO").length == 36
        assert iso9660.lookup(fd, volume, "IMAGES/PXEBOOT/VMLINUZ").length > 0
        with pytest.raises(iso9660.NotFoundError):
            iso9660.lookup(fd, volume, "coreos/igninfo.json")  # Rock Ridge names are ignored
        with pytest.raises(iso9660.NotFoundError):
            iso9660.lookup(fd, volume, "ZIPL.PRM/X")
    finally:
        os.close(fd)


def test_embed_to_output_refuses_to_overwrite(fcos_iso: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.iso"
    output.write_bytes(b"precious")
    with pytest.raises(BuildError, match="already exists"):
        iso.embed_ignition(fcos_iso, CONFIG, output=output)
    assert output.read_bytes() == b"precious"
    iso.embed_ignition(fcos_iso, CONFIG, output=output, overwrite_output=True)
    assert iso.show_ignition(output) == CONFIG
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")], "temporary file left"


def test_in_place_equals_output_mode(fcos_iso: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.iso"
    iso.embed_ignition(fcos_iso, CONFIG, output=output)
    iso.modify_kargs(output, append=["console=ttyS0"])
    iso.embed_ignition(fcos_iso, CONFIG)
    iso.modify_kargs(fcos_iso, append=["console=ttyS0"])
    assert sha256_file(output) == sha256_file(fcos_iso)


def test_network_keyfiles_kept_beside_ignition(fcos_iso: Path, tmp_path: Path) -> None:
    original = sha256_file(fcos_iso)
    keyfile = tmp_path / "eth0.nmconnection"
    keyfile.write_bytes(b"[connection]\nid=eth0\n[ipv4]\nmethod=manual\naddress1=10.0.0.5/24,10.0.0.1\n")
    iso.embed_network(fcos_iso, [keyfile])
    with pytest.raises(BuildError, match=r"already has embedded network settings; use -f to force\.$"):
        iso.embed_network(fcos_iso, [keyfile])
    iso.embed_ignition(fcos_iso, CONFIG)  # keyfiles don't count as an Ignition config
    assert iso.extract_network(fcos_iso) == {"eth0.nmconnection": keyfile.read_bytes()}
    iso.remove_ignition(fcos_iso)
    assert iso.extract_network(fcos_iso) == {"eth0.nmconnection": keyfile.read_bytes()}
    iso.embed_network(fcos_iso, [keyfile], force=True)
    iso.remove_network(fcos_iso)
    assert sha256_file(fcos_iso) == original
    with pytest.raises(BuildError, match=r"^No embedded network settings\.$"):
        iso.extract_network(fcos_iso)


def test_kargs_edit_semantics() -> None:
    base = "a b=1 c b=1"
    assert iso.edit_kargs(base, delete=["b=1"]) == "a c"
    assert iso.edit_kargs(base, append=[" d "], delete=["a"]) == "b=1 c b=1 d"
    assert iso.edit_kargs(base, replace=["b=1=2"]) == "a b=2 c b=2"
    with pytest.raises(BuildError, match="^Wrong input, format should be: KEY=OLD=NEW$"):
        iso.edit_kargs(base, replace=["b=1"])


def test_kargs_areas_disagree(fcos_iso: Path) -> None:
    live = iso.read_live_iso(fcos_iso)
    assert live.kargs_layout is not None
    second = live.kargs_layout.areas[1].offset
    with open(fcos_iso, "r+b") as handle:
        handle.seek(second)
        handle.write(b"other\n")
    disagree = r"^kargs don't match at all offsets! \(expected '.*', but offset "
    with pytest.raises(BuildError, match=disagree):
        iso.show_kargs(fcos_iso)


def test_not_an_iso_and_incomplete(tmp_path: Path, fcos_iso: Path) -> None:
    junk = tmp_path / "junk.iso"
    junk.write_bytes(bytes(64 * 1024))
    with pytest.raises(BuildError, match="parsing ISO9660 image"):
        iso.show_ignition(junk)
    truncated = tmp_path / "truncated.iso"
    truncated.write_bytes(fcos_iso.read_bytes()[:200 * 1024])
    with pytest.raises(BuildError, match="^ISO image is incomplete$"):
        iso.show_ignition(truncated)


def test_unrecognized_without_embed_area(tmp_path: Path) -> None:
    import pycdlib

    plain = tmp_path / "plain.iso"
    image = pycdlib.PyCdlib()
    image.new()
    image.add_fp(__import__("io").BytesIO(b"hi"), 2, "/README.;1")
    image.write(str(plain))
    image.close()
    with pytest.raises(BuildError) as error:
        iso.show_ignition(plain)
    assert error.value.message == "Unrecognized CoreOS ISO image."
    assert "finding initrd embed area" in (error.value.hint or "")


def test_copy_file(tmp_path: Path, fcos_iso: Path) -> None:
    copy = tmp_path / "copy.iso"
    iso.copy_file(fcos_iso, copy)
    assert sha256_file(copy) == sha256_file(fcos_iso)


def test_padded_iso_is_sparse_friendly(tmp_path: Path) -> None:
    big = tmp_path / "big.iso"
    build_fcos_iso(big, pad_to=64 * 1024 * 1024)
    assert abs(big.stat().st_size - 64 * 1024 * 1024) < 1024 * 1024
    iso.embed_ignition(big, CONFIG)
    assert iso.show_ignition(big) == CONFIG


# ----------------------------------------------------------------------------------------------- CLI


def test_cli_round_trip(fcos_iso: Path, tmp_path: Path) -> None:
    original = sha256_file(fcos_iso)
    config_file = tmp_path / "config.ign"
    config_file.write_bytes(CONFIG)
    output = tmp_path / "custom.iso"
    result = cli("ignition", "embed", "-i", config_file, "-o", output, fcos_iso)
    assert result.returncode == 0, result.stderr
    assert cli("ignition", "show", output).stdout == CONFIG

    result = cli("ignition", "embed", output, stdin=b"{}")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        "Error: This ISO image already has an embedded Ignition config; use -f to force.\n"
    )
    assert cli("ignition", "embed", "-f", output, stdin=b"{}").returncode == 0
    assert cli("ignition", "show", output).stdout == b"{}"

    modified = cli("kargs", "modify", "-a", "console=ttyS0", "-d", "mitigations=auto,nosmt", output)
    assert modified.returncode == 0
    shown = cli("kargs", "show", output).stdout.decode()
    assert shown == DEFAULT_KARGS.replace("mitigations=auto,nosmt ", "") + " console=ttyS0\n"
    assert cli("kargs", "show", "-d", output).stdout.decode() == DEFAULT_KARGS + "\n"
    assert cli("kargs", "reset", output).returncode == 0
    assert cli("ignition", "remove", output).returncode == 0
    assert sha256_file(output) == original

    streamed = tmp_path / "streamed.iso"
    with open(streamed, "wb") as handle:
        subprocess.run([sys.executable, "-m", "tasks.iso", "ignition", "embed", "-o", "-", str(fcos_iso)],
                       input=CONFIG, stdout=handle, cwd=REPO, check=True, timeout=60)
    iso.embed_ignition(fcos_iso, CONFIG)
    assert sha256_file(streamed) == sha256_file(fcos_iso)


def test_cli_errors_are_one_line(tmp_path: Path, fcos_iso: Path) -> None:
    missing = cli("ignition", "show", tmp_path / "nope.iso")
    assert missing.returncode == 1 and missing.stderr.decode().startswith("Error: opening ")
    assert b"Traceback" not in missing.stderr
    result = cli("ignition", "show", fcos_iso)
    assert (result.returncode, result.stderr) == (1, b"Error: No embedded Ignition config.\n")
    big = tmp_path / "big.ign"
    big.write_bytes(os.urandom(300 * 1024))
    result = cli("ignition", "embed", "-i", big, fcos_iso)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1 and lines[0].startswith("Error: Compressed initramfs is too large: ")
    assert "config.ign" in lines[1]


def test_cli_network(fcos_iso: Path, tmp_path: Path) -> None:
    keyfile = tmp_path / "static.nmconnection"
    keyfile.write_text("[connection]\nid=static\n")
    assert cli("network", "embed", "-k", keyfile, fcos_iso).returncode == 0
    assert cli("network", "extract", fcos_iso).stdout == b"########## static.nmconnection ##########\n" + (
        keyfile.read_bytes()
    )
    target = tmp_path / "extracted"
    assert cli("network", "extract", "-C", target, fcos_iso).returncode == 0
    assert (target / "static.nmconnection").read_bytes() == keyfile.read_bytes()
    assert cli("network", "remove", fcos_iso).returncode == 0
    assert iso.read_live_iso(fcos_iso).initrd == {}


def test_network_needs_feature(tmp_path: Path) -> None:
    """An ISO without features.json (pre-2021-12) cannot take keyfiles."""
    path = tmp_path / "old.iso"
    build_fcos_iso(path)
    live = iso.read_live_iso(path)
    live_features = dict(live.features)
    assert live_features  # synthetic ISO advertises the feature; simulate an old one below
    fd = os.open(path, os.O_RDWR)
    try:
        volume = iso9660.open_volume(fd)
        record = iso9660.lookup(fd, volume, iso.FEATURES_PATH)
        os.pwrite(fd, json.dumps({}).encode().ljust(record.length), record.offset)
    finally:
        os.close(fd)
    unsupported = r"^This OS image does not support customizing network settings\.$"
    with pytest.raises(BuildError, match=unsupported):
        iso.embed_network(path, [tmp_path / "x"])


def test_opening_reads_only_directories_and_areas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.iso"
    build_fcos_iso(big, pad_to=96 * 1024 * 1024)
    iso.embed_ignition(big, CONFIG)
    read_bytes = 0
    real_pread = os.pread

    def counting_pread(fd: int, length: int, offset: int) -> bytes:
        nonlocal read_bytes
        data = real_pread(fd, length, offset)
        read_bytes += len(data)
        return data

    monkeypatch.setattr(os, "pread", counting_pread)
    assert iso.show_ignition(big) == CONFIG
    assert iso.show_kargs(big) == DEFAULT_KARGS
    assert read_bytes < 1024 * 1024, f"read {read_bytes} bytes of a 96 MB ISO"


def test_cli_missing_output_directory(fcos_iso: Path, tmp_path: Path) -> None:
    result = cli("ignition", "embed", "-o", tmp_path / "no" / "such" / "dir.iso", fcos_iso, stdin=b"{}")
    assert result.returncode == 1 and result.stderr.startswith(b"Error: ")
    assert b"Traceback" not in result.stderr


def test_sha256_patched_is_the_sha256_of_the_patched_copy(tmp_path: Path) -> None:
    """embed hashes the source as it will read once patched, while the kernel makes the copy."""
    source = tmp_path / "base.iso"
    build_fcos_iso(source, pad_to=3 << 20)
    patches = iso.ignition_patches(source, b'{"ignition":{"version":"3.3.0"}}')
    patched = tmp_path / "out.iso"
    iso.apply_patches(source, patches, output=patched)
    assert iso.sha256_patched(source, patches) == sha256_file(patched)
    assert iso.sha256_patched(source, []) == sha256_file(source)
