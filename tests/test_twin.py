"""The boot flow under real systemd, in QEMU, on the twin (tests/twin: a Debian stand-in for the Fedora
CoreOS live ISO and installed system, see docs/twin.md).

The ISOs are the pipeline's real output: `python -m doit` in a copy of the project, against a local
mirror that publishes the twin live ISO as the FCOS release. Everything else is what runs on a
machine: isolinux loads the kernel with the embed area, Debian's Ignition applies our configs in the
initramfs, systemd runs our units, our scripts work on virtual disks with the real lsblk, mount,
udevadm and filesystems. Stand-ins only for what exists only on FCOS (coreos-installer, rpm-ostree,
NetworkManager keyfiles, SELinux tools) and for the k3s install script and binary (served from a
loopback HTTP server). Each scenario is asserted from the serial console and from the disk images.

One `doit smoke` run of a three-node cluster (first server, joining server, agent) carries scenarios
1, 2 and 7 and the smoke test itself; scenario 6 is injected into it (the agent's uplink cut through
its QEMU monitor during layering), and scenarios 4 and 5 run in a fourth VM meanwhile; scenario 3
then boots the first server's disk again with its ISO. Every VM is CPU-bound under TCG, so running
them side by side costs no more than one after the other and shares what they have in common.

Slow (minutes, several VMs): marked `twin`, deselected from a plain `./test.sh` (pyproject's addopts);
.ci/run runs them after the fast tests: `./test.sh -m twin tests/test_twin.py` (as root).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tasks.smoke import monitor_command
from tests.mirror import Mirror
from tests.pipeline_project import Project
from tests.tools import IN_CI, require_root, require_tool
from tests.twin import disk, project
from tests.twin.image import TwinImage, build_image
from tests.twin.server import TwinServer
from tests.twin.vm import Machine, blank_disk

pytestmark = [pytest.mark.slow, pytest.mark.twin]

STATE = "var/lib/k3s-autoinstall"
CLUSTER = "twin"
# Timeouts: generous for TCG on a busy 2-core machine with four VMs at once; KVM takes a fraction.
LIVE_INSTALL_S = 1200
LAYERING_S = 900
SMOKE_S = 3600
SHUTDOWN_LIMIT_S = 30
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def _selected(request: pytest.FixtureRequest) -> None:
    named = any("test_twin" in str(arg) for arg in request.config.args)
    if not (IN_CI or os.environ.get("K3S_TWIN") == "1" or named):
        pytest.skip("twin VM scenarios take minutes: they run in CI, with K3S_TWIN=1, or ./test.sh tests/test_twin.py")
    require_root()
    require_tool("qemu-system-x86_64", "mmdebstrap", "xorriso", "sfdisk", "gpg", "ssh-keygen")
    for path in ("/usr/lib/ISOLINUX/isolinux.bin", "/usr/lib/syslinux/modules/bios/ldlinux.c32"):
        if not Path(path).exists():
            if IN_CI:
                pytest.fail(f"CI=true but {path} is missing (Debian: isolinux, syslinux-common)")
            pytest.skip(f"needs {path} (Debian: isolinux, syslinux-common)")


@pytest.fixture(scope="module", autouse=True)
def _report_timings(request: pytest.FixtureRequest) -> Iterator[None]:
    """The wall time of each part, on the terminal (CI's log) even when the tests pass."""
    yield
    if TIMINGS:
        line = "twin wall times: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in TIMINGS.items())
        # A module fixture's teardown runs under the last test's output capture: step out of it.
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if reporter is not None:
                reporter.write_line("\n" + line)
            else:
                print(line)


@pytest.fixture(scope="module")
def twin_image() -> TwinImage:
    started = time.monotonic()
    image = build_image()
    TIMINGS["image"] = time.monotonic() - started
    return image


@pytest.fixture(scope="module")
def server() -> Iterator[TwinServer]:
    with TwinServer() as running:
        yield running


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirror]:
    with Mirror(tmp_path_factory.mktemp("mirror")) as running:
        yield running


