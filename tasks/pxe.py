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
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doit.tools import config_changed

from tasks import config
from tasks.common import BUILD, BuildError, FcosFiles, NodeFiles, link_atomic, log, write_atomic
from tasks.doit_glue import TaskDict, action
from tasks.download import RetryPolicy, download, read_url

PXE_DIR = BUILD / "pxe"
PXE_KINDS = ("kernel", "initramfs", "rootfs")
# The build directory's names, and meta.json's image keys, of the PXE files of a release.
PXE_FILE_NAMES = {"kernel": "live-kernel-{arch}", "initramfs": "live-initramfs.{arch}.img",
                  "rootfs": "live-rootfs.{arch}.img"}

# The kernel arguments the FCOS live PXE boot needs (coreos-installer prints the last two when it
# embeds a live config); the rootfs comes by URL.
LIVE_KARGS = ("ignition.firstboot", "ignition.platform.id=metal")


@dataclass(frozen=True)
class PxeFiles:
    """The three FCOS files by their names under assets/."""

    kernel: str
    initramfs: str
    rootfs: str


@dataclass(frozen=True)
class Artifact:
    """One PXE file of the release: where it is upstream and what it must hash to."""

    kind: str
    name: str
    location: str
    signature: str
    sha256: str | None
    sha256_source: str


# --- which files: the same release as the verified ISO --------------------------------------------------

def artifacts_from_stream(doc: dict[str, Any], *, architecture: str, release: str) -> list[Artifact] | None:
    """The release's PXE files as the stream lists them; None when the stream has moved to another release."""
    from tasks.fetch import SHA256_HEX, dig, url_name

    metal = dig(doc.get("architectures"), architecture, "artifacts", "metal")
    if not isinstance(metal, dict) or metal.get("release") != release:
        return None
    pxe = dig(metal, "formats", "pxe")
    found = []
    for kind in PXE_KINDS:
        entry = dig(pxe, kind)
        if not isinstance(entry, dict) or not isinstance(entry.get("location"), str):
            raise BuildError(f"stream metadata: architectures.{architecture}.artifacts.metal.formats.pxe.{kind} "
                             f"is missing", hint="a broken mirror? the ISO of this release was listed")
        sha256 = entry.get("sha256") if isinstance(entry.get("sha256"), str) \
            and SHA256_HEX.match(entry["sha256"]) else None
        location = entry["location"]
        found.append(Artifact(kind, url_name(location), location, entry.get("signature") or location + ".sig",
                              sha256, "stream metadata" if sha256 else "none"))
    return found


def artifacts_from_build_dir(meta_text: bytes | None, *, stream: str, release: str, architecture: str,
                             tree: str) -> list[Artifact]:
    """A release the stream no longer lists: its build directory; sha256s from meta.json when there."""
    from tasks.fetch import SHA256_HEX, build_dir_url, dig

    base = build_dir_url(stream, release, architecture, tree)
    try:
        images = dig(json.loads(meta_text), "images") if meta_text else None
    except ValueError:
        images = None
    found = []
    for kind in PXE_KINDS:
        name = f"fedora-coreos-{release}-{PXE_FILE_NAMES[kind].format(arch=architecture)}"
        image = dig(images, f"live-{kind}")
        sha256 = image.get("sha256") if isinstance(image, dict) and isinstance(image.get("sha256"), str) \
            and SHA256_HEX.match(image["sha256"]) else None
        found.append(Artifact(kind, name, base + name, base + name + ".sig", sha256,
                              "meta.json" if sha256 else "none"))
    return found


def resolve_artifacts(fcos: config.Fcos, stamp: dict[str, Any], policy: RetryPolicy) -> list[Artifact]:
    from tasks.fetch import UPSTREAM, build_dir_url, mirrored, parse_stream, tree_base

    url = fcos.stream_metadata_url
    doc = parse_stream(read_url(url, what="stream metadata", policy=policy), url=url)
    found = artifacts_from_stream(doc, architecture=stamp["architecture"], release=stamp["release"])
    if found is not None:
        return found
    tree = tree_base(stamp.get("source") or UPSTREAM)
    meta_url = mirrored(build_dir_url(stamp["stream"], stamp["release"], stamp["architecture"], tree), fcos.mirror)
    try:
        meta = read_url(meta_url + "meta.json", what="meta.json", policy=policy)
    except BuildError:
        meta = None
    return artifacts_from_build_dir(meta, stream=stamp["stream"], release=stamp["release"],
                                    architecture=stamp["architecture"], tree=tree)


