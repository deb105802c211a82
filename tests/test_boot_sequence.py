"""Boot-sequence simulation: the scripts, as rendered into the Ignition configs, run against fake
rpm-ostree, curl, systemctl, lsblk, mount, coreos-installer... that record their calls (PATH-prepended
executables, in the manner of osbuild's mock_command), with their state dirs in tmp.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_k3s_configs import CLUSTER_ID, ignition_files, ignition_units, parse_env, rendered

GIB = 1024 ** 3
STATE = "/var/lib/k3s-autoinstall"

LOGGER = """#!/bin/sh
name=$(basename "$0")
{ printf '%s' "$name"; for a in "$@"; do printf '\\t%s' "$a"; done; printf '\\n'; } >> "$FAKE_LOG"
fail_first() {  # fail_first KEY N: true for the first N calls (a network that comes back)
    f="$FAKE_DIR/failures-$1"; n=$(cat "$f" 2>/dev/null || echo 0)
    [ "$n" -lt "${2:-0}" ] || return 1
    echo $((n + 1)) > "$f"
}
"""

STUBS = {
    "sleep": '[ -n "$FAKE_SLEEP" ] && /bin/sleep "$FAKE_SLEEP"; exit 0',
    "udevadm": "exit 0",
    "reboot": "exit 0",
    "blkid": "exit 2",
    "getent": 'fail_first dns "$FAKE_DNS_DOWN" && exit 2; echo "203.0.113.7 $2"',
    "rpm-ostree": 'fail_first rpm "$FAKE_RPM_OSTREE_FAIL" && exit 1; touch "$FAKE_DIR/pending-k3s-selinux"',
    "selinuxenabled": '[ -z "$FAKE_SELINUX_OFF" ]',
    "chcon": "exit 0",
    "restorecon": "exit 0",
    "dmsetup": "exit 0",
    "mdadm": "exit 0",
    "rpm": '[ -e "$FAKE_DIR/active-k3s-selinux" ]',
    "systemctl": """case "$1" in
  is-active) [ -z "$FAKE_K3S_DOWN" ] ;;
  --no-block) case "$2" in reboot|poweroff) touch "$FAKE_DIR/$2" ;; esac ;;
esac""",
    # coreos-installer: takes FAKE_INSTALL_SECONDS, then records that it finished
    "coreos-installer": '[ -n "$FAKE_INSTALL_SECONDS" ] && /bin/sleep "$FAKE_INSTALL_SECONDS"; '
                        'echo done >> "$FAKE_DIR/installed"',
    "umount": 'rm -rf "${@: -1}"/* 2>/dev/null; exit 0',
    # mount [-o OPTS] DEV DIR: the files of fake disk DEV, from $FAKE_DIR/fs/<basename of DEV>/
    "mount": """dev=; dir=
while [ $# -gt 0 ]; do case "$1" in -o) shift ;; *) if [ -z "$dev" ]; then dev=$1; else dir=$1; fi ;; esac; shift; done
src="$FAKE_DIR/fs/$(basename "$dev")"
[ -d "$src" ] || exit 32
cp -a "$src/." "$dir/\"""",
    # curl: the API probe answers unless FAKE_API_DOWN; a download (-o FILE) writes a fake install.sh
    # that records its environment, unless FAKE_CURL_FAIL (a network failure, exit 6).
    "curl": """fail_first curl "$FAKE_CURL_FAIL" && exit 6
out=
for a in "$@"; do case "$a" in */ping) fail_first api "$FAKE_API_DOWN" && exit 7; exit 0 ;; esac; done
while [ $# -gt 0 ]; do case "$1" in -o) out=$2; shift ;; esac; shift; done
cp "$FAKE_DIR/install.sh" "$out\"""",
}

FAKE_INSTALL_SH = """#!/bin/sh
env | grep -E '^(INSTALL_K3S|K3S)_' | sort > "$FAKE_DIR/install-env"
printf 'install.sh\\t%s\\n' "$*" >> "$FAKE_LOG"
"""

