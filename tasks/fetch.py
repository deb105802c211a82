"""Step 1, fetch: download the Fedora CoreOS live ISO, its detached signature and the keyring.

Which release: `fcos.release` if pinned; otherwise the release recorded in build/fcos/release.json by
an earlier fetch; otherwise (first build) the stream's current one, which is then recorded. So a build
never moves by itself: `doit update` re-reads the stream and downloads a newer release when there is
one. Once the files are here, fetch is up to date and never touches the network.

Where from: the stream metadata (`fcos.stream_url`, default builds.coreos.fedoraproject.org) names the
ISO, its `.sig` and its sha256. A pinned release the stream no longer lists comes from its build
directory, with the sha256 from that build's meta.json (or, without one, the signature alone).
`fcos.mirror` replaces the https://builds.coreos.fedoraproject.org/ prefix of every such URL.

Outputs (all static paths, none ever cleaned): build/fcos/release.json (what was resolved and
downloaded), build/fcos/keyring.asc, build/fcos/download/fedora-coreos-live.<arch>.iso and its .sig.
Nothing here is trusted yet: `verify` checks them and publishes the verified ISO. With the pinned
keys in the keyring, gpgv already checks the signature while the ISO streams in (as coreos-installer
does), and release.json records its verdict for verify; the download, its hash and the signature
check then overlap instead of reading the ISO one after the other.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import doit
from doit.tools import config_changed

from tasks import config as config_module
from tasks.common import KEYS_DIR, BuildError, FcosFiles, log, write_atomic
from tasks.config import Fcos
from tasks.doit_glue import TaskDict, action
from tasks.download import RetryPolicy, download, is_remote, local_path, read_url
from tasks.release import Release, read_recorded, set_aside
from tasks.verify import StreamedCheck, streamed_record

UPSTREAM = "https://builds.coreos.fedoraproject.org/"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def part_path(path: Path) -> Path:
    """Where download() writes the ISO until its sha256 is checked (with a `.source` resume record)."""
    return path.with_name(path.name + ".part")


def local_keyring_path(keyring: str) -> Path | None:
    """The keyring's file when it is local (a path, relative to the project, or a file:// URL)."""
    return None if is_remote(keyring) else local_path(keyring)


def fetch_slice(fcos: Fcos) -> dict[str, Any]:
    """What fetch depends on (for config_changed): not the fingerprints, which only verify reads."""
    return {"stream": fcos.stream, "architecture": fcos.architecture, "release": fcos.release,
            "stream_url": fcos.stream_metadata_url, "mirror": fcos.mirror, "keyring": fcos.keyring}


# --- URLs ------------------------------------------------------------------------------------------------

def mirrored(url: str, mirror: str | None) -> str:
    """Point an upstream URL at the mirror, which serves the same tree."""
    if mirror and url.startswith(UPSTREAM):
        return mirror.rstrip("/") + "/" + url[len(UPSTREAM):]
    return url


def build_dir_url(stream: str, release: str, architecture: str, base: str = UPSTREAM) -> str:
    return f"{base}prod/streams/{stream}/builds/{release}/{architecture}/"


def tree_base(location: str) -> str:
    """The root of the download tree an artifact URL lives in (upstream's, or a site mirror's)."""
    index = location.find("prod/streams/")
    return location[:index] if index > 0 else UPSTREAM


def default_iso_name(release: str, architecture: str) -> str:
    return f"fedora-coreos-{release}-live-iso.{architecture}.iso"


def version_key(release: str) -> tuple[int, ...]:
    """44.20260707.3.1 → (44, 20260707, 3, 1): FCOS versions compare field by field."""
    return tuple(int(part) if part.isdigit() else -1 for part in release.split("."))


# --- parsing (pure) ----------------------------------------------------------------------------------

