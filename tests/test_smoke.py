"""`doit smoke`: its milestone follower on scripted consoles (each stage stalling in turn gives one line
naming it and the log), and the task itself with stand-in QEMU binaries: it is not a default task, it
boots one VM per node, and Ctrl-C stops them all and removes their disks.

The real boot, end to end, runs against the twin in tests/test_twin.py (test_smoke_against_the_twin).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tasks import smoke
from tasks.common import BuildError

CONSOLE = {  # what each milestone looks like on a console, in order
    "live system up": "k3s-autoinstall: cluster twin, node {node}, disk auto\n",
    "installed": "k3s-autoinstall: installed node {node} to /dev/vda\n",
    "rebooted": "[    0.000000] Linux version 6.1.0\n",
    "layered": "run-k3s-prereq-installer: layered k3s-selinux; rebooting\n",
    "k3s running": "run-k3s-installer: k3s (k3s) is installed and running\n",
}


def nodes_with_consoles(tmp_path: Path, reached: int, names: tuple[str, ...] = ("s1", "a1")) -> list[smoke.Node]:
    nodes = []
    for name in names:
        node = smoke.Node(name, "server", tmp_path / f"{name}.iso")
        node.console = tmp_path / f"{name}.log"
        node.console.write_text("".join(text.format(node=name) for text in list(CONSOLE.values())[:reached]))
        nodes.append(node)
    return nodes


def test_milestones_print_in_order_and_ready_ends_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nodes = nodes_with_consoles(tmp_path, len(CONSOLE))
    with nodes[0].console.open("a") as console:
        console.write("report-cluster-nodes: nodes Ready (2 of 2): a1 s1\n")
    smoke.follow(nodes, "s1", scale=0.01, poll=0.01)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("‣ smoke: s1:")]
    assert [line.split(": ", 2)[2].rsplit(" (", 1)[0] for line in lines] == [*CONSOLE, "node Ready"]


@pytest.mark.parametrize("stalled", range(len(CONSOLE) + 1))
def test_a_stalled_stage_is_one_line_naming_it_and_the_log(tmp_path: Path, stalled: int) -> None:
    nodes = nodes_with_consoles(tmp_path, stalled)
    stage = list(CONSOLE)[stalled] if stalled < len(CONSOLE) else "node Ready"
    with pytest.raises(BuildError) as failure:
        smoke.follow(nodes, "s1", scale=0.0005, poll=0.01)
    message = failure.value.line  # what the user sees: message and hint
    assert f"stage '{stage}' stalled" in message
    assert "\n" not in message and f"read {tmp_path}" in message


def test_a_waiting_node_is_not_timed_until_it_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Under TCG smoke starts a further VM only once a running node has layered: until then that node
    is neither followed nor timed."""
    nodes = nodes_with_consoles(tmp_path, len(CONSOLE))
    nodes[1].pending = True
    with nodes[0].console.open("a") as console:
        console.write("report-cluster-nodes: nodes Ready (2 of 2): a1 s1\n")
    seen: list[str] = []

    def start_the_next(name: str) -> None:
        seen.append(name)
        if name == "layered":
            nodes[1].pending = False

    smoke.follow(nodes, "s1", scale=0.01, poll=0.01, on_milestone=start_the_next)
    assert seen[:len(CONSOLE)] == list(CONSOLE)  # s1's, in order; a1 starts after s1 layered
    a1_first = next(line for line in capsys.readouterr().err.splitlines() if "smoke: a1:" in line)
    assert "live system up" in a1_first


def test_ready_nodes_are_the_last_report() -> None:
    assert smoke.ready_nodes("report-cluster-nodes: nodes Ready (1 of 2): a\n"
                             "report-cluster-nodes: nodes Ready (2 of 2): a b\n") == {"a", "b"}
    assert smoke.ready_nodes("nothing yet") == set()


FAKE_QEMU = """#!/bin/sh
# records its arguments, then runs until stopped, like a VM
echo "$@" >> "$FAKE_QEMU_LOG"
exec sleep 600
"""
FAKE_QEMU_IMG = """#!/bin/sh
# qemu-img create -q -f qcow2 PATH SIZE
for last; do :; done
path=
for a; do case "$a" in *.qcow2) path=$a ;; esac; done
: > "$path"
"""