FAKE_LSBLK = r'''#!PYTHON
"""lsblk over $FAKE_DIR/disks.json: -d -n -r -b -p -o COLS [DEVICE...]"""
import json, os, sys
disks = json.load(open(os.path.join(os.environ["FAKE_DIR"], "disks.json")))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("\t".join(["lsblk", *sys.argv[1:]]) + "\n")
flags, cols, devs, args = set(), ["NAME"], [], sys.argv[1:]
while args:
    a = args.pop(0)
    if a.startswith("-"):
        flags |= set(a[1:])
        if a.endswith("o"):
            cols = args.pop(0).split(",")
    else:
        devs.append(a)
def find(dev):
    for d in disks:
        if dev == d["name"] or dev in d.get("aliases", []):
            return d
    sys.exit(f"lsblk: {dev}: not a block device") if False else None
rows = []
selected = disks if not devs else [find(d) for d in devs]
if any(d is None for d in selected):
    print(f"lsblk: {devs[0]}: not a block device", file=sys.stderr); sys.exit(32)
for d in selected:
    rows.append({"TYPE": "disk", "RM": "0", "RO": "0", "FSTYPE": "", "LABEL": "", "MODEL": "Fake", "SERIAL": "1", **d})
    if "d" not in flags:
        for p in d.get("parts", []):
            rows.append({"TYPE": "part", "RM": d.get("RM", "0"), "RO": "0", "SIZE": "1", "FSTYPE": "", "LABEL": "",
                         "MODEL": "", "SERIAL": "", **p})
if "n" not in flags:
    print(" ".join(cols))
for r in rows:
    r = {**r, "NAME": r["name"]}
    print(" ".join(str(r.get(c, "")) for c in cols))
'''


class Machine:
    """One simulated machine: fake tools on PATH, a call log, state in tmp."""

    def __init__(self, tmp: Path) -> None:
        self.dir = tmp
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.log = tmp / "calls.log"
        self.log.touch()
        for name, body in STUBS.items():
            self._stub(name, LOGGER + body + "\n")
        self._stub("lsblk", FAKE_LSBLK.replace("PYTHON", sys.executable))
        (tmp / "install.sh").write_text(FAKE_INSTALL_SH)
        self.env = {"PATH": f"{self.bin}:/usr/bin:/bin", "FAKE_LOG": os.fspath(self.log),
                    "FAKE_DIR": os.fspath(tmp), "LANG": "C.UTF-8"}

    def _stub(self, name: str, text: str) -> None:
        path = self.bin / name
        path.write_text(text)
        path.chmod(0o755)

    def calls(self, name: str | None = None) -> list[list[str]]:
        lines = [line.split("\t") for line in self.log.read_text().splitlines()]
        return [c for c in lines if name is None or c[0] == name]

    def clear(self) -> None:
        self.log.write_text("")

    def run(self, script: Path, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", os.fspath(script)], env={**self.env, **env}, capture_output=True, text=True,
                              input=stdin, timeout=30)


def write_script(node: str, which: str, path: str, tmp: Path) -> Path:
    text = ignition_files(rendered(node)[which])[path][1]
    target = tmp / Path(path).name
    target.write_text(text)
    target.chmod(0o755)
    return target


# --- the installed system: three boots -----------------------------------------------------------

class Installed:
    """The installed system's two units, run boot after boot as systemd would (conditions, order)."""

    def __init__(self, node: str, tmp: Path) -> None:
        self.extra_env: dict[str, str] = {}
        self.m = Machine(tmp)
        self.node = node
        self.state = tmp / "state"
        self.root = tmp / "root"
        ign = rendered(node)["installed_ign"]
        self.units = ignition_units(ign)
        files = ignition_files(ign)
        self.config = self.root / "etc/rancher/k3s/config.yaml"
        self.config.parent.mkdir(parents=True)
        self.config.write_text(files["/etc/rancher/k3s/config.yaml"][1])
        self.installer_env = parse_env(files["/etc/k3s-autoinstall/k3s-installer.env"][1])
        self.updates_hold = tmp / "zincati-hold.toml"
        self.updates_hold.write_text(files[self.installer_env["K3S_AI_UPDATES_HOLD"]][1])
        self.installer_env["K3S_AI_UPDATES_HOLD"] = os.fspath(self.updates_hold)
        self.scripts = {name: write_script(node, "installed_ign", f"/usr/local/bin/{name}", tmp)
                        for name in ("run-k3s-prereq-installer", "run-k3s-installer")}

    def conditions_hold(self, unit: str) -> bool:
        for negate, path in re.findall(r"^ConditionPathExists=(!?)(\S+)$", self.units[unit]["contents"], re.M):
            exists = (self.state / Path(path).relative_to(STATE)).exists()
            if exists == bool(negate):
                return False
        return True

    def boot(self, **fake: str) -> dict[str, int | None]:
        """Start the units in their order; a pending deployment becomes active at reboot."""
        if (self.m.dir / "reboot").exists():
            (self.m.dir / "reboot").unlink()
            if (self.m.dir / "pending-k3s-selinux").exists():
                (self.m.dir / "pending-k3s-selinux").rename(self.m.dir / "active-k3s-selinux")
        env = {"K3S_AI_STATE_DIR": os.fspath(self.state), "K3S_AI_CONFIG": os.fspath(self.config),
               "K3S_AI_RETRY_SECONDS": "0", **{f"FAKE_{k.upper()}": v for k, v in fake.items()}}
        env = {**env, **self.extra_env}
        results: dict[str, int | None] = {}
        self.outputs: dict[str, str] = {}
        for name in ("run-k3s-prereq-installer", "run-k3s-installer"):
            if not self.conditions_hold(f"{name}.service"):
                results[name] = None
                continue
            extra = self.installer_env if name == "run-k3s-installer" else {}
            result = self.m.run(self.scripts[name], {**extra, **env})
            results[name] = result.returncode
            self.output = result.stdout + result.stderr
            self.outputs[name] = self.output
        return results


