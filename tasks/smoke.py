"""`doit smoke`: boot every node's ISO in QEMU on a blank disk and follow the install to a Ready cluster.

Each node gets a sparse qcow2 disk under build/smoke/, an uplink with outside access (QEMU's user
network) and a NIC on a LAN shared by the nodes (QEMU's socket backend in UDP mode on 127.0.0.1,
through a small repeater), at PCI slot 16 (`ens16`: name it in `nodes[].network.interface`). The boot
order is disk first, then the ISO: a blank disk falls through to the ISO, the installed disk boots
itself, as on a machine. Every serial console is written to build/smoke/<node>.log; milestones print
as they are seen, each with its own timeout naming the stage that stalled and the log to read.
Ctrl-C (or any failure) stops every VM and removes the disks; the logs stay.

Done when the first server's console reports every node Ready (report-cluster-nodes) and every node
then powers off cleanly at the press of its power button. K3S_SMOKE_QEMU_ARGS adds QEMU arguments
to every VM; K3S_SMOKE_TIMEOUT_SCALE scales the timeouts (TCG multiplies them by 4);
K3S_SMOKE_KEEP_DISKS=1 keeps the disks afterwards, for a look inside; K3S_SMOKE_MONITORS=DIR puts
each VM's QEMU monitor socket there as <node>.monitor.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tasks import config
from tasks.common import BUILD, ISO_DIR, BuildError, log
from tasks.doit_glue import TaskDict, action

SMOKE_DIR = BUILD / "smoke"
DISK_SIZE = "20G"
UPLINK_MAC = "52:54:00:00:00:01"


@dataclass(frozen=True)
class Milestone:
    name: str
    pattern: str  # on the node's console
    timeout: float  # seconds after the previous milestone (KVM)


MILESTONES = (
    Milestone("live system up", r"k3s-autoinstall: cluster \S+, node", 300),
    Milestone("installed", r"k3s-autoinstall: installed node", 900),
    Milestone("rebooted", r"Linux version", 300),
    Milestone("layered", r"run-k3s-prereq-installer: layered", 1800),
    Milestone("k3s running", r"run-k3s-installer: k3s \(\S+\) is installed and running", 1800),
)
# report-cluster-nodes on the first server (jsonnet/scripts): "nodes Ready (2 of 3): a1 s1"
POWER_OFF_SECONDS = 60  # from the power button to the VM's end (KVM)
READY = Milestone("node Ready", r"report-cluster-nodes: nodes Ready \(\d+ of \d+\): (?P<nodes>[^\n]*)", 900)


def kvm_works(kernel: Path, timeout: float = 30) -> bool:
    """Whether KVM really runs a guest here: /dev/kvm opens, and `kernel` boots under it far enough to
    panic for want of a root filesystem (nested or restricted KVM can open fine and then hang)."""
    if os.environ.get("K3S_ACCEL") in ("kvm", "tcg"):
        return os.environ["K3S_ACCEL"] == "kvm"
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError:
        return False
    command = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-machine", "pc", "-m", "256",
               "-display", "none", "-nodefaults", "-no-reboot", "-serial", "stdio", "-kernel", os.fspath(kernel),
               "-append", "console=ttyS0 panic=-1"]
    try:
        result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return False
    return b"Kernel panic" in result.stdout


def iso_kernel(iso: Path, target: Path) -> Path:
    """The live kernel (images/pxeboot/vmlinuz) out of a live ISO, for the KVM probe."""
    from tasks.iso import iso9660

    fd = os.open(iso, os.O_RDONLY)
    try:
        volume = iso9660.open_volume(fd)
        record = iso9660.lookup(fd, volume, "IMAGES/PXEBOOT/VMLINUZ")
        target.write_bytes(iso9660.read_exact(fd, record.offset, record.length))
    finally:
        os.close(fd)
    return target


def plan(cluster: config.Config) -> list[tuple[str, str, Path]]:
    """(node, role, ISO) in config order: what the smoke test boots."""
    return [(node.name, node.role, ISO_DIR / f"{node.iso_name}.iso") for node in cluster.nodes]


def next_milestone(text: str, start: int, milestone: Milestone) -> int | None:
    """Where `milestone` is reached in `text` at or after `start` (end of the match), else None."""
    match = re.search(milestone.pattern, text[start:])
    return None if match is None else start + match.end()


def ready_nodes(text: str) -> set[str]:
    """The nodes the first server last reported Ready."""
    found = re.findall(READY.pattern, text)
    return set(found[-1].split()) if found else set()


class Repeater:
    """The nodes' LAN: a UDP hub on 127.0.0.1 repeating each VM's frames to the others."""

    def __init__(self) -> None:
        self.hub = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.hub.bind(("127.0.0.1", 0))
        self.ports: list[int] = []
        threading.Thread(target=self._repeat, daemon=True).start()

    def member(self) -> tuple[int, int]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        self.ports.append(port)
        return int(self.hub.getsockname()[1]), port

    def _repeat(self) -> None:
        while True:
            try:
                frame, (_, sender) = self.hub.recvfrom(65536)
            except OSError:
                return
            for port in self.ports:
                if port != sender:
                    try:
                        self.hub.sendto(frame, ("127.0.0.1", port))
                    except OSError:
                        pass

    def close(self) -> None:
        self.hub.close()


def qemu_command(name: str, iso: Path, disk: Path, console: Path, lan: tuple[int, int], index: int,
                 kvm: bool, monitor: Path, cpus: int = 2) -> list[str]:
    hub, port = lan
    accel = ["-accel", "kvm", "-cpu", "host"] if kvm else ["-accel", "tcg", "-cpu", "max"]
    return [
        "qemu-system-x86_64", "-name", name, "-machine", "pc", *accel, "-smp", str(cpus), "-m", "3072",
        "-display", "none", "-nodefaults",
        "-chardev", f"file,id=console,path={console}", "-serial", "chardev:console",
        "-monitor", f"unix:{monitor},server=on,wait=off",
        # Disk first, then the ISO: a blank disk falls through to the ISO, an installed one boots itself.
        # The CD on virtio-scsi, not IDE: the live installer reads the whole OS image from it, and
        # emulated IDE is slow (FCOS's live initramfs has virtio_scsi and sr_mod).
        "-drive", f"file={disk},format=qcow2,if=none,id=disk,cache=unsafe",
        "-device", "virtio-blk-pci,drive=disk,bootindex=0",
        "-drive", f"file={iso},media=cdrom,if=none,id=cd,readonly=on",
        "-device", "virtio-scsi-pci,id=scsi", "-device", "scsi-cd,drive=cd,bootindex=1",
        "-netdev", "user,id=uplink", "-device", f"virtio-net-pci,netdev=uplink,mac={UPLINK_MAC},addr=0x4",
        "-netdev", f"socket,id=lan,udp=127.0.0.1:{hub},localaddr=127.0.0.1:{port}",
        "-device", f"virtio-net-pci,netdev=lan,mac=52:54:00:00:01:{index + 1:02x},addr=0x10",
        *shlex.split(os.environ.get("K3S_SMOKE_QEMU_ARGS", "")),
    ]  # fmt: skip


class Node:
    def __init__(self, name: str, role: str, iso: Path) -> None:
        self.name, self.role, self.iso = name, role, iso
        self.console = SMOKE_DIR / f"{name}.log"
        self.disk = SMOKE_DIR / f"{name}.qcow2"
        self.monitor = SMOKE_DIR / f"{name}.monitor"  # QEMU's monitor (the power button); see run_smoke
        self.reached = 0  # milestones passed
        self.position = 0  # console offset after the last milestone
        self.since = time.monotonic()
        self.process: subprocess.Popen[bytes] | None = None
        self.pending = False  # not started yet: waits for a free core (TCG)

    def text(self) -> str:
        try:
            return self.console.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def follow(nodes: list[Node], first_server: str, scale: float, poll: float = 1.0,
           on_milestone: Callable[[str], None] = lambda name: None) -> None:
    """Print milestones as the consoles show them; raise on the first stall or an early QEMU exit.
    `on_milestone` is called with each milestone's name as a node reaches it."""
    names = {node.name for node in nodes}
    first = next(node for node in nodes if node.name == first_server)
    ready_seen: set[str] = set()
    ready_since = None
    while True:
        for node in nodes:
            if node.pending:
                continue
            text = node.text()
            while node.reached < len(MILESTONES):
                milestone = MILESTONES[node.reached]
                end = next_milestone(text, node.position, milestone)
                if end is None:
                    break
                log(f"smoke: {node.name}: {milestone.name} ({time.monotonic() - node.since:.0f} s)")
                node.reached, node.position, node.since = node.reached + 1, end, time.monotonic()
                on_milestone(milestone.name)
            if node.reached < len(MILESTONES):
                milestone = MILESTONES[node.reached]
                if time.monotonic() - node.since > milestone.timeout * scale:
                    raise BuildError(f"smoke: {node.name}: stage '{milestone.name}' stalled: not reached within "
                                     f"{milestone.timeout * scale:.0f} s", hint=f"read {node.console}")
            if node.process is not None and node.process.poll() is not None:
                raise BuildError(f"smoke: {node.name}: the VM stopped before '{_stage(node)}' "
                                 f"(QEMU exit {node.process.returncode})", hint=f"read {node.console}")
        if all(node.reached == len(MILESTONES) for node in nodes):
            ready_since = ready_since or time.monotonic()
            ready = ready_nodes(first.text())
            for name in sorted((ready & names) - ready_seen):
                log(f"smoke: {name}: node Ready")
            ready_seen |= ready & names
            if names <= ready:
                return
            if time.monotonic() - ready_since > READY.timeout * scale:
                missing = ", ".join(sorted(names - ready))
                raise BuildError(f"smoke: stage 'node Ready' stalled: {missing} not Ready on {first_server} "
                                 f"within {READY.timeout * scale:.0f} s", hint=f"read {first.console}")
        time.sleep(poll)


