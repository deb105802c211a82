"""pxe: network boot for sites that outgrow USB sticks (`doit pxe`, not a default task).

From the same verified release as the ISO, the stream's PXE kernel, initramfs and rootfs (each
checked by sha256 and signature like the ISO), and under build/pxe/:
- `<image>.img`: each live config wrapped as an initrd, as `coreos-installer pxe ignition wrap` does
  (the newc cpio with `config.ign`, xz), appended after the FCOS initramfs;
- `<node>.ipxe` per node and `boot.ipxe`, which chains to the node whose MAC booted (`${mac}`);
- `assets/`: the three FCOS files (hard links), so that build/pxe/ served at `pxe.base_url` is all a
  web server needs;
- `matchbox/`: a data directory for poseidon/matchbox (profiles, groups by MAC, ignition, assets).
The live system that boots is the ISO's: the same disk choice, countdown and marker.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

# The kernel arguments the FCOS live PXE boot needs (coreos-installer prints the last two when it
# embeds a live config); the rootfs comes by URL.
LIVE_KARGS = ("ignition.firstboot", "ignition.platform.id=metal")


@dataclass(frozen=True)
class PxeFiles:
    """The three FCOS files by their names under assets/."""

    kernel: str
    initramfs: str
    rootfs: str


def wrap_config(live_ignition: bytes) -> bytes:
    """`coreos-installer pxe ignition wrap`: an initrd holding only /config.ign."""
    from tasks.iso import IGNITION_MEMBER, compress_initrd

    return compress_initrd({IGNITION_MEMBER: live_ignition})


def boot_args(base_url: str, files: PxeFiles, consoles: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    return ["initrd=main", "initrd=config", f"coreos.live.rootfs_url={base_url}/assets/{files.rootfs}",
            *LIVE_KARGS, *(f"console={console}" for console in consoles), *extra]


def node_script(base_url: str, files: PxeFiles, config_initrd: str, args: Sequence[str]) -> str:
    """One node's iPXE script: the FCOS kernel and initramfs, our config initrd appended."""
    return "\n".join([
        "#!ipxe",
        f"kernel {base_url}/assets/{files.kernel} {' '.join(args)}",
        f"initrd --name main {base_url}/assets/{files.initramfs}",
        f"initrd --name config {base_url}/{config_initrd}",
        "boot",
        "",
    ])


def boot_script(base_url: str, cluster: str, by_mac: Sequence[tuple[str, Sequence[str]]],
                fallback: str | None) -> str:
    """boot.ipxe: chain to the node whose MAC booted; else to `fallback` (the cluster image, which
    asks at boot) or stop with what to do."""
    lines = ["#!ipxe", f"# k3s-autoinstall: cluster {cluster}; the node is chosen by the booting NIC's MAC"]
    for node, macs in by_mac:
        lines += [f"iseq ${{mac}} {mac} && goto {node} ||" for mac in macs]
    if fallback:
        lines += [f"chain {base_url}/{fallback}"]
    else:
        lines += ["echo k3s-autoinstall: no node of cluster " + cluster + " has MAC ${mac}:",
                  "echo add it to the node's macs in the cluster config, run doit pxe, and boot again",
                  "shell"]
    for node, macs in by_mac:
        if macs:
            lines += [f":{node}", f"chain {base_url}/{node}.ipxe"]
    return "\n".join(lines) + "\n"


def matchbox_profile(image: str, files: PxeFiles, matchbox_url: str, consoles: Sequence[str],
                     extra: Sequence[str] = ()) -> dict[str, object]:
    """A matchbox profile (profiles/<id>.json): the live PXE boot, the live config by URL from
    matchbox's /ignition endpoint (which serves ignition/<ignition_id> as it is)."""
    return {
        "id": image,
        "name": f"k3s-autoinstall {image}",
        "boot": {
            "kernel": f"/assets/{files.kernel}",
            "initrd": [f"--name main /assets/{files.initramfs}"],
            "args": ["initrd=main", f"coreos.live.rootfs_url={matchbox_url}/assets/{files.rootfs}", *LIVE_KARGS,
                     f"ignition.config.url={matchbox_url}/ignition?uuid=${{uuid}}&mac=${{mac:hexhyp}}",
                     *(f"console={console}" for console in consoles), *extra],
        },
        "ignition_id": f"{image}.ign",
    }


def matchbox_group(node: str, profile: str, mac: str) -> dict[str, object]:
    """A matchbox group (groups/<id>.json): this MAC boots this profile."""
    return {"id": f"{node}-{mac.replace(':', '')}", "name": node, "profile": profile, "selector": {"mac": mac}}


def to_json(document: object) -> str:
    return json.dumps(document, indent=2) + "\n"
