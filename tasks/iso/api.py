"""The library API, coreos-installer's `iso ignition|kargs|network|reset` as functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from tasks.common import BuildError
from tasks.iso.areas import LiveIso, read_live_iso
from tasks.iso.initrd import compress_initrd
from tasks.iso.kargs import current_kargs, edit_kargs, karg_patches, require_kargs
from tasks.iso.patch import apply_patches

IGNITION_MEMBER = "config.ign"
NETWORK_DIR = "etc/coreos-firstboot-network"


class ConfigTooLarge(BuildError):
    """What is to be embedded does not fit the ISO's embed area (callers may add their own way out)."""


def ignition_patch(iso: LiveIso, members: dict[str, bytes]) -> tuple[int, bytes]:
    area = iso.ignition_area
    if not members:
        return area.offset, bytes(area.length)
    archive = compress_initrd(members)
    if len(archive) > area.length:
        sizes = ", ".join(f"{name} {len(data)} bytes" for name, data in sorted(members.items()))
        raise ConfigTooLarge(
            f"Compressed initramfs is too large: {len(archive)} > {area.length}",
            hint=f"the embed area holds {sizes}; shrink the config (e.g. fetch large files by URL)",
        )
    return area.offset, archive + bytes(area.length - len(archive))



def embed_ignition(
    iso: Path,
    config: bytes,
    *,
    output: Path | None = None,
    force: bool = False,
    overwrite_output: bool = False,
) -> None:
    """Embed `config` (stored verbatim, no validation) as the live Ignition config."""
    patches = ignition_patches(Path(iso), config, force=force)
    apply_patches(Path(iso), patches, output=output, overwrite_output=overwrite_output)


def ignition_patches(iso: Path, config: bytes, *, force: bool = False) -> list[tuple[int, bytes]]:
    """The (offset, bytes) writes that embed `config`: for callers that copy, hash or patch themselves."""
    live = read_live_iso(Path(iso))
    if not force and IGNITION_MEMBER in live.initrd:
        raise BuildError("This ISO image already has an embedded Ignition config; use -f to force.")
    members = dict(live.initrd)
    members[IGNITION_MEMBER] = bytes(config)
    return [ignition_patch(live, members)]


def show_ignition(iso: Path) -> bytes:
    """The embedded Ignition config, verbatim."""
    live = read_live_iso(Path(iso))
    if IGNITION_MEMBER not in live.initrd:
        raise BuildError("No embedded Ignition config.")
    return live.initrd[IGNITION_MEMBER]


def remove_ignition(iso: Path, *, output: Path | None = None, overwrite_output: bool = False) -> None:
    """Remove the Ignition config, keeping other members (an empty area is zeroed)."""
    live = read_live_iso(Path(iso))
    members = {name: data for name, data in live.initrd.items() if name != IGNITION_MEMBER}
    patch = ignition_patch(live, members)
    apply_patches(Path(iso), [patch], output=output, overwrite_output=overwrite_output)


def show_kargs(iso: Path, default: bool = False) -> str:
    """The current (or default) live kernel arguments."""
    live = read_live_iso(Path(iso))
    return require_kargs(live).default if default else current_kargs(live)


def modify_kargs(
    iso: Path,
    *,
    append: Iterable[str] = (),
    delete: Iterable[str] = (),
    replace: Iterable[str] = (),
    output: Path | None = None,
    overwrite_output: bool = False,
) -> None:
    """Edit the current kargs in every area (delete, then append, then replace KEY=OLD=NEW)."""
    live = read_live_iso(Path(iso))
    kargs = edit_kargs(current_kargs(live), append=append, delete=delete, replace=replace)
    patches = karg_patches(require_kargs(live), kargs)
    apply_patches(Path(iso), patches, output=output, overwrite_output=overwrite_output)


def kargs_patches(iso: Path, *, append: Iterable[str]) -> list[tuple[int, bytes]]:
    """The (offset, bytes) writes that append `append` to the default kargs (for callers that copy,
    hash or patch themselves); none when there is nothing to append."""
    append = list(append)
    if not append:
        return []
    layout = require_kargs(read_live_iso(Path(iso)))
    return karg_patches(layout, edit_kargs(layout.default, append=append))


def reset_kargs(iso: Path, *, output: Path | None = None, overwrite_output: bool = False) -> None:
    """Write the default kargs back into every area."""
    live = read_live_iso(Path(iso))
    layout = require_kargs(live)
    patches = karg_patches(layout, layout.default)
    apply_patches(Path(iso), patches, output=output, overwrite_output=overwrite_output)


def reset_iso(iso: Path, *, output: Path | None = None, overwrite_output: bool = False) -> None:
    """Empty the embed area and, where supported, restore the default kargs (`iso reset`)."""
    live = read_live_iso(Path(iso))
    patches = [ignition_patch(live, {})]
    if live.kargs_layout is not None:
        patches += karg_patches(live.kargs_layout, live.kargs_layout.default)
    apply_patches(Path(iso), patches, output=output, overwrite_output=overwrite_output)


def _network_members(initrd: dict[str, bytes]) -> dict[str, bytes]:
    prefix = NETWORK_DIR + "/"
    return {
        name: data
        for name, data in initrd.items()
        if name.startswith(prefix) and "/" not in name[len(prefix) :]
    }


def embed_network(
    iso: Path,
    keyfiles: Sequence[Path],
    *,
    output: Path | None = None,
    force: bool = False,
    overwrite_output: bool = False,
) -> None:
    """Embed NetworkManager keyfiles for the live initramfs (static addresses etc.)."""
    live = read_live_iso(Path(iso))
    if not live.features.get("live-initrd-network"):
        raise BuildError("This OS image does not support customizing network settings.")
    existing = _network_members(live.initrd)
    if existing and not force:
        raise BuildError("This ISO image already has embedded network settings; use -f to force.")
    members = {name: data for name, data in live.initrd.items() if name not in existing}
    for keyfile in keyfiles:
        name = f"{NETWORK_DIR}/{Path(keyfile).name}"
        if name in members:
            raise BuildError(f"multiple input files named '{Path(keyfile).name}'")
        try:
            members[name] = Path(keyfile).read_bytes()
        except OSError as exc:
            raise BuildError(f"reading {keyfile}: {exc.strerror}") from exc
    patch = ignition_patch(live, members)
    apply_patches(Path(iso), [patch], output=output, overwrite_output=overwrite_output)


def extract_network(iso: Path) -> dict[str, bytes]:
    """Embedded keyfiles by basename."""
    files = _network_members(read_live_iso(Path(iso)).initrd)
    if not files:
        raise BuildError("No embedded network settings.")
    return {name.rsplit("/", 1)[1]: data for name, data in sorted(files.items())}


def remove_network(iso: Path, *, output: Path | None = None, overwrite_output: bool = False) -> None:
    """Remove embedded keyfiles, keeping the Ignition config."""
    live = read_live_iso(Path(iso))
    network = _network_members(live.initrd)
    members = {name: data for name, data in live.initrd.items() if name not in network}
    patch = ignition_patch(live, members)
    apply_patches(Path(iso), [patch], output=output, overwrite_output=overwrite_output)

