"""Network boot (`doit pxe`, docs/fleet.md): the release's PXE files fetched and verified like the ISO,
the iPXE scripts, the wrapped live configs and a matchbox directory; and a real iPXE boot in QEMU that
picks its node by MAC.

The mirror publishes, as the release's PXE kernel and initramfs, Debian's kernel and a busybox initramfs
whose /init prints the sha256 of the /config.ign it finds, so that a VM shows which live config the
iPXE chain gave it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tasks.iso import decode_initrd
from tests.mirror import Mirror, publish_pxe
from tests.pipeline_project import Project
from tests.signing import SigningKey
from tests.tools import require_tool, sha256_file
from tests.vm import accelerator, boot, busybox_files, host_kernel, initramfs

NODES: list[dict[str, Any]] = [
    {"name": "s1", "role": "server", "macs": ["52:54:00:00:01:01"], "console": ["ttyS0"]},
    {"name": "s2", "role": "server", "macs": ["52:54:00:00:01:02", "52:54:00:00:02:02"], "console": ["ttyS0"]},
    {"name": "a1", "role": "agent", "console": ["ttyS0"]},  # no MAC: boot.ipxe cannot pick it
]
SHOW_CONFIG = 'echo "CONFIG-SHA256: $(sha256sum /config.ign)"\n'


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # iPXE drops connections it no longer needs: not a test failure, and no traceback noise


class PxeServer:
    """build/pxe/ over HTTP on 127.0.0.1, which a QEMU guest reaches as 10.0.2.2 (user network)."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=os.fspath(directory))
        self.server = _QuietServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pxe_project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Project, dict[str, str], Path]]:
    require_tool("gpg", "gpgv", "ssh-keygen")
    work = tmp_path_factory.mktemp("pxe")
    with Mirror(work / "mirror") as mirror:
        key = SigningKey.generate(work)
        project = Project.create(work / "checkout", mirror, key=key, nodes=NODES)
        kernel = host_kernel()
        busybox_initramfs = work / "initramfs.img"
        busybox_initramfs.write_bytes(initramfs(busybox_files(SHOW_CONFIG)))
        rootfs = work / "rootfs.img"
        rootfs.write_bytes(b"not a real rootfs: the test initramfs never mounts it\n" * 100)
        published = publish_pxe(mirror.root, {"kernel": kernel, "initramfs": busybox_initramfs, "rootfs": rootfs},
                                key, base_url=mirror.url(""))
        server = PxeServer(project.path("build/pxe"))
        project.extra = {"pxe": {"base_url": f"http://10.0.2.2:{server.port}/"}}
        project.write_config()
        run = project.doit("pxe")
        assert run.returncode == 0, run.stdout + run.stderr
        try:
            yield project, {kind: os.fspath(mirror.root / rel) for kind, rel in published.items()}, work
        finally:
            server.stop()


def test_pxe_files_are_the_verified_release_files(pxe_project: tuple[Project, dict[str, str], Path]) -> None:
    project, published, _ = pxe_project
    assets = project.path("build/pxe/assets")
    for path in published.values():
        assert sha256_file(assets / Path(path).name) == sha256_file(Path(path))
        assert (project.path("build/fcos/pxe") / Path(path).name).is_file()
    record = json.loads(project.path("build/fcos/pxe/pxe.json").read_text())
    assert record["release"] == project.published["release"]
    assert {item["kind"] for item in record["files"]} == {"kernel", "initramfs", "rootfs"}
    assert all(item["signer"] for item in record["files"])


def test_ipxe_scripts_chain_by_mac_to_each_nodes_live_config(pxe_project: tuple[Project, dict[str, str], Path]
                                                             ) -> None:
    project, published, _ = pxe_project
    pxe = project.path("build/pxe")
    base = project.extra["pxe"]["base_url"].rstrip("/")  # type: ignore[index]
    boot_ipxe = (pxe / "boot.ipxe").read_text()
    assert boot_ipxe.startswith("#!ipxe\n")
    for mac, node in (("52:54:00:00:01:01", "s1"), ("52:54:00:00:01:02", "s2"), ("52:54:00:00:02:02", "s2")):
        assert f"iseq ${{mac}} {mac} && goto {node} ||" in boot_ipxe
    assert f":s2\nchain {base}/s2.ipxe" in boot_ipxe and ":a1" not in boot_ipxe
    assert "no node of cluster test has MAC ${mac}" in boot_ipxe
    kernel, initramfs_name, rootfs = (Path(published[kind]).name for kind in ("kernel", "initramfs", "rootfs"))
    script = (pxe / "s1.ipxe").read_text().splitlines()
    assert script[0] == "#!ipxe" and script[-1] == "boot"
    assert script[1].startswith(f"kernel {base}/assets/{kernel} ")
    args = script[1].split()[2:]
    assert f"coreos.live.rootfs_url={base}/assets/{rootfs}" in args
    assert {"initrd=main", "initrd=config", "ignition.firstboot", "ignition.platform.id=metal",
            "console=ttyS0"} <= set(args)
    assert script[2:4] == [f"initrd --name main {base}/assets/{initramfs_name}", f"initrd --name config {base}/s1.img"]
    for node in ("s1", "s2", "a1"):  # `coreos-installer pxe ignition wrap`: an xz cpio holding config.ign
        wrapped = decode_initrd((pxe / f"{node}.img").read_bytes())
        assert wrapped == {"config.ign": project.path(f"build/nodes/{node}/coreos-autoinstall.ign").read_bytes()}
        assert os.stat(pxe / f"{node}.img").st_mode & 0o077 == 0  # it carries the tokens


