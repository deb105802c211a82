"""Embed, show and remove Ignition configs, network keyfiles and kernel arguments in CoreOS live ISOs.

Byte-compatible with `coreos-installer iso ignition|kargs|network` (formats: shared/reference/iso-embed.md):

* The Ignition embed area is found through `/coreos/igninfo.json` (file, offset, length), else it is
  the whole of `/images/ignition.img`; it holds a newc cpio compressed with xz (preset 9, CRC32 check),
  zero-padded to the area. With no members left the area is zeroed, restoring the pristine ISO.
* Karg areas come from `/coreos/kargs.json`, or from the legacy `coreKarg` System Area header.
* Only the areas are read and written: an ISO is never read whole. With an output path the ISO is
  first copied by the kernel (reflink, else copy_file_range) into a temporary file beside the target.

Library entry points: embed_ignition, show_ignition, remove_ignition, show_kargs, modify_kargs,
reset_kargs, embed_network, extract_network, remove_network, copy_file. CLI: `python -m tasks.iso`.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hashlib
import json
import lzma
import os
import re
import stat
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tasks import iso9660

IGNITION_MEMBER = "config.ign"
NETWORK_DIR = "etc/coreos-firstboot-network"
IGNINFO_PATH = "COREOS/IGNINFO.JSO"
DEFAULT_EMBED_FILE = "IMAGES/IGNITION.IMG"
KARGS_INFO_PATH = "COREOS/KARGS.JSO"
FEATURES_PATH = "COREOS/FEATURES.JSO"
KARG_HEADER_OFFSET = 32768 - 24 - 72
KARG_HEADER_MAGIC = b"coreKarg"
KARG_HEADER_MAX_OFFSETS = 6
KARG_AREA_MAX_SIZE = 2048
TEMP_PREFIX = ".coreos-installer-temp-"
FICLONE = 0x40049409  # _IOW(0x94, 9, int): share extents with the source (btrfs, xfs)
COPY_CHUNK = 1 << 30
HASH_CHUNK = 1 << 20  # hashing goes through Python: a buffer that fits the CPU caches

UNRECOGNIZED = "Unrecognized CoreOS ISO image."


class IsoError(Exception):
    """An expected failure: a one-line message as coreos-installer words it, plus an optional hint."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


# --------------------------------------------------------------------------------------------------
# newc cpio + compression


def _cpio_header(ino: int, mode: int, size: int, namesize: int, nlink: int = 1) -> bytes:
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, namesize, 0)
    return b"070701" + b"".join(b"%08x" % value for value in fields)


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def encode_cpio(members: dict[str, bytes]) -> bytes:
    """A newc archive of `members` in byte-wise sorted order, parents first, as coreos-installer writes."""
    out = bytearray()
    emitted_dirs: set[str] = set()
    ino = 0

    def entry(name: str, mode: int, data: bytes) -> None:
        nonlocal ino
        encoded = name.encode()
        out.extend(_cpio_header(ino, mode, len(data), len(encoded) + 1))
        out.extend(encoded + b"\0" + _pad4(110 + len(encoded) + 1))
        out.extend(data + _pad4(len(data)))
        ino += 1

    for path in sorted(members, key=lambda name: name.encode()):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            parent = "/".join(parts[:depth])
            if parent not in emitted_dirs:
                emitted_dirs.add(parent)
                entry(parent, 0o040755, b"")
        entry(path, 0o100600, members[path])
    trailer = b"TRAILER!!!"
    out.extend(_cpio_header(0, 0, 0, len(trailer) + 1) + trailer + b"\0" + _pad4(110 + len(trailer) + 1))
    return bytes(out)


def compress_initrd(members: dict[str, bytes]) -> bytes:
    """xz at preset 9 with the CRC32 check (the kernel's initramfs xz decoder wants CRC32)."""
    return lzma.compress(encode_cpio(members), format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, preset=9)


