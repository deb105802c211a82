"""inline: the installed system's Ignition config, nested in the live system's Butane config.

The live config carries it as the file /home/core/k3s-autoinstall.ign (mode 0600: it holds the
cluster token), which the live system hands to coreos-installer.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import yaml

from tasks import config
from tasks.common import BuildError, NodeFiles, write_atomic
from tasks.doit_glue import TaskDict, action
from tasks.render import to_butane_yaml

NESTED_CONFIG_PATH = "/home/core/k3s-autoinstall.ign"


def inline_config(live_butane: str, nested_ignition: str, *, source: str = "coreos-autoinstall.fcc") -> str:
    """Place nested_ignition as the contents of the storage.files entry at NESTED_CONFIG_PATH."""
    document = yaml.safe_load(live_butane)
    files = (document.get("storage") or {}).get("files") or [] if isinstance(document, dict) else []
    entries = [entry for entry in files if isinstance(entry, dict) and entry.get("path") == NESTED_CONFIG_PATH]
    if len(entries) != 1:
        raise BuildError(f"{source}: storage.files: needs exactly one entry with path {NESTED_CONFIG_PATH}, "
                         f"found {len(entries)}", hint="the live template must declare where the config goes")
    entries[0]["contents"] = {"inline": nested_ignition}
    entries[0]["mode"] = 0o600
    return to_butane_yaml(document)


@action
def inline(live_butane: Path, nested_ignition: Path, target: Path) -> None:
    text = inline_config(live_butane.read_text(), nested_ignition.read_text(), source=os.fspath(live_butane))
    write_atomic(target, text, mode=0o600)


def task_inline() -> Iterator[TaskDict]:
    """Inline k3s-autoinstall.ign into the live Butane config."""
    for node in config.current().nodes:
        files = NodeFiles(node.name)
        live, nested, target = files.live_butane, files.installed_ignition, files.inlined_live_butane
        yield {
            "name": node.name,
            "actions": [(inline, [live, nested, target])],
            "file_dep": [os.fspath(live), os.fspath(nested)],
            "targets": [os.fspath(target)],
            "clean": True,
        }
