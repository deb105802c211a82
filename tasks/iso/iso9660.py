"""A minimal read-only ISO9660 reader that finds files the way coreos-installer does.

Only the Primary Volume Descriptor tree is used: Rock Ridge and Joliet are ignored, so files are
found by their plain ISO9660 names (`COREOS/IGNINFO.JSO`, `IMAGES/IGNITION.IMG`), compared exactly.
Everything is read with `os.pread` on demand: opening an 800 MB ISO reads a few sectors.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

SECTOR_SIZE = 2048
DESCRIPTORS_START = 16 * SECTOR_SIZE
TYPE_BOOT, TYPE_PRIMARY, TYPE_SUPPLEMENTARY, TYPE_TERMINATOR = 0, 1, 2, 255
MAX_DESCRIPTORS = 64  # a guard against files that are not ISOs and never terminate the list
NAME_SPECIALS = set(b"_ !\"%&'()*+,-.:<=>?")


class Iso9660Error(Exception):
    """The file is not a usable ISO9660 image."""


class NotFoundError(Iso9660Error):
    """A path does not exist in the ISO9660 tree (callers treat optional files as absent)."""


@dataclass(frozen=True)
class Record:
    """One directory record: where its data lives in the image and how long it is."""

    name: str
    offset: int  # byte offset in the image (extent LBA x 2048)
    length: int
    is_dir: bool


@dataclass(frozen=True)
class Volume:
    """The primary volume: identifiers and the root directory."""

    system_id: str
    volume_id: str
    size: int  # volume space size in bytes
    root: Record


def read_exact(fd: int, offset: int, length: int) -> bytes:
    """`length` bytes at `offset`, or an Iso9660Error when the file is shorter."""
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise Iso9660Error(f"short read at offset {offset}: image truncated?")
    return data


def open_volume(fd: int) -> Volume:
    """Parse the volume descriptors and return the primary volume."""
    primary: Volume | None = None
    for index in range(MAX_DESCRIPTORS):
        sector = os.pread(fd, SECTOR_SIZE, DESCRIPTORS_START + index * SECTOR_SIZE)
        if len(sector) != SECTOR_SIZE:
            raise Iso9660Error("unexpected end of file while reading volume descriptors")
        kind = sector[0]
        if kind == TYPE_TERMINATOR:
            break
        if kind in (TYPE_BOOT, TYPE_PRIMARY):
            if sector[1:6] != b"CD001":
                raise Iso9660Error(f"unknown descriptor ID: {sector[1:6]!r}")
            if sector[6] != 1:
                raise Iso9660Error(f"unknown descriptor version: {sector[6]}")
        if kind == TYPE_PRIMARY and primary is None:
            primary = _parse_primary(sector)
    else:
        raise Iso9660Error("no volume descriptor set terminator found")
    if primary is None:
        raise Iso9660Error("no primary volume descriptor found in ISO")
    if primary.size > os.fstat(fd).st_size:
        raise Iso9660Error("ISO image is incomplete")
    return primary


def _parse_primary(sector: bytes) -> Volume:
    (blocks,) = struct.unpack_from("<I", sector, 80)
    root = _parse_record(sector[156:190])
    return Volume(
        system_id=sector[8:40].decode("ascii", "replace").rstrip(" "),
        volume_id=sector[40:72].decode("ascii", "replace").rstrip(" "),
        size=blocks * SECTOR_SIZE,
        root=Record("", root.offset, root.length, True),
    )


def _parse_record(raw: bytes) -> Record:
    (lba,) = struct.unpack_from("<I", raw, 2)
    (length,) = struct.unpack_from("<I", raw, 10)
    name_len = raw[32]
    return Record(_normalise_name(raw[33 : 33 + name_len]), lba * SECTOR_SIZE, length, bool(raw[25] & 0x02))


def _normalise_name(raw: bytes) -> str:
    """ISO9660 name as coreos-installer sees it: `VMLINUZ.;1` -> `VMLINUZ`, '.'/'..' as themselves."""
    if raw in (b"\x00", b"\x01"):
        return "." if raw == b"\x00" else ".."
    chars = []
    for byte in raw:
        if byte == 0:
            break
        if byte in (ord(";"), ord("/")):
            chars.append(".")
        elif chr(byte).isascii() and (chr(byte).isalnum() or byte in NAME_SPECIALS):
            chars.append(chr(byte))
        else:
            raise Iso9660Error(f"invalid string name {raw!r}")
    name = "".join(chars)
    # ';1' became '.1' above; strip the version, then the empty-extension dot
    if raw.endswith(b";1"):
        name = name[:-2]
    return name[:-1] if name.endswith(".") else name


def list_directory(fd: int, directory: Record) -> list[Record]:
    """The entries of a directory, without '.' and '..'."""
    data = read_exact(fd, directory.offset, directory.length)
    entries: list[Record] = []
    position = 0
    while position < len(data):
        record_len = data[position]
        if record_len == 0:  # no more records in this sector
            position = (position // SECTOR_SIZE + 1) * SECTOR_SIZE
            continue
        if position + record_len > len(data) or record_len < 34:
            raise Iso9660Error("incomplete directory record; corrupt ISO?")
        record = _parse_record(data[position : position + record_len])
        if record.name not in (".", ".."):
            entries.append(record)
        position += record_len
    return entries


def lookup(fd: int, volume: Volume, path: str) -> Record:
    """Find `path` (ISO9660 names, e.g. `IMAGES/IGNITION.IMG`) case-sensitively; NotFoundError if absent."""
    components: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if components:
                components.pop()
            continue
        components.append(part)
    current = volume.root
    for depth, name in enumerate(components):
        if not current.is_dir:
            raise NotFoundError(f"{'/'.join(components[:depth])} is not a directory")
        match = next((entry for entry in list_directory(fd, current) if entry.name == name), None)
        if match is None:
            raise NotFoundError(f"{'/'.join(components[: depth + 1])} not found")
        current = match
    return current


def read_file(fd: int, volume: Volume, path: str) -> bytes:
    """The whole content of a (small) file in the image."""
    record = lookup(fd, volume, path)
    if record.is_dir:
        raise Iso9660Error(f"{path} is a directory")
    return read_exact(fd, record.offset, record.length)