@pytest.mark.parametrize("node", ["k3s-server-1", "k3s-server-2", "k3s-agent-1"])
def test_three_boots(node: str, tmp_path: Path) -> None:
    sim = Installed(node, tmp_path)
    m = sim.m
    # Boot 1: layer k3s-selinux, stamp, reboot; the k3s installer finds the package not active yet.
    assert sim.boot() == {"run-k3s-prereq-installer": 0, "run-k3s-installer": 0}
    assert m.calls("rpm-ostree") == [["rpm-ostree", "install", "--idempotent", "--allow-inactive", "k3s-selinux"]]
    assert ["systemctl", "--no-block", "reboot"] in m.calls("systemctl")
    assert (sim.state / "prereq-installed").exists() and not (sim.state / "k3s-installed").exists()
    assert m.calls("curl") == [] and m.calls("install.sh") == []
    assert ["getent", "hosts", "rpm.rancher.io"] in m.calls("getent")  # waited for DNS first

    # Boot 2: k3s-selinux is active: install k3s with the right environment, start it, stamp.
    m.clear()
    assert sim.boot() == {"run-k3s-prereq-installer": None, "run-k3s-installer": 0}
    assert m.calls("rpm-ostree") == []
    role = "agent" if node == "k3s-agent-1" else "server"
    env = dict(line.split("=", 1) for line in (tmp_path / "install-env").read_text().splitlines())
    assert env == {"INSTALL_K3S_SKIP_SELINUX_RPM": "true", "INSTALL_K3S_SKIP_START": "true",
                   "INSTALL_K3S_EXEC": role, "INSTALL_K3S_CHANNEL": "stable"}
    downloads = [c for c in m.calls("curl") if not c[-1].endswith("/ping")]
    assert len(downloads) == 1 and downloads[0][-1] == "https://get.k3s.io"
    probes = [c for c in m.calls("curl") if c[-1].endswith("/ping")]
    sleeps = m.calls("sleep")
    if node == "k3s-server-1":
        assert probes == [] and sleeps == []  # the first server starts the cluster at once
    else:
        assert probes and probes[0][-1] == "https://192.168.1.11:6443/ping"
        assert sleeps == ([["sleep", "60"]] if node == "k3s-server-2" else [])  # servers join one at a time
    service = "k3s-agent" if role == "agent" else "k3s"
    assert ["systemctl", "is-active", "--quiet", service] in m.calls("systemctl")
    # SELinux: installed without starting, the binary labelled as install.sh would, /var/lib/rancher
    # relabelled now that k3s-selinux is active; only then does k3s start.
    calls = m.calls()
    order = [c[0] for c in calls if c[0] in ("install.sh", "chcon", "restorecon")
             or c[:2] == ["systemctl", "is-active"]]
    assert order[:4] == ["install.sh", "chcon", "restorecon", "systemctl"], order
    assert ["chcon", "-u", "system_u", "-r", "object_r", "-t", "container_runtime_exec_t",
            "/usr/local/bin/k3s"] in calls
    assert ["restorecon", "-R", "/var/lib/rancher"] in calls
    # Zincati's hold is lifted once k3s runs, not before.
    assert not sim.updates_hold.exists()
    assert ["systemctl", "try-restart", "zincati.service"] in m.calls("systemctl")
    assert ["systemctl", "--no-block", "reboot"] not in m.calls("systemctl")  # no third reboot
    report = ["systemctl", "--no-block", "start", "report-cluster-nodes.service"]
    assert (report in m.calls("systemctl")) == (node == "k3s-server-1")  # only the first server reports
    assert (sim.state / "k3s-installed").exists()
    assert "K10" not in sim.output  # the token is never printed

    # Boot 3: nothing to do.
    m.clear()
    assert sim.boot() == {"run-k3s-prereq-installer": None, "run-k3s-installer": None}
    assert m.calls() == []


