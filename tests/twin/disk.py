"""Reading a twin's disk image afterwards, from the host: its partitions, and a partition mounted
read-only without replaying any journal (loop device at the partition's offset)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def partitions(image: Path) -> list[dict[str, object]]:
    """sfdisk's view of the image's partition table ([] for a blank disk)."""
    result = subprocess.run(["sfdisk", "--json", os.fspath(image)], capture_output=True, text=True, check=False)
    if result.returncode != 0 or not result.stdout.strip():
        return []
    table = json.loads(result.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    return [{**part, "offset": int(part["start"]) * sector, "bytes": int(part["size"]) * sector}
            for part in table.get("partitions", [])]


@contextmanager
def mounted(image: Path, name: str) -> Iterator[Path]:
    """The partition named `name` (GPT name: boot, root) mounted read-only, journal untouched."""
    part = next((p for p in partitions(image) if p.get("name") == name), None)
    assert part is not None, f"{image}: no partition named {name!r}: {partitions(image)}"
    with tempfile.TemporaryDirectory(prefix=f"twin-{name}-") as where:
        options = f"loop,ro,offset={part['offset']},sizelimit={part['bytes']}"
        fstype = "xfs" if name == "root" else "ext4"
        options += ",norecovery" if fstype == "xfs" else ",noload"
        subprocess.run(["mount", "-t", fstype, "-o", options, os.fspath(image), where], check=True)
        try:
            yield Path(where)
        finally:
            subprocess.run(["umount", where], check=True)


def fingerprint(image: Path, head: int = 64 * 1024**2, tail: int = 1024**2) -> str:
    """sha256 of the image's first 64 MiB and last 1 MiB: partition tables (both GPT copies) and the
    filesystems a test put there. Equal before and after means nothing was written to them."""
    digest = hashlib.sha256()
    size = image.stat().st_size
    with open(image, "rb") as handle:
        digest.update(handle.read(head))
        handle.seek(max(0, size - tail))
        digest.update(handle.read())
    return digest.hexdigest()
