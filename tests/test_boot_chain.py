"""Boot chain: a real Linux kernel unpacks the embed area that tasks.iso wrote and finds /config.ign.

QEMU boots the host's kernel with two initrds concatenated, the way GRUB/isolinux load
`initrd.img` + `ignition.img`: a tiny busybox initramfs whose /init prints the sha256 of /config.ign
on the serial console and powers off, followed by the raw embed area cut out of a customised ISO.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tasks import iso
from tests import vm
from tests.synthetic_iso import build_fcos_iso

PRINT_CONFIG_SHA256 = 'echo "CONFIG-SHA256: $(sha256sum /config.ign)"'


@pytest.mark.slow
def test_kernel_unpacks_embedded_config(tmp_path: Path) -> None:
    kernel = vm.host_kernel()
    config = b'{"ignition":{"version":"3.4.0"},"storage":{"files":[{"path":"/etc/hostname"}]}}\n'
    custom = tmp_path / "custom.iso"
    build_fcos_iso(tmp_path / "fcos.iso")
    iso.embed_ignition(tmp_path / "fcos.iso", config, output=custom)
    area = iso.read_live_iso(custom).ignition_area
    with open(custom, "rb") as handle:
        handle.seek(area.offset)
        embed_area = handle.read(area.length)

    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(vm.initramfs(vm.busybox_files(PRINT_CONFIG_SHA256)) + embed_area)
    console = vm.boot(vm.qemu_command(kernel, initrd, ""), timeout=90)
    match = re.search(r"CONFIG-SHA256: ([0-9a-f]{64})", console)
    assert match, f"no checksum on the console:\n{console[-3000:]}"
    assert match.group(1) == hashlib.sha256(config).hexdigest()
