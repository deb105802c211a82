"""A whole cluster through the pipeline: the three-node example (server, server, agent) gives three
ISOs whose embedded configs, read back from the ISOs, validate, apply, and agree on one token."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ignition_root import apply_ignition, scratch_dir
from tests.mirror import Mirror
from tests.pipeline_project import Project, file_contents
from tests.tools import REPO, require_tool

EXAMPLE = REPO / "jsonnet" / "examples" / "three-nodes.jsonnet"
NODES = ("k3s-server-1", "k3s-server-2", "k3s-agent-1")
NESTED = "/home/core/k3s-autoinstall.ign"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    import _gojsonnet

    require_tool("gpg", "gpgv", "ssh-keygen")
    example = json.loads(_gojsonnet.evaluate_file(os.fspath(EXAMPLE)))
    with Mirror(tmp_path_factory.mktemp("mirror")) as mirror:
        project = Project.create(tmp_path_factory.mktemp("cluster") / "checkout", mirror,
                                 nodes=example["nodes"], k3s=example["k3s"])
        run = project.doit()
        assert run.returncode == 0, run.stdout + run.stderr
        yield project


def configs_from_iso(project: Project, node: str) -> tuple[str, str]:
    """(live config, nested installed config), as read back from the node's ISO."""
    from tasks.iso import show_ignition

    live = show_ignition(project.root / "build" / "iso" / f"{node}.iso").decode()
    return live, file_contents(json.loads(live), NESTED).decode()


def k3s_config(installed: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(file_contents(json.loads(installed), "/etc/rancher/k3s/config.yaml"))
    return config


def test_one_iso_per_node_with_checksums(cluster: Project) -> None:
    iso_dir = cluster.root / "build" / "iso"
    assert sorted(p.name for p in iso_dir.glob("*.iso")) == sorted(f"{node}.iso" for node in NODES)
    subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=iso_dir, check=True)
    assert len((iso_dir / "SHA256SUMS").read_text().splitlines()) == 3


@pytest.mark.parametrize("node", NODES)
def test_configs_read_back_from_each_iso_validate(cluster: Project, node: str, tmp_path: Path) -> None:
    require_tool("ignition-validate")
    for name, text in zip(("live", "installed"), configs_from_iso(cluster, node), strict=True):
        path = tmp_path / f"{name}.ign"
        path.write_text(text)
        result = subprocess.run(["ignition-validate", os.fspath(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{node} {name}: {result.stdout}{result.stderr}"


def test_tokens_per_role_and_each_roles_settings(cluster: Project) -> None:
    token = (cluster.root / "build" / "secrets" / "k3s-token").read_text()
    agent_token = (cluster.root / "build" / "secrets" / "k3s-agent-token").read_text()
    assert token != agent_token
    configs = {node: k3s_config(configs_from_iso(cluster, node)[1]) for node in NODES}
    first, second, agent = (configs[node] for node in NODES)
    assert first["token"] == second["token"] == token
    assert first["agent-token"] == second["agent-token"] == agent_token
    # The agent ISO carries the agent token only: not the server token, anywhere in the ISO.
    assert agent["token"] == agent_token and "agent-token" not in agent
    agent_iso = (cluster.root / "build" / "iso" / "k3s-agent-1.iso").read_bytes()
    assert token.encode() not in agent_iso and "".join(configs_from_iso(cluster, "k3s-agent-1")).find(token) == -1
    assert first["cluster-init"] is True and "server" not in first
    assert "192.168.1.11" in first["tls-san"]
    assert second["server"] == agent["server"] == "https://192.168.1.11:6443"
    assert all(config["selinux"] is True for config in configs.values())
    assert first["disable"] == ["traefik", "servicelb"] and "disable" not in agent
    assert first["write-kubeconfig-mode"] == "0600"


def test_agent_iso_applies_with_real_ignition(cluster: Project) -> None:
    """The agent's nested config, as its ISO carries it, applied by Ignition to a scratch root."""
    installed = configs_from_iso(cluster, "k3s-agent-1")[1]
    with scratch_dir("cluster-") as work:
        root = apply_ignition(installed, work)
        assert (root / "etc" / "hostname").read_text().strip() == "k3s-agent-1"
        config = root / "etc" / "rancher" / "k3s" / "config.yaml"
        assert config.stat().st_mode & 0o077 == 0
        keys = (root / "home" / "core" / ".ssh" / "authorized_keys.d" / "ignition").read_text()
        assert (cluster.root / "keys" / "alice.pub").read_text().strip() in keys
        preset = (root / "etc" / "systemd" / "system-preset" / "20-ignition.preset").read_text()
        assert "enable run-k3s-installer.service" in preset