CLUSTER_NODES: list[dict[str, object]] = [
    {"name": "twin-server-1", "role": "server", "network": {"interface": "ens16", "address": "192.168.76.11/24"}},
    {"name": "twin-server-2", "role": "server", "network": {"interface": "ens16", "address": "192.168.76.12/24"}},
    {"name": "twin-agent-1", "role": "agent", "network": {"interface": "ens16", "address": "192.168.76.21/24"}},
]
FIRST, JOINER, AGENT = (str(node["name"]) for node in CLUSTER_NODES)
JOIN_STAGGER_S = 15
MILESTONES = ["live system up", "installed", "rebooted", "layered", "k3s running", "node Ready", "powered off"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, mirror: Mirror, server: TwinServer,
            twin_image: TwinImage) -> Project:
    """The three nodes (first server, joining server, agent), built by `doit` from the twin ISO."""
    started = time.monotonic()
    built = project.twin_project(tmp_path_factory.mktemp("cluster") / "checkout", mirror, twin_image.iso,
                                 nodes=CLUSTER_NODES,
                                 k3s={"install_script_url": server.script_url, "join_stagger_seconds": JOIN_STAGGER_S})
    project.build(built)
    TIMINGS["doit (3 nodes)"] = time.monotonic() - started
    return built


@dataclass
class Outcome:
    """What a scenario run beside the smoke run saw: its error (raised by its test), its facts."""

    error: BaseException | None = None
    facts: dict[str, object] = field(default_factory=dict)

    def check(self) -> dict[str, object]:
        if self.error is not None:
            raise self.error
        return self.facts


@dataclass
class SmokeRun:
    """`doit smoke` on the three-node cluster, with the scenarios that run beside it."""

    returncode: int
    stderr: str
    logs: dict[str, str]
    disks: dict[str, Path]  # raw copies of the kept disks, cleanly powered off
    outage: Outcome  # scenario 6, on the agent during smoke


def watch(log: Path, pattern: str, timeout: float, after: int = 0) -> int:
    """Wait for `pattern` in a growing console log (from offset `after`); returns the end of the match."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace") if log.exists() else ""
        match = regex.search(text, after)
        if match:
            return match.end()
        time.sleep(1)
    raise AssertionError(f"{pattern!r} not on {log} within {timeout:.0f} s")


def cut_the_uplink_during_layering(smoke_dir: Path, monitors: Path, outcome: Outcome) -> None:
    """Scenario 6, on the agent while smoke runs: its uplink goes down (QEMU set_link) as the live
    install reboots it, and comes back only after the layering service has failed once."""
    log, monitor = smoke_dir / f"{AGENT}.log", monitors / f"{AGENT}.monitor"
    try:
        installed = watch(log, rf"k3s-autoinstall: installed node {AGENT}", LIVE_INSTALL_S * 2)
        monitor_command(monitor, "set_link uplink off")
        watch(log, r"run-k3s-prereq-installer: .*fail", LAYERING_S, after=installed)
        outcome.facts["down_until"] = time.time()
        time.sleep(5)
        outcome.facts["layered_while_down"] = "layered k3s-selinux" in log.read_text(errors="replace")[installed:]
        monitor_command(monitor, "set_link uplink on")
    except BaseException as error:  # noqa: BLE001 - reported by test_6
        outcome.error = error
        with contextlib.suppress(OSError):
            monitor_command(monitor, "set_link uplink on")


def side_by_side(scenarios: dict[str, Callable[[Outcome], None]]) -> dict[str, Outcome]:
    """Run each scenario in a thread of its own (each boots its own VM); their outcomes."""
    outcomes = {name: Outcome() for name in scenarios}

    def run(name: str) -> None:
        started = time.monotonic()
        try:
            scenarios[name](outcomes[name])
        except BaseException as error:  # noqa: BLE001 - reported by its test
            outcomes[name].error = error
        TIMINGS[f"scenario {name}"] = time.monotonic() - started

    threads = [threading.Thread(target=run, args=(name,), daemon=True) for name in scenarios]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


@pytest.fixture(scope="module")
def live_only(cluster: Project, server: TwinServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Scenarios 4 and 5, side by side (one VM per core) before the cluster boots."""
    work, iso = tmp_path_factory.mktemp("live-only"), project.node_iso(cluster, FIRST)
    return side_by_side({
        "4": lambda outcome: partitioned_disk_countdown_and_keypress_abort(iso, work / "4", server.port, outcome),
        "5": lambda outcome: two_candidate_disks_refuses_to_guess(iso, work / "5", server.port, outcome),
    })