# --- fetch and verify, as for the ISO -----------------------------------------------------------------

def fetch_verified(artifact: Artifact, fcos: config.Fcos, files: FcosFiles, policy: RetryPolicy) -> dict[str, Any]:
    """Download one PXE file, check its sha256 and its signature by a pinned key; only then publish it as
    build/fcos/pxe/<name>. A bad file is deleted: nothing unverified is ever at that path."""
    from tasks.fetch import looks_like_signature, mirrored
    from tasks.verify import VerificationError, check_signature

    target = files.dir / "pxe" / artifact.name
    part = files.dir / "pxe" / "download" / (artifact.name + ".part")
    signature_url = mirrored(artifact.signature, fcos.mirror)
    signature = read_url(signature_url, what=f"PXE {artifact.kind} signature", policy=policy)
    if not looks_like_signature(signature):
        raise BuildError(f"{signature_url} is not an OpenPGP signature", hint="a broken mirror? check fcos.mirror")
    url = mirrored(artifact.location, fcos.mirror)
    log(f"downloading {artifact.name} from {url}")
    done = download(url, part, what=f"PXE {artifact.kind} {artifact.name}", policy=policy,
                    identity=f"{artifact.location} {artifact.sha256}")
    signature_file = part.with_name(artifact.name + ".sig")
    write_atomic(signature_file, signature)
    try:
        if artifact.sha256 and done.sha256 != artifact.sha256:
            raise VerificationError(f"sha256 mismatch for {url}: got {done.sha256}, the {artifact.sha256_source} "
                                    f"says {artifact.sha256}")
        good, _ = check_signature(part, signature_file, files.keyring, fcos.fingerprints)
    except VerificationError as error:
        part.unlink(missing_ok=True)
        part.with_name(part.name + ".source").unlink(missing_ok=True)
        raise BuildError(f"{artifact.name}: {error.message}; deleted",
                         hint="run `doit pxe` again to download afresh; if it repeats, do not trust the source"
                         ) from None
    link_atomic(part, target)
    part.unlink()
    part.with_name(part.name + ".source").unlink(missing_ok=True)
    signature_file.unlink()
    log(f"verified {artifact.name}: sha256 {done.sha256}, signed by {good.signer}")
    return {"kind": artifact.kind, "name": artifact.name, "sha256": done.sha256, "signer": good.signer}


def fetch_pxe(fcos: config.Fcos, files: FcosFiles, policy: RetryPolicy) -> PxeFiles:
    """The release's three PXE files under build/fcos/pxe/, verified; kept across runs (pxe.json)."""
    stamp = json.loads(files.verified_stamp.read_text())
    record_path = files.dir / "pxe" / "pxe.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    if record.get("release") != stamp["release"] or not all(
            (files.dir / "pxe" / item["name"]).is_file() for item in record.get("files", [])):
        items = [fetch_verified(artifact, fcos, files, policy) for artifact in resolve_artifacts(fcos, stamp, policy)]
        record = {"release": stamp["release"], "files": items}
        write_atomic(record_path, json.dumps(record, indent=2) + "\n")
    else:
        log(f"PXE files of {stamp['release']} are already here and verified")
    names = {item["kind"]: item["name"] for item in record["files"]}
    return PxeFiles(kernel=names["kernel"], initramfs=names["initramfs"], rootfs=names["rootfs"])


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


# --- build/pxe/ ------------------------------------------------------------------------------------

