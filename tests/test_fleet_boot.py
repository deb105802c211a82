"""The cluster ISO's node selection in a real VM: the kernel's view of the machine (a NIC's MAC from
QEMU's -nic, the DMI serial from -smbios, the kernel command line) and the serial console for the menu.

The VM runs Debian's kernel with a busybox initramfs holding what the cluster ISO carries: the
selection script and the node table, read back from the embed area of the ISO the pipeline built.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.pipeline_project import Project
from tests.test_fleet import MAC_S1, UUID_A1, cluster_built, embedded_files, mirror  # noqa: F401 (fixtures)
from tests.test_k3s_configs import parse_env
from tests.vm import boot, busybox_files, host_kernel, initramfs, kernel_module, qemu_command

pytestmark = pytest.mark.slow

SELECTED = re.compile(r"SELECTED-NODE: *(\S*)")


def selection_initrd(tmp_path: Path, built: Project) -> Path:
    files = embedded_files(built.path("build/iso/test.iso"))
    install = parse_env(files["/etc/k3s-autoinstall/install.env"][1])
    content = busybox_files(
        "insmod /e1000.ko\n"
        f"export K3S_AI_NODES_DIR=/nodes K3S_AI_NODES='{install['K3S_AI_NODES']}' K3S_AI_CONSOLE=/dev/console\n"
        "node=$(sh /select-node </dev/console 2>/dev/console)\n"
        'echo "SELECTED-NODE: $node"\n')
    content["nodes"] = (0o040755, b"")
    for path, (_, text) in files.items():
        if path.startswith("/etc/k3s-autoinstall/nodes/"):
            content[f"nodes/{Path(path).name}"] = (0o100644, text.encode())
    content["select-node"] = (0o100755, files["/usr/local/bin/k3s-autoinstall-select-node"][1].encode())
    content["e1000.ko"] = (0o100644, kernel_module("e1000"))
    initrd = tmp_path / "initrd.img"
    initrd.write_bytes(initramfs(content))
    return initrd


@pytest.mark.parametrize(("append", "qemu", "node"), [
    ("k3s.node=s2", ["-nic", f"user,model=e1000,mac={MAC_S1}"], "s2"),       # the karg wins over the MAC
    ("", ["-nic", f"user,model=e1000,mac={MAC_S1}"], "s1"),                  # by MAC
    ("", ["-nic", "user,model=e1000,mac=52:54:00:99:99:99", "-smbios", "type=1,serial=SN 0002"], "s2"),
    ("", ["-nic", "none", "-smbios", f"type=1,uuid={UUID_A1}"], "a1"),       # by DMI UUID
])
def test_vm_picks_its_node(tmp_path: Path, cluster_built: Project,  # noqa: F811
                           append: str, qemu: list[str], node: str) -> None:
    console = boot(qemu_command(host_kernel(), selection_initrd(tmp_path, cluster_built), append, qemu))
    assert SELECTED.search(console) and SELECTED.search(console).group(1) == node, console[-2000:]  # type: ignore[union-attr]
    assert f"this machine is node {node} (by " in console


def test_vm_with_no_match_asks_on_the_serial_console(tmp_path: Path, cluster_built: Project) -> None:  # noqa: F811
    command = qemu_command(host_kernel(), selection_initrd(tmp_path, cluster_built), "",
                           ["-nic", "user,model=e1000,mac=52:54:00:99:99:99"])
    console = boot(command, answer=("Type its number or name", "3\n"))
    assert "1) s1 (server)" in console and "3) a1 (agent)" in console
    assert "52:54:00:99:99:99" in console  # the explanation names what to list
    match = SELECTED.search(console)
    assert match and match.group(1) == "a1", console[-2000:]