@pytest.fixture(scope="module")
def smoke_run(cluster: Project, server: TwinServer, tmp_path_factory: pytest.TempPathFactory,
              live_only: dict[str, Outcome]) -> SmokeRun:
    """`doit smoke` on the cluster (scenarios 1, 2, 7 and the smoke test), with scenario 6 injected on
    the agent, after scenarios 4 and 5. The disks are kept, converted to raw."""
    work = tmp_path_factory.mktemp("smoke")
    monitors = Path(tempfile.mkdtemp(prefix="twin-mon-"))
    smoke_dir = cluster.root / "build" / "smoke"
    outage = Outcome()
    helpers = [
        threading.Thread(target=cut_the_uplink_during_layering, args=(smoke_dir, monitors, outage), daemon=True),
    ]
    started = time.monotonic()
    for helper in helpers:
        helper.start()
    run = cluster.doit("smoke", timeout=SMOKE_S, env={
        "K3S_SMOKE_QEMU_ARGS": f"-fw_cfg name=opt/k3s-twin/port,string={server.port}",
        "K3S_SMOKE_KEEP_DISKS": "1", "K3S_SMOKE_MONITORS": os.fspath(monitors)})
    TIMINGS["doit smoke (3 nodes, with scenario 6)"] = time.monotonic() - started
    for helper in helpers:
        helper.join(LIVE_INSTALL_S)
    shutil.rmtree(monitors, ignore_errors=True)
    logs = {name: (smoke_dir / f"{name}.log").read_text(errors="replace") if (smoke_dir / f"{name}.log").exists()
            else "" for name in (FIRST, JOINER, AGENT)}
    disks = {}
    for name in (FIRST, JOINER, AGENT):
        kept = smoke_dir / f"{name}.qcow2"
        if kept.exists():
            disks[name] = work / f"{name}.img"
            subprocess.run(["qemu-img", "convert", "-O", "raw", os.fspath(kept), os.fspath(disks[name])], check=True)
            kept.unlink()
    return SmokeRun(run.returncode, run.stderr, logs, disks, outage)


def smoke_succeeded(run: SmokeRun) -> None:
    assert run.returncode == 0, f"doit smoke failed:\n{run.stderr[-4000:]}"


def test_1_blank_disk_whole_sequence(smoke_run: SmokeRun, cluster: Project) -> None:
    """The first server, from its blank disk to k3s running, as smoke drove it."""
    smoke_succeeded(smoke_run)
    text = smoke_run.logs[FIRST]
    order = [
        "twin-ignition-setup-user: embedded /config.ign",
        "k3s-autoinstall: target disk: /dev/vda",
        f"k3s-autoinstall: installed node {FIRST} to /dev/vda",
        "twin-ignition-setup-user: boot:/ignition/config.ign",
        "run-k3s-prereq-installer: layered k3s-selinux; rebooting",
        "twin-rpm-ostree: booted the deployment that layers: k3s-selinux",
        "run-k3s-installer: running the k3s install script (server",
        "twin-k3s: k3s is up and running",
        "run-k3s-installer: k3s (k3s) is installed and running",
        "report-cluster-nodes: every node of the cluster is Ready",
    ]
    positions = [text.find(line) for line in order]
    missing = [line for line, position in zip(order, positions, strict=True) if position < 0]
    assert not missing, f"not on {FIRST}'s console: {missing}"
    assert positions == sorted(positions), f"out of order on {FIRST}'s console: {order}"
    assert "Ignition failed" not in text and "emergency" not in text.lower()

    image = smoke_run.disks[FIRST]
    with disk.mounted(image, "boot") as boot:
        assert not (boot / "ignition").exists(), "boot:/ignition stays after the first boot"
        assert not (boot / "ignition.firstboot").exists()
    with disk.mounted(image, "root") as root:
        var = root / "ostree/deploy/fedora-coreos/var"
        marker = (var / "lib/k3s-autoinstall/marker").read_text()
        assert f"cluster={CLUSTER}" in marker and f"node={FIRST}" in marker
        for stamp in ("prereq-installed", "k3s-installed"):
            assert (var / "lib/k3s-autoinstall" / stamp).exists(), stamp
        config = root / "etc/rancher/k3s/config.yaml"
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert "token:" in config.read_text()
        assert (root / "etc/hostname").read_text().strip() == FIRST
        keys = "".join(path.read_text() for path in (root / "home/core/.ssh").rglob("*") if path.is_file())
        assert project.public_key(cluster).split()[1] in keys, "the admin's SSH key is not authorised for core"
        assert (root / "etc/systemd/system/k3s.service").exists()
        assert "k3s-selinux" in (var / "lib/twin/rpm-ostree/deployed").read_text()


def test_2_every_node_shuts_down_within_30_s(smoke_run: SmokeRun) -> None:
    """smoke ends by pressing each node's power button; each VM must be off within the limit."""
    smoke_succeeded(smoke_run)
    seconds = {match[0]: int(match[1]) for match in
               re.findall(r"smoke: (\S+): powered off \((\d+) s after the power button\)", smoke_run.stderr)}
    assert set(seconds) == {FIRST, JOINER, AGENT}, smoke_run.stderr[-2000:]
    TIMINGS["shutdown (slowest node)"] = max(seconds.values())
    assert max(seconds.values()) < SHUTDOWN_LIMIT_S, f"shutdown took {seconds} s (a unit waits on itself?)"


