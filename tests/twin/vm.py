"""QEMU machines for the twin: a serial console followed into a log (and answerable, for keypresses),
a monitor for link and power buttons, virtio disks, the ISO as a CD-ROM, an uplink on QEMU's user
network (the loopback HTTP server at 10.0.2.2) and optionally a LAN shared between VMs (QEMU's
socket backend in UDP mode, bound to 127.0.0.1, through a small hub).

Each boot is one QEMU run with -no-reboot: a reboot or power-off ends it, and the caller decides what
the next boot sees (ISO left in or removed), as a person at the machine would.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

GIB = 1024**3
UPLINK_MAC = "52:54:00:00:00:01"  # the twin's networkd config matches it (static 10.0.2.15)


_KVM: dict[str, bool] = {}


def kvm_usable() -> bool:
    """KVM when it really runs a guest here (probed once with the twin's kernel), else TCG."""
    if "kvm" not in _KVM:
        from tasks.smoke import kvm_works
        from tests.twin.image import build_image

        _KVM["kvm"] = kvm_works(build_image().kernel)
    return _KVM["kvm"]


class ConsoleTimeout(AssertionError):
    """A milestone did not show on the console in time; the message names it and the log."""


class Lan:
    """A virtual switch between VMs: each QEMU sends its frames as UDP datagrams to a hub on
    127.0.0.1 (socket netdev, udp mode), which repeats them to every other VM: `doit smoke`'s
    Repeater."""

    def __init__(self) -> None:
        from tasks.smoke import Repeater

        self._repeater = Repeater()
        self.members: dict[str, tuple[int, int]] = {}  # node -> (hub port, the UDP port its QEMU listens on)

    def netdev(self, node: str) -> list[str]:
        if node not in self.members:
            self.members[node] = self._repeater.member()
        hub, port = self.members[node]
        index = list(self.members).index(node) + 1
        return ["-netdev", f"socket,id=lan,udp=127.0.0.1:{hub},localaddr=127.0.0.1:{port}",
                "-device", f"virtio-net-pci,netdev=lan,mac=52:54:00:00:01:{index:02x},addr=0x10"]

    def close(self) -> None:
        self._repeater.close()


def blank_disk(path: Path, size: int = 10 * GIB) -> Path:
    """A sparse raw disk (raw, so the test can read it afterwards without qemu-nbd)."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


class Machine:
    def __init__(self, name: str, workdir: Path, *, disks: list[Path], http_port: int, lan: Lan | None = None,
                 memory_mib: int = 1536, cpus: int = 2) -> None:
        self.name, self.workdir, self.disks = name, workdir, disks
        self.http_port, self.lan, self.memory_mib, self.cpus = http_port, lan, memory_mib, cpus
        workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        self.text = ""
        self.boot_offset = 0
        self.boots = 0
        self.started_at = 0.0
        self._changed = threading.Condition()
        self._proc: subprocess.Popen[bytes] | None = None
        self._serial: socket.socket | None = None
        self.kvm = kvm_usable()

    # --- running ---------------------------------------------------------------------------------------

    def command(self, iso: Path | None, extra: list[str]) -> list[str]:
        serial, monitor = self.workdir / f"{self.name}.serial", self.workdir / f"{self.name}.monitor"
        accel = ["-accel", "kvm", "-cpu", "host"] if self.kvm else ["-accel", "tcg", "-cpu", "max"]
        command = [
            "qemu-system-x86_64", "-name", self.name, "-machine", "pc", *accel,
            "-smp", str(self.cpus), "-m", str(self.memory_mib),
            "-display", "none", "-nodefaults", "-no-reboot",
            "-chardev", f"socket,id=console,path={serial},server=on,wait=on", "-serial", "chardev:console",
            "-monitor", f"unix:{monitor},server=on,wait=off",
            "-netdev", "user,id=uplink", "-device", f"virtio-net-pci,netdev=uplink,mac={UPLINK_MAC},addr=0x4",
            "-fw_cfg", f"name=opt/k3s-twin/port,string={self.http_port}",
        ]  # fmt: skip
        for index, disk in enumerate(self.disks):
            command += ["-drive", f"file={disk},format=raw,if=none,id=disk{index},cache=unsafe",
                        "-device", f"virtio-blk-pci,drive=disk{index},serial=twin-disk-{index}"]
        if iso is not None:
            # virtio-scsi, not IDE: the installer reads the whole OS from it, and emulated IDE is slow
            command += ["-drive", f"file={iso},media=cdrom,if=none,id=cd,readonly=on",
                        "-device", "virtio-scsi-pci,id=scsi,addr=0x6", "-device", "scsi-cd,drive=cd,bootindex=0"]
        if self.lan is not None:
            command += self.lan.netdev(self.name)
        return command + extra

    def boot(self, iso: Path | None = None, extra: list[str] | None = None) -> None:
        """Power on: from the ISO (CD-ROM first in the boot order) or, without one, from the disk."""
        assert self._proc is None or self._proc.poll() is not None, "already running"
        serial = self.workdir / f"{self.name}.serial"
        serial.unlink(missing_ok=True)
        (self.workdir / f"{self.name}.monitor").unlink(missing_ok=True)
        self.boots += 1
        with self._changed:
            self.boot_offset = len(self.text)
            self._append(f"\n===== twin: {self.name} boot {self.boots} from {'ISO ' + iso.name if iso else 'disk'}"
                         f" ({'KVM' if self.kvm else 'TCG'}) =====\n")
        errors = open(self.workdir / f"{self.name}.qemu.err", "ab")
        self._proc = subprocess.Popen(self.command(iso, extra or []), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=errors)
        errors.close()
        self.started_at = time.monotonic()
        deadline = time.monotonic() + 30
        while True:
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                console.connect(os.fspath(serial))
                self._serial = console
                break
            except OSError:
                console.close()
                if time.monotonic() > deadline or self._proc.poll() is not None:
                    err = (self.workdir / f"{self.name}.qemu.err").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"QEMU for {self.name} did not start: {err}") from None
                time.sleep(0.05)
        threading.Thread(target=self._read, args=(self._serial,), daemon=True).start()

    def _append(self, chunk: str) -> None:
        self.text += chunk
        with open(self.log_path, "a") as log:
            log.write(chunk)
        self._changed.notify_all()

    def _read(self, sock: socket.socket) -> None:
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            with self._changed:
                if not data:
                    self._changed.notify_all()
                    return
                self._append(data.decode(errors="replace").replace("\r", ""))

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def boot_text(self) -> str:
        return self.text[self.boot_offset:]

    def wait_for(self, pattern: str, timeout: float, *, stage: str = "") -> re.Match[str]:
        """The first match of `pattern` in this boot's console output, waiting up to `timeout` s."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = regex.search(self.text, self.boot_offset)
                if match:
                    return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.running:
                    why = "timed out" if remaining <= 0 else "the machine stopped"
                    raise ConsoleTimeout(
                        f"{self.name}: {stage or pattern!r} not reached ({why} after "
                        f"{time.monotonic() - self.started_at:.0f} s of boot {self.boots}); "
                        f"console log {self.log_path}\n--- last console lines ---\n{self.boot_text[-3000:]}")
                self._changed.wait(min(remaining, 1.0))

    def wait_exit(self, timeout: float, *, stage: str = "") -> str:
        """Wait for QEMU to end (reboot or power-off, -no-reboot); returns 'reboot' or 'poweroff'."""
        assert self._proc is not None
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise ConsoleTimeout(
                f"{self.name}: {stage or 'power-off/reboot'} did not happen within {timeout:.0f} s; console log "
                f"{self.log_path}\n--- last console lines ---\n{self.boot_text[-3000:]}") from None
        time.sleep(0.2)  # let the reader drain the socket
        return "reboot" if "reboot: Restarting system" in self.boot_text else "poweroff"

    def send(self, text: str) -> None:
        assert self._serial is not None
        self._serial.sendall(text.encode())

    def monitor(self, command: str) -> str:
        """One human-monitor command (set_link uplink off, system_powerdown...)."""
        from tasks.smoke import monitor_command

        return monitor_command(self.workdir / f"{self.name}.monitor", command)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._serial is not None:
            self._serial.close()
