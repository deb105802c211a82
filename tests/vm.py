"""A throw-away Linux VM for boot tests: the host's Debian kernel and a busybox initramfs of our own.

Nothing of the host runs in it but the kernel: /init is ours, and the VM powers off when it is done.
KVM when /dev/kvm can be opened, else TCG.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.tools import require_tool


def newc_entry(ino: int, name: str, mode: int, data: bytes) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = b"070701" + b"".join(b"%08x" % value for value in fields)
    return header + encoded + b"\0" * (-(110 + len(encoded)) % 4) + data + b"\0" * (-len(data) % 4)


def initramfs(files: dict[str, tuple[int, bytes]]) -> bytes:
    """An uncompressed newc archive of {path: (mode, data)} (directories: mode 0o040755, data b""),
    padded to 4 KiB as a bootloader aligns the next initrd."""
    archive = b"".join(newc_entry(i + 1, name, mode, data) for i, (name, (mode, data)) in enumerate(files.items()))
    archive += newc_entry(0, "TRAILER!!!", 0, b"")
    return archive + b"\0" * (-len(archive) % 4096)


def host_kernel() -> Path:
    require_tool("qemu-system-x86_64")
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    if not kernels:
        require_tool("a kernel in /boot (Debian's linux-image-amd64)")
    return Path(kernels[-1])


def busybox() -> Path:
    found = shutil.which("busybox") or "/bin/busybox"
    if not Path(found).exists():
        require_tool("busybox")
    return Path(found)


def kernel_module(name: str) -> bytes:
    """A module of the host kernel (uncompressed in Debian 12), for /init to insmod."""
    release = host_kernel().name.removeprefix("vmlinuz-")
    found = glob.glob(f"/lib/modules/{release}/kernel/**/{name}.ko", recursive=True)
    if not found:
        pytest.skip(f"{name}.ko of kernel {release} not found")
    return Path(found[0]).read_bytes()


def busybox_files(init: str) -> dict[str, tuple[int, bytes]]:
    return {
        "bin": (0o040755, b""), "proc": (0o040755, b""), "sys": (0o040755, b""), "dev": (0o040755, b""),
        "bin/busybox": (0o100755, busybox().read_bytes()),
        "init": (0o100755, ("#!/bin/busybox sh\n/bin/busybox --install -s /bin\n"
                            "mount -t proc proc /proc\nmount -t sysfs sys /sys\n" + init
                            + "\npoweroff -f\n").encode()),
    }


@functools.cache
def kvm_works() -> bool:
    """/dev/kvm opening is not enough (nested virtualization can fail or hang): `doit smoke`'s probe."""
    from tasks.smoke import kvm_works as boots_under_kvm

    return boots_under_kvm(host_kernel(), timeout=10)


def accelerator() -> list[str]:
    return ["-accel", "kvm"] if kvm_works() else ["-accel", "tcg"]


def qemu_command(kernel: Path, initrd: Path, append: str, extra: Sequence[str] = ()) -> list[str]:
    return ["qemu-system-x86_64", *accelerator(), "-nographic", "-no-reboot", "-m", "256",
            "-kernel", os.fspath(kernel), "-initrd", os.fspath(initrd),
            "-append", f"console=ttyS0 panic=-1 quiet rdinit=/init {append}".strip(), *extra]


def boot(command: list[str], *, answer: tuple[str, str] | None = None, timeout: float = 120) -> str:
    """Run the VM to its poweroff; answer=(prompt, text) types text on the console once prompt appears.
    Returns the console output."""
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    output = b""
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        chunk = proc.stdout.read() or b""
        output += chunk
        if answer and answer[0].encode() in output:
            proc.stdin.write(answer[1].encode())
            proc.stdin.flush()
            answer = None
        if not chunk:
            time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
        pytest.fail(f"VM did not power off within {timeout} s; console:\n{output.decode(errors='replace')[-3000:]}")
    output += proc.stdout.read() or b""
    return output.decode(errors="replace")