def test_doit_smoke_boots_every_node_and_ctrl_c_cleans_up(tmp_path: Path) -> None:
    from tests.mirror import Mirror
    from tests.pipeline_project import Project
    from tests.tools import require_tool

    require_tool("gpg", "gpgv", "ssh-keygen")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("qemu-system-x86_64", FAKE_QEMU), ("qemu-img", FAKE_QEMU_IMG)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    with Mirror(tmp_path / "mirror") as mirror:
        project = Project.create(tmp_path / "checkout", mirror, nodes=[
            {"name": "s1", "role": "server"}, {"name": "a1", "role": "agent"}])
        listing = project.doit("list")
        assert "smoke" in listing.stdout
        built = project.doit()
        assert built.returncode == 0, built.stdout + built.stderr
        assert "smoke" not in built.executed
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "K3S_ACCEL": "tcg",
               "FAKE_QEMU_LOG": os.fspath(tmp_path / "qemu.log"), "HOME": os.fspath(project.home)}
        env.pop("K3S_TOKEN", None)
        process = subprocess.Popen([sys.executable, "-m", "doit", "smoke"], cwd=project.root, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        smoke_dir = project.root / "build" / "smoke"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (smoke_dir / "a1.qcow2").exists():
            time.sleep(0.2)
        time.sleep(1)
        assert (tmp_path / "qemu.log").read_text().count("-name") == 2
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "interrupted: stopping every VM and removing the disks" in err
    assert not list(smoke_dir.glob("*.qcow2")), "disks left behind"
    stray = subprocess.run(["pgrep", "-f", "sleep 600"], capture_output=True, text=True).stdout.split()
    own = [pid for pid in stray if f"FAKE_QEMU_LOG={tmp_path}" in Path(f"/proc/{pid}/environ").read_bytes()
           .replace(b"\0", b" ").decode(errors="replace")] if stray else []
    assert not own, "a VM was left running"


FAKE_VM = """
import os, socket, sys, time
monitor, behaviour = sys.argv[1], sys.argv[2]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(monitor)
server.listen(1)
connection, _ = server.accept()
connection.sendall(b"QEMU 7.2.0 monitor - type 'help' for more information\\n(qemu) ")
command = connection.recv(4096)
connection.sendall(b"(qemu) ")
if behaviour == "shuts-down" and command.strip() == b"system_powerdown":
    time.sleep(0.3)
    sys.exit(0)
time.sleep(600)  # a guest whose shutdown hangs
"""


def vms_with_power_buttons(tmp_path: Path, behaviours: dict[str, str]) -> list[smoke.Node]:
    nodes = []
    for name, behaviour in behaviours.items():
        node = smoke.Node(name, "server", tmp_path / f"{name}.iso")
        node.console, node.monitor = tmp_path / f"{name}.log", tmp_path / f"{name}.sock"
        node.process = subprocess.Popen([sys.executable, "-c", FAKE_VM, os.fspath(node.monitor), behaviour])
        while not node.monitor.exists():
            time.sleep(0.02)
        nodes.append(node)
    return nodes


def test_power_off_presses_every_power_button_and_reports_each(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    nodes = vms_with_power_buttons(tmp_path, {"s1": "shuts-down", "a1": "shuts-down"})
    smoke.power_off(nodes, limit=20)
    err = capsys.readouterr().err
    assert "smoke: s1: powered off (" in err and "smoke: a1: powered off (" in err
    assert all(node.process is not None and node.process.returncode == 0 for node in nodes)


def test_a_node_that_does_not_power_off_is_one_line_naming_it(tmp_path: Path) -> None:
    nodes = vms_with_power_buttons(tmp_path, {"s1": "shuts-down", "a1": "hangs"})
    try:
        with pytest.raises(BuildError) as failure:
            smoke.power_off(nodes, limit=2)
        assert "a1: stage 'power-off' stalled" in failure.value.line and "\n" not in failure.value.line
        assert f"read {tmp_path / 'a1.log'}" in failure.value.line
    finally:
        smoke._stop(nodes, keep_disks=True)
