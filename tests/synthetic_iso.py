"""Synthetic Fedora CoreOS live ISOs in the real modern (2023+) layout, for tests and benchmarks.

The ISO9660 tree, `/coreos/*.json` files, the 256 KiB zero `images/ignition.img` embed area and the
karg embed areas inside `isolinux/isolinux.cfg` and `EFI/fedora/grub.cfg` follow what
coreos-assembler's `buildextend-live` produces, so coreos-installer (and `tasks.iso`) treat the result
as a genuine FCOS ISO. Kernel, initramfs and rootfs are placeholders. `pad_to` grows the ISO with a big
`images/pxeboot/rootfs.img` that is written from a sparse file, so even 800 MB build in seconds.
"""

from __future__ import annotations

import ctypes
import io
import json
import os
import tempfile
from pathlib import Path

import pycdlib

DEFAULT_VOLUME_ID = "fedora-coreos-44.20260707.3.1"
DEFAULT_KARGS = (
    "mitigations=auto,nosmt coreos.liveiso=fedora-coreos-44.20260707.3.1 "
    "ignition.firstboot ignition.platform.id=metal"
)
KARG_AREA_SIZE = 1139
IGNITION_AREA_SIZE = 256 * 1024
PLACEHOLDER_STRIDE = 64 * 1024 * 1024
KARG_MARKER = "# COREOS_KARG_EMBED_AREA\n"
FEATURES = {
    "installer-config": True,
    "installer-config-directives": {
        name: True
        for name in (
            "append-karg architecture console copy-network delete-karg dest-device fetch-retries "
            "ignition-file ignition-hash ignition-url image-file image-url insecure insecure-ignition "
            "network-dir offline platform preserve-on-error save-partindex save-partlabel stream "
            "stream-base-url"
        ).split()
    },
    "live-initrd-network": True,
}

ISOLINUX_HEAD = """serial 0
default vesamenu.c32
timeout 50
menu title Fedora CoreOS

label linux
  menu label ^Fedora CoreOS (Live)
  menu default
  kernel /images/pxeboot/vmlinuz
  append initrd=/images/pxeboot/initrd.img,/images/ignition.img """
ISOLINUX_TAIL = "\nlabel local\n  menu label Boot from ^local drive\n  localboot 0xffff\n"

GRUB_HEAD = """set default="1"
set timeout=5
menuentry 'Fedora CoreOS (Live)' --class fedora --class gnu-linux --class gnu --class os {
\tlinux /images/pxeboot/vmlinuz """
GRUB_TAIL = "\tinitrd /images/pxeboot/initrd.img /images/ignition.img\n}\n"


