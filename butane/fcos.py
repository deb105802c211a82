"""fcos-variant sugar: boot_device (LUKS, mirroring) and grub.users."""

from __future__ import annotations

from typing import Any

from .report import Report
from .translate import Obj


def validate_fcos(config: dict[str, Any], minor: int, report: Report) -> None:
    return None


def fcos_parent_config(config: dict[str, Any], minor: int, report: Report) -> Obj | None:
    return None
