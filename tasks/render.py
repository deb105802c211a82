"""render: the jsonnet templates, once per node, into Butane YAML.

Two files per node under build/nodes/<node>/: `k3s-autoinstall.bu` (the installed system, which
carries the node's tokens) and `coreos-autoinstall.fcc` (the live system). Both are written 0600:
the first holds the tokens, the second will hold the first once inlined. With `output: 'cluster'`
the live system is the cluster's, one for every node, under build/cluster/<cluster>/.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from doit.tools import config_changed

from tasks import config
from tasks.common import (
    AGENT_TOKEN_FILE,
    JSONNET_DIR,
    KEYS_DIR,
    TOKEN_FILE,
    TOKEN_VERSION_FILE,
    BuildError,
    NodeFiles,
    write_atomic,
)
from tasks.doit_glue import TaskDict, action

INSTALLED_TEMPLATE = JSONNET_DIR / "k3s-autoinstall.bu.jsonnet"
LIVE_TEMPLATE = JSONNET_DIR / "coreos-autoinstall.fcc.jsonnet"


class _ButaneDumper(yaml.SafeDumper):  # type: ignore[misc]  # PyYAML ships no type hints
    """Scripts and unit files as literal blocks, so the rendered YAML reads like a hand-written one."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(c in value for c in "\t\r") and value == value.rstrip(" ") \
        else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ButaneDumper.add_representer(str, _represent_str)


def to_butane_yaml(document: object) -> str:
    """YAML that PyYAML and yaml.v3 read alike: PyYAML quotes every string it would itself misread."""
    text: str = yaml.dump(document, Dumper=_ButaneDumper, sort_keys=False, allow_unicode=True,
                          width=1 << 30, default_flow_style=False)
    return text


@functools.cache
def cluster_id(token: str) -> str:
    """Names this cluster's installs on disk, with its name: the same for every build that uses the
    same token (laptop or CI), different for another cluster of the same name, and one-way: slow
    (PBKDF2) so that even a short, user-chosen token cannot be found from the id on a disk."""
    return hashlib.pbkdf2_hmac("sha256", token.encode(), b"k3s-autoinstall cluster id", 200_000, 16).hex()


def node_tokens(role: str, token: str, agent_token: str) -> dict[str, str]:
    """What a node's config carries: servers both tokens; agents only the agent token, as their token."""
    if role == "server":
        return {"token": token, "agent_token": agent_token}
    return {"token": agent_token, "agent_token": ""}


def render_butane(template: Path, cluster: dict[str, Any], node: str | None,
                  tla_vars: dict[str, str] | None = None) -> str:
    """Evaluate one template for one node (None: the cluster's live system); a jsonnet error becomes
    file:line: message."""
    import _jsonnet

    try:
        evaluated = _jsonnet.evaluate_file(
            os.fspath(template), jpathdir=os.fspath(template.parent),
            tla_codes={"cluster": json.dumps(cluster), "node": json.dumps(node)}, tla_vars=tla_vars or {})
    except RuntimeError as error:
        raise BuildError(config.jsonnet_error_line(str(error))) from None
    return to_butane_yaml(json.loads(evaluated))


def render_installed(cluster: dict[str, Any], node: str, token: str, agent_token: str) -> str:
    """The installed system's Butane document of one node, with the tokens its role carries."""
    role = next(n["role"] for n in cluster["nodes"] if n["name"] == node)
    tla = {**node_tokens(role, token, agent_token), "cluster_id": cluster_id(token)}
    return render_butane(INSTALLED_TEMPLATE, cluster, node, tla)


def render_live(cluster: dict[str, Any], node: str | None, token: str) -> str:
    """A live system's Butane document: a node's (node given) or the cluster's (node None)."""
    return render_butane(LIVE_TEMPLATE, cluster, node, {"cluster_id": cluster_id(token)})


def render_documents(cluster: dict[str, Any], node: str, token: str, agent_token: str) -> tuple[str, str]:
    """A node's two Butane documents, installed and live (its own ISO)."""
    return render_installed(cluster, node, token, agent_token), render_live(cluster, node, token)


def read_tokens() -> tuple[str, str]:
    return TOKEN_FILE.read_text().strip(), AGENT_TOKEN_FILE.read_text().strip()


@action
def render_node(cluster: config.Config, node: str, keys_dir: Path, live: bool) -> None:
    inputs = config.with_files(cluster, keys_dir, Path.home()).template_input()
    files = NodeFiles(node)
    token, agent_token = read_tokens()
    write_atomic(files.installed_butane, render_installed(inputs, node, token, agent_token), mode=0o600)
    if live:
        write_atomic(files.live_butane, render_live(inputs, node, token), mode=0o600)


@action
def render_cluster_live(cluster: config.Config, keys_dir: Path) -> None:
    inputs = config.with_files(cluster, keys_dir, Path.home()).template_input()
    target = NodeFiles.of_image(cluster.name, cluster=True).live_butane
    write_atomic(target, render_live(inputs, None, read_tokens()[0]), mode=0o600)


def template_files() -> list[Path]:
    """Every file a template may import: the templates, *.libsonnet and the scripts they importstr."""
    files = {path for path in JSONNET_DIR.rglob("*") if path.is_file()}
    files -= set(JSONNET_DIR.glob("*.jsonnet")) - {INSTALLED_TEMPLATE, LIVE_TEMPLATE}
    return sorted(path for path in files if "examples" not in path.parts)


def task_render() -> Iterator[TaskDict]:
    """Render the jsonnet templates into Butane YAML, per node."""
    cluster = config.current()
    inputs = cluster.template_input()  # without the keys and manifests: file_dep covers their files
    common_deps = [*template_files(), *config.ssh_key_files(KEYS_DIR, Path.home()),
                   *config.manifest_paths(cluster), TOKEN_VERSION_FILE]  # not the token: its md5 is stored
    file_dep = [os.fspath(p) for p in sorted(set(common_deps))]
    per_node = cluster.output == "per-node"
    for node in cluster.nodes:
        files = NodeFiles(node.name)
        yield {
            "name": node.name,
            "actions": [(render_node, [cluster, node.name, KEYS_DIR, per_node])],
            "file_dep": file_dep,
            "targets": [os.fspath(files.installed_butane), *([os.fspath(files.live_butane)] if per_node else [])],
            "uptodate": [config_changed({"cluster": inputs, "node": node.name, "live": per_node})],
            "clean": True,
        }
    if not per_node:
        yield {
            "name": f"cluster:{cluster.name}",
            "actions": [(render_cluster_live, [cluster, KEYS_DIR])],
            "file_dep": file_dep,
            "targets": [os.fspath(NodeFiles.of_image(cluster.name, cluster=True).live_butane)],
            "uptodate": [config_changed({"cluster": inputs})],
            "clean": True,
        }
