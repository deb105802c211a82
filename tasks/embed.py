"""embed: each node's live Ignition config written into a copy of the verified ISO.

Outputs build/iso/<iso name>.iso (0600: the embedded config carries the cluster token) and
build/iso/SHA256SUMS over every output ISO, then a summary of what to boot where.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from doit.tools import config_changed

from tasks import config
from tasks.common import (
    ISO_DIR,
    BuildError,
    NodeFiles,
    TaskDict,
    action,
    atomic_path,
    log,
    write_atomic,
)

SHA256SUMS = ISO_DIR / "SHA256SUMS"


def output_iso(iso_name: str) -> Path:
    return ISO_DIR / f"{iso_name}.iso"


@action
def embed_node(verified_iso: Path, verified_stamp: Path, live_ignition: Path, target: Path, record: Path,
               consoles: tuple[str, ...] = ()) -> None:
    from tasks import iso

    base = json.loads(verified_stamp.read_text())["sha256"]
    try:
        patches = iso.ignition_patches(verified_iso, live_ignition.read_bytes(), force=True)
        # The live system's consoles (the install on a serial console); the installed system's
        # come from coreos-installer --console.
        patches += iso.kargs_patches(verified_iso, append=[f"console={console}" for console in consoles])
        with atomic_path(target, mode=0o600) as work, ThreadPoolExecutor(1) as pool:
            # SHA256SUMS needs the output's sha256: hash the source as patched, on the other core,
            # while the ISO is copied or patched.
            digest = pool.submit(iso.sha256_patched, verified_iso, patches)
            if reusable_output(target, record, base):
                # Only the embed area differs: patch the last output rather than copy 800 MB (and
                # unlink the old copy). Moved aside first, so a kill leaves no half-patched target.
                os.replace(target, work)
            else:
                iso.copy_file(verified_iso, work)  # reflink or copy_file_range: no bytes through Python
            os.chmod(work, 0o600)
            iso.apply_patches(work, patches, output=None)
            done = work.stat()
            write_atomic(record, json.dumps({"sha256sums": checksum_line(digest.result(), target), "base": base,
                                             "size": done.st_size, "mtime_ns": done.st_mtime_ns}))
    except iso.IsoError as error:
        raise BuildError(f"{verified_iso}: {error}") from None


def reusable_output(target: Path, record: Path, base: str) -> bool:
    """The output this task last wrote, untouched since, from the same verified ISO."""
    try:
        written = json.loads(record.read_text())
        now = target.stat()
    except (OSError, ValueError):
        return False
    return (written.get("base"), written.get("size"), written.get("mtime_ns")) == (base, now.st_size,
                                                                                   now.st_mtime_ns)


def checksum_line(sha256: str, iso: Path) -> str:
    """One line of SHA256SUMS, in the format `sha256sum -c` reads, the name relative to build/iso/."""
    return f"{sha256}  {iso.name}\n"


def summary(rows: list[tuple[str, str, Path]], release: str) -> list[str]:
    width = max(len(os.fspath(path)) for _, _, path in rows)
    lines = [f"Fedora CoreOS {release}, one ISO per node:"]
    lines += [f"  {os.fspath(path):<{width}}  {node} ({role})" for node, role, path in rows]
    example = os.fspath(rows[0][2])
    lines.append("Write one to a USB stick (replace /dev/sdX with the stick; everything on it is lost):")
    lines.append(f"  sudo dd if={shlex.quote(example)} of=/dev/sdX bs=4M conv=fsync status=progress")
    return lines


@action
def write_sums(rows: list[tuple[str, str, Path]], records: list[Path], verified_stamp: Path) -> None:
    write_atomic(SHA256SUMS, "".join(json.loads(path.read_text())["sha256sums"] for path in records))
    release = json.loads(verified_stamp.read_text()).get("release", "(unknown release)")
    for line in summary(rows, release):
        log(line)


def task_embed() -> Iterator[TaskDict]:
    """Embed each node's live config into a copy of the verified ISO."""
    from tasks.verify import verified_paths

    cluster = config.current()
    verified_iso, verified_stamp = verified_paths(cluster)
    rows = [(node.name, node.role, output_iso(node.iso_name)) for node in cluster.nodes]
    consoles = [cluster.consoles(node) for node in cluster.nodes]
    records = [NodeFiles(node.name).iso_record for node in cluster.nodes]
    yield {"name": None, "doc": "Embed each node's live config into a copy of the verified ISO."}
    for (name, _, iso), record, node_consoles in zip(rows, records, consoles, strict=True):
        live_ignition = NodeFiles(name).live_ignition
        yield {
            "name": name,
            "actions": [(embed_node, [verified_iso, verified_stamp, live_ignition, iso, record, node_consoles])],
            # The stamp names the verified ISO by its sha256, so the ISO itself need not be hashed by doit.
            "file_dep": [os.fspath(verified_stamp), os.fspath(live_ignition)],
            "targets": [os.fspath(iso), os.fspath(record)],
            "uptodate": [config_changed({"iso_name": iso.stem, "console": list(node_consoles)})],
            "clean": True,
        }
    yield {
        "name": "SHA256SUMS",
        "actions": [(write_sums, [rows, records, verified_stamp])],
        # The per-node checksum lines, not the ISOs: doit would md5 every ISO to record them.
        "file_dep": [os.fspath(path) for path in records] + [os.fspath(verified_stamp)],
        "targets": [os.fspath(SHA256SUMS)],
        "clean": True,
        "verbosity": 2,
    }