def test_3_iso_left_in_powers_off_then_reinstalls_with_karg(smoke_run: SmokeRun, cluster: Project,
                                                            tmp_path: Path, server: TwinServer) -> None:
    """The first server's installed disk booted again with its ISO in the drive, and (a copy of it,
    side by side) with `k3s.reinstall=1` added to the ISO's kernel arguments."""
    from tasks.iso import modify_kargs

    smoke_succeeded(smoke_run)
    iso = project.node_iso(cluster, FIRST)
    reinstall_iso = tmp_path / "reinstall.iso"
    modify_kargs(iso, append=["k3s.reinstall=1"], output=reinstall_iso)
    disks = {name: tmp_path / f"{name}.img" for name in ("left-in", "reinstall")}
    for copy in disks.values():
        subprocess.run(["cp", "--sparse=always", os.fspath(smoke_run.disks[FIRST]), os.fspath(copy)], check=True)

    def left_in(outcome: Outcome) -> None:
        machine = Machine(FIRST, tmp_path / "left-in-vm", disks=[disks["left-in"]], http_port=server.port, cpus=1)
        try:
            machine.boot(iso)
            machine.wait_for(rf"already holds cluster {CLUSTER} \(node={FIRST}\): NOT reinstalling", LIVE_INSTALL_S,
                             stage="marker found")
            outcome.facts["exit"] = machine.wait_exit(120, stage="power-off with the ISO left in")
        finally:
            machine.kill()

    def reinstall(outcome: Outcome) -> None:
        machine = Machine(FIRST, tmp_path / "reinstall-vm", disks=[disks["reinstall"]], http_port=server.port,
                          cpus=1)
        try:
            machine.boot(reinstall_iso)
            machine.wait_for(r"reinstalling because of k3s\.reinstall=1", LIVE_INSTALL_S, stage="reinstall decision")
            machine.wait_for(rf"installed node {FIRST} to /dev/vda", LIVE_INSTALL_S, stage="reinstall")
            outcome.facts["exit"] = machine.wait_exit(120, stage="reboot after the reinstall")
        finally:
            machine.kill()

    outcomes = side_by_side({"3 (ISO left in)": left_in, "3 (k3s.reinstall=1)": reinstall})
    assert outcomes["3 (ISO left in)"].check()["exit"] == "poweroff"
    with disk.mounted(disks["left-in"], "root") as root:
        assert (root / STATE / "k3s-installed").exists(), "the install was touched"
    assert outcomes["3 (k3s.reinstall=1)"].check()["exit"] == "reboot"
    with disk.mounted(disks["reinstall"], "boot") as boot:
        assert (boot / "ignition/config.ign").exists(), "no fresh install on the disk"
    with disk.mounted(disks["reinstall"], "root") as root:
        assert not (root / STATE).exists() or not (root / STATE / "k3s-installed").exists()


def partitioned_disk(path: Path) -> Path:
    """A 10 GiB disk with a GPT partition holding an ext4 filesystem labelled `data` with a file."""
    blank_disk(path)
    subprocess.run(["sfdisk", "-q", os.fspath(path)], input="label: gpt\nsize=256MiB, name=data\n",
                   text=True, check=True)
    content = path.parent / "content"
    content.mkdir()
    (content / "precious.txt").write_text("do not wipe\n")
    offset = disk.partitions(path)[0]["offset"]
    subprocess.run(["mke2fs", "-q", "-t", "ext4", "-L", "data", "-d", os.fspath(content),
                    "-E", f"offset={offset}", os.fspath(path), "200M"], check=True)
    return path


def partitioned_disk_countdown_and_keypress_abort(iso: Path, workdir: Path, port: int, outcome: Outcome) -> None:
    workdir.mkdir(parents=True)
    image = partitioned_disk(workdir / "disk.img")
    before = disk.fingerprint(image)
    machine = Machine(FIRST, workdir, disks=[image], http_port=port, cpus=1)
    try:
        machine.boot(iso)
        machine.wait_for(r"/dev/vda holds data that will be WIPED", LIVE_INSTALL_S, stage="what will be wiped")
        machine.wait_for(r"installing to /dev/vda in \d+ s -- press any key", 60, stage="countdown")
        machine.send("x")
        machine.wait_for(r"aborted: nothing was written to /dev/vda", 30, stage="abort on a keypress")
        listing = machine.boot_text[machine.boot_text.find("holds data that will be WIPED"):]
        outcome.facts["listing"] = listing
        time.sleep(3)
        outcome.facts["installing"] = "installing Fedora CoreOS to" in machine.boot_text
    finally:
        machine.kill()
    outcome.facts["unchanged"] = disk.fingerprint(image) == before