def test_network_down_for_long_is_retried_until_it_comes_back(tmp_path: Path) -> None:
    """Unattended: a node plugged in long before its network still joins. No give-up after N tries,
    each failure one line, pauses doubling up to a cap."""
    sim = Installed("k3s-server-1", tmp_path)
    sim.extra_env = {"K3S_AI_RETRY_SECONDS": "5", "K3S_AI_RETRY_MAX_SECONDS": "300"}
    assert sim.boot(dns_down="40") == {"run-k3s-prereq-installer": 0, "run-k3s-installer": 0}
    sleeps = [int(c[1]) for c in sim.m.calls("sleep")]
    assert len(sleeps) == 40 and sleeps[:8] == [5, 10, 20, 40, 80, 160, 300, 300] and max(sleeps) == 300
    assert sim.outputs["run-k3s-prereq-installer"].count("cannot resolve rpm.rancher.io") == 40
    assert (sim.state / "prereq-installed").exists()
    sim.m.clear()
    assert sim.boot(curl_fail="12") == {"run-k3s-prereq-installer": None, "run-k3s-installer": 0}
    assert len([c for c in sim.m.calls("curl") if not c[-1].endswith("/ping")]) == 13
    assert sim.output.count("download of https://get.k3s.io failed") == 12
    assert (sim.state / "k3s-installed").exists()


def test_layering_failure_is_retried_until_it_succeeds_and_stamps_only_then(tmp_path: Path) -> None:
    sim = Installed("k3s-agent-1", tmp_path)
    assert sim.boot(rpm_ostree_fail="9")["run-k3s-prereq-installer"] == 0
    assert len(sim.m.calls("rpm-ostree")) == 10
    assert sim.outputs["run-k3s-prereq-installer"].count("rpm-ostree install k3s-selinux failed") == 9
    assert (sim.state / "prereq-installed").exists()
    reboot_at = [c[:3] for c in sim.m.calls()].index(["systemctl", "--no-block", "reboot"])
    assert reboot_at > max(i for i, c in enumerate(sim.m.calls()) if c[0] == "rpm-ostree")
    unit = sim.units["run-k3s-prereq-installer.service"]["contents"]
    assert "StartLimitIntervalSec=0" in unit and "StartLimitBurst" not in unit


def test_joining_node_waits_for_the_first_server(tmp_path: Path) -> None:
    sim = Installed("k3s-agent-1", tmp_path)
    sim.boot()
    sim.m.clear()
    assert sim.boot(api_down="30")["run-k3s-installer"] == 0
    probes = [c for c in sim.m.calls("curl") if c[-1].endswith("/ping")]
    assert len(probes) == 31
    first_install = [c[0] for c in sim.m.calls()].index("install.sh")
    assert first_install > max(i for i, c in enumerate(sim.m.calls()) if c[-1].endswith("/ping"))


FAKE_K3S_NODES = """#!/bin/sh
# `k3s kubectl get nodes --no-headers`, one more line of $FAKE_DIR/nodes at each call (kubectl's columns)
[ "$*" = "kubectl get nodes --no-headers" ] || exit 2
n=$(cat "$FAKE_DIR/calls" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" > "$FAKE_DIR/calls"
head -n "$n" "$FAKE_DIR/nodes"
"""