def _pretty_json(value: object) -> bytes:
    """JSON as coreos-assembler writes it: 2-space indent, sorted keys, trailing newline."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def _karg_area(kargs: str) -> str:
    """The kargs, their newline, then '#' padding: exactly KARG_AREA_SIZE characters."""
    area = kargs + "\n"
    if len(area) > KARG_AREA_SIZE:
        raise ValueError(f"default kargs longer than the {KARG_AREA_SIZE}-byte karg area")
    return area + "#" * (KARG_AREA_SIZE - len(area))


def _bootloader_config(head: str, kargs: str, tail: str) -> tuple[bytes, int]:
    """A config file whose kernel line ends in a karg area; returns (bytes, area offset)."""
    text = head + _karg_area(kargs) + KARG_MARKER + tail
    return text.encode(), len(head.encode())


def _sparse_placeholder(size: int) -> io.BufferedRandom:
    """An anonymous sparse file of `size` bytes with a non-zero 4 KiB block every 64 MiB."""
    handle = tempfile.TemporaryFile()
    os.truncate(handle.fileno(), size)
    for offset in range(0, size, PLACEHOLDER_STRIDE):
        handle.seek(offset)
        handle.write(b"rootfs placeholder block".ljust(min(4096, size - offset), b"\xa5")[: size - offset])
    handle.seek(0)
    return handle


def build_fcos_iso(
    path: Path,
    *,
    volume_id: str = DEFAULT_VOLUME_ID,
    pad_to: int = 0,
    kargs_default: str = DEFAULT_KARGS,
) -> None:
    """Write a synthetic FCOS live ISO to `path` (about `pad_to` bytes when that is larger)."""
    isolinux_cfg, isolinux_off = _bootloader_config(ISOLINUX_HEAD, kargs_default, ISOLINUX_TAIL)
    grub_cfg, grub_off = _bootloader_config(GRUB_HEAD, kargs_default, GRUB_TAIL)
    kargs_json = {
        "default": kargs_default,
        "files": [
            {"end": "\n", "offset": grub_off, "pad": "#", "path": "EFI/fedora/grub.cfg"},
            {"end": "\n", "offset": isolinux_off, "pad": "#", "path": "isolinux/isolinux.cfg"},
        ],
        "size": KARG_AREA_SIZE,
    }
    files: list[tuple[str, str, bytes]] = [  # (ISO9660 path, Rock Ridge name, content)
        ("/COREOS/IGNINFO.JSO;1", "igninfo.json", _pretty_json({"file": "images/ignition.img"})),
        ("/COREOS/KARGS.JSO;1", "kargs.json", _pretty_json(kargs_json)),
        ("/COREOS/FEATURES.JSO;1", "features.json", _pretty_json(FEATURES)),
        ("/COREOS/MINISO.DAT;1", "miniso.dat", b"coreiso minimal placeholder\n".ljust(16384, b"\0")),
        ("/EFI/FEDORA/GRUB.CFG;1", "grub.cfg", grub_cfg),
        ("/IMAGES/IGNITION.IMG;1", "ignition.img", bytes(IGNITION_AREA_SIZE)),
        ("/IMAGES/EFIBOOT.IMG;1", "efiboot.img", b"efiboot.img\n"),
        ("/IMAGES/PXEBOOT/VMLINUZ.;1", "vmlinuz", b"vmlinuz\n"),
        ("/IMAGES/PXEBOOT/INITRD.IMG;1", "initrd.img", b"initrd.img\n"),
        ("/ISOLINUX/ISOLINUX.CFG;1", "isolinux.cfg", isolinux_cfg),
        ("/ZIPL.PRM;1", "zipl.prm", kargs_default.encode() + b"\n"),
    ]
    directories = [
        ("/COREOS", "coreos"),
        ("/EFI", "EFI"),
        ("/EFI/FEDORA", "fedora"),
        ("/IMAGES", "images"),
        ("/IMAGES/PXEBOOT", "pxeboot"),
        ("/ISOLINUX", "isolinux"),
    ]
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, vol_ident=volume_id, sys_ident="LINUX", rock_ridge="1.09")
    for iso_path, rr_name in directories:
        iso.add_directory(iso_path, rr_name=rr_name)
    for iso_path, rr_name, content in files:
        iso.add_fp(io.BytesIO(content), len(content), iso_path, rr_name=rr_name)
    rootfs_size = max(0, pad_to - 366 * 1024) // 2048 * 2048  # the rest of the ISO is ~360 KiB
    rootfs = _sparse_placeholder(max(rootfs_size, 12))
    try:
        iso.add_fp(rootfs, max(rootfs_size, 12), "/IMAGES/PXEBOOT/ROOTFS.IMG;1", rr_name="rootfs.img")
        iso.write(str(path), blocksize=4 * 1024 * 1024)
        rootfs_offset = iso.get_record(iso_path="/IMAGES/PXEBOOT/ROOTFS.IMG;1").extent_location() * 2048
    finally:
        iso.close()
        rootfs.close()
    if rootfs_size > PLACEHOLDER_STRIDE:
        _punch_zero_runs(path, rootfs_offset, rootfs_size)


def _punch_zero_runs(path: Path, offset: int, size: int) -> None:
    """Turn the placeholder's zero runs back into holes, so the big ISO costs little disk space."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
    punch_hole_keep_size = 0x02 | 0x01
    fd = os.open(path, os.O_RDWR)
    try:
        for block in range(0, size, PLACEHOLDER_STRIDE):
            start = offset + block + 4096  # keep each stride's non-zero 4 KiB block
            length = min(PLACEHOLDER_STRIDE, size - block) - 4096
            if length > 0 and libc.fallocate(fd, punch_hole_keep_size, start, length) != 0:
                return  # filesystem without hole punching: the ISO just stays dense
    finally:
        os.close(fd)


if __name__ == "__main__":
    import sys

    build_fcos_iso(Path(sys.argv[1]), pad_to=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
