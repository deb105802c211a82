"""embed: each live Ignition config (a node's, or the cluster's) written into a copy of the verified ISO.

Outputs build/iso/<iso name>.iso (0600: the embedded config carries the tokens), with the image's
consoles appended to the live kernel arguments, and build/iso/SHA256SUMS over every output ISO,
then a summary of what to boot where.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from doit.tools import config_changed

from tasks import config, iso
from tasks.common import SHA256SUMS, BuildError, FcosFiles, NodeFiles, log, output_iso, write_atomic
from tasks.doit_glue import TaskDict, action


@dataclass(frozen=True)
class NodeIso:
    """One output ISO: whose (a node, or the cluster), and where it, its live config and its record are."""

    node: str
    role: str
    path: Path
    record: Path
    live_ignition: Path = Path()
    consoles: tuple[str, ...] = ()
    cluster: bool = False

    @classmethod
    def of(cls, image: config.LiveImage) -> NodeIso:
        files = NodeFiles.of_image(image.name, cluster=image.is_cluster)
        role = f"all {len(image.nodes)} nodes" if image.is_cluster else image.nodes[0].role
        return cls(image.name, role, output_iso(image.iso_name), files.iso_record, files.live_ignition,
                   image.consoles, image.is_cluster)


TOO_LARGE_HINT = ("a cluster ISO holds every node's config in the ISO's 256 KiB embed area: build one ISO per "
                  "node (output: 'per-node') or boot from the network (`doit pxe`, docs/fleet.md)")


@action
def embed_node(verified_iso: Path, verified_stamp: Path, live_ignition: Path, target: Path, record: Path,
               consoles: tuple[str, ...] = (), cluster: bool = False) -> None:
    base = json.loads(verified_stamp.read_text())["sha256"]
    try:
        try:
            patches = iso.ignition_patches(verified_iso, live_ignition.read_bytes(), force=True)
        except iso.ConfigTooLarge as error:
            if cluster:
                raise BuildError(f"{live_ignition}: {error.message}", hint=TOO_LARGE_HINT) from None
            raise
        # The live system's consoles (the install on a serial console); the installed system's
        # come from coreos-installer --console.
        patches += iso.kargs_patches(verified_iso, append=[f"console={console}" for console in consoles])
        # Only the embed area differs from the last output, if untouched: patch it, no 800 MB copy.
        # Its sha256 is then left to SHA256SUMS, which hashes every re-embedded ISO at once, one per core.
        last = target if reusable_output(target, record, base) else None
        if last is not None:
            iso.write_patched(verified_iso, patches, target, mode=0o600, base=last)
            sha256 = None
        else:
            with ThreadPoolExecutor(1) as pool:
                # A full copy: hash the source as patched, on the other core, while it is copied.
                digest = pool.submit(iso.sha256_patched, verified_iso, patches)
                iso.write_patched(verified_iso, patches, target, mode=0o600)
                sha256 = digest.result()
        write_record(record, target, base, sha256)
    except BuildError as error:
        raise error.prefixed(os.fspath(verified_iso)) from None


def write_record(record: Path, target: Path, base: str, sha256: str | None) -> None:
    """What the output is: made from `base`, untouched while its size and mtime hold; its sum if known."""
    done = target.stat()
    write_atomic(record, json.dumps({"sha256sums": checksum_line(sha256, target) if sha256 else None, "base": base,
                                     "size": done.st_size, "mtime_ns": done.st_mtime_ns}))


def fill_in_sums(outputs: list[NodeIso]) -> list[str]:
    """Each output's SHA256SUMS line: recorded by embed, else hashed now (all at once, one per core)."""
    records = [json.loads(o.record.read_text()) for o in outputs]
    missing = [i for i, r in enumerate(records) if not r.get("sha256sums")]
    if missing:
        with ThreadPoolExecutor(min(len(missing), os.cpu_count() or 1)) as pool:
            digests = list(pool.map(lambda i: iso.sha256_patched(outputs[i].path, ()), missing))
        for i, sha256 in zip(missing, digests, strict=True):
            record = outputs[i].record
            base = records[i].get("base")
            if not isinstance(base, str) or not reusable_output(outputs[i].path, record, base):
                raise BuildError(f"{outputs[i].path} changed while it was hashed", hint="run doit again")
            write_record(record, outputs[i].path, base, sha256)
            records[i] = json.loads(record.read_text())
    return [str(r["sha256sums"]) for r in records]


def reusable_output(target: Path, record: Path, base: str) -> bool:
    """The output this task last wrote, untouched since, from the same verified ISO."""
    try:
        written = json.loads(record.read_text())
        now = target.stat()
    except (OSError, ValueError):
        return False
    return (written.get("base"), written.get("size"), written.get("mtime_ns")) == (base, now.st_size,
                                                                                   now.st_mtime_ns)


def checksum_line(sha256: str, iso_path: Path) -> str:
    """One line of SHA256SUMS, in the format `sha256sum -c` reads, the name relative to build/iso/."""
    return f"{sha256}  {iso_path.name}\n"


def summary(outputs: list[NodeIso], release: str) -> list[str]:
    width = max(len(os.fspath(output.path)) for output in outputs)
    one_for_all = len(outputs) == 1 and outputs[0].cluster
    lines = [f"Fedora CoreOS {release}, {'one ISO for the whole cluster' if one_for_all else 'one ISO per node'}:"]
    lines += [f"  {os.fspath(o.path):<{width}}  {o.node} ({o.role})" for o in outputs]
    example = os.fspath(outputs[0].path)
    lines.append("Write one to a USB stick (replace /dev/sdX with the stick; everything on it is lost):")
    lines.append(f"  sudo dd if={shlex.quote(example)} of=/dev/sdX bs=4M conv=fsync status=progress")
    return lines


@action
def write_sums(outputs: list[NodeIso], verified_stamp: Path) -> None:
    write_atomic(SHA256SUMS, "".join(fill_in_sums(outputs)))
    release = json.loads(verified_stamp.read_text()).get("release", "(unknown release)")
    for line in summary(outputs, release):
        log(line)


def task_embed() -> Iterator[TaskDict]:
    """Embed each node's live config into a copy of the verified ISO."""
    cluster = config.current()
    fcos = FcosFiles(cluster.fcos.architecture)
    outputs = [NodeIso.of(image) for image in cluster.live_images]
    for output in outputs:
        yield {
            "name": output.node,
            "actions": [(embed_node, [fcos.verified_iso, fcos.verified_stamp, output.live_ignition, output.path,
                                      output.record, output.consoles, output.cluster])],
            # The stamp names the verified ISO by its sha256, so the ISO itself need not be hashed by doit.
            "file_dep": [os.fspath(fcos.verified_stamp), os.fspath(output.live_ignition)],
            "targets": [os.fspath(output.path), os.fspath(output.record)],
            "uptodate": [config_changed({"iso_name": output.path.stem, "console": list(output.consoles)})],
            "clean": True,
        }
    yield {
        "name": "SHA256SUMS",
        "actions": [(write_sums, [outputs, fcos.verified_stamp])],
        # The per-node checksum lines, not the ISOs: doit would md5 every ISO to record them.
        "file_dep": [os.fspath(o.record) for o in outputs] + [os.fspath(fcos.verified_stamp)],
        "targets": [os.fspath(SHA256SUMS)],
        "clean": True,
        "verbosity": 2,
    }
