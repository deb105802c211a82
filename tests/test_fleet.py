"""One ISO for the whole cluster: which node is this machine? (`output: 'cluster'`, docs/fleet.md)

The cluster live config is rendered and transpiled as the pipeline does; its node selection script
and node table run here against a fake sysfs (NICs, DMI serial and UUID) and kernel command line.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks import config
from tasks.render import LIVE_TEMPLATE, render_butane
from tests.mirror import Mirror
from tests.pipeline_project import Project
from tests.test_k3s_configs import CLUSTER_ID, fake_ssh_key, ignition_files, parse_env
from tests.tools import require_tool, ssh_keygen

MAC_S1 = "52:54:00:00:00:01"
SERIAL_S2 = "sn0002"  # as the build normalizes "SN 0002"
UUID_A1 = "4c4c4544-0042-3510-8051-b4c04f4e4a32"
RAW_CLUSTER: dict[str, Any] = {
    "name": "rack", "output": "cluster",
    "nodes": [
        {"name": "s1", "role": "server", "macs": [MAC_S1.upper()]},
        {"name": "s2", "role": "server", "serial": "SN 0002", "disk": "/dev/disk/by-id/ata-x"},
        {"name": "a1", "role": "agent", "uuid": UUID_A1.upper(), "after_install": "poweroff"},
    ],
}


def cluster_live_files(raw: dict[str, Any] = RAW_CLUSTER) -> dict[str, tuple[int | None, str]]:
    import butane

    cluster = config.parse(raw, "rack.jsonnet", ssh_keys=(fake_ssh_key("a"),)).template_input()
    ignition, _ = butane.transpile(render_butane(LIVE_TEMPLATE, cluster, None, {"cluster_id": CLUSTER_ID}),
                                   strict=True)
    return ignition_files(ignition)


@functools.cache
def live_files() -> dict[str, tuple[int | None, str]]:
    return cluster_live_files()


class Machine:
    """The live system's selection script with this machine's NICs, DMI and kernel command line."""

    def __init__(self, tmp: Path, *, macs: tuple[str, ...] = (), serial: str = "", uuid: str = "",
                 cmdline: str = "ignition.firstboot", files: dict[str, tuple[int | None, str]] | None = None) -> None:
        self.dir = tmp
        files = files or live_files()
        nodes = tmp / "nodes"
        nodes.mkdir()
        for path, (_, text) in files.items():
            if path.startswith("/etc/k3s-autoinstall/nodes/"):
                (nodes / Path(path).name).write_text(text)
        self.script = tmp / "select-node"
        self.script.write_text(files["/usr/local/bin/k3s-autoinstall-select-node"][1])
        self.script.chmod(0o755)
        for i, mac in enumerate(("00:00:00:00:00:00", *macs)):  # lo first
            (tmp / f"sys/class/net/eth{i}").mkdir(parents=True)
            (tmp / f"sys/class/net/eth{i}/address").write_text(mac + "\n")
        dmi = tmp / "sys/class/dmi/id"
        dmi.mkdir(parents=True)
        (dmi / "product_serial").write_text(serial + "\n")
        (dmi / "product_uuid").write_text(uuid + "\n")
        (tmp / "cmdline").write_text(cmdline + "\n")
        install = parse_env(files["/etc/k3s-autoinstall/install.env"][1])
        self.env = {"PATH": "/usr/bin:/bin", "K3S_AI_NODES_DIR": os.fspath(nodes),
                    "K3S_AI_NODES": install["K3S_AI_NODES"],
                    "K3S_AI_SYS": os.fspath(tmp / "sys"), "K3S_AI_CMDLINE": os.fspath(tmp / "cmdline"),
                    "K3S_AI_CONSOLE": os.fspath(tmp / "console")}

    def select(self, answers: str = "") -> subprocess.CompletedProcess[str]:
        (self.dir / "console").write_text(answers)
        return subprocess.run(["sh", os.fspath(self.script)], env=self.env, capture_output=True, text=True,
                              timeout=30)


def test_node_table_carries_every_node_normalized() -> None:
    envs = {Path(path).stem: parse_env(text) for path, (_, text) in live_files().items()
            if path.startswith("/etc/k3s-autoinstall/nodes/")}
    assert set(envs) == {"s1", "s2", "a1"}
    assert envs["s1"]["K3S_AI_MACS"] == MAC_S1 and envs["s1"]["K3S_AI_ROLE"] == "server"
    assert envs["s2"]["K3S_AI_SERIAL"] == SERIAL_S2 and envs["s2"]["K3S_AI_DISK"] == "/dev/disk/by-id/ata-x"
    assert envs["a1"]["K3S_AI_UUID"] == UUID_A1 and envs["a1"]["K3S_AI_AFTER_INSTALL"] == "poweroff"
    install = parse_env(live_files()["/etc/k3s-autoinstall/install.env"][1])
    assert install["K3S_AI_NODE"] == "" and install["K3S_AI_IGNITION_DIR"] == "/home/core/k3s-autoinstall"
    slots = sorted(path for path in live_files() if path.startswith("/home/core/k3s-autoinstall/"))
    assert slots == ["/home/core/k3s-autoinstall/a1.ign", "/home/core/k3s-autoinstall/s1.ign",
                     "/home/core/k3s-autoinstall/s2.ign"]
    assert all(live_files()[slot][0] == 0o600 for slot in slots)


@pytest.mark.parametrize(("machine", "node", "how"), [
    ({"cmdline": "quiet k3s.node=a1", "macs": (MAC_S1,)}, "a1", "k3s.node=a1"),  # the karg wins
    ({"macs": ("aa:bb:cc:dd:ee:ff", MAC_S1)}, "s1", "MAC address"),
    ({"macs": ("aa:bb:cc:dd:ee:ff",), "serial": "SN 0002"}, "s2", "system serial"),
    ({"serial": "unknown", "uuid": UUID_A1.upper()}, "a1", "system UUID"),
])
def test_picks_its_node_in_order(tmp_path: Path, machine: dict[str, Any], node: str, how: str) -> None:
    result = Machine(tmp_path, **machine).select()
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{node}\n"
    assert f"this machine is node {node} (by " in result.stderr and how in result.stderr


def test_menu_when_nothing_matches_waits_for_a_valid_answer(tmp_path: Path) -> None:
    machine = Machine(tmp_path, macs=("aa:bb:cc:dd:ee:ff",), serial="xyz")
    result = machine.select("7\nnonsense\ns2\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "s2\n"
    err = result.stderr
    assert "1) s1 (server)" in err and "2) s2 (server)" in err and "3) a1 (agent)" in err
    assert "'7' is not one of the nodes listed" in err and "'nonsense' is not one of the nodes listed" in err
    assert "boot with the kernel argument k3s.node=<name>" in err and "aa:bb:cc:dd:ee:ff" in err
    assert machine.select("3\n").stdout == "a1\n"


def test_menu_without_an_answer_never_guesses(tmp_path: Path) -> None:
    result = Machine(tmp_path).select("")
    assert result.returncode == 1 and result.stdout == ""
    assert "no console to ask on" in result.stderr and "Nothing was written" in result.stderr


def test_unknown_karg_node_refuses(tmp_path: Path) -> None:
    result = Machine(tmp_path, cmdline="k3s.node=s9").select()
    assert result.returncode == 1 and result.stdout == ""
    assert "k3s.node=s9: no such node on this ISO (nodes: s1 s2 a1 )" in result.stderr


def test_a_machine_matching_two_nodes_refuses(tmp_path: Path) -> None:
    """Two NICs of one machine listed for two nodes: the build cannot see that; the machine refuses."""
    other_mac = "52:54:00:00:00:02"
    nodes: list[dict[str, Any]] = RAW_CLUSTER["nodes"]
    raw = {**RAW_CLUSTER, "nodes": [nodes[0], {**nodes[1], "macs": [other_mac]}, nodes[2]]}
    result = Machine(tmp_path, macs=(MAC_S1, other_mac), files=cluster_live_files(raw)).select()
    assert result.returncode == 1 and result.stdout == ""
    assert "matches several nodes (s1 s2)" in result.stderr


@pytest.mark.parametrize(("nodes", "message"), [
    ([{"name": "a", "role": "server", "macs": ["52:54:00:00:00:01"]},
      {"name": "b", "role": "agent", "macs": ["52-54-00-00-00-01"]}],
     "nodes[1].macs: 52:54:00:00:00:01 is listed for node a too"),
    ([{"name": "a", "role": "server", "serial": "X1"}, {"name": "b", "role": "agent", "serial": "x1"}],
     "nodes[1].serial: x1 is listed for node a too"),
    ([{"name": "a", "role": "server", "macs": ["52:54:00:00:00"]}], "nodes[0].macs[0]: must be a MAC address"),
    ([{"name": "a", "role": "server", "uuid": "1234"}], "nodes[0].uuid: must be a UUID"),
])
def test_identity_errors_name_the_field(nodes: list[Any], message: str) -> None:
    with pytest.raises(config.ConfigError) as error:
        config.parse({"nodes": nodes}, "c.jsonnet")
    assert message in str(error.value)


def test_cluster_iso_installs_the_chosen_nodes_config_to_its_disk(tmp_path: Path) -> None:
    """The live installer of the cluster ISO: selection first (said before anything is written),
    then that node's disk, installed config and after_install."""
    import json

    from tests.test_boot_sequence import Machine as Tools
    from tests.test_boot_sequence import disk

    files = live_files()
    (tmp_path / "tools").mkdir()
    tools = Tools(tmp_path / "tools")
    (tmp_path / "machine").mkdir()
    machine = Machine(tmp_path / "machine", cmdline="k3s.node=a1")
    (tmp_path / "tools/disks.json").write_text(json.dumps([disk("/dev/sda")]))
    installer = tmp_path / "run-coreos-installer"
    installer.write_text(files["/usr/local/bin/run-coreos-installer"][1])
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "a1.ign").write_text("{}")
    env = {**tools.env, **machine.env, **parse_env(files["/etc/k3s-autoinstall/install.env"][1]),
           "K3S_AI_NODES_DIR": machine.env["K3S_AI_NODES_DIR"], "K3S_AI_IGNITION_DIR": os.fspath(configs),
           "K3S_AI_SELECT_NODE": os.fspath(machine.script), "K3S_AI_RUN_DIR": os.fspath(tmp_path / "run"),
           "K3S_AI_CONSOLE": "/dev/null", "PATH": tools.env["PATH"]}  # the fake lsblk, mount, coreos-installer
    result = subprocess.run(["bash", os.fspath(installer)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "this machine is node a1 (by the kernel argument k3s.node=a1)" in result.stderr
    assert "cluster rack, node a1, disk auto" in result.stdout
    assert tools.calls("coreos-installer") == [
        ["coreos-installer", "install", "--offline", "--ignition-file", os.fspath(configs / "a1.ign"), "/dev/sda"]]
    assert ["systemctl", "--no-block", "poweroff"] in tools.calls("systemctl")  # a1's after_install


# --- the cluster ISO, built by the pipeline -----------------------------------------------------------

CLUSTER_NODES: list[dict[str, Any]] = [
    {"name": "s1", "role": "server", "macs": [MAC_S1]},
    {"name": "s2", "role": "server", "serial": "SN 0002"},
    {"name": "a1", "role": "agent", "uuid": UUID_A1},
]


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    require_tool("gpg", "gpgv", "ssh-keygen")
    with Mirror(tmp_path_factory.mktemp("mirror")) as running:
        yield running


def cluster_project(root: Path, mirror: Mirror) -> Project:
    project = Project.create(root, mirror, nodes=CLUSTER_NODES)
    project.extra = {"output": "cluster"}
    project.write_config()
    return project


@pytest.fixture(scope="module")
def cluster_built(tmp_path_factory: pytest.TempPathFactory, mirror: Mirror) -> Project:
    project = cluster_project(tmp_path_factory.mktemp("cluster") / "checkout", mirror)
    run = project.doit()
    assert run.returncode == 0, run.stdout + run.stderr
    return project


def embedded_files(iso: Path) -> dict[str, tuple[int | None, str]]:
    from tasks.iso import show_ignition

    return ignition_files(show_ignition(iso).decode())


def test_cluster_build_is_one_iso_carrying_every_node(cluster_built: Project) -> None:
    iso_dir = cluster_built.path("build/iso")
    assert sorted(path.name for path in iso_dir.iterdir()) == ["SHA256SUMS", "test.iso"]
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=iso_dir, check=True)
    files = embedded_files(iso_dir / "test.iso")
    for node in ("s1", "s2", "a1"):
        nested = files[f"/home/core/k3s-autoinstall/{node}.ign"]
        assert nested[0] == 0o600
        assert nested[1] == cluster_built.path(f"build/nodes/{node}/k3s-autoinstall.ign").read_text()
        assert parse_env(files[f"/etc/k3s-autoinstall/nodes/{node}.env"][1])["K3S_AI_NODE"] == node
    assert "/home/core/k3s-autoinstall.ign" not in files  # no node of its own
    assert not cluster_built.path("build/nodes/s1/coreos-autoinstall.fcc").exists()


def test_cluster_key_change_rewrites_one_iso(cluster_built: Project, tmp_path: Path) -> None:
    import shutil

    project = Project(tmp_path / "checkout", tmp_path / "home", cluster_built.published)
    shutil.copytree(cluster_built.root, project.root, symlinks=True)
    project.home.mkdir()
    ssh_keygen(project.root / "keys" / "bob", "bob@example.test")
    run = project.doit("embed")
    assert run.returncode == 0, run.stdout + run.stderr
    assert [task for task in run.executed if task.startswith("embed:")] == ["embed:test", "embed:SHA256SUMS"]
    assert "one ISO for the whole cluster" in run.stderr


def test_cluster_too_large_for_the_embed_area_names_the_limit_and_the_ways_out(
        mirror: Mirror, tmp_path: Path) -> None:
    project = cluster_project(tmp_path / "checkout", mirror)
    manifest = project.path("jsonnet/big.yaml")
    manifest.write_text("# " + os.urandom(400_000).hex() + "\n")  # 400 KB of entropy: cannot fit
    project.k3s = {"manifests": {"big": "big.yaml"}}
    project.write_config()
    run = project.doit()
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("‣ error:")]
    assert len(errors) == 1, run.stderr
    assert "Compressed initramfs is too large" in errors[0] and "256 KiB" in errors[0]
    assert "output: 'per-node'" in errors[0] and "doit pxe" in errors[0]
    assert not project.path("build/iso/test.iso").exists()


def test_cluster_live_config_validates(cluster_built: Project, tmp_path: Path) -> None:
    from tasks.iso import show_ignition

    require_tool("ignition-validate")
    config_file = tmp_path / "live.ign"
    config_file.write_bytes(show_ignition(cluster_built.path("build/iso/test.iso")))
    result = subprocess.run(["ignition-validate", os.fspath(config_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cluster_live_config_applied_by_ignition(cluster_built: Project) -> None:
    """The real Ignition decodes the plain (percent-encoded) data URLs into each node's config, 0600."""
    from tasks.iso import show_ignition
    from tests.ignition_root import apply_ignition, scratch_dir
    from tests.tools import require_root

    require_root()
    with scratch_dir("cluster-live-") as work:
        root = apply_ignition(show_ignition(cluster_built.path("build/iso/test.iso")).decode(), work)
        for node in ("s1", "s2", "a1"):
            nested = root / f"home/core/k3s-autoinstall/{node}.ign"
            assert nested.read_text() == cluster_built.path(f"build/nodes/{node}/k3s-autoinstall.ign").read_text()
            assert nested.stat().st_mode & 0o777 == 0o600
        assert (root / "usr/local/bin/k3s-autoinstall-select-node").stat().st_mode & 0o777 == 0o755
