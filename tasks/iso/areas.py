"""Where an ISO's customisation areas are, as coreos-installer finds them.

The Ignition embed area through `/coreos/igninfo.json` (file, offset, length), else all of
`/images/ignition.img`; karg areas from `/coreos/kargs.json`, else the legacy `coreKarg` System Area
header. Only a few sectors are read: an ISO is never read whole.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from tasks.common import BuildError
from tasks.iso import iso9660
from tasks.iso.initrd import decode_initrd

IGNINFO_PATH = "COREOS/IGNINFO.JSO"
DEFAULT_EMBED_FILE = "IMAGES/IGNITION.IMG"
KARGS_INFO_PATH = "COREOS/KARGS.JSO"
FEATURES_PATH = "COREOS/FEATURES.JSO"
KARG_HEADER_OFFSET = 32768 - 24 - 72
KARG_HEADER_MAGIC = b"coreKarg"
KARG_HEADER_MAX_OFFSETS = 6
KARG_AREA_MAX_SIZE = 2048

UNRECOGNIZED = "Unrecognized CoreOS ISO image."


@dataclass(frozen=True)
class Area:
    """A byte range of the ISO."""

    offset: int
    length: int


@dataclass(frozen=True)
class KargArea:
    offset: int
    pad: str = "#"
    end: str = "\n"


@dataclass(frozen=True)
class KargsLayout:
    default: str
    size: int
    areas: tuple[KargArea, ...]


@dataclass
class LiveIso:
    """The customisation areas of an opened live ISO and their current content."""

    path: Path
    volume: iso9660.Volume
    ignition_area: Area
    initrd: dict[str, bytes]
    kargs_layout: KargsLayout | None
    features: dict[str, object] = field(default_factory=dict)


def unrecognized(cause: str) -> BuildError:
    return BuildError(UNRECOGNIZED, hint=cause)


def locate_ignition_area(fd: int, volume: iso9660.Volume) -> Area:
    """The embed area as coreos-installer finds it: igninfo.json, else all of images/ignition.img."""
    try:
        info = json.loads(iso9660.read_file(fd, volume, IGNINFO_PATH))
    except iso9660.NotFoundError:
        info = {"file": DEFAULT_EMBED_FILE}
    except iso9660.Iso9660Error as exc:
        raise unrecognized(f"reading igninfo: {exc}") from exc
    except ValueError as exc:
        raise unrecognized(f"decoding igninfo: {exc}") from exc
    if not isinstance(info, dict) or not isinstance(info.get("file"), str):
        raise unrecognized("decoding igninfo: missing field `file`")
    try:
        record = iso9660.lookup(fd, volume, info["file"].upper())
    except iso9660.Iso9660Error as exc:
        raise unrecognized(f"finding initrd embed area: {exc}") from exc
    offset = int(info.get("offset") or 0)
    length = info.get("length")
    length = record.length - offset if length is None else int(length)
    if offset < 0 or length < 0 or offset + length > record.length:
        raise unrecognized("reading initrd embed area: area out of bounds of its file")
    return Area(record.offset + offset, length)


def parse_karg_area(raw: bytes, pad: str, end: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BuildError("invalid UTF-8 in karg area") from exc
    return text.rstrip(pad).rstrip(end).strip()


def _kargs_from_json(fd: int, volume: iso9660.Volume, raw: bytes) -> KargsLayout:
    try:
        info = json.loads(raw)
        default, size, files = str(info["default"]), int(info["size"]), list(info["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BuildError(f"decoding karg embed area info: {exc}") from exc
    if size > KARG_AREA_MAX_SIZE:
        raise BuildError(f"karg embed area size larger than {KARG_AREA_MAX_SIZE} (found {size})")
    if len(default) > size:
        raise BuildError(f"default kargs size {len(default)} larger than embed areas ({size})")
    areas = []
    for entry in files:
        path = str(entry["path"])
        try:
            record = iso9660.lookup(fd, volume, path.upper())
        except iso9660.Iso9660Error as exc:
            raise BuildError(f"looking up '{path}': {exc}") from exc
        offset = record.offset + int(entry["offset"])
        if offset + size > volume.size:
            raise BuildError(f"karg embed area for '{path}' is outside the ISO")
        areas.append(KargArea(offset, entry.get("pad", "#"), entry.get("end", "\n")))
    if not areas:
        raise BuildError("No karg embed areas found; corrupted CoreOS ISO image.")
    return KargsLayout(default, size, tuple(sorted(areas, key=lambda area: area.offset)))


def _kargs_from_header(fd: int) -> KargsLayout | None:
    """The legacy `coreKarg` System Area header (2021 ISOs without kargs.json)."""
    header = iso9660.read_exact(fd, KARG_HEADER_OFFSET, 72)
    if header[:8] != KARG_HEADER_MAGIC:
        return None
    size, default_offset, *offsets = struct.unpack_from("<8Q", header, 8)
    if size > KARG_AREA_MAX_SIZE:
        raise BuildError(f"karg embed area length larger than {KARG_AREA_MAX_SIZE} (found {size})")
    areas = []
    for offset in offsets[:KARG_HEADER_MAX_OFFSETS]:
        if offset == 0:
            break
        areas.append(KargArea(offset))
    if not areas:
        raise BuildError("No karg embed areas found; corrupted CoreOS ISO image.")
    default = parse_karg_area(iso9660.read_exact(fd, default_offset, size), "#", "\n")
    return KargsLayout(default, size, tuple(sorted(areas, key=lambda area: area.offset)))


def locate_kargs(fd: int, volume: iso9660.Volume) -> KargsLayout | None:
    """Karg areas from kargs.json, else the coreKarg header; None for ISOs without karg support."""
    try:
        raw = iso9660.read_file(fd, volume, KARGS_INFO_PATH)
    except iso9660.NotFoundError:
        return _kargs_from_header(fd)
    except iso9660.Iso9660Error as exc:
        raise BuildError(f"reading karg embed area info: {exc}") from exc
    return _kargs_from_json(fd, volume, raw)


def _read_features(fd: int, volume: iso9660.Volume) -> dict[str, object]:
    try:
        features = json.loads(iso9660.read_file(fd, volume, FEATURES_PATH))
    except iso9660.NotFoundError:
        return {}
    except (iso9660.Iso9660Error, ValueError) as exc:
        raise BuildError(f"reading OS features: {exc}") from exc
    return features if isinstance(features, dict) else {}


def _open_volume(fd: int) -> iso9660.Volume:
    try:
        return iso9660.open_volume(fd)
    except iso9660.Iso9660Error as exc:
        message = str(exc)
        if message == "ISO image is incomplete":
            raise BuildError(message, hint="the download or copy was cut short; fetch the ISO again") from exc
        raise BuildError(f"parsing ISO9660 image: {message}", hint="is this an ISO image?") from exc


def read_live_iso(path: Path) -> LiveIso:
    """Open `path` and read its customisation areas (a few sectors plus the 256 KiB embed area)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise BuildError(f"opening {path}: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode) and not stat.S_ISBLK(os.fstat(fd).st_mode):
            raise BuildError(f"{path} is not a regular file")
        volume = _open_volume(fd)
        area = locate_ignition_area(fd, volume)
        try:
            raw = iso9660.read_exact(fd, area.offset, area.length)
        except iso9660.Iso9660Error as exc:
            raise unrecognized(f"reading initrd embed area: {exc}") from exc
        try:
            initrd = {} if not raw.strip(b"\0") else decode_initrd(raw)
        except BuildError as exc:
            raise unrecognized(f"decoding initrd embed area: {exc.message}") from exc
        return LiveIso(path, volume, area, initrd, locate_kargs(fd, volume), _read_features(fd, volume))
    finally:
        os.close(fd)

