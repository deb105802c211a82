"""Boot chain: a real Linux kernel unpacks the embed area that tasks.iso wrote and finds /config.ign.

QEMU boots the host's kernel with two initrds concatenated, the way GRUB/isolinux load
`initrd.img` + `ignition.img`: a tiny busybox initramfs whose /init prints the sha256 of /config.ign
on the serial console and powers off, followed by the raw embed area cut out of a customised ISO.
"""

from __future__ import annotations

import glob
import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tasks import iso
from tests.synthetic_iso import build_fcos_iso
from tests.tools import require_tool

INIT_SCRIPT = b"""#!/bin/busybox sh
/bin/busybox echo "CONFIG-SHA256: $(/bin/busybox sha256sum /config.ign)"
/bin/busybox poweroff -f
"""


def _newc_entry(ino: int, name: str, mode: int, data: bytes) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = b"070701" + b"".join(b"%08x" % value for value in fields)
    return header + encoded + b"\0" * (-(110 + len(encoded)) % 4) + data + b"\0" * (-len(data) % 4)


def busybox_initramfs(busybox: Path) -> bytes:
    """An uncompressed newc initramfs: /init, /bin/busybox; padded like a bootloader aligns initrds."""
    archive = (
        _newc_entry(1, "bin", 0o040755, b"")
        + _newc_entry(2, "bin/busybox", 0o100755, busybox.read_bytes())
        + _newc_entry(3, "init", 0o100755, INIT_SCRIPT)
        + _newc_entry(0, "TRAILER!!!", 0, b"")
    )
    return archive + b"\0" * (-len(archive) % 4096)


@pytest.mark.slow
def test_kernel_unpacks_embedded_config(tmp_path: Path) -> None:
    require_tool("qemu-system-x86_64")
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    busybox = shutil.which("busybox") or "/bin/busybox"
    if not kernels or not Path(busybox).exists():
        pytest.skip("needs a kernel in /boot and busybox-static")

    config = b'{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/hostname"}]}}\n'
    custom = tmp_path / "custom.iso"
    build_fcos_iso(tmp_path / "fcos.iso")
    iso.embed_ignition(tmp_path / "fcos.iso", config, output=custom)
    area = iso.read_live_iso(custom).ignition_area
    with open(custom, "rb") as handle:
        handle.seek(area.offset)
        embed_area = handle.read(area.length)

    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(busybox_initramfs(Path(busybox)) + embed_area)
    command = [
        "qemu-system-x86_64", "-accel", "tcg", "-nographic", "-no-reboot", "-m", "256",
        "-kernel", kernels[-1], "-initrd", str(initrd),
        "-append", "console=ttyS0 panic=-1 quiet rdinit=/init",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=90)
    except subprocess.TimeoutExpired as exc:
        console = (exc.stdout or b"").decode(errors="replace")
        pytest.fail(f"VM did not power off in time; console:\n{console[-3000:]}")
    console = result.stdout.decode(errors="replace")
    match = re.search(r"CONFIG-SHA256: ([0-9a-f]{64})", console)
    assert match, f"no checksum on the console:\n{console[-3000:]}"
    assert match.group(1) == hashlib.sha256(config).hexdigest()