def power_off(nodes: list[Node], limit: float) -> None:
    """Press every node's power button (ACPI) and wait for each VM to end: a clean shutdown, so the
    disks are consistent, and a check in itself (a unit that waits on itself hangs it for minutes)."""
    pressed = time.monotonic()
    for node in nodes:
        press_power_button(node.monitor)
    running = list(nodes)
    while running:  # each VM's own time, whichever ends first
        for node in list(running):
            assert node.process is not None
            if node.process.poll() is not None:
                log(f"smoke: {node.name}: powered off ({time.monotonic() - pressed:.0f} s after the power button)")
                running.remove(node)
        if running and time.monotonic() - pressed > limit:
            node = running[0]
            raise BuildError(f"smoke: {node.name}: stage 'power-off' stalled: still running {limit:.0f} s after "
                             "the power button (a unit waiting on itself?)", hint=f"read {node.console}")
        time.sleep(0.2)


def press_power_button(monitor: Path) -> None:
    monitor_command(monitor, "system_powerdown")


def monitor_command(monitor: Path, command: str, timeout: float = 10) -> str:
    """Run one command on a QEMU human monitor socket and return its output. It waits for the prompt
    that follows the command: a client that hangs up while QEMU still echoes its input can lose the
    command. (QEMU ending meanwhile, as a power-off may, ends the wait too.)"""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(os.fspath(monitor))
        _read_to_prompt(sock)  # the banner
        sock.sendall(command.encode() + b"\n")
        return _read_to_prompt(sock).decode(errors="replace")


