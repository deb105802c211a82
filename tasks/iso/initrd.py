"""The embed area's content: a newc cpio archive, xz-compressed as coreos-installer writes it (preset 9,
CRC32 check), and read back from gzip, xz or plain, possibly concatenated."""

from __future__ import annotations

import lzma
import re
import stat
import zlib

from tasks.common import BuildError


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
            raise BuildError("invalid cpio archive in embed area", hint="not a newc cpio header")
        try:
            values = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError as exc:
            raise BuildError("invalid cpio archive in embed area") from exc
        mode, size, namesize = values[1], values[6], values[11]
        name_start = position + 110
        name = data[name_start : name_start + namesize].rstrip(b"\0").decode("utf-8", "replace")
        data_start = name_start + namesize + len(_pad4(110 + namesize))
        data_end = data_start + size
        if data_end > len(data):
            raise BuildError("truncated cpio archive in embed area")
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
        raise BuildError("zstd-compressed embed area is not supported")
    else:
        return None
    try:
        plain = decompressor.decompress(chunk)
    except (lzma.LZMAError, zlib.error) as exc:
        raise BuildError(f"decompressing embed area: {exc}") from exc
    if not decompressor.eof:
        raise BuildError("decompressing embed area: unexpected end of compressed stream")
    return plain, len(data) - len(decompressor.unused_data)


NOT_PADDING = re.compile(rb"[^\0]")


def decode_initrd(data: bytes) -> dict[str, bytes]:
    """Members of a (possibly concatenated, gzip/xz/plain) newc initrd; later duplicates win."""
    members: dict[str, bytes] = {}
    position = 0
    while True:
        data_left = NOT_PADDING.search(data, position)  # the area is mostly zeros: no byte-by-byte loop
        if data_left is None:
            return members
        position = data_left.start()
        stream = _decompress_stream(data, position)
        if stream is None:
            position = _parse_cpio(data, position, members)
            continue
        plain, position = stream
        end = _parse_cpio(plain, 0, members)
        if plain[end:].strip(b"\0"):
            raise BuildError("found trailing garbage inside compressed archive")

