"""Live kernel arguments: read the areas, edit like coreos-installer's KargsEditor, write them back."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from tasks.common import BuildError
from tasks.iso.areas import KargsLayout, LiveIso, parse_karg_area


def require_kargs(iso: LiveIso) -> KargsLayout:
    if iso.kargs_layout is None:
        raise BuildError("No karg embed areas found; old or corrupted CoreOS ISO image.")
    return iso.kargs_layout


def current_kargs(iso: LiveIso) -> str:
    """The kargs all areas agree on (an ISO whose areas disagree is refused, as upstream does)."""
    layout = require_kargs(iso)
    fd = os.open(iso.path, os.O_RDONLY)
    try:
        values = [
            (area.offset, parse_karg_area(os.pread(fd, layout.size, area.offset), area.pad, area.end))
            for area in layout.areas
        ]
    finally:
        os.close(fd)
    expected = values[0][1]
    for offset, value in values[1:]:
        if value != expected:
            raise BuildError(
                f"kargs don't match at all offsets! "
                f"(expected '{expected}', but offset {offset} has: '{value}')"
            )
    return expected


def edit_kargs(
    kargs: str, *, append: Iterable[str] = (), delete: Iterable[str] = (), replace: Iterable[str] = ()
) -> str:
    """coreos-installer's KargsEditor: delete all, append all, then replace KEY=OLD=NEW, on padded text."""
    text = f" {kargs} "
    for arg in delete:
        text = text.replace(f" {arg.strip()} ", " ")
    for arg in append:
        text += f"{arg.strip()} "
    for spec in replace:
        match = re.fullmatch(r"([^=]+)=([^=]+)=([^=]+)", spec)
        if match is None:
            raise BuildError("Wrong input, format should be: KEY=OLD=NEW")
        key, old, new = match.groups()
        text = text.replace(f" {key}={old} ", f" {key}={new} ")
    return text.strip()


def karg_patches(layout: KargsLayout, kargs: str) -> list[tuple[int, bytes]]:
    value = kargs.strip()
    if len(value.encode()) >= layout.size:
        raise BuildError(
            f"kargs too large for area: {len(value.encode()) + 1} vs {layout.size}",
            hint="delete some kernel arguments or shorten them",
        )
    patches = []
    for area in layout.areas:
        content = (value + area.end).encode()
        patches.append((area.offset, content + area.pad.encode() * (layout.size - len(content))))
    return patches

