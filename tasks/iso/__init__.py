"""Embed, show and remove Ignition configs, network keyfiles and kernel arguments in CoreOS live ISOs.

Byte-compatible with `coreos-installer iso ignition|kargs|network|reset` (formats:
docs/iso.md): `areas` finds the customisation areas, `initrd` encodes and decodes the embed
area's archive, `kargs` edits kernel arguments, `patch` writes (offset, bytes) patches in place, to a
copy, to stdout or into a hash, `api` is the library, `cli` the command line (`python -m tasks.iso`).
No doit import: the pipeline's embed step is one caller among others.
"""

from tasks.iso.api import (
    IGNITION_MEMBER,
    NETWORK_DIR,
    ConfigTooLarge,
    embed_ignition,
    embed_network,
    extract_network,
    ignition_patches,
    kargs_patches,
    modify_kargs,
    remove_ignition,
    remove_network,
    reset_iso,
    reset_kargs,
    show_ignition,
    show_kargs,
)
from tasks.iso.areas import FEATURES_PATH, LiveIso, read_live_iso
from tasks.iso.initrd import compress_initrd, decode_initrd, encode_cpio
from tasks.iso.kargs import edit_kargs
from tasks.iso.patch import apply_patches, copy_file, sha256_patched, write_patched

__all__ = [
    "FEATURES_PATH", "IGNITION_MEMBER", "ConfigTooLarge", "NETWORK_DIR", "LiveIso", "apply_patches", "compress_initrd",
    "copy_file", "decode_initrd", "edit_kargs", "embed_ignition", "embed_network", "encode_cpio",
    "extract_network", "ignition_patches", "kargs_patches", "modify_kargs", "read_live_iso", "remove_ignition",
    "remove_network", "reset_iso", "reset_kargs", "sha256_patched", "show_ignition", "show_kargs",
    "write_patched",
]