def two_candidate_disks_refuses_to_guess(iso: Path, workdir: Path, port: int, outcome: Outcome) -> None:
    workdir.mkdir(parents=True)
    images = [blank_disk(workdir / "a.img"), blank_disk(workdir / "b.img")]
    machine = Machine(FIRST, workdir, disks=images, http_port=port, cpus=1)
    try:
        machine.boot(iso)
        machine.wait_for(r"2 disks qualify, refusing to guess", LIVE_INSTALL_S, stage="refusal")
        machine.wait_for(r"Nothing was written", 30, stage="refusal message")
        outcome.facts["text"] = machine.boot_text
        time.sleep(3)
        outcome.facts["installing"] = "installing Fedora CoreOS to" in machine.boot_text
    finally:
        machine.kill()
    outcome.facts["blank"] = all(disk.partitions(image) == [] for image in images)


def test_4_partitioned_disk_countdown_and_keypress_abort(live_only: dict[str, Outcome]) -> None:
    facts = live_only["4"].check()
    listing = str(facts["listing"])
    assert "/dev/vda1" in listing and "data" in listing, "the countdown does not show the partition"
    assert facts["installing"] is False, "it went on installing after the keypress"
    assert facts["unchanged"] is True, "the disk changed after an aborted countdown"


def test_5_two_candidate_disks_refuses_to_guess(live_only: dict[str, Outcome]) -> None:
    facts = live_only["5"].check()
    text = str(facts["text"])
    assert "  /dev/vda" in text and "  /dev/vdb" in text, "the candidates are not listed"
    assert facts["installing"] is False
    assert facts["blank"] is True, "a candidate disk was written"


def test_6_network_down_during_layering(smoke_run: SmokeRun) -> None:
    """The agent's uplink was down from its first boot until layering had failed once (see
    cut_the_uplink_during_layering); it retried, wrote no stamp meanwhile, and went on to join."""
    facts = smoke_run.outage.check()
    assert facts["layered_while_down"] is False
    smoke_succeeded(smoke_run)
    with disk.mounted(smoke_run.disks[AGENT], "root") as root:
        var = root / "ostree/deploy/fedora-coreos/var"
        stamp = var / "lib/k3s-autoinstall/prereq-installed"
        assert stamp.exists()
        down_until = float(str(facts["down_until"]))
        assert stamp.stat().st_mtime > down_until, "the stamp was written while the network was down"
        log = (var / "log/twin/rpm-ostree.log").read_text()
        assert "download failed" in log and "staged" in log
        assert log.index("download failed") < log.index("staged")
        assert "k3s-selinux" in (var / "lib/twin/rpm-ostree/deployed").read_text()


def test_7_three_node_cluster(smoke_run: SmokeRun) -> None:
    smoke_succeeded(smoke_run)
    first, joiner, agent = (smoke_run.logs[name] for name in (FIRST, JOINER, AGENT))
    assert "report-cluster-nodes: nodes Ready (3 of 3): twin-agent-1 twin-server-1 twin-server-2" in first
    for text in (joiner, agent):
        assert "waiting for the first server's API at https://192.168.76.11:6443" in text
    assert f"waiting {JOIN_STAGGER_S} s so that servers join one at a time" in joiner
    assert f"waiting {JOIN_STAGGER_S} s" not in agent
    assert "twin-k3s: k3s server is up and running (twin-server-2, joined" in joiner
    assert "twin-k3s: k3s agent is up and running (twin-agent-1, joined" in agent


def test_smoke_against_the_twin(smoke_run: SmokeRun, cluster: Project) -> None:
    """`doit smoke` on the twin ISOs: the same code path users run on the real ISOs; only the ISO differs."""
    smoke_succeeded(smoke_run)
    for name in (FIRST, JOINER, AGENT):
        milestones = [line.split(": ", 2)[2].rsplit(" (", 1)[0] for line in smoke_run.stderr.splitlines()
                      if line.startswith(f"‣ smoke: {name}: ") and "booting" not in line and "starts once" not in line]
        assert milestones == MILESTONES, f"{name}: {milestones}"
    assert "smoke: every node is Ready" in smoke_run.stderr


def test_image_cache_is_reused(twin_image: TwinImage) -> None:
    """A second build is a cache hit: same paths, no rebuild."""
    started = time.monotonic()
    again = build_image()
    assert again == twin_image
    assert time.monotonic() - started < 30
    assert shutil.disk_usage(twin_image.iso.parent).free > 0
