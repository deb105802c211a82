"""tasks.iso against coreos-installer's ten real CoreOS test ISOs (shared/fixtures/coreos-installer-isos)."""

from __future__ import annotations

import json
import lzma
import os
from pathlib import Path
from typing import Any

import pytest

from tasks import iso
from tasks.common import BuildError
from tests.tools import sha256_file, shared_dir

FIXTURE_NAMES = [
    "embed-areas-2020-09.iso",
    "embed-areas-2021-01.iso",
    "embed-areas-2021-09.iso",
    "embed-areas-2021-12.iso",
    "embed-areas-2022-02.iso",
    "embed-areas-2022-09.iso",
    "embed-areas-2023-03.s390x.iso",
    "embed-areas-2023-03.x86_64.iso",
    "embed-areas-2023-07.s390x.iso",
    "embed-areas-2023-07.x86_64.iso",
]
CONFIG = b'{"ignition":{"version":"3.3.0"}}\n'



@pytest.fixture(params=FIXTURE_NAMES)
def fixture_iso(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """(decompressed ISO in tmp_path, its expected.json entry)."""
    directory = shared_dir("fixtures", "coreos-installer-isos")
    name = request.param
    path = tmp_path / name
    path.write_bytes(lzma.decompress((directory / f"{name}.xz").read_bytes()))
    expected = json.loads((directory / "expected.json").read_text())[name]
    return path, expected


def test_fixture_set_is_complete() -> None:
    directory = shared_dir("fixtures", "coreos-installer-isos")
    assert sorted(json.loads((directory / "expected.json").read_text())) == FIXTURE_NAMES


def test_areas_found_as_coreos_installer_finds_them(fixture_iso: tuple[Path, dict[str, Any]]) -> None:
    path, expected = fixture_iso
    live = iso.read_live_iso(path)
    assert (live.ignition_area.offset, live.ignition_area.length) == (
        expected["ignition"]["offset"],
        expected["ignition"]["length"],
    )
    assert live.initrd == {}
    if expected["kargs"] is None:
        assert live.kargs_layout is None
        return
    assert live.kargs_layout is not None
    assert live.kargs_layout.default == expected["kargs"]["default"]
    assert live.kargs_layout.size == expected["kargs"]["size"]
    assert [area.offset for area in live.kargs_layout.areas] == expected["kargs"]["areas"]


def test_embed_show_remove_round_trip(fixture_iso: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, expected = fixture_iso
    original = sha256_file(path)
    output = tmp_path / "out.iso"
    iso.embed_ignition(path, CONFIG, output=output)
    assert sha256_file(path) == original, "-o must leave the input alone"
    assert iso.show_ignition(output) == CONFIG
    area = expected["ignition"]
    raw = output.read_bytes()[area["offset"] : area["offset"] + area["length"]]
    assert raw.startswith(b"\xfd7zXZ\x00\x00\x01"), "xz with the CRC32 check"
    assert iso.decode_initrd(raw) == {"config.ign": CONFIG}
    # nothing outside the area changed
    before = path.read_bytes()
    assert raw != before[area["offset"] : area["offset"] + area["length"]]
    assert before[: area["offset"]] == output.read_bytes()[: area["offset"]]
    assert before[area["offset"] + area["length"] :] == output.read_bytes()[area["offset"] + area["length"] :]

    iso.remove_ignition(output)
    assert sha256_file(output) == original
    with pytest.raises(BuildError, match=r"^No embedded Ignition config\.$"):
        iso.show_ignition(output)


def test_in_place_embed_and_force(fixture_iso: tuple[Path, dict[str, Any]]) -> None:
    path, _ = fixture_iso
    original = sha256_file(path)
    iso.embed_ignition(path, CONFIG)
    with pytest.raises(BuildError) as error:
        iso.embed_ignition(path, b"{}")
    assert error.value.message == "This ISO image already has an embedded Ignition config; use -f to force."
    assert iso.show_ignition(path) == CONFIG
    iso.embed_ignition(path, b"{}", force=True)
    assert iso.show_ignition(path) == b"{}"
    iso.remove_ignition(path)
    assert sha256_file(path) == original


def test_too_large_config(fixture_iso: tuple[Path, dict[str, Any]]) -> None:
    path, expected = fixture_iso
    original = sha256_file(path)
    config = os.urandom(300 * 1024)  # incompressible: cannot fit 256 KiB
    with pytest.raises(BuildError, match=r"^Compressed initramfs is too large: \d+ > 262144$") as error:
        iso.embed_ignition(path, config)
    assert error.value.hint and "config.ign" in error.value.hint
    assert sha256_file(path) == original


def test_kargs_show_modify_reset(fixture_iso: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, expected = fixture_iso
    if expected["kargs"] is None:
        for call in (lambda: iso.show_kargs(path), lambda: iso.modify_kargs(path, append=["foo=bar"])):
            with pytest.raises(BuildError) as error:
                call()
            assert error.value.message == "No karg embed areas found; old or corrupted CoreOS ISO image."
        return
    original = sha256_file(path)
    default = expected["kargs"]["default"]
    assert iso.show_kargs(path) == default
    assert iso.show_kargs(path, default=True) == default

    output = tmp_path / "kargs.iso"
    iso.modify_kargs(path, append=["foo=bar"], output=output)
    assert iso.show_kargs(output) == default + " foo=bar"
    assert iso.show_kargs(output, default=True) == default
    data = output.read_bytes()
    size = expected["kargs"]["size"]
    for offset in expected["kargs"]["areas"]:
        assert data[offset : offset + size].decode().startswith(default + " foo=bar")

    iso.modify_kargs(output, delete=["foo=bar"], replace=["ignition.platform.id=metal=qemu"])
    assert iso.show_kargs(output) == default.replace("platform.id=metal", "platform.id=qemu")
    with pytest.raises(BuildError, match=r"^kargs too large for area: \d+ vs \d+$"):
        iso.modify_kargs(output, append=["x" * size])
    iso.reset_kargs(output)
    assert sha256_file(output) == original
