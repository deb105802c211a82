"""render: the jsonnet templates, once per node, into Butane YAML.

Two files per node under build/nodes/<node>/: `k3s-autoinstall.bu` (the installed system, which
carries the cluster token) and `coreos-autoinstall.fcc` (the live system). Both are written 0600:
the first holds the token, the second will hold the first once inlined.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from doit.tools import config_changed

from tasks import config
from tasks.common import (
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


def render_butane(template: Path, cluster: dict[str, Any], node: str, token: str | None = None) -> str:
    """Evaluate one template for one node; a jsonnet error becomes file:line: message."""
    import _jsonnet

    tla_vars = {} if token is None else {"token": token}
    try:
        evaluated = _jsonnet.evaluate_file(
            os.fspath(template), jpathdir=os.fspath(template.parent),
            tla_codes={"cluster": json.dumps(cluster), "node": json.dumps(node)}, tla_vars=tla_vars)
    except RuntimeError as error:
        raise BuildError(config.jsonnet_error_line(str(error))) from None
    return to_butane_yaml(json.loads(evaluated))


@action
def render_node(cluster: config.Config, node: str, token_file: Path, keys_dir: Path) -> None:
    inputs = config.with_files(cluster, keys_dir, Path.home()).template_input()
    files = NodeFiles(node)
    token = token_file.read_text().strip()
    write_atomic(files.installed_butane, render_butane(INSTALLED_TEMPLATE, inputs, node, token), mode=0o600)
    write_atomic(files.live_butane, render_butane(LIVE_TEMPLATE, inputs, node), mode=0o600)


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
    for node in cluster.nodes:
        files = NodeFiles(node.name)
        yield {
            "name": node.name,
            "actions": [(render_node, [cluster, node.name, TOKEN_FILE, KEYS_DIR])],
            "file_dep": [os.fspath(p) for p in sorted(set(common_deps))],
            "targets": [os.fspath(files.installed_butane), os.fspath(files.live_butane)],
            "uptodate": [config_changed({"cluster": inputs, "node": node.name})],
            "clean": True,
        }
