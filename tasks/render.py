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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from doit.tools import config_changed

from tasks import config
from tasks.common import (
    AGENT_TOKEN_FILE,
    CLUSTER_ID_FILE,
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


# libyaml's emitter, when PyYAML has it, is ten times faster and writes the same text for printable
# ASCII and tabs (tests/test_render_output.py); it quotes some other characters differently, so a
# document holding any is left to the Python emitter.
class _FastButaneDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


def _printable_ascii(value: object) -> bool:
    if isinstance(value, str):
        # "|+" blocks (text ending in blank lines) get a "..." end marker from libyaml
        return value.isascii() and value.replace("\n", "").replace("\t", "").isprintable() \
            and not value.endswith("\n\n") and value != "\n"
    if isinstance(value, dict):
        return all(_printable_ascii(k) and _printable_ascii(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_printable_ascii(item) for item in value)
    return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not any(c in value for c in "\t\r") and value == value.rstrip(" ") \
        else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ButaneDumper.add_representer(str, _represent_str)
_FastButaneDumper.add_representer(str, _represent_str)


def to_butane_yaml(document: object) -> str:
    """YAML that PyYAML and yaml.v3 read alike: PyYAML quotes every string it would itself misread."""
    dumper = _FastButaneDumper if _printable_ascii(document) else _ButaneDumper
    text: str = yaml.dump(document, Dumper=dumper, sort_keys=False, allow_unicode=True,
                          width=1 << 30, default_flow_style=False)
    return text


@functools.cache
def cluster_id(token: str) -> str:
    """Names this cluster's installs on disk, with its name: the same for every build that uses the
    same token (laptop or CI), different for another cluster of the same name, and one-way: slow
    (PBKDF2) so that even a short, user-chosen token cannot be found from the id on a disk."""
    return hashlib.pbkdf2_hmac("sha256", token.encode(), b"k3s-autoinstall cluster id", 200_000, 16).hex()


def cached_cluster_id(token: str, version_file: Path = TOKEN_VERSION_FILE,
                      cache: Path = CLUSTER_ID_FILE) -> str:
    """cluster_id(token), kept beside the tokens (0600) under the token's version: PBKDF2 is slow on
    purpose, and every re-render would pay for it again. A new token gets a new version."""
    try:
        version = version_file.read_text().strip()
    except FileNotFoundError:
        return cluster_id(token)
    try:
        recorded_version, recorded_id = cache.read_text().split()
        if recorded_version == version:
            return recorded_id
    except (OSError, ValueError):
        pass
    made = cluster_id(token)
    write_atomic(cache, f"{version} {made}\n", mode=0o600)
    return made


def node_tokens(role: str, token: str, agent_token: str) -> dict[str, str]:
    """What a node's config carries: servers both tokens; agents only the agent token, as their token."""
    if role == "server":
        return {"token": token, "agent_token": agent_token}
    return {"token": agent_token, "agent_token": ""}


def render_butane(template: Path, cluster: dict[str, Any], node: str | None,
                  tla_vars: dict[str, str] | None = None) -> str:
    """Evaluate one template for one node (None: the cluster's live system); a jsonnet error becomes
    file:line: message."""
    import _gojsonnet  # go-jsonnet: the C++ binding parses its standard library on every evaluation

    try:
        evaluated = _gojsonnet.evaluate_file(
            os.fspath(template), jpathdir=os.fspath(template.parent),
            tla_codes={"cluster": json.dumps(cluster), "node": json.dumps(node)}, tla_vars=tla_vars or {})
    except RuntimeError as error:
        raise BuildError(config.jsonnet_error_line(str(error))) from None
    return to_butane_yaml(json.loads(evaluated))


def render_installed(cluster: dict[str, Any], node: str, tokens: dict[str, str], cid: str) -> str:
    """The installed system's Butane document of one node, with the tokens its role carries."""
    return render_butane(INSTALLED_TEMPLATE, cluster, node, {**tokens, "cluster_id": cid})


def render_live(cluster: dict[str, Any], node: str | None, cid: str) -> str:
    """A live system's Butane document: a node's (node given) or the cluster's (node None)."""
    return render_butane(LIVE_TEMPLATE, cluster, node, {"cluster_id": cid})


def render_documents(cluster: dict[str, Any], node: str, token: str, agent_token: str) -> tuple[str, str]:
    """A node's two Butane documents, installed and live (its own ISO), one template at a time."""
    role = next(n["role"] for n in cluster["nodes"] if n["name"] == node)
    cid = cluster_id(token)
    return render_installed(cluster, node, node_tokens(role, token, agent_token), cid), render_live(cluster, node, cid)


@dataclass(frozen=True)
class RenderedCluster:
    installed: dict[str, str]  # node → Butane of its installed system
    live: dict[str, str]  # node → Butane of its live system; "" → the cluster ISO's


def render_cluster(cluster: dict[str, Any], token: str, agent_token: str, per_node: bool,
                   cluster_id_value: str | None = None) -> RenderedCluster:
    """Every Butane document of the cluster, one template evaluation each (go-jsonnet starts in well
    under a millisecond, so one evaluation per document costs no more than one for them all)."""
    cid = cluster_id_value or cluster_id(token)
    nodes = {n["name"]: node_tokens(n["role"], token, agent_token) for n in cluster["nodes"]}
    installed = {name: render_installed(cluster, name, tokens, cid) for name, tokens in nodes.items()}
    live = {name: render_live(cluster, name, cid) for name in nodes} if per_node \
        else {"": render_live(cluster, None, cid)}
    return RenderedCluster(installed, live)


def read_tokens() -> tuple[str, str]:
    return TOKEN_FILE.read_text().strip(), AGENT_TOKEN_FILE.read_text().strip()


_rendered: dict[str, RenderedCluster] = {}


def rendered(cluster: config.Config, keys_dir: Path) -> RenderedCluster:
    """The cluster's documents, rendered once per doit run for all of render's subtasks (same inputs:
    same result; a change of key, config or token is a new key)."""
    inputs = config.with_files(cluster, keys_dir, Path.home()).template_input()
    token, agent_token = read_tokens()
    per_node = cluster.output == "per-node"
    key = hashlib.sha256(json.dumps([inputs, token, agent_token, per_node], sort_keys=True).encode()).hexdigest()
    if key not in _rendered:
        _rendered.clear()
        _rendered[key] = render_cluster(inputs, token, agent_token, per_node, cached_cluster_id(token))
    return _rendered[key]


@action
def render_node(cluster: config.Config, node: str, keys_dir: Path, live: bool) -> None:
    documents = rendered(cluster, keys_dir)
    files = NodeFiles(node)
    write_atomic(files.installed_butane, documents.installed[node], mode=0o600)
    if live:
        write_atomic(files.live_butane, documents.live[node], mode=0o600)


@action
def render_cluster_live(cluster: config.Config, keys_dir: Path) -> None:
    target = NodeFiles.of_image(cluster.name, cluster=True).live_butane
    write_atomic(target, rendered(cluster, keys_dir).live[""], mode=0o600)


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