def test_first_server_reports_ready_nodes_until_every_node_is(tmp_path: Path) -> None:
    """What `doit smoke` and a console watcher read: one line per change, then the end."""
    m = Machine(tmp_path)
    (m.bin / "k3s").write_text(FAKE_K3S_NODES)
    (m.bin / "k3s").chmod(0o755)
    (tmp_path / "nodes").write_text("k3s-server-1   Ready      control-plane,etcd,master   2m   v1.31.4+k3s1\n"
                                    "k3s-agent-1    NotReady   <none>                      5s   v1.31.4+k3s1\n"
                                    "k3s-agent-1    Ready      <none>                      9s   v1.31.4+k3s1\n"
                                    "k3s-server-2   Ready,SchedulingDisabled   control-plane,etcd,master   1s   v1\n")
    script = write_script("k3s-server-1", "installed_ign", "/usr/local/bin/report-cluster-nodes", tmp_path)
    files = ignition_files(rendered("k3s-server-1")["installed_ign"])
    env = parse_env(files["/etc/k3s-autoinstall/k3s-installer.env"][1])
    result = m.run(script, {**env, "K3S_AI_BIN_DIR": os.fspath(m.bin), "K3S_AI_REPORT_SECONDS": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "report-cluster-nodes: nodes Ready (1 of 3): k3s-server-1",
        "report-cluster-nodes: nodes Ready (2 of 3): k3s-agent-1 k3s-server-1",
        "report-cluster-nodes: nodes Ready (3 of 3): k3s-agent-1 k3s-server-1 k3s-server-2",
        "report-cluster-nodes: every node of the cluster is Ready",
    ]
    assert "report-cluster-nodes" not in "".join(ignition_files(rendered("k3s-server-2")["installed_ign"]))


def test_node_report_gives_up_after_its_limit_naming_the_missing(tmp_path: Path) -> None:
    m = Machine(tmp_path)
    (m.bin / "k3s").write_text(FAKE_K3S_NODES)
    (m.bin / "k3s").chmod(0o755)
    (tmp_path / "nodes").write_text("s1 Ready control-plane 1m v1\n")
    script = write_script("k3s-server-1", "installed_ign", "/usr/local/bin/report-cluster-nodes", tmp_path)
    result = m.run(script, {"K3S_AI_NODES": "s1 a1", "K3S_AI_BIN_DIR": os.fspath(m.bin),
                            "K3S_AI_REPORT_SECONDS": "0", "K3S_AI_REPORT_LIMIT_SECONDS": "1"})
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "report-cluster-nodes: nodes Ready (1 of 2): s1"
    assert lines[-1].startswith("report-cluster-nodes: still not Ready after 1 s: a1 ")


def test_shutdown_unit_survives_k3s_killall(tmp_path: Path) -> None:
    """What k3s-killall.sh does at shutdown: `systemctl stop` every /etc/systemd/system/k3s*.service.
    Our ExecStop unit must not be among them (it would wait on its own stop job)."""
    sim = Installed("k3s-server-1", tmp_path)
    system = tmp_path / "etc-systemd-system"
    system.mkdir()
    for name in ("k3s.service", *sim.units):  # install.sh's unit beside ours
        (system / name).write_text("")
    stopped_by_killall = sorted(p.name for p in system.glob("k3s*.service"))
    assert stopped_by_killall == ["k3s.service"]


def test_install_script_sha256_pin(tmp_path: Path) -> None:
    sim = Installed("k3s-server-1", tmp_path)
    sim.boot()
    sim.installer_env["K3S_AI_SCRIPT_SHA256"] = "0" * 64
    assert sim.boot()["run-k3s-installer"] == 1
    assert "expected 0000" in sim.output and sim.m.calls("install.sh") == []
    sim.installer_env["K3S_AI_SCRIPT_SHA256"] = hashlib.sha256((tmp_path / "install.sh").read_bytes()).hexdigest()
    assert sim.boot()["run-k3s-installer"] == 0
    assert (sim.state / "k3s-installed").exists()


def test_k3s_not_running_leaves_no_stamp(tmp_path: Path) -> None:
    sim = Installed("k3s-server-1", tmp_path)
    sim.boot()
    assert sim.boot(k3s_down="1")["run-k3s-installer"] == 1
    assert not (sim.state / "k3s-installed").exists()


# --- the live system: disk picking and data safety -----------------------------------------------

def disk(name: str, size: int = 100 * GIB, rm: str = "0", parts: list[dict[str, Any]] | None = None,
         **extra: object) -> dict[str, Any]:
    return {"name": name, "SIZE": size, "RM": rm, "parts": parts or [], **extra}


FCOS_PARTS = [{"name": "/dev/sda1", "LABEL": "BIOS-BOOT"},
              {"name": "/dev/sda2", "FSTYPE": "vfat", "LABEL": "EFI-SYSTEM"},
              {"name": "/dev/sda3", "FSTYPE": "ext4", "LABEL": "boot"},
              {"name": "/dev/sda4", "FSTYPE": "xfs", "LABEL": "root"}]


class Live:
    def __init__(self, tmp: Path, disks: list[dict[str, Any]], *, disk_setting: str = "auto", after: str = "reboot",
                 cmdline: str = "coreos.liveiso=fedora-coreos-41 ignition.firstboot", countdown: int = 3) -> None:
        self.m = Machine(tmp)
        (tmp / "disks.json").write_text(json.dumps(disks))
        self.script = write_script("k3s-agent-1", "live_ign", "/usr/local/bin/run-coreos-installer", tmp)
        (tmp / "cmdline").write_text(cmdline + "\n")
        (tmp / "k3s-autoinstall.ign").write_text("{}")
        self.env = {"K3S_AI_CLUSTER": "homelab", "K3S_AI_CLUSTER_ID": CLUSTER_ID, "K3S_AI_NODE": "k3s-agent-1",
                    "K3S_AI_DISK": disk_setting,
                    "K3S_AI_AFTER_INSTALL": after, "K3S_AI_COUNTDOWN": str(countdown),
                    "K3S_AI_IGNITION": os.fspath(tmp / "k3s-autoinstall.ign"),
                    "K3S_AI_CMDLINE": os.fspath(tmp / "cmdline"), "K3S_AI_RUN_DIR": os.fspath(tmp / "run"),
                    "K3S_AI_CONSOLE": "/dev/null"}

    def filesystem(self, device: str, files: dict[str, str]) -> None:
        for rel, text in files.items():
            path = self.m.dir / "fs" / Path(device).name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def run(self, **env: str) -> subprocess.CompletedProcess[str]:
        self.result = self.m.run(self.script, {**self.env, **env})
        return self.result

    def installed_to(self) -> list[str]:
        return [c[-1] for c in self.m.calls("coreos-installer")]


def test_single_disk_is_chosen_and_installed_offline(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda")])
    assert live.run().returncode == 0, live.result.stdout + live.result.stderr
    assert live.m.calls("coreos-installer") == [
        ["coreos-installer", "install", "--offline", "--ignition-file", live.env["K3S_AI_IGNITION"], "/dev/sda"]]
    assert "Ctrl-C is ignored until it is done" in live.result.stdout
    assert ["systemctl", "--no-block", "reboot"] in live.m.calls("systemctl")
    assert live.m.calls("sleep") == []  # a blank disk: no countdown


def test_poweroff_after_install(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda")], after="poweroff")
    assert live.run().returncode == 0
    assert live.installed_to() == ["/dev/sda"]
    assert ["systemctl", "--no-block", "poweroff"] in live.m.calls("systemctl")
    assert ["systemctl", "--no-block", "reboot"] not in live.m.calls("systemctl")


def test_two_candidates_refuse_listing_both(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda"), disk("/dev/nvme0n1")])
    assert live.run().returncode == 1
    out = live.result.stdout + live.result.stderr
    assert "refusing to guess" in out and "  /dev/sda\n" in out and "  /dev/nvme0n1\n" in out
    assert live.installed_to() == [] and live.m.calls("systemctl") == []


def test_removable_iso_and_small_disks_are_ignored(tmp_path: Path) -> None:
    live = Live(tmp_path, [
        disk("/dev/sdb", rm="1"),                                          # USB stick
        disk("/dev/sdc", size=32 * GIB, FSTYPE="iso9660", LABEL="fedora-coreos-41"),  # the ISO, dd'd
        disk("/dev/sr0", TYPE="rom", FSTYPE="iso9660"),
        disk("/dev/vdb", size=4 * GIB),                                    # too small
        disk("/dev/zram0", size=16 * GIB),
        disk("/dev/nvme0n1", size=512 * GIB),                              # the NVMe namespace
    ])
    assert live.run().returncode == 0, live.result.stdout + live.result.stderr
    assert live.installed_to() == ["/dev/nvme0n1"]


def test_no_candidate_refuses(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sdb", rm="1"), disk("/dev/vda", size=2 * GIB)])
    assert live.run().returncode == 1
    assert "no disk qualifies" in live.result.stdout + live.result.stderr
    assert live.installed_to() == []


def test_explicit_by_id_disk(tmp_path: Path) -> None:
    by_id = "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S649NF0R000001"
    live = Live(tmp_path, [disk("/dev/sda"), disk("/dev/nvme0n1", aliases=[by_id])], disk_setting=by_id)
    assert live.run().returncode == 0, live.result.stdout + live.result.stderr
    assert live.installed_to() == [by_id]


def test_explicit_nvme_controller_refused(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/nvme0n1")], disk_setting="/dev/nvme0")
    assert live.run().returncode == 1
    out = live.result.stdout + live.result.stderr
    assert "namespace /dev/nvmeNn1" in out and live.installed_to() == []


def test_marker_present_powers_off_without_install(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda", parts=FCOS_PARTS)])
    live.filesystem("/dev/sda4", {"ostree/deploy/fedora-coreos/var/lib/k3s-autoinstall/marker":
                                  f"k3s-autoinstall-marker: cluster=homelab id={CLUSTER_ID} node=k3s-agent-1\n"})
    assert live.run().returncode == 0
    assert live.installed_to() == []
    assert ["systemctl", "--no-block", "poweroff"] in live.m.calls("systemctl")
    assert "NOT reinstalling" in live.result.stdout and "k3s.reinstall=1" in live.result.stdout
    # Only ever mounted read-only without journal replay (a plain ro mount replays a dirty journal).
    assert live.m.calls("mount") and all(c[1:3] == ["-o", "ro,norecovery"] for c in live.m.calls("mount"))


def test_installed_but_never_booted_is_recognized(tmp_path: Path) -> None:
    """Rebooted into the ISO again right after installing: the marker is in /boot/ignition/config.ign."""
    live = Live(tmp_path, [disk("/dev/sda", parts=FCOS_PARTS)])
    live.filesystem("/dev/sda3", {"ignition/config.ign": rendered("k3s-agent-1")["installed_ign"]})
    assert live.run().returncode == 0
    assert live.installed_to() == [] and ["systemctl", "--no-block", "poweroff"] in live.m.calls("systemctl")


def test_other_cluster_is_not_a_marker(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda", parts=FCOS_PARTS)])
    live.filesystem("/dev/sda4", {"ostree/deploy/fedora-coreos/var/lib/k3s-autoinstall/marker":
                                  "k3s-autoinstall-marker: cluster=other node=x\n"})
    assert live.run().returncode == 0
    assert live.installed_to() == ["/dev/sda"]
    assert len(live.m.calls("sleep")) == 3  # but it has partitions: the countdown ran


def test_marker_with_reinstall_karg_installs(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda", parts=FCOS_PARTS)], cmdline="coreos.liveiso=x k3s.reinstall=1")
    live.filesystem("/dev/sda4", {"ostree/deploy/fedora-coreos/var/lib/k3s-autoinstall/marker":
                                  f"k3s-autoinstall-marker: cluster=homelab id={CLUSTER_ID} node=k3s-agent-1\n"})
    assert live.run().returncode == 0, live.result.stdout + live.result.stderr
    assert live.installed_to() == ["/dev/sda"]
    assert "reinstalling because of k3s.reinstall=1" in live.result.stdout
    assert len(live.m.calls("sleep")) == 3  # the disk holds partitions: countdown first
    assert "WIPED" in live.result.stdout


def test_countdown_aborted_by_a_key(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda", parts=FCOS_PARTS)])
    (tmp_path / "console").write_text("x")
    assert live.run(K3S_AI_CONSOLE=os.fspath(tmp_path / "console")).returncode == 0
    assert "aborted: nothing was written" in live.result.stdout
    assert live.installed_to() == [] and live.m.calls("systemctl") == []


def test_countdown_aborted_by_ctrl_c(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda", parts=FCOS_PARTS)], countdown=50)
    proc = subprocess.Popen(["bash", os.fspath(live.script)], env={**live.m.env, **live.env, "FAKE_SLEEP": "0.1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 10
    while not live.m.calls("sleep") and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert "aborted: nothing was written" in out
    assert live.installed_to() == []


def test_countdown_zero_installs_at_once(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda", parts=FCOS_PARTS)], countdown=0)
    assert live.run().returncode == 0
    assert live.installed_to() == ["/dev/sda"] and live.m.calls("sleep") == []
    assert "WIPED" in live.result.stdout  # no wait, but the console still says what was wiped


# --- the live system on a real machine: what the disks hold ------------------------------------

MARKER_PATH = "ostree/deploy/fedora-coreos/var/lib/k3s-autoinstall/marker"


@pytest.mark.parametrize(("marker", "ours"), [
    (f"cluster=homelab id={CLUSTER_ID} node=k3s-agent-1", True),
    ("cluster=homelab node=k3s-agent-1", True),                     # written before ids: kept, to be safe
    (f"cluster=homelab-lab id={CLUSTER_ID} node=k3s-agent-1", False),  # not a substring match
    (f"cluster=home id={CLUSTER_ID} node=k3s-agent-1", False),
    (f"cluster=homelab id={'0' * 32} node=k3s-agent-1", False),     # same name, another cluster (token)
])
def test_marker_fields_match_whole(tmp_path: Path, marker: str, ours: bool) -> None:
    live = Live(tmp_path, [disk("/dev/sda", parts=FCOS_PARTS)])
    live.filesystem("/dev/sda4", {MARKER_PATH: f"k3s-autoinstall-marker: {marker}\n"})
    assert live.run().returncode == 0, live.result.stdout + live.result.stderr
    assert live.installed_to() == ([] if ours else ["/dev/sda"])
    if "id=000" in marker:
        assert "of another cluster named homelab" in live.result.stderr


def test_filesystem_that_cannot_be_mounted_safely_counts_as_data(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda", parts=FCOS_PARTS)])  # no files: the fake mount fails
    assert live.run().returncode == 0
    assert "/dev/sda4 (root) cannot be mounted read-only without replaying its journal" in live.result.stderr
    assert "WIPED" in live.result.stdout and len(live.m.calls("sleep")) == 3  # reported, and the countdown ran
    assert all(c[1:3] == ["-o", "ro,norecovery"] for c in live.m.calls("mount"))  # no plain ro fallback


def test_another_disk_labelled_boot_stops_before_anything_is_written(tmp_path: Path) -> None:
    old = [{"name": "/dev/sdb1", "FSTYPE": "ext4", "LABEL": "boot"}, {"name": "/dev/sdb2", "FSTYPE": "xfs"}]
    live = Live(tmp_path, [disk("/dev/sda"), disk("/dev/sdb", rm="1", parts=old)], disk_setting="/dev/sda")
    assert live.run().returncode == 1
    err = live.result.stderr
    assert "labelled 'boot'" in err and "/dev/sdb1" in err and "Nothing was written" in err
    assert live.installed_to() == []


def test_target_own_boot_label_is_fine(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda", parts=FCOS_PARTS)], countdown=0)
    assert live.run().returncode == 0
    assert live.installed_to() == ["/dev/sda"]


def test_old_lvm_and_raid_on_the_target_are_released_after_the_countdown(tmp_path: Path) -> None:
    parts = [{"name": "/dev/sda1", "FSTYPE": "LVM2_member"},
             {"name": "/dev/mapper/vg0-root", "TYPE": "lvm", "FSTYPE": "xfs"},
             {"name": "/dev/mapper/vg0-swap", "TYPE": "lvm"},
             {"name": "/dev/sda2", "FSTYPE": "linux_raid_member"},
             {"name": "/dev/md127", "TYPE": "raid1", "FSTYPE": "ext4"},
             {"name": "/dev/sda3", "FSTYPE": "linux_raid_member"},
             {"name": "/dev/md127", "TYPE": "raid1", "FSTYPE": "ext4"}]  # two members: listed twice
    live = Live(tmp_path, [disk("/dev/sda", parts=parts)])
    assert live.run().returncode == 0, live.result.stdout + live.result.stderr
    # Deepest first (lsblk lists parents first), each array once.
    calls = [c for c in live.m.calls() if c[0] in ("sleep", "dmsetup", "mdadm", "coreos-installer")]
    assert [c[0] for c in calls] == ["sleep"] * 3 + ["mdadm", "dmsetup", "dmsetup", "coreos-installer"]
    assert ["mdadm", "--stop", "/dev/md127"] in live.m.calls("mdadm")
    assert {tuple(c) for c in live.m.calls("dmsetup")} == {("dmsetup", "remove", "--retry", "/dev/mapper/vg0-root"),
                                                           ("dmsetup", "remove", "--retry", "/dev/mapper/vg0-swap")}
    out = live.result.stdout
    assert "released /dev/md127: stopped RAID array" in out and "released /dev/mapper/vg0-root" in out


def test_aborted_countdown_releases_nothing(tmp_path: Path) -> None:
    parts = [{"name": "/dev/sda1", "FSTYPE": "LVM2_member"}, {"name": "/dev/mapper/vg0-root", "TYPE": "lvm"}]
    live = Live(tmp_path, [disk("/dev/sda", parts=parts)])
    (tmp_path / "console").write_text("x")
    assert live.run(K3S_AI_CONSOLE=os.fspath(tmp_path / "console")).returncode == 0
    assert live.m.calls("dmsetup") == [] and live.installed_to() == []


def test_ctrl_c_while_writing_does_not_stop_the_install(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda")])
    env = {**live.m.env, **live.env, "FAKE_INSTALL_SECONDS": "2"}
    proc = subprocess.Popen(["bash", os.fspath(live.script)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 10
    while not live.m.calls("coreos-installer") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C on the console sends: the whole foreground group
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    assert (tmp_path / "installed").read_text() == "done\n"
    assert "installed node k3s-agent-1 to /dev/sda" in out
    assert ["systemctl", "--no-block", "reboot"] in live.m.calls("systemctl")


def test_consoles_passed_to_the_installed_system(tmp_path: Path) -> None:
    live = Live(tmp_path, [disk("/dev/sda")])
    assert live.run(K3S_AI_CONSOLES="tty0 ttyS1,115200n8").returncode == 0
    assert live.m.calls("coreos-installer") == [
        ["coreos-installer", "install", "--offline", "--console", "tty0", "--console", "ttyS1,115200n8",
         "--ignition-file", live.env["K3S_AI_IGNITION"], "/dev/sda"]]
