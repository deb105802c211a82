"""Writing an ISO: patches are (offset, bytes) pairs, applied in place, to a new file, to stdout, or hashed.

A new file is a kernel-side copy (reflink, else copy_file_range over the data segments) patched in place
and renamed by the one atomic writer; stdout and the hash read the source with the patches substituted,
through one loop (`patched_pieces`).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tasks.common import BuildError, atomic_path

FICLONE = 0x40049409  # _IOW(0x94, 9, int): share extents with the source (btrfs, xfs)
COPY_CHUNK = 1 << 30
HASH_CHUNK = 1 << 20  # hashing goes through Python: a buffer that fits the CPU caches

Patches = Sequence[tuple[int, bytes]]


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
            raise BuildError("copying the ISO: source file shrank while copying")
        position += done


def patch_in_place(path: Path, patches: Patches) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        for offset, data in patches:
            written = 0
            while written < len(data):
                written += os.pwrite(fd, data[written:], offset + written)
    finally:
        os.close(fd)


def patched_pieces(size: int, patches: Patches) -> Iterator[tuple[int, int] | bytes]:
    """The source of `size` bytes as it reads with `patches` substituted, in order: (start, end)
    ranges to take from the source, and patch bytes. The one loop behind streaming and hashing."""
    position = 0
    for offset, data in sorted(patches):
        if position < offset:
            yield position, offset
        yield data[: max(0, size - offset)]
        position = max(position, offset + len(data))
    if position < size:
        yield position, size


def stream_patched(src: Path, patches: Patches, out_fd: int) -> None:
    """Write `src` with the patches substituted to `out_fd` (for `-o -`), via sendfile."""
    if os.isatty(out_fd):
        raise BuildError("Refusing to write binary data to terminal")
    with open(src, "rb") as source:
        for piece in patched_pieces(os.fstat(source.fileno()).st_size, patches):
            if isinstance(piece, bytes):
                view = memoryview(piece)
                while view:
                    view = view[os.write(out_fd, view) :]
                continue
            position, end = piece
            while position < end:
                try:
                    done = os.sendfile(out_fd, source.fileno(), position, end - position)
                except OSError:  # stdout that sendfile cannot target: fall back to small buffers
                    done = os.write(out_fd, os.pread(source.fileno(), min(HASH_CHUNK, end - position), position))
                position += done


def sha256_patched(iso: Path, patches: Patches) -> str:
    """sha256 of `iso` as it reads once `patches` are applied, without writing anything: it can run
    while a copy is being made, and reads through one reused buffer (constant memory)."""
    digest = hashlib.sha256()
    buffer = bytearray(HASH_CHUNK)
    with open(iso, "rb", buffering=0) as source:
        for piece in patched_pieces(os.fstat(source.fileno()).st_size, patches):
            if isinstance(piece, bytes):
                digest.update(piece)
                continue
            position, end = piece
            source.seek(position)
            while position < end:
                view = memoryview(buffer)[: min(len(buffer), end - position)]
                count = source.readinto(view)
                if not count:
                    raise BuildError(f"{iso}: file shrank while hashing")
                digest.update(view[:count])
                position += count
    return digest.hexdigest()


def write_patched(source: Path, patches: Patches, target: Path, *, mode: int, replace: bool = True,
                  create_parent: bool = True, base: Path | None = None) -> None:
    """target = source with patches, written by the one atomic writer. `base`: an earlier output of
    the same source, differing only in the patched areas, that is patched instead of copying 800 MB
    (it is moved aside first, so a kill leaves no half-patched file at its path)."""
    with atomic_path(target, mode=mode, replace=replace, create_parent=create_parent) as work:
        if base is not None:
            os.replace(base, work)
        else:
            copy_file(source, work)
        os.chmod(work, mode)
        patch_in_place(work, patches)


def apply_patches(iso: Path, patches: Patches, *, output: Path | None, overwrite_output: bool = False) -> None:
    """Write patches in place (no output), to stdout (output '-'), or to a new file via a temporary copy.

    A new file gets the source's mode and does not replace an existing one unless `overwrite_output`."""
    if output is None:
        patch_in_place(iso, patches)
        return
    if str(output) == "-":
        stream_patched(iso, patches, sys.stdout.fileno())
        return
    output = Path(output)
    if not overwrite_output and output.exists():
        raise BuildError(f"{output} already exists", hint="choose another output path or remove the file")
    mode = stat.S_IMODE(os.stat(iso).st_mode)
    try:
        write_patched(iso, patches, output, mode=mode, replace=overwrite_output, create_parent=False)
    except FileExistsError:  # the output appeared meanwhile: never clobber a file
        raise BuildError(f"{output} already exists", hint="choose another output path") from None