def _read_to_prompt(sock: socket.socket) -> bytes:
    received = b""
    while not received.endswith(b"(qemu) "):
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


def _stage(node: Node) -> str:
    return MILESTONES[node.reached].name if node.reached < len(MILESTONES) else READY.name


def _stop(nodes: list[Node], keep_disks: bool) -> None:
    for node in nodes:
        if node.process is not None and node.process.poll() is None:
            node.process.terminate()
            try:
                node.process.wait(10)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
        node.monitor.unlink(missing_ok=True)
        if not keep_disks:
            node.disk.unlink(missing_ok=True)


@action
def run_smoke(rows: list[tuple[str, str, Path]], first_server: str) -> None:
    if shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None:
        raise BuildError("qemu-system-x86_64 or qemu-img not found", hint="install qemu-system-x86 and qemu-utils")
    SMOKE_DIR.mkdir(parents=True, exist_ok=True)
    kvm = kvm_works(iso_kernel(rows[0][2], SMOKE_DIR / "probe-vmlinuz"))
    scale = float(os.environ.get("K3S_SMOKE_TIMEOUT_SCALE", "1")) * (1 if kvm else 4)
    if not kvm:
        log("smoke: warning: /dev/kvm is not usable: TCG emulation, expect several times longer (an hour or more)")
    SMOKE_DIR.mkdir(parents=True, exist_ok=True)
    nodes = [Node(name, role, iso) for name, role, iso in rows]
    keep_disks = os.environ.get("K3S_SMOKE_KEEP_DISKS") == "1"
    # Under TCG, more VMs than cores each run several times slower (measured: a fifth of the speed
    # for a little over a third of a core), so at most one VM per core starts at once; each further
    # one starts when a running node has layered (its live install and first boot are behind it).
    cores = os.cpu_count() or 1
    at_once = len(nodes) if kvm else min(len(nodes), cores)
    cpus = 2 if kvm else max(1, min(2, cores // at_once))
    # QEMU monitors, to reach a running VM (`socat - UNIX-CONNECT:<dir>/<node>.monitor`): in
    # K3S_SMOKE_MONITORS, else a fresh directory under /tmp (a socket path has at most 107 bytes)
    chosen = os.environ.get("K3S_SMOKE_MONITORS")
    sockets = Path(chosen) if chosen else Path(tempfile.mkdtemp(prefix="k3s-smoke-"))
    sockets.mkdir(parents=True, exist_ok=True)
    for node in nodes:
        node.monitor = sockets / f"{node.name}.monitor"
    lan = Repeater()
    previous = signal.getsignal(signal.SIGTERM)

    def terminate(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    try:
        def boot(index: int) -> None:
            node = nodes[index]
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(node.disk), DISK_SIZE], check=True)
            command = qemu_command(node.name, node.iso, node.disk, node.console, lan.member(), index, kvm,
                                   node.monitor, cpus)
            node.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE)
            node.pending, node.since = False, time.monotonic()
            log(f"smoke: {node.name}: booting {node.iso} ({'KVM' if kvm else 'TCG'}), console {node.console}")

        def boot_next() -> None:
            waiting = [index for index, node in enumerate(nodes) if node.pending]
            if waiting:
                boot(waiting[0])

        for index, node in enumerate(nodes):
            node.console.unlink(missing_ok=True)
            node.disk.unlink(missing_ok=True)
            node.pending = index >= at_once
            if node.pending:
                log(f"smoke: {node.name}: starts once another node has layered (TCG: one VM per core at first)")
            else:
                boot(index)
        follow(nodes, first_server, scale, on_milestone=lambda name: boot_next() if name == "layered" else None)
        log(f"smoke: every node is Ready ({', '.join(node.name for node in nodes)}); pressing the power buttons")
        power_off(nodes, POWER_OFF_SECONDS * scale)
        if keep_disks:
            log(f"smoke: disks kept (K3S_SMOKE_KEEP_DISKS): {', '.join(os.fspath(n.disk) for n in nodes)}")
    except KeyboardInterrupt:
        log("smoke: interrupted: stopping every VM" + ("" if keep_disks else " and removing the disks"))
        raise BuildError("smoke: interrupted", hint="the VMs are stopped" + (
            "" if keep_disks else " and their disks removed")) from None
    finally:
        _stop(nodes, keep_disks)
        if not chosen:
            shutil.rmtree(sockets, ignore_errors=True)
        lan.close()
        signal.signal(signal.SIGTERM, previous)


def task_smoke() -> Iterator[TaskDict]:
    """Boot every node's ISO in QEMU on a blank disk and follow it to a Ready cluster (minutes; KVM)."""
    cluster = config.current()
    rows = plan(cluster)
    yield {
        "name": None,
        "doc": "Boot every ISO in QEMU (blank disks under build/smoke/) until every node is Ready.",
    }
    yield {
        "name": "run",
        "actions": [(run_smoke, [rows, cluster.first_server.name])],
        "task_dep": ["embed"],
        "file_dep": [os.fspath(iso) for _, _, iso in rows],
        "uptodate": [False],  # a check, not a build: runs every time it is asked for
        "verbosity": 2,
    }