def test_matchbox_directory(pxe_project: tuple[Project, dict[str, str], Path]) -> None:
    """The layout and fields matchbox's FileStore reads (poseidon/matchbox docs/matchbox.md, examples/)."""
    project, published, _ = pxe_project
    box = project.path("build/pxe/matchbox")
    profile = json.loads((box / "profiles/s2.json").read_text())
    assert profile["id"] == "s2" and profile["ignition_id"] == "s2.ign"
    assert profile["boot"]["kernel"] == f"/assets/{Path(published['kernel']).name}"
    assert profile["boot"]["initrd"] == [f"--name main /assets/{Path(published['initramfs']).name}"]
    args = profile["boot"]["args"]
    assert "initrd=main" in args and "ignition.firstboot" in args and "ignition.platform.id=metal" in args
    assert any(arg.startswith("ignition.config.url=http://10.0.2.2:") and arg.endswith(
        "/ignition?uuid=${uuid}&mac=${mac:hexhyp}") for arg in args)
    groups = {path.name: json.loads(path.read_text()) for path in (box / "groups").iterdir()}
    assert groups["s2-525400000102.json"] == {"id": "s2-525400000102", "name": "s2", "profile": "s2",
                                              "selector": {"mac": "52:54:00:00:01:02"}}
    assert len(groups) == 3  # one per MAC; a1 has none
    assert json.loads((box / "ignition/s2.ign").read_text()) == json.loads(
        project.path("build/nodes/s2/coreos-autoinstall.ign").read_text())
    assert sorted(p.name for p in (box / "assets").iterdir()) == sorted(Path(p).name for p in published.values())


def test_pxe_again_does_nothing(pxe_project: tuple[Project, dict[str, str], Path]) -> None:
    project, _, _ = pxe_project
    run = project.doit("pxe")
    assert run.returncode == 0 and run.executed == [], run.stdout


def test_pxe_needs_a_base_url(tmp_path: Path) -> None:
    require_tool("gpg", "gpgv", "ssh-keygen")
    with Mirror(tmp_path / "mirror") as mirror:
        project = Project.create(tmp_path / "checkout", mirror)
        run = project.doit("pxe")
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("‣ error:")]
    assert len(errors) == 1 and "pxe.base_url is not set" in errors[0], run.stderr


def test_pxe_file_with_a_bad_signature_is_refused_and_nothing_published(tmp_path: Path) -> None:
    require_tool("gpg", "gpgv", "ssh-keygen")
    with Mirror(tmp_path / "mirror") as mirror:
        key, stranger = SigningKey.generate(tmp_path / "k1"), SigningKey.generate(tmp_path / "k2")
        project = Project.create(tmp_path / "checkout", mirror, key=key)
        files = {}
        for kind in ("kernel", "initramfs", "rootfs"):
            files[kind] = tmp_path / kind
            files[kind].write_bytes(kind.encode() * 1000)
        published = publish_pxe(mirror.root, files, key, base_url=mirror.url(""))
        stranger.sign(mirror.root / published["initramfs"])  # the signature is replaced by an untrusted one
        project.extra = {"pxe": {"base_url": "http://pxe.example/"}}
        project.write_config()
        run = project.doit("pxe")
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("‣ error:")]
    assert len(errors) == 1 and "live-initramfs" in errors[0] and "deleted" in errors[0], run.stderr
    assert not (project.path("build/fcos/pxe") / Path(published["initramfs"]).name).exists()
    assert not project.path("build/pxe").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("mac", "node"), [("52:54:00:00:01:02", "s2"), ("52:54:00:00:01:01", "s1")])
def test_ipxe_boot_picks_the_node_by_mac(pxe_project: tuple[Project, dict[str, str], Path], mac: str, node: str
                                         ) -> None:
    """QEMU's own iPXE ROM: DHCP and TFTP from the user network give it boot.ipxe, which chains by MAC;
    the node's script loads kernel, initramfs and our wrapped config over HTTP from 127.0.0.1."""
    require_tool("qemu-system-x86_64")
    project, _, _ = pxe_project
    pxe = project.path("build/pxe")
    command = ["qemu-system-x86_64", *accelerator(), "-nographic", "-no-reboot", "-m", "512", "-boot", "n",
               "-nic", f"user,model=e1000,mac={mac},tftp={pxe},bootfile=boot.ipxe"]
    console = boot(command, timeout=300)
    match = re.search(r"CONFIG-SHA256: ([0-9a-f]{64})", console)
    assert match, console[-3000:]
    expected = hashlib.sha256(project.path(f"build/nodes/{node}/coreos-autoinstall.ign").read_bytes()).hexdigest()
    assert match.group(1) == expected