def parse_stream(text: bytes, *, url: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError as error:
        where = f" at line {error.lineno}" if isinstance(error, json.JSONDecodeError) else ""
        raise BuildError(f"stream metadata {url} is not valid JSON{where}",
                         hint="a proxy error page or a truncated file? check fcos.stream_url and fcos.mirror"
                         ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("architectures"), dict):
        raise BuildError(f"stream metadata {url} has no 'architectures' object",
                         hint="is fcos.stream_url a Fedora CoreOS stream file (streams/<stream>.json)?")
    return doc


def iso_from_stream(doc: dict[str, Any], *, stream: str, architecture: str, url: str) -> Release:
    """The live ISO of architecture in a parsed stream document: architectures.<arch>.artifacts.metal."""
    architectures = doc["architectures"]
    if architecture not in architectures:
        listed = ", ".join(sorted(architectures)) or "none"
        raise BuildError(f"stream metadata {url} has no {architecture} builds (it lists: {listed})",
                         hint="check fcos.architecture and fcos.stream")
    metal = dig(architectures[architecture], "artifacts", "metal")
    disk = dig(metal, "formats", "iso", "disk")
    if not isinstance(disk, dict) or not isinstance(metal, dict):
        raise BuildError(f"stream metadata {url} has no live ISO for {architecture} "
                         f"(architectures.{architecture}.artifacts.metal.formats.iso.disk)",
                         hint="check fcos.architecture and fcos.stream")
    where = f"architectures.{architecture}.artifacts.metal"
    release = text_field(metal, "release", f"stream metadata {url}: {where}.release")
    location = text_field(disk, "location", f"stream metadata {url}: {where}.formats.iso.disk.location")
    listed_signature = disk.get("signature")
    signature = listed_signature if isinstance(listed_signature, str) else location + ".sig"
    sha256 = disk.get("sha256")
    if not isinstance(sha256, str) or not SHA256_HEX.match(sha256):
        raise BuildError(f"stream metadata {url}: {where}.formats.iso.disk.sha256 is not a sha256",
                         hint="a broken mirror?")
    return Release(stream=stream, architecture=architecture, release=release, iso_name=url_name(location),
                   location=location, signature=signature, sha256=sha256, sha256_source="stream metadata")


def iso_from_meta(meta_text: bytes | None, *, stream: str, release: str, architecture: str,
                  tree: str = UPSTREAM) -> Release:
    """A pinned release from its build directory; sha256 from coreos-assembler's meta.json if given."""
    base = build_dir_url(stream, release, architecture, tree)
    name, sha256, source = default_iso_name(release, architecture), None, "none"
    if meta_text is not None:
        try:
            live_iso = dig(json.loads(meta_text), "images", "live-iso")
        except ValueError:
            live_iso = None
        if isinstance(live_iso, dict) and isinstance(live_iso.get("sha256"), str) \
                and SHA256_HEX.match(live_iso["sha256"]):
            name = str(live_iso.get("path") or name)
            sha256, source = live_iso["sha256"], "meta.json"
    return Release(stream=stream, architecture=architecture, release=release, iso_name=name,
                   location=base + name, signature=base + name + ".sig", sha256=sha256, sha256_source=source)


def text_field(container: dict[str, Any], key: str, where: str) -> str:
    value = container.get(key)
    if not isinstance(value, str) or not value:
        raise BuildError(f"{where} is missing", hint="a broken mirror?")
    return value


def dig(value: object, *keys: str) -> Any:
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def url_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def looks_like_signature(data: bytes) -> bool:
    """An armored signature, or a binary OpenPGP signature packet (tag 2, old or new format)."""
    if data.lstrip().startswith(b"-----BEGIN PGP SIGNATURE-----"):
        return True
    return bool(data) and data[0] in (0x88, 0x89, 0x8A, 0xC2)


def looks_like_keyring(data: bytes) -> bool:
    return b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in data or (bool(data) and data[0] in (0x98, 0x99, 0xC6))


def reusable(recorded: Release | None, fcos: Fcos) -> Release | None:
    """The recorded release when it still answers the config (same stream and arch, pin if any)."""
    if recorded is None or recorded.stream != fcos.stream or recorded.architecture != fcos.architecture:
        return None
    if fcos.release and recorded.release != fcos.release:
        return None
    return recorded


def already_downloaded(recorded: Release | None, wanted: Release, iso: Path, signature: Path) -> bool:
    return (recorded is not None and recorded.release == wanted.release
            and recorded.iso_name == wanted.iso_name and recorded.size is not None
            and iso.is_file() and signature.is_file() and iso.stat().st_size == recorded.size)


# --- network steps -----------------------------------------------------------------------------------

def resolve_release(fcos: Fcos, policy: RetryPolicy) -> Release:
    """Ask the stream (and, for a pin it no longer lists, the build directory) which ISO to fetch."""
    stream, architecture, pin = fcos.stream, fcos.architecture, fcos.release
    url = mirrored(fcos.stream_metadata_url, fcos.mirror)
    current = iso_from_stream(parse_stream(read_url(url, what="stream metadata", policy=policy), url=url),
                              stream=stream, architecture=architecture, url=url)
    if not pin or pin == current.release:
        return current
    tree = tree_base(current.location)  # the tree the stream points at: upstream or a site mirror
    meta_url = mirrored(build_dir_url(stream, pin, architecture, tree) + "meta.json", fcos.mirror)
    try:
        meta = read_url(meta_url, what=f"meta.json of {pin}", policy=policy)
    except BuildError as error:
        log(f"no usable meta.json for pinned release {pin} ({error.message}); the signature alone will vouch")
        meta = None
    release = iso_from_meta(meta, stream=stream, release=pin, architecture=architecture, tree=tree)
    log(f"pinned release {pin} (the stream is at {current.release}); sha256 from {release.sha256_source}")
    return release


def fetch_keyring(keyring: str, target: Path, policy: RetryPolicy) -> None:
    """Copy the keyring into build/fcos/; a remote one only when it is not here yet (offline reruns)."""
    source = target.with_name(target.name + ".source")
    if is_remote(keyring) and target.is_file() and source.is_file() and source.read_text() == keyring:
        return
    data = read_url(keyring, what="keyring (fcos.keyring)", policy=policy)
    if not looks_like_keyring(data):
        raise BuildError(f"keyring {keyring} holds no OpenPGP public keys",
                         hint="fcos.keyring must be armored (or binary) public keys, e.g. "
                              "https://fedoraproject.org/fedora.gpg")
    write_atomic(target, data)
    write_atomic(source, keyring)


def fetch_files(release: Release, mirror: str | None, files: FcosFiles, policy: RetryPolicy, *,
                progress: bool | None = None, pinned: tuple[str, ...] = ()) -> Release:
    """Signature first (cheap, fails fast), then the ISO into a .part; both renamed once complete.

    With pinned keys, gpgv checks the signature while the ISO streams in; its verdict is recorded
    for verify, which still publishes nothing unless the sha256 and the signature both agree."""
    iso, signature = files.downloaded_iso, files.downloaded_signature
    sig_url = mirrored(release.signature, mirror)
    sig = read_url(sig_url, what="ISO signature", policy=policy)
    if not looks_like_signature(sig):
        raise BuildError(f"{sig_url} is not an OpenPGP signature",
                         hint="an HTML error page or a broken mirror? check fcos.mirror")
    part = part_path(iso)
    iso_url = mirrored(release.location, mirror)
    log(f"downloading {release.iso_name} from {iso_url}")
    check = StreamedCheck(files.keyring, sig, pinned) if pinned else None
    try:
        done = download(iso_url, part, what=f"ISO {release.iso_name}", policy=policy,
                        identity=f"{release.location} {release.sha256}", progress=progress, tee=check)
        good = check.finish() if check is not None else None
    finally:
        if check is not None:
            check.close()
    if release.sha256 and done.sha256 != release.sha256:
        problem = (f"sha256 mismatch for {iso_url}: got {done.sha256}, "
                   f"the {release.sha256_source} says {release.sha256}")
        rejected = reject_part(files, part, release.iso_name, problem)
        raise BuildError(f"{problem}; moved aside to {rejected}",
                         hint="run doit again to download afresh; "
                              "if it repeats the mirror serves a wrong file")
    os.replace(part, iso)
    part.with_name(part.name + ".source").unlink(missing_ok=True)
    write_atomic(signature, sig)
    log(f"downloaded {release.iso_name}: {done.size:,} bytes, sha256 {done.sha256}"
        + (f", signed by {good.signer}" if good else ""))
    streamed = streamed_record(good, pinned, sig, files.keyring, iso, done.sha256) if good else None
    return replace(release, downloaded_sha256=done.sha256, size=done.size, streamed_check=streamed)


def reject_part(files: FcosFiles, part: Path, iso_name: str, reason: str) -> Path:
    """A download that does not match its sha256: set aside, with its resume record dropped."""
    part.with_name(part.name + ".source").unlink(missing_ok=True)
    return set_aside(files, part, None, iso_name, reason)


# --- actions -------------------------------------------------------------------------------------------

def fetch_release(fcos: Fcos, files: FcosFiles, policy: RetryPolicy, *, refresh: bool = False,
                  progress: bool | None = None) -> Release:
    """Bring release.json, the keyring, the ISO and its signature up to date with the config."""
    recorded = read_recorded(files.release)
    wanted = None if refresh else reusable(recorded, fcos)
    if wanted is None:
        wanted = resolve_release(fcos, policy)
        log(f"Fedora CoreOS {wanted.stream} {wanted.architecture}: release {wanted.release}")
    else:
        log(f"keeping recorded release {wanted.release} (`doit update` moves to a newer one)")
    if refresh and recorded and not fcos.release and recorded.stream == wanted.stream \
            and recorded.architecture == wanted.architecture \
            and version_key(wanted.release) <= version_key(recorded.release):
        log(f"already at the stream's latest release {recorded.release}")
        wanted = recorded
    fetch_keyring(fcos.keyring, files.keyring, policy)
    if already_downloaded(recorded, wanted, files.downloaded_iso, files.downloaded_signature):
        assert recorded is not None
        log(f"{recorded.iso_name} is already downloaded")
        fetched = recorded
    else:
        fetched = fetch_files(wanted, fcos.mirror, files, policy, progress=progress, pinned=fcos.fingerprints)
    write_atomic(files.release, fetched.to_json())  # last: it names files that are now complete
    return fetched


@action
def fetch(fcos: Fcos, files: FcosFiles, policy: RetryPolicy) -> None:
    config_module.read_ssh_keys(KEYS_DIR, Path.home())  # render would stop there: say so before 800 MB
    fetch_release(fcos, files, policy)


@action
def update(fcos: Fcos, files: FcosFiles, policy: RetryPolicy) -> None:
    if fcos.release:
        log(f"fcos.release pins {fcos.release}: nothing to update (remove the pin to follow the stream)")
        return
    before = read_recorded(files.release)
    after = fetch_release(fcos, files, policy, refresh=True)
    if before is None or before.release != after.release:
        log(f"now at {after.release}{f' (was {before.release})' if before else ''}: "
            "run `doit` to verify it and rebuild")


def retry_policy() -> RetryPolicy:
    """Developer knobs: `doit fetch_attempts=3 fetch_backoff=0.1` (tests use tiny backoffs)."""
    defaults = RetryPolicy()
    attempts = doit.get_var("fetch_attempts", None)
    backoff = doit.get_var("fetch_backoff", None)
    return RetryPolicy(attempts=int(attempts) if attempts else defaults.attempts,
                       backoff=float(backoff) if backoff else defaults.backoff)


def task_fetch() -> TaskDict:
    """Download the Fedora CoreOS live ISO, signature and keyring (the recorded or pinned release)."""
    cluster = config_module.current()
    fcos, files = cluster.fcos, FcosFiles(cluster.fcos.architecture)
    keyring = local_keyring_path(fcos.keyring)
    return {
        "actions": [(fetch, [fcos, files, retry_policy()])],
        "file_dep": [keyring] if keyring else [],  # a local keyring file is an input like any other
        "targets": [files.release, files.keyring, files.downloaded_iso, files.downloaded_signature],
        "uptodate": [config_changed(fetch_slice(fcos))],  # no "clean": never delete the ISO
    }


def task_update() -> TaskDict:
    """Re-read the FCOS stream and download a newer release if there is one (then run doit)."""
    fcos = config_module.current().fcos
    return {"actions": [(update, [fcos, FcosFiles(fcos.architecture), retry_policy()])], "verbosity": 2}
