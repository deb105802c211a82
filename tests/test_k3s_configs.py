"""The two Ignition configs per node, for jsonnet/examples/three-nodes.jsonnet (server, server, agent).

Rendered with tasks.render, transpiled with our butane, inlined with tasks.inline; then checked with
Debian's ignition-validate and applied (files stage) into a scratch root with the real Ignition.
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import gzip
import json
import os
import stat
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks import config
from tasks.inline import NESTED_CONFIG_PATH, inline_config
from tasks.render import cluster_id, render_documents
from tests.ignition_root import apply_ignition, scratch_dir
from tests.tools import REPO, require_root, require_tool

EXAMPLE = REPO / "jsonnet" / "examples" / "three-nodes.jsonnet"
INSTALLED = REPO / "jsonnet" / "k3s-autoinstall.bu.jsonnet"
LIVE = REPO / "jsonnet" / "coreos-autoinstall.fcc.jsonnet"
TOKEN = "K10test-token-0123456789abcdef"
AGENT_TOKEN = "K10agent-only-fedcba9876543210"
CLUSTER_ID = cluster_id(TOKEN)
NODES = ("k3s-server-1", "k3s-server-2", "k3s-agent-1")
SERVERS = NODES[:2]


def fake_ssh_key(comment: str) -> config.SshKey:
    blob = len(b"ssh-ed25519").to_bytes(4, "big") + b"ssh-ed25519" + (32).to_bytes(4, "big") + bytes(range(32))
    line = f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}"
    config.parse_ssh_key("keys/test.pub", line)  # the key is well-formed
    return config.SshKey(path="keys/test.pub", line=line)


@functools.cache
def cluster_config(example: Path = EXAMPLE) -> config.Config:
    import _gojsonnet

    raw = json.loads(_gojsonnet.evaluate_file(os.fspath(example)))
    return config.parse(raw, os.fspath(example), ssh_keys=(fake_ssh_key("admin@example"),),
                        read_file=lambda path: f"# manifest {path}\napiVersion: v1\nkind: Namespace\n")


@functools.cache
def rendered(node: str) -> dict[str, str]:
    """Butane and Ignition text of both configs of one node."""
    import butane

    installed_bu, live_bu = render_documents(cluster_config().template_input(), node, TOKEN, AGENT_TOKEN)
    installed_ign, warnings = butane.transpile(installed_bu, strict=True)
    assert not warnings
    inlined = inline_config(live_bu, installed_ign)
    live_ign, warnings = butane.transpile(inlined, strict=True)
    assert not warnings
    return {"installed_bu": installed_bu, "live_bu": live_bu, "installed_ign": installed_ign,
            "live_ign": live_ign}


def decode_source(source: str, compression: str | None = None) -> bytes:
    """An Ignition data URL's bytes."""
    assert source.startswith("data:")
    meta, _, data = source[5:].partition(",")
    raw = base64.b64decode(data) if meta.endswith(";base64") else urllib.parse.unquote_to_bytes(data)
    return gzip.decompress(raw) if compression == "gzip" else raw


def ignition_files(ignition_text: str) -> dict[str, tuple[int | None, str]]:
    """path → (mode, text) for every storage.files entry."""
    doc = json.loads(ignition_text)
    out = {}
    for entry in doc.get("storage", {}).get("files", []):
        contents = entry.get("contents") or {}
        text = decode_source(contents["source"], contents.get("compression")).decode() \
            if contents.get("source") else ""
        out[entry["path"]] = (entry.get("mode"), text)
    return out


def ignition_units(ignition_text: str) -> dict[str, dict[str, Any]]:
    return {unit["name"]: unit for unit in json.loads(ignition_text).get("systemd", {}).get("units", [])}


