"""butane: Butane YAML to Ignition JSON with the project's own transpiler (`python -m butane`).

Two stages per node: first the installed system's `k3s-autoinstall.ign` (which `inline` nests in
the live config), then the live system's `coreos-autoinstall.ign` (which `embed` writes into the ISO).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from tasks import config
from tasks.common import BuildError, NodeFiles, log, write_atomic
from tasks.doit_glue import TaskDict, action


def transpile_file(source: Path) -> str:
    """Strict: a Butane warning (an unused key, say) is a template bug, so it fails the build."""
    import butane

    try:
        ignition, warnings = butane.transpile(source.read_text(), files_dir=None, strict=True)
    except butane.ButaneError as error:
        raise BuildError(f"{source}: {error}") from None
    for warning in warnings:
        log(f"{source}: {warning}")
    return ignition


@action
def transpile(source: Path, target: Path) -> None:
    write_atomic(target, transpile_file(source), mode=0o600)  # carries the token


def task_butane() -> Iterator[TaskDict]:
    """Transpile Butane to Ignition: the installed config, then the live config."""
    cluster = config.current()
    stages = [(f"k3s-autoinstall:{node.name}", NodeFiles(node.name).installed_butane,
               NodeFiles(node.name).installed_ignition) for node in cluster.nodes]
    for image in cluster.live_images:
        files = NodeFiles.of_image(image.name, cluster=image.is_cluster)
        stages.append((f"coreos-autoinstall:{image.name}", files.inlined_live_butane, files.live_ignition))
    for name, source, target in stages:
        yield {
            "name": name,
            "actions": [(transpile, [source, target])],
            "file_dep": [os.fspath(source)],
            "targets": [os.fspath(target)],
            "clean": True,
        }
