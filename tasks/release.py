"""The release record fetch writes (build/fcos/release.json) and verify reads, and where a bad download goes."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tasks.common import FcosFiles


@dataclass(frozen=True)
class Release:
    """One FCOS live ISO: where it lives upstream and what it should hash to."""

    stream: str
    architecture: str
    release: str
    iso_name: str  # the upstream file name, e.g. fedora-coreos-44.20260707.3.1-live-iso.x86_64.iso
    location: str  # upstream URLs, before any fcos.mirror rewriting
    signature: str
    sha256: str | None  # expected; None when only the signature vouches for the file
    sha256_source: str  # "stream metadata", "meta.json" or "none"
    downloaded_sha256: str | None = None  # filled in once the ISO is here
    size: int | None = None
    streamed_check: dict[str, Any] | None = None  # gpgv's verdict while downloading (verify.streamed_record)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Release:
        raw = json.loads(text)
        return cls(**{key: raw.get(key) for key in cls.__dataclass_fields__})


def read_recorded(path: Path) -> Release | None:
    try:
        return Release.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None


def set_aside(files: FcosFiles, iso: Path, signature: Path | None, iso_name: str, reason: str) -> Path:
    """Keep a rejected ISO for inspection under an unmistakable name, outside every path the build reads.

    One is kept at most (they are big), with REASON.txt; the next fetch downloads afresh.
    """
    files.rejected_dir.mkdir(parents=True, exist_ok=True)
    for old in files.rejected_dir.iterdir():
        old.unlink()
    rejected = files.rejected_dir / f"REJECTED-{iso_name}"
    os.replace(iso, rejected)
    if signature is not None and signature.exists():
        os.replace(signature, rejected.with_name(rejected.name + ".sig"))
    (files.rejected_dir / "REASON.txt").write_text(reason + "\n")
    return rejected