def _parse_cpio(data: bytes, position: int, members: dict[str, bytes]) -> int:
    """Read newc entries from `position` through the trailer into `members`; return the end offset."""
    while True:
        header = data[position : position + 110]
        if len(header) < 110 or header[:6] not in (b"070701", b"070702"):
            raise IsoError("invalid cpio archive in embed area", hint="not a newc cpio header")
        try:
            values = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError as exc:
            raise IsoError("invalid cpio archive in embed area") from exc
        mode, size, namesize = values[1], values[6], values[11]
        name_start = position + 110
        name = data[name_start : name_start + namesize].rstrip(b"\0").decode("utf-8", "replace")
        data_start = name_start + namesize + len(_pad4(110 + namesize))
        data_end = data_start + size
        if data_end > len(data):
            raise IsoError("truncated cpio archive in embed area")
        position = data_end + len(_pad4(size))
        if name == "TRAILER!!!":
            return position
        if stat.S_ISREG(mode):  # like coreos-installer: directories etc. are not kept
            members[name.lstrip("/")] = data[data_start:data_end]


def _decompress_stream(data: bytes, position: int) -> tuple[bytes, int] | None:
    """If a compressed stream starts at `position`: (decompressed bytes, end offset), else None."""
    chunk = data[position:]
    decompressor: lzma.LZMADecompressor | zlib._Decompress
    if chunk.startswith(b"\x1f\x8b"):
        decompressor = zlib.decompressobj(wbits=31)
    elif chunk.startswith(b"\xfd7zXZ\x00"):
        decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elif chunk.startswith(b"\x28\xb5\x2f\xfd"):
        raise IsoError("zstd-compressed embed area is not supported")
    else:
        return None
    try:
        plain = decompressor.decompress(chunk)
    except (lzma.LZMAError, zlib.error) as exc:
        raise IsoError(f"decompressing embed area: {exc}") from exc
    if not decompressor.eof:
        raise IsoError("decompressing embed area: unexpected end of compressed stream")
    return plain, len(data) - len(decompressor.unused_data)


def decode_initrd(data: bytes) -> dict[str, bytes]:
    """Members of a (possibly concatenated, gzip/xz/plain) newc initrd; later duplicates win."""
    members: dict[str, bytes] = {}
    position = 0
    while True:
        while position < len(data) and data[position] == 0:
            position += 1
        if position >= len(data):
            return members
        stream = _decompress_stream(data, position)
        if stream is None:
            position = _parse_cpio(data, position, members)
            continue
        plain, position = stream
        end = _parse_cpio(plain, 0, members)
        if plain[end:].strip(b"\0"):
            raise IsoError("found trailing garbage inside compressed archive")


# --------------------------------------------------------------------------------------------------
# Locating the areas


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


def _unrecognized(cause: str) -> IsoError:
    return IsoError(UNRECOGNIZED, hint=cause)


def locate_ignition_area(fd: int, volume: iso9660.Volume) -> Area:
    """The embed area as coreos-installer finds it: igninfo.json, else all of images/ignition.img."""
    try:
        info = json.loads(iso9660.read_file(fd, volume, IGNINFO_PATH))
    except iso9660.NotFoundError:
        info = {"file": DEFAULT_EMBED_FILE}
    except iso9660.Iso9660Error as exc:
        raise _unrecognized(f"reading igninfo: {exc}") from exc
    except ValueError as exc:
        raise _unrecognized(f"decoding igninfo: {exc}") from exc
    if not isinstance(info, dict) or not isinstance(info.get("file"), str):
        raise _unrecognized("decoding igninfo: missing field `file`")
    try:
        record = iso9660.lookup(fd, volume, info["file"].upper())
    except iso9660.Iso9660Error as exc:
        raise _unrecognized(f"finding initrd embed area: {exc}") from exc
    offset = int(info.get("offset") or 0)
    length = info.get("length")
    length = record.length - offset if length is None else int(length)
    if offset < 0 or length < 0 or offset + length > record.length:
        raise _unrecognized("reading initrd embed area: area out of bounds of its file")
    return Area(record.offset + offset, length)


