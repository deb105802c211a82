"""inline: the installed system's Ignition config, nested in the live system's Butane config.

The live config carries it as the file /home/core/k3s-autoinstall.ign (mode 0600: it holds the
cluster token), which the live system hands to coreos-installer. The cluster's live config
(`output: 'cluster'`) carries every node's, /home/core/k3s-autoinstall/<node>.ign, as plain
percent-encoded data URLs rather than gzip: the ISO's xz stream then stores what the nodes' configs
have in common once, which is what lets many nodes fit in the 256 KiB embed area.
"""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

from tasks import config
from tasks.common import BuildError, NodeFiles, write_atomic
from tasks.doit_glue import TaskDict, action
from tasks.render import to_butane_yaml

NESTED_CONFIG_PATH = "/home/core/k3s-autoinstall.ign"
NESTED_CONFIG_DIR = "/home/core/k3s-autoinstall"


def inline_configs(live_butane: str, nested: Mapping[str, str], *, plain: bool = False,
                   source: str = "coreos-autoinstall.fcc") -> str:
    """Place each nested Ignition config ({path: text}) as the contents of the storage.files entry
    the live template declared at that path; plain: as a percent-encoded data URL (no gzip)."""
    # libyaml's loader when PyYAML has it: the same document, ten times faster than the Python one
    document = yaml.load(live_butane, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    files = (document.get("storage") or {}).get("files") or [] if isinstance(document, dict) else []
    for path, text in nested.items():
        entries = [entry for entry in files if isinstance(entry, dict) and entry.get("path") == path]
        if len(entries) != 1:
            raise BuildError(f"{source}: storage.files: needs exactly one entry with path {path}, "
                             f"found {len(entries)}", hint="the live template must declare where the config goes")
        entries[0]["contents"] = {"source": "data:," + urllib.parse.quote(text, safe="")} if plain \
            else {"inline": text}
        entries[0]["mode"] = 0o600
    return to_butane_yaml(document)


def inline_config(live_butane: str, nested_ignition: str, *, source: str = "coreos-autoinstall.fcc") -> str:
    """A node's own live config: its installed config at NESTED_CONFIG_PATH."""
    return inline_configs(live_butane, {NESTED_CONFIG_PATH: nested_ignition}, source=source)


def nested_paths(image: config.LiveImage) -> dict[str, str]:
    """Where each node's installed config goes in the image's live config, by node."""
    if not image.is_cluster:
        return {image.nodes[0].name: NESTED_CONFIG_PATH}
    return {node.name: f"{NESTED_CONFIG_DIR}/{node.name}.ign" for node in image.nodes}


@action
def inline(live_butane: Path, nested: dict[str, Path], target: Path, plain: bool) -> None:
    texts = {path: ignition.read_text() for path, ignition in nested.items()}
    write_atomic(target, inline_configs(live_butane.read_text(), texts, plain=plain, source=os.fspath(live_butane)),
                 mode=0o600)


def task_inline() -> Iterator[TaskDict]:
    """Inline k3s-autoinstall.ign into the live Butane config."""
    for image in config.current().live_images:
        files = NodeFiles.of_image(image.name, cluster=image.is_cluster)
        nested = {path: NodeFiles(node).installed_ignition for node, path in nested_paths(image).items()}
        yield {
            "name": image.name,
            "actions": [(inline, [files.live_butane, nested, files.inlined_live_butane, image.is_cluster])],
            "file_dep": [os.fspath(files.live_butane), *(os.fspath(path) for path in nested.values())],
            "targets": [os.fspath(files.inlined_live_butane)],
            "clean": True,
        }