def pxe_tree(cluster: config.Config, files: PxeFiles, live_configs: dict[str, bytes]) -> dict[str, bytes]:
    """Every file of build/pxe/ but the assets: {relative path: content}."""
    base = cluster.pxe.base_url
    assert base is not None
    matchbox = cluster.pxe.matchbox_url or base
    tree: dict[str, bytes] = {}
    by_mac: list[tuple[str, Sequence[str]]] = []
    fallback = None
    for image in cluster.live_images:
        initrd = f"{image.name}.img"
        tree[initrd] = wrap_config(live_configs[image.name])
        tree[f"matchbox/ignition/{image.name}.ign"] = live_configs[image.name]
        if image.is_cluster:  # unknown MACs boot the cluster image, which asks who it is
            fallback = f"{image.name}.ipxe"
            tree[fallback] = node_script(base, files, initrd, boot_args(base, files, image.consoles)).encode()
            tree[f"matchbox/profiles/{image.name}.json"] = to_json(
                matchbox_profile(image.name, files, matchbox, image.consoles)).encode()
            tree[f"matchbox/groups/{image.name}-default.json"] = to_json(
                {"id": f"{image.name}-default", "name": f"{image.name}: machines no group names",
                 "profile": image.name}).encode()
        for node in image.nodes:
            extra = [f"k3s.node={node.name}"] if image.is_cluster else []
            consoles = cluster.consoles(node) if image.is_cluster else image.consoles
            args = boot_args(base, files, consoles, extra)
            tree[f"{node.name}.ipxe"] = node_script(base, files, initrd, args).encode()
            profile = matchbox_profile(node.name, files, matchbox, consoles, extra)
            profile["ignition_id"] = f"{image.name}.ign"
            tree[f"matchbox/profiles/{node.name}.json"] = to_json(profile).encode()
            for mac in node.macs:
                group = matchbox_group(node.name, node.name, mac)
                tree[f"matchbox/groups/{group['id']}.json"] = to_json(group).encode()
            by_mac.append((node.name, node.macs))
    tree["boot.ipxe"] = boot_script(base, cluster.name, by_mac, fallback).encode()
    return tree


def replace_tree(target: Path, tree: dict[str, bytes], links: dict[str, Path]) -> None:
    """Write the tree beside target, then swap it in: target is the old tree or the new one, never half."""
    work = target.with_name(f".{target.name}.part")
    old = target.with_name(f".{target.name}.old")
    for leftover in (work, old):
        shutil.rmtree(leftover, ignore_errors=True)
    for relative, content in tree.items():
        path = work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(0o600)  # the live configs carry the tokens
    for relative, source in links.items():
        path = work / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, path)
        except OSError:
            shutil.copyfile(source, path)
    if target.exists():
        os.replace(target, old)
    os.replace(work, target)
    shutil.rmtree(old, ignore_errors=True)


@action
def build_pxe(cluster: config.Config, files: FcosFiles, policy: RetryPolicy) -> None:
    if cluster.pxe.base_url is None:
        raise BuildError(f"{cluster.source}: pxe.base_url is not set",
                         hint="set it to where build/pxe/ will be served, e.g. 'http://10.0.0.2:8080/k3s'")
    pxe_files = fetch_pxe(cluster.fcos, files, policy)
    live_configs = {image.name: NodeFiles.of_image(image.name, cluster=image.is_cluster).live_ignition.read_bytes()
                    for image in cluster.live_images}
    tree = pxe_tree(cluster, pxe_files, live_configs)
    verified = {name: files.dir / "pxe" / name for name in (pxe_files.kernel, pxe_files.initramfs, pxe_files.rootfs)}
    links = {f"{where}/{name}": path for name, path in verified.items() for where in ("assets", "matchbox/assets")}
    replace_tree(PXE_DIR, tree, links)
    without_mac = [node.name for node in cluster.nodes if not node.macs]
    log(f"wrote {PXE_DIR}/: serve it at {cluster.pxe.base_url}, and boot iPXE clients from boot.ipxe")
    if without_mac and cluster.output == "per-node":
        log(f"nodes without macs boot only by name ({', '.join(f'{n}.ipxe' for n in without_mac)}): "
            "list their MACs in nodes[].macs to have boot.ipxe pick them")


def task_pxe() -> TaskDict:
    """Network boot: verified PXE files, iPXE scripts and a matchbox directory under build/pxe/."""
    from tasks.fetch import retry_policy

    cluster = config.current()
    files = FcosFiles(cluster.fcos.architecture)
    lives = [NodeFiles.of_image(image.name, cluster=image.is_cluster).live_ignition for image in cluster.live_images]
    return {
        "actions": [(build_pxe, [cluster, files, retry_policy()])],
        "file_dep": [os.fspath(files.verified_stamp), *(os.fspath(path) for path in lives)],
        "targets": [os.fspath(PXE_DIR / "boot.ipxe")],
        "uptodate": [config_changed({"pxe": config.as_json(cluster.pxe), "output": cluster.output,
                                     "nodes": [[n.name, list(n.macs), list(cluster.consoles(n))]
                                               for n in cluster.nodes]})],
        "clean": [lambda: shutil.rmtree(PXE_DIR, ignore_errors=True)],
    }