def k3s_config(node: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(
        ignition_files(rendered(node)["installed_ign"])["/etc/rancher/k3s/config.yaml"][1])
    return loaded


# --- the rendered configs ----------------------------------------------------------------------

@pytest.mark.parametrize("node", NODES)
def test_butane_is_fcos_1_4_and_live_config_carries_the_nested_one(node: str) -> None:
    docs = rendered(node)
    for key in ("installed_bu", "live_bu"):
        doc = yaml.safe_load(docs[key])
        assert (doc["variant"], doc["version"]) == ("fcos", "1.4.0")
    for key in ("installed_ign", "live_ign"):
        assert json.loads(docs[key])["ignition"]["version"] == "3.3.0"
    live_files = ignition_files(docs["live_ign"])
    mode, nested = live_files[NESTED_CONFIG_PATH]
    assert mode == 0o600
    assert json.loads(nested) == json.loads(docs["installed_ign"])
    # The live template declares the slot empty, for `inline` to fill in.
    slot = [f for f in yaml.safe_load(docs["live_bu"])["storage"]["files"] if f["path"] == NESTED_CONFIG_PATH]
    assert slot == [{"path": NESTED_CONFIG_PATH, "mode": 0o600, "contents": {"inline": ""}}]


@pytest.mark.parametrize("node", NODES)
def test_ignition_validate_accepts_both_configs(node: str, tmp_path: Path) -> None:
    require_tool("ignition-validate")
    for key in ("installed_ign", "live_ign"):
        path = tmp_path / f"{key}.ign"
        path.write_text(rendered(node)[key])
        result = subprocess.run(["ignition-validate", os.fspath(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{node} {key}: {result.stdout}{result.stderr}"


def test_roles_cluster_init_join_and_tls_san() -> None:
    first, second, agent = (k3s_config(n) for n in NODES)
    url = "https://192.168.1.11:6443"  # the first server's static address
    assert first["cluster-init"] is True and "server" not in first
    assert second["server"] == url and "cluster-init" not in second
    assert agent["server"] == url and "cluster-init" not in agent
    for server in (first, second):
        assert server["tls-san"] == ["192.168.1.11"]
        assert server["write-kubeconfig-mode"] == "0600"
        assert server["disable"] == ["traefik", "servicelb"]
        assert server["node-label"] == ["topology.kubernetes.io/zone=rack-1"]
    assert agent["node-label"] == ["node-role.example.org/worker=true"]
    for forbidden in ("disable", "write-kubeconfig-mode", "tls-san"):
        assert forbidden not in agent
    for cfg in (first, second):
        assert cfg["token"] == TOKEN and cfg["agent-token"] == AGENT_TOKEN and cfg["selinux"] is True
    # An agent joins with the agent token only: it cannot make a machine a server.
    assert agent["token"] == AGENT_TOKEN and "agent-token" not in agent and agent["selinux"] is True
    assert first["node-ip"] == "192.168.1.11" and second["node-ip"] == "192.168.1.12"
    assert "node-ip" not in agent  # DHCP
    for node in NODES:
        text = ignition_files(rendered(node)["installed_ign"])["/etc/rancher/k3s/config.yaml"][1]
        assert "no-deploy" not in text


def test_installer_environment_per_node() -> None:
    envs = {n: parse_env(ignition_files(rendered(n)["installed_ign"])["/etc/k3s-autoinstall/k3s-installer.env"][1])
            for n in NODES}
    assert envs["k3s-server-1"]["K3S_AI_FIRST_SERVER"] == "true"
    assert envs["k3s-server-2"]["K3S_AI_FIRST_SERVER"] == "false"
    assert envs["k3s-server-1"]["K3S_AI_JOIN_DELAY"] == "0"
    assert envs["k3s-server-2"]["K3S_AI_JOIN_DELAY"] == "60"  # staggered after the API answers
    assert envs["k3s-agent-1"]["K3S_AI_ROLE"] == "agent"
    for env in envs.values():
        assert env["K3S_AI_SCRIPT_URL"] == "https://get.k3s.io"
        assert env["K3S_AI_CHANNEL"] == "stable" and env["K3S_AI_VERSION"] == ""
        assert TOKEN not in "".join(env.values()) and AGENT_TOKEN not in "".join(env.values())


@pytest.mark.parametrize("node", NODES)
def test_tokens_only_in_the_installed_config_and_agents_never_get_the_server_token(node: str) -> None:
    docs = rendered(node)
    if node not in SERVERS:
        assert not any(TOKEN in text for text in docs.values())
    for token in (TOKEN, AGENT_TOKEN) if node in SERVERS else (AGENT_TOKEN,):
        assert token not in docs["live_bu"]
        assert token in docs["installed_bu"]
        # In the live config only inside the nested file (mode 0600), never in a unit or script.
        live = ignition_files(docs["live_ign"])
        assert {path for path, (_, text) in live.items() if token in text} <= {NESTED_CONFIG_PATH}
        assert live[NESTED_CONFIG_PATH][0] == 0o600
        assert all(token not in unit.get("contents", "") for unit in ignition_units(docs["live_ign"]).values())
        installed = ignition_files(docs["installed_ign"])
        assert [path for path, (_, text) in installed.items() if token in text] == ["/etc/rancher/k3s/config.yaml"]
        assert all(token not in unit.get("contents", "") for unit in ignition_units(docs["installed_ign"]).values())


def test_manifests_only_on_servers_and_names_checked() -> None:
    cluster = cluster_config().template_input()
    cluster["k3s"]["manifests"] = {"argocd": "apiVersion: v1\nkind: Namespace\n"}
    import butane
    for node, expected in (("k3s-server-2", True), ("k3s-agent-1", False)):
        ign, _ = butane.transpile(render_documents(cluster, node, TOKEN, AGENT_TOKEN)[0], strict=True)
        files = ignition_files(ign)
        path = "/var/lib/rancher/k3s/server/manifests/argocd.yaml"
        assert (path in files) is expected
        if expected:
            assert files[path] == (0o600, "apiVersion: v1\nkind: Namespace\n")
    cluster["k3s"]["manifests"] = {"bad_name": "x: 1\n"}
    from tasks.common import BuildError
    with pytest.raises(BuildError, match="RFC 1123"):
        render_documents(cluster, "k3s-server-1", TOKEN, AGENT_TOKEN)


def test_version_pin_and_rpm_channel() -> None:
    raw = {"name": "c", "k3s": {"version": "v1.31.4+k3s1", "channel": "latest",
                                 "install_script_url": "https://mirror.example/install.sh",
                                 "install_script_sha256": "a" * 64},
           "nodes": [{"name": "solo", "role": "server"}]}
    cluster = config.parse(raw, "x", ssh_keys=(fake_ssh_key("a"),)).template_input()
    import butane
    ign, _ = butane.transpile(render_documents(cluster, "solo", TOKEN, AGENT_TOKEN)[0], strict=True)
    files = ignition_files(ign)
    env = parse_env(files["/etc/k3s-autoinstall/k3s-installer.env"][1])
    assert env["K3S_AI_VERSION"] == "v1.31.4+k3s1" and env["K3S_AI_CHANNEL"] == ""
    assert env["K3S_AI_SCRIPT_URL"] == "https://mirror.example/install.sh"
    assert env["K3S_AI_SCRIPT_SHA256"] == "a" * 64
    # Single node: it starts the cluster, its own name is the server URL host.
    cfg = yaml.safe_load(files["/etc/rancher/k3s/config.yaml"][1])
    assert cfg["cluster-init"] is True and cfg["tls-san"] == ["solo"]
    repo = files["/etc/yum.repos.d/rancher-k3s-common.repo"][1]
    assert "[rancher-k3s-common-stable]" in repo  # a version pin: install.sh's default rpm channel
    assert "baseurl=https://rpm.rancher.io/k3s/stable/common/coreos/noarch" in repo


def test_live_settings_per_node() -> None:
    for node, disk, after in (("k3s-server-1", "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S649NF0R000001", "reboot"),
                              ("k3s-agent-1", "auto", "poweroff")):
        files = ignition_files(rendered(node)["live_ign"])
        env = parse_env(files["/etc/k3s-autoinstall/install.env"][1])
        role = "agent" if node == "k3s-agent-1" else "server"
        assert env == {"K3S_AI_CLUSTER": "homelab", "K3S_AI_CLUSTER_ID": CLUSTER_ID, "K3S_AI_NODE": node,
                       "K3S_AI_ROLE": role,
                       "K3S_AI_DISK": disk, "K3S_AI_AFTER_INSTALL": after, "K3S_AI_COUNTDOWN": "10",
                       "K3S_AI_IGNITION": NESTED_CONFIG_PATH, "K3S_AI_CONSOLES": ""}
        assert files["/usr/local/bin/run-coreos-installer"][0] == 0o755
        unit = ignition_units(rendered(node)["live_ign"])["run-coreos-installer.service"]
        assert unit["enabled"] is True
        assert "EnvironmentFile=/etc/k3s-autoinstall/install.env" in unit["contents"]


def test_marker_is_plain_text_in_the_installed_config() -> None:
    """The live installer recognizes an installed-but-not-yet-booted disk by this line in
    /boot/ignition/config.ign (coreos-installer copies the config verbatim)."""
    for node in NODES:
        text = rendered(node)["installed_ign"]
        line = f"k3s-autoinstall-marker: cluster=homelab id={CLUSTER_ID} node={node}"
        assert line in text
        assert ignition_files(text)["/var/lib/k3s-autoinstall/marker"][1] == line + "\n"


def test_cluster_id_is_stable_one_way_and_differs_per_token() -> None:
    assert cluster_id(TOKEN) == CLUSTER_ID and len(CLUSTER_ID) == 32
    assert cluster_id(TOKEN + "x") != CLUSTER_ID
    assert TOKEN not in CLUSTER_ID and CLUSTER_ID not in TOKEN


def test_unit_ordering_and_retries() -> None:
    units = ignition_units(rendered("k3s-server-1")["installed_ign"])
    prereq = units["run-k3s-prereq-installer.service"]["contents"]
    # Unattended: never stop retrying (no start limit, no start timeout).
    forever = ("Restart=on-failure", "StartLimitIntervalSec=0", "TimeoutStartSec=infinity")
    for line in ("Wants=network-online.target", "Before=zincati.service run-k3s-installer.service",
                 "ConditionPathExists=!/var/lib/k3s-autoinstall/prereq-installed", *forever,
                 "WantedBy=multi-user.target"):
        assert line in prereq.splitlines()
    installer = units["run-k3s-installer.service"]["contents"].splitlines()
    for line in ("After=network-online.target run-k3s-prereq-installer.service",
                 "ConditionPathExists=/var/lib/k3s-autoinstall/prereq-installed",
                 "ConditionPathExists=!/var/lib/k3s-autoinstall/k3s-installed",
                 "EnvironmentFile=/etc/k3s-autoinstall/k3s-installer.env", *forever):
        assert line in installer
    for unit in (prereq.splitlines(), installer):
        assert not any(line.startswith("StartLimitBurst=") for line in unit)
    shutdown = units["stop-k3s-at-shutdown.service"]["contents"]
    assert "Before=k3s.service k3s-agent.service" in shutdown and "k3s-killall.sh" in shutdown
    assert all(unit["enabled"] is True for unit in units.values())


def parse_env(text: str) -> dict[str, str]:
    env = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        assert value.startswith("'") and value.endswith("'"), line
        env[key] = value[1:-1]
    return env


# --- applied with the real Ignition into a scratch root -----------------------------------------

@pytest.fixture
def scratch() -> Iterator[Path]:
    with scratch_dir("k3s-ignition-") as work:
        yield work


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("node", NODES)
def test_installed_config_applied_by_ignition(node: str, scratch: Path) -> None:
    require_root()
    root = apply_ignition(rendered(node)["installed_ign"], scratch)
    units = ("run-k3s-prereq-installer.service", "run-k3s-installer.service", "stop-k3s-at-shutdown.service")
    preset = (root / "etc/systemd/system-preset/20-ignition.preset").read_text().splitlines()
    for unit in units:
        assert (root / "etc/systemd/system" / unit).is_file()
        assert f"enable {unit}" in preset
    for script in ("run-k3s-prereq-installer", "run-k3s-installer"):
        assert mode(root / "usr/local/bin" / script) == 0o755
    cfg_path = root / "etc/rancher/k3s/config.yaml"
    assert mode(cfg_path) == 0o600
    cfg = yaml.safe_load(cfg_path.read_text())
    assert cfg["token"] == (TOKEN if node in SERVERS else AGENT_TOKEN) and cfg["selinux"] is True
    # k3s's own mode for its server directory (Ignition would make it 0755).
    assert mode(root / "var/lib/rancher/k3s/server") == 0o700 if node in SERVERS \
        else not (root / "var/lib/rancher/k3s/server").exists()
    # Zincati held until k3s runs.
    assert "enabled = false" in (root / "etc/zincati/config.d/99-k3s-autoinstall-hold.toml").read_text()
    assert ("cluster-init" in cfg) is (node == "k3s-server-1")
    assert (root / "etc/hostname").read_text() == f"{node}\n"
    keys = (root / "home/core/.ssh/authorized_keys.d/ignition").read_text()
    assert fake_ssh_key("admin@example").line in keys
    repo = (root / "etc/yum.repos.d/rancher-k3s-common.repo").read_text()
    assert "gpgcheck=1" in repo and "/coreos/noarch" in repo
    assert (root / "var/lib/k3s-autoinstall/marker").read_text().startswith("k3s-autoinstall-marker: cluster=homelab")
    keyfiles = list((root / "etc/NetworkManager/system-connections").glob("*.nmconnection")) \
        if (root / "etc/NetworkManager/system-connections").exists() else []
    if node == "k3s-agent-1":
        assert keyfiles == []
    else:
        assert [p.name for p in keyfiles] == ["enp1s0.nmconnection"]
        text = keyfiles[0].read_text()
        assert "method=manual" in text and "address1=192.168.1.1" in text and "dns=192.168.1.1;" in text
    # No secret readable by others: whatever holds the token, and every keyfile, is 0600.
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            holds_a_token = TOKEN.encode() in data or AGENT_TOKEN.encode() in data
            if holds_a_token and path.name not in ("config.ign", "cache.json"):
                assert mode(path) & 0o077 == 0, path
    for keyfile in keyfiles:
        assert mode(keyfile) == 0o600


def test_live_config_applied_by_ignition(scratch: Path) -> None:
    require_root()
    docs = rendered("k3s-server-2")
    root = apply_ignition(docs["live_ign"], scratch)
    nested = root / NESTED_CONFIG_PATH.lstrip("/")
    assert mode(nested) == 0o600
    assert json.loads(nested.read_text()) == json.loads(docs["installed_ign"])
    assert mode(root / "usr/local/bin/run-coreos-installer") == 0o755
    assert "enable run-coreos-installer.service" in (root / "etc/systemd/system-preset/20-ignition.preset").read_text()
    # Old volume groups and arrays stay inactive on the live system (appended to the live lvm.conf).
    assert 'filter = [ "r|.*|" ]' in (root / "etc/lvm/lvm.conf").read_text()
    assert "AUTO -all" in (root / "etc/mdadm.conf.d/k3s-autoinstall.conf").read_text().splitlines()


# --- shellcheck ----------------------------------------------------------------------------------

def test_shellcheck_clean() -> None:
    require_tool("shellcheck")
    scripts = sorted((REPO / "jsonnet" / "scripts").iterdir())
    assert scripts
    result = subprocess.run(["shellcheck", "--severity=style", *map(os.fspath, scripts)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# --- what a real machine does differently (docs/k3s.md, "On a real machine") --------------------

def every_emitted_config() -> Iterator[tuple[str, str]]:
    """(what, Ignition JSON) for both configs of every node of the default and the example cluster."""
    import butane

    for example in (REPO / "jsonnet" / "cluster.jsonnet", EXAMPLE):
        cluster = cluster_config(example).template_input()
        for node in cluster["nodes"]:
            installed_bu, live_bu = render_documents(cluster, node["name"], TOKEN, AGENT_TOKEN)
            installed, _ = butane.transpile(installed_bu, strict=True)
            live, _ = butane.transpile(inline_config(live_bu, installed), strict=True)
            yield f"{example.name}:{node['name']}:installed", installed
            yield f"{example.name}:{node['name']}:live", live


def test_nothing_we_write_matches_k3s_service_glob() -> None:
    """k3s-killall.sh stops every /etc/systemd/system/k3s*.service: one of ours would wait on its own
    stop job at every shutdown, and k3s-uninstall.sh would refuse to run."""
    seen = 0
    for what, ignition in every_emitted_config():
        names = [unit["name"] for unit in ignition_units(ignition).values()]
        names += [unit["name"] + "/" + d["name"] for unit in ignition_units(ignition).values()
                  for d in unit.get("dropins", [])]
        names += [Path(path).name for path in ignition_files(ignition)]
        assert not [name for name in names if fnmatch.fnmatch(name, "k3s*.service")], what
        seen += len(names)
    assert seen > 20


def zincati(node: str) -> dict[str, str]:
    files = ignition_files(rendered(node)["installed_ign"])
    return {Path(path).name: text for path, (_, text) in files.items() if path.startswith("/etc/zincati/")}


def test_updates_held_until_k3s_runs_then_staggered_per_server() -> None:
    import tomllib

    windows = {}
    for node in NODES:
        drop_ins = zincati(node)
        assert tomllib.loads(drop_ins["99-k3s-autoinstall-hold.toml"]) == {"updates": {"enabled": False}}
        strategy = tomllib.loads(drop_ins["90-k3s-autoinstall-updates.toml"])["updates"]
        assert strategy["strategy"] == "periodic"
        (window,) = strategy["periodic"]["window"]
        windows[node] = (window["start_time"], window["length_minutes"])
        env = parse_env(ignition_files(rendered(node)["installed_ign"])["/etc/k3s-autoinstall/k3s-installer.env"][1])
        assert env["K3S_AI_UPDATES_HOLD"] == "/etc/zincati/config.d/99-k3s-autoinstall-hold.toml"
    # Server k opens k * 120 min after 03:00 (UTC); agents after the last server: never two servers at once.
    assert windows == {"k3s-server-1": ("03:00", 60), "k3s-server-2": ("05:00", 60), "k3s-agent-1": ("07:00", 60)}


@pytest.mark.parametrize(("updates", "expected"), [
    ({"strategy": "fleet_lock", "fleet_lock_url": "http://fleetlock.example:8080/"},
     {"strategy": "fleet_lock", "fleet_lock": {"base_url": "http://fleetlock.example:8080/"}}),
    ({"strategy": "immediate"}, {"strategy": "immediate"}),
    ({"days": ["Sat"], "start_time": "23:30", "stagger_minutes": 90},
     {"strategy": "periodic",
      "periodic": {"window": [{"days": ["Sun"], "start_time": "01:00", "length_minutes": 60}]}}),
])
def test_update_strategies(updates: dict[str, Any], expected: dict[str, Any]) -> None:
    import tomllib

    import butane
    raw = {"name": "c", "fcos": {"updates": updates},
           "nodes": [{"name": "s1", "role": "server"}, {"name": "s2", "role": "server"}]}
    cluster = config.parse(raw, "x", ssh_keys=(fake_ssh_key("a"),)).template_input()
    ign, _ = butane.transpile(render_documents(cluster, "s2", TOKEN, AGENT_TOKEN)[0], strict=True)
    toml = ignition_files(ign)["/etc/zincati/config.d/90-k3s-autoinstall-updates.toml"][1]
    assert tomllib.loads(toml)["updates"] == expected


def test_live_unit_leaves_logins_open_and_owns_the_consoles() -> None:
    raw = {"name": "c", "install": {"console": ["tty0", "ttyS1,115200n8"]},
           "nodes": [{"name": "s1", "role": "server"}, {"name": "a1", "role": "agent", "console": ["ttyAMA0"]}]}
    cluster = config.parse(raw, "x", ssh_keys=(fake_ssh_key("a"),)).template_input()
    import butane
    for node, consoles, gettys in (
            ("s1", "tty0 ttyS1,115200n8", {"getty@tty1.service", "serial-getty@ttyS0.service",
                                           "serial-getty@ttyS1.service"}),
            ("a1", "ttyAMA0", {"getty@tty1.service", "serial-getty@ttyS0.service", "serial-getty@ttyAMA0.service"})):
        installed, live = render_documents(cluster, node, TOKEN, AGENT_TOKEN)
        ign, _ = butane.transpile(live, strict=True)
        unit = ignition_units(ign)["run-coreos-installer.service"]["contents"].splitlines()
        # Only the gettys wait: SSH and other logins stay open during the install.
        (before,) = [line for line in unit if line.startswith("Before=")]
        assert set(before.removeprefix("Before=").split()) == gettys
        assert not [line for line in unit if "systemd-user-sessions" in line or "udev-settle" in line]
        env = parse_env(ignition_files(ign)["/etc/k3s-autoinstall/install.env"][1])
        assert env["K3S_AI_CONSOLES"] == consoles