def _parse_karg_area(raw: bytes, pad: str, end: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IsoError("invalid UTF-8 in karg area") from exc
    return text.rstrip(pad).rstrip(end).strip()


def _kargs_from_json(fd: int, volume: iso9660.Volume, raw: bytes) -> KargsLayout:
    try:
        info = json.loads(raw)
        default, size, files = str(info["default"]), int(info["size"]), list(info["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise IsoError(f"decoding karg embed area info: {exc}") from exc
    if size > KARG_AREA_MAX_SIZE:
        raise IsoError(f"karg embed area size larger than {KARG_AREA_MAX_SIZE} (found {size})")
    if len(default) > size:
        raise IsoError(f"default kargs size {len(default)} larger than embed areas ({size})")
    areas = []
    for entry in files:
        path = str(entry["path"])
        try:
            record = iso9660.lookup(fd, volume, path.upper())
        except iso9660.Iso9660Error as exc:
            raise IsoError(f"looking up '{path}': {exc}") from exc
        offset = record.offset + int(entry["offset"])
        if offset + size > volume.size:
            raise IsoError(f"karg embed area for '{path}' is outside the ISO")
        areas.append(KargArea(offset, entry.get("pad", "#"), entry.get("end", "\n")))
    if not areas:
        raise IsoError("No karg embed areas found; corrupted CoreOS ISO image.")
    return KargsLayout(default, size, tuple(sorted(areas, key=lambda area: area.offset)))


def _kargs_from_header(fd: int) -> KargsLayout | None:
    """The legacy `coreKarg` System Area header (2021 ISOs without kargs.json)."""
    header = iso9660.read_exact(fd, KARG_HEADER_OFFSET, 72)
    if header[:8] != KARG_HEADER_MAGIC:
        return None
    size, default_offset, *offsets = struct.unpack_from("<8Q", header, 8)
    if size > KARG_AREA_MAX_SIZE:
        raise IsoError(f"karg embed area length larger than {KARG_AREA_MAX_SIZE} (found {size})")
    areas = []
    for offset in offsets[:KARG_HEADER_MAX_OFFSETS]:
        if offset == 0:
            break
        areas.append(KargArea(offset))
    if not areas:
        raise IsoError("No karg embed areas found; corrupted CoreOS ISO image.")
    default = _parse_karg_area(iso9660.read_exact(fd, default_offset, size), "#", "\n")
    return KargsLayout(default, size, tuple(sorted(areas, key=lambda area: area.offset)))


def locate_kargs(fd: int, volume: iso9660.Volume) -> KargsLayout | None:
    """Karg areas from kargs.json, else the coreKarg header; None for ISOs without karg support."""
    try:
        raw = iso9660.read_file(fd, volume, KARGS_INFO_PATH)
    except iso9660.NotFoundError:
        return _kargs_from_header(fd)
    except iso9660.Iso9660Error as exc:
        raise IsoError(f"reading karg embed area info: {exc}") from exc
    return _kargs_from_json(fd, volume, raw)


def _read_features(fd: int, volume: iso9660.Volume) -> dict[str, object]:
    try:
        features = json.loads(iso9660.read_file(fd, volume, FEATURES_PATH))
    except iso9660.NotFoundError:
        return {}
    except (iso9660.Iso9660Error, ValueError) as exc:
        raise IsoError(f"reading OS features: {exc}") from exc
    return features if isinstance(features, dict) else {}


def _open_volume(fd: int) -> iso9660.Volume:
    try:
        return iso9660.open_volume(fd)
    except iso9660.Iso9660Error as exc:
        message = str(exc)
        if message == "ISO image is incomplete":
            raise IsoError(message, hint="the download or copy was cut short; fetch the ISO again") from exc
        raise IsoError(f"parsing ISO9660 image: {message}", hint="is this an ISO image?") from exc


def read_live_iso(path: Path) -> LiveIso:
    """Open `path` and read its customisation areas (a few sectors plus the 256 KiB embed area)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise IsoError(f"opening {path}: {exc.strerror}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode) and not stat.S_ISBLK(os.fstat(fd).st_mode):
            raise IsoError(f"{path} is not a regular file")
        volume = _open_volume(fd)
        area = locate_ignition_area(fd, volume)
        try:
            raw = iso9660.read_exact(fd, area.offset, area.length)
        except iso9660.Iso9660Error as exc:
            raise _unrecognized(f"reading initrd embed area: {exc}") from exc
        try:
            initrd = {} if not raw.strip(b"\0") else decode_initrd(raw)
        except IsoError as exc:
            raise _unrecognized(f"decoding initrd embed area: {exc.message}") from exc
        return LiveIso(path, volume, area, initrd, locate_kargs(fd, volume), _read_features(fd, volume))
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# Kernel arguments


def _require_kargs(iso: LiveIso) -> KargsLayout:
    if iso.kargs_layout is None:
        raise IsoError("No karg embed areas found; old or corrupted CoreOS ISO image.")
    return iso.kargs_layout


def current_kargs(iso: LiveIso) -> str:
    """The kargs all areas agree on (an ISO whose areas disagree is refused, as upstream does)."""
    layout = _require_kargs(iso)
    fd = os.open(iso.path, os.O_RDONLY)
    try:
        values = [
            (area.offset, _parse_karg_area(os.pread(fd, layout.size, area.offset), area.pad, area.end))
            for area in layout.areas
        ]
    finally:
        os.close(fd)
    expected = values[0][1]
    for offset, value in values[1:]:
        if value != expected:
            raise IsoError(
                f"kargs don't match at all offsets! "
                f"(expected '{expected}', but offset {offset} has: '{value}')"
            )
    return expected


def edit_kargs(
    kargs: str, *, append: Iterable[str] = (), delete: Iterable[str] = (), replace: Iterable[str] = ()
) -> str:
    """coreos-installer's KargsEditor: delete all, append all, then replace KEY=OLD=NEW, on padded text."""
    text = f" {kargs} "
    for arg in delete:
        text = text.replace(f" {arg.strip()} ", " ")
    for arg in append:
        text += f"{arg.strip()} "
    for spec in replace:
        match = re.fullmatch(r"([^=]+)=([^=]+)=([^=]+)", spec)
        if match is None:
            raise IsoError("Wrong input, format should be: KEY=OLD=NEW")
        key, old, new = match.groups()
        text = text.replace(f" {key}={old} ", f" {key}={new} ")
    return text.strip()


def _karg_patches(layout: KargsLayout, kargs: str) -> list[tuple[int, bytes]]:
    value = kargs.strip()
    if len(value.encode()) >= layout.size:
        raise IsoError(
            f"kargs too large for area: {len(value.encode()) + 1} vs {layout.size}",
            hint="delete some kernel arguments or shorten them",
        )
    patches = []
    for area in layout.areas:
        content = (value + area.end).encode()
        patches.append((area.offset, content + area.pad.encode() * (layout.size - len(content))))
    return patches


# --------------------------------------------------------------------------------------------------
# Writing: compute patches (offset, bytes), then apply them in place or to a copy


def _ignition_patch(iso: LiveIso, members: dict[str, bytes]) -> tuple[int, bytes]:
    area = iso.ignition_area
    if not members:
        return area.offset, bytes(area.length)
    archive = compress_initrd(members)
    if len(archive) > area.length:
        sizes = ", ".join(f"{name} {len(data)} bytes" for name, data in sorted(members.items()))
        raise IsoError(
            f"Compressed initramfs is too large: {len(archive)} > {area.length}",
            hint=f"the embed area holds {sizes}; shrink the config (e.g. fetch large files by URL)",
        )
    return area.offset, archive + bytes(area.length - len(archive))


def copy_file(src: Path, dst: Path) -> None:
    """Copy `src` to `dst` inside the kernel: reflink when the filesystem shares extents, else
    copy_file_range over the data segments only (holes stay holes, as with cp), with sendfile as the
    last resort. Memory use does not depend on the size."""
    # no O_TRUNC on the fresh temporary file: ext4 would flush it on close (auto_da_alloc)
    target_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    with open(src, "rb") as source, open(target_fd, "wb") as target:
        if os.fstat(target_fd).st_size:
            os.ftruncate(target_fd, 0)
        try:
            fcntl.ioctl(target.fileno(), FICLONE, source.fileno())
            return
        except OSError:
            pass  # not a reflink-capable filesystem (or different ones): copy the data
        size = os.fstat(source.fileno()).st_size
        for start, end in _data_segments(source.fileno(), size):
            _copy_range(source.fileno(), target.fileno(), start, end)
        os.ftruncate(target.fileno(), size)  # a trailing hole


def _data_segments(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of the regions holding data; the whole file where SEEK_DATA is unsupported."""
    position = 0
    while position < size:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole remains
                return
            yield position, size
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end
        position = end


def _copy_range(src_fd: int, dst_fd: int, start: int, end: int) -> None:
    position = start
    use_copy_file_range = hasattr(os, "copy_file_range")
    while position < end:
        count = min(COPY_CHUNK, end - position)
        if use_copy_file_range:
            try:
                done = os.copy_file_range(src_fd, dst_fd, count, position, position)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                use_copy_file_range = False
                continue
        else:
            os.lseek(dst_fd, position, os.SEEK_SET)
            done = os.sendfile(dst_fd, src_fd, position, count)
        if done == 0:
            raise IsoError("copying the ISO: source file shrank while copying")
        position += done


def _write_patches(fd: int, patches: Sequence[tuple[int, bytes]]) -> None:
    for offset, data in patches:
        written = 0
        while written < len(data):
            written += os.pwrite(fd, data[written:], offset + written)


def _stream_patched(src: Path, patches: Sequence[tuple[int, bytes]], out_fd: int) -> None:
    """Write `src` with the patches substituted to `out_fd` (for `-o -`), via sendfile."""
    if os.isatty(out_fd):
        raise IsoError("Refusing to write binary data to terminal")
    with open(src, "rb") as source:
        size = os.fstat(source.fileno()).st_size
        position = 0
        for offset, data in sorted(patches) + [(size, b"")]:
            while position < offset:
                try:
                    done = os.sendfile(out_fd, source.fileno(), position, offset - position)
                except OSError:  # stdout that sendfile cannot target: fall back to small buffers
                    chunk = os.pread(source.fileno(), min(1 << 20, offset - position), position)
                    done = os.write(out_fd, chunk)
                position += done
            view = memoryview(data)
            while view:
                view = view[os.write(out_fd, view) :]
            position = max(position, offset + len(data))


@contextmanager
def _temporary_beside(output: Path) -> Iterator[Path]:
    handle, name = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=output.parent or Path("."))
    os.close(handle)
    temp = Path(name)
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)


def apply_patches(
    iso: Path, patches: Sequence[tuple[int, bytes]], *, output: Path | None, overwrite_output: bool = False
) -> None:
    """Write patches in place (no output), to stdout (output '-'), or to a new file via a temporary copy.

    A new file is renamed into place without replacing an existing one unless `overwrite_output`."""
    if output is None:
        fd = os.open(iso, os.O_WRONLY)
        try:
            _write_patches(fd, patches)
        finally:
            os.close(fd)
        return
    if str(output) == "-":
        _stream_patched(iso, patches, sys.stdout.fileno())
        return
    output = Path(output)
    if not overwrite_output and output.exists():
        raise IsoError(f"{output} already exists", hint="choose another output path or remove the file")
    with _temporary_beside(output) as temp:
        copy_file(iso, temp)
        os.chmod(temp, stat.S_IMODE(os.stat(iso).st_mode))
        fd = os.open(temp, os.O_WRONLY)
        try:
            _write_patches(fd, patches)
        finally:
            os.close(fd)
        if overwrite_output:
            os.replace(temp, output)
        else:
            try:  # link() fails if the target appeared meanwhile: never clobber a file
                os.link(temp, output)
            except FileExistsError as exc:
                raise IsoError(f"{output} already exists", hint="choose another output path") from exc


# --------------------------------------------------------------------------------------------------
# Library API


def embed_ignition(
    iso: Path,
    config: bytes,
    *,
    output: Path | None = None,
    force: bool = False,
    overwrite_output: bool = False,
) -> None:
    """Embed `config` (stored verbatim, no validation) as the live Ignition config."""
    patches = ignition_patches(Path(iso), config, force=force)
    apply_patches(Path(iso), patches, output=output, overwrite_output=overwrite_output)


def ignition_patches(iso: Path, config: bytes, *, force: bool = False) -> list[tuple[int, bytes]]:
    """The (offset, bytes) writes that embed `config`: for callers that copy, hash or patch themselves."""
    live = read_live_iso(Path(iso))
    if not force and IGNITION_MEMBER in live.initrd:
        raise IsoError("This ISO image already has an embedded Ignition config; use -f to force.")
    members = dict(live.initrd)
    members[IGNITION_MEMBER] = bytes(config)
    return [_ignition_patch(live, members)]


def sha256_patched(iso: Path, patches: Sequence[tuple[int, bytes]]) -> str:
    """sha256 of `iso` as it reads once `patches` are applied, without writing anything: it can run
    while a copy is being made, and reads through one reused buffer (constant memory)."""
    digest = hashlib.sha256()
    buffer = bytearray(HASH_CHUNK)
    with open(iso, "rb", buffering=0) as source:
        size = os.fstat(source.fileno()).st_size
        position = 0
        for offset, data in sorted(patches) + [(size, b"")]:
            while position < offset:
                view = memoryview(buffer)[: min(len(buffer), offset - position)]
                count = source.readinto(view)
                if not count:
                    raise IsoError(f"{iso}: file shrank while hashing")
                digest.update(view[:count])
                position += count
            digest.update(data[: max(0, size - offset)])
            position = offset + len(data)
            source.seek(position)
    return digest.hexdigest()


def show_ignition(iso: Path) -> bytes:
    """The embedded Ignition config, verbatim."""
    live = read_live_iso(Path(iso))
    if IGNITION_MEMBER not in live.initrd:
        raise IsoError("No embedded Ignition config.")
    return live.initrd[IGNITION_MEMBER]


def remove_ignition(iso: Path, *, output: Path | None = None, overwrite_output: bool = False) -> None:
    """Remove the Ignition config, keeping other members (an empty area is zeroed)."""
    live = read_live_iso(Path(iso))
    members = {name: data for name, data in live.initrd.items() if name != IGNITION_MEMBER}
    patch = _ignition_patch(live, members)
    apply_patches(Path(iso), [patch], output=output, overwrite_output=overwrite_output)


def show_kargs(iso: Path, default: bool = False) -> str:
    """The current (or default) live kernel arguments."""
    live = read_live_iso(Path(iso))
    return _require_kargs(live).default if default else current_kargs(live)


def modify_kargs(
    iso: Path,
    *,
    append: Iterable[str] = (),
    delete: Iterable[str] = (),
    replace: Iterable[str] = (),
    output: Path | None = None,
    overwrite_output: bool = False,
) -> None:
    """Edit the current kargs in every area (delete, then append, then replace KEY=OLD=NEW)."""
    live = read_live_iso(Path(iso))
    kargs = edit_kargs(current_kargs(live), append=append, delete=delete, replace=replace)
    patches = _karg_patches(_require_kargs(live), kargs)
    apply_patches(Path(iso), patches, output=output, overwrite_output=overwrite_output)


def kargs_patches(iso: Path, *, append: Iterable[str]) -> list[tuple[int, bytes]]:
    """The (offset, bytes) writes that append `append` to the default kargs (for callers that copy,
    hash or patch themselves); none when there is nothing to append."""
    append = list(append)
    if not append:
        return []
    layout = _require_kargs(read_live_iso(Path(iso)))
    return _karg_patches(layout, edit_kargs(layout.default, append=append))


def reset_kargs(iso: Path, *, output: Path | None = None, overwrite_output: bool = False) -> None:
    """Write the default kargs back into every area."""
    live = read_live_iso(Path(iso))
    layout = _require_kargs(live)
    patches = _karg_patches(layout, layout.default)
    apply_patches(Path(iso), patches, output=output, overwrite_output=overwrite_output)


def reset_iso(iso: Path, *, output: Path | None = None, overwrite_output: bool = False) -> None:
    """Empty the embed area and, where supported, restore the default kargs (`iso reset`)."""
    live = read_live_iso(Path(iso))
    patches = [_ignition_patch(live, {})]
    if live.kargs_layout is not None:
        patches += _karg_patches(live.kargs_layout, live.kargs_layout.default)
    apply_patches(Path(iso), patches, output=output, overwrite_output=overwrite_output)


def _network_members(initrd: dict[str, bytes]) -> dict[str, bytes]:
    prefix = NETWORK_DIR + "/"
    return {
        name: data
        for name, data in initrd.items()
        if name.startswith(prefix) and "/" not in name[len(prefix) :]
    }


def embed_network(
    iso: Path,
    keyfiles: Sequence[Path],
    *,
    output: Path | None = None,
    force: bool = False,
    overwrite_output: bool = False,
) -> None:
    """Embed NetworkManager keyfiles for the live initramfs (static addresses etc.)."""
    live = read_live_iso(Path(iso))
    if not live.features.get("live-initrd-network"):
        raise IsoError("This OS image does not support customizing network settings.")
    existing = _network_members(live.initrd)
    if existing and not force:
        raise IsoError("This ISO image already has embedded network settings; use -f to force.")
    members = {name: data for name, data in live.initrd.items() if name not in existing}
    for keyfile in keyfiles:
        name = f"{NETWORK_DIR}/{Path(keyfile).name}"
        if name in members:
            raise IsoError(f"multiple input files named '{Path(keyfile).name}'")
        try:
            members[name] = Path(keyfile).read_bytes()
        except OSError as exc:
            raise IsoError(f"reading {keyfile}: {exc.strerror}") from exc
    patch = _ignition_patch(live, members)
    apply_patches(Path(iso), [patch], output=output, overwrite_output=overwrite_output)


def extract_network(iso: Path) -> dict[str, bytes]:
    """Embedded keyfiles by basename."""
    files = _network_members(read_live_iso(Path(iso)).initrd)
    if not files:
        raise IsoError("No embedded network settings.")
    return {name.rsplit("/", 1)[1]: data for name, data in sorted(files.items())}


def remove_network(iso: Path, *, output: Path | None = None, overwrite_output: bool = False) -> None:
    """Remove embedded keyfiles, keeping the Ignition config."""
    live = read_live_iso(Path(iso))
    network = _network_members(live.initrd)
    members = {name: data for name, data in live.initrd.items() if name not in network}
    patch = _ignition_patch(live, members)
    apply_patches(Path(iso), [patch], output=output, overwrite_output=overwrite_output)


# --------------------------------------------------------------------------------------------------
# CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasks.iso", description=__doc__.split("\n")[0])
    groups = parser.add_subparsers(dest="group", required=True)

    def output_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-o", "--output", type=Path, metavar="path", help="write ISO to a new output file")

    ignition = groups.add_parser("ignition", help="embed an Ignition config in the ISO").add_subparsers(
        dest="command", required=True
    )
    sub = ignition.add_parser("embed", help="embed an Ignition config")
    sub.add_argument("-f", "--force", action="store_true", help="overwrite an existing Ignition config")
    sub.add_argument("-i", "--ignition-file", type=Path, metavar="path", help="config file (default: stdin)")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = ignition.add_parser("show", help="show the embedded Ignition config")
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = ignition.add_parser("remove", help="remove the embedded Ignition config")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")

    kargs = groups.add_parser("kargs", help="modify the live kernel arguments").add_subparsers(
        dest="command", required=True
    )
    sub = kargs.add_parser("modify", help="modify kernel arguments")
    sub.add_argument("-a", "--append", action="append", default=[], metavar="KARG")
    sub.add_argument("-d", "--delete", action="append", default=[], metavar="KARG")
    sub.add_argument("-r", "--replace", action="append", default=[], metavar="KARG=OLDVAL=NEWVAL")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = kargs.add_parser("reset", help="reset kernel arguments to the default")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = kargs.add_parser("show", help="show the kernel arguments")
    sub.add_argument("-d", "--default", action="store_true", help="show the default kargs")
    sub.add_argument("input", type=Path, metavar="ISO")

    network = groups.add_parser("network", help="embed network settings").add_subparsers(
        dest="command", required=True
    )
    sub = network.add_parser("embed", help="embed NetworkManager keyfiles")
    sub.add_argument("-k", "--keyfile", action="append", required=True, type=Path, metavar="path")
    sub.add_argument("-f", "--force", action="store_true", help="overwrite existing network settings")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = network.add_parser("extract", help="extract embedded keyfiles")
    sub.add_argument("-C", "--directory", type=Path, metavar="path", help="extract to directory")
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = network.add_parser("remove", help="remove embedded keyfiles")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")

    sub = groups.add_parser("reset", help="restore the ISO to its pristine state")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")
    return parser


def _read_config(path: Path | None) -> bytes:
    if path is None:
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IsoError(f"reading {path}: {exc.strerror}") from exc


def _write_stdout(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _extract_network_cli(iso: Path, directory: Path | None) -> None:
    files = extract_network(iso)
    if directory is None:
        for index, (name, data) in enumerate(files.items()):
            _write_stdout((b"\n" if index else b"") + f"########## {name} ##########\n".encode() + data)
        return
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = directory / name
        try:
            with open(target, "xb") as handle:
                handle.write(data)
        except OSError as exc:
            raise IsoError(f"opening {target}: {exc.strerror}") from exc
        print(target)


def run(argv: Sequence[str]) -> None:
    """Execute one CLI command (raises IsoError on expected failures)."""
    args = _parser().parse_args(argv)
    command = (args.group, getattr(args, "command", None))
    output: Path | None = getattr(args, "output", None)
    if command == ("ignition", "embed"):
        embed_ignition(args.input, _read_config(args.ignition_file), force=args.force, output=output)
    elif command == ("ignition", "show"):
        _write_stdout(show_ignition(args.input))
    elif command == ("ignition", "remove"):
        remove_ignition(args.input, output=output)
    elif command == ("kargs", "show"):
        print(show_kargs(args.input, default=args.default))
    elif command == ("kargs", "modify"):
        modify_kargs(args.input, append=args.append, delete=args.delete, replace=args.replace, output=output)
    elif command == ("kargs", "reset"):
        reset_kargs(args.input, output=output)
    elif command == ("network", "embed"):
        embed_network(args.input, args.keyfile, force=args.force, output=output)
    elif command == ("network", "extract"):
        _extract_network_cli(args.input, args.directory)
    elif command == ("network", "remove"):
        remove_network(args.input, output=output)
    elif command == ("reset", None):
        reset_iso(args.input, output=output)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run(sys.argv[1:] if argv is None else argv)
    except IsoError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    except OSError as exc:  # e.g. an output directory that does not exist, a full disk
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"Error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
