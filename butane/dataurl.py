"""Data URLs the way Butane builds them (base/util/url.go + vincent-petithory/dataurl)."""

from __future__ import annotations

import base64
import gzip
import io
import zlib

# dataurl.Escape keeps only these bytes; everything else becomes %XX (upper-case hex).
_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")
_ESCAPED = [chr(b) if b in _KEEP else f"%{b:02X}" for b in range(256)]


def percent_escape(data: bytes) -> str:
    return "".join([_ESCAPED[b] for b in data])


def gzip_bytes(data: bytes) -> bytes:
    """Gzip at best compression with Go's header fields (no name, mtime 0, OS 255)."""
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9, mtime=0, filename="") as stream:
        stream.write(data)
    raw = bytearray(buffer.getvalue())
    raw[9] = 0xFF  # OS byte: Go writes 255 ("unknown")
    return bytes(raw)


def go_gzip_length(data: bytes) -> int:
    """Estimated length of Go's gzip stream (compress/gzip, BestCompression) for ``data``.

    Go ends its deflate data with a non-final block and closes with an empty *stored*
    final block (3 header bits, padding to a byte, LEN/NLEN), so its stream is a few
    bytes longer than zlib's. A zlib sync flush ends the data the same way: non-final
    blocks plus an empty stored block of the same size. Header 10 + trailer 8 bytes.
    """
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    body = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return 10 + len(body) + 8


def make_data_url(data: bytes, compression: str | None, allow_compression: bool = True) -> tuple[str, str | None]:
    """Return (url, compression to emit or None when the user's value stays as is).

    The shortest of percent-escaped, base64 and (if the user did not compress the data
    already) gzip+base64 wins; gzip pays for the 4 characters of ``"gzip"``.
    """
    user_compressed = bool(compression)
    result_compression: str | None = None if user_compressed else ""
    opaque = "," + percent_escape(data)
    b64 = ";base64," + base64.b64encode(data).decode("ascii")
    if len(b64) < len(opaque):
        opaque = b64
    if not user_compressed and allow_compression:
        # decide on the length Butane's Go stream would have, emit Python's (decodes the same)
        go_length = len(";base64,") + 4 * ((go_gzip_length(data) + 2) // 3)
        if go_length + len("gzip") < len(opaque):
            opaque = ";base64," + base64.b64encode(gzip_bytes(data)).decode("ascii")
            result_compression = "gzip"
    return "data:" + opaque, result_compression
