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
Nothing here is trusted yet: `verify` checks them and publishes the verified ISO.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import doit
from doit.tools import config_changed

from tasks import config as config_module
from tasks.common import FCOS_DIR, BuildError, TaskDict, action, log, write_atomic
from tasks.download import RetryPolicy, download, is_remote, local_path, read_url

UPSTREAM = "https://builds.coreos.fedoraproject.org/"
DOWNLOAD_DIR = FCOS_DIR / "download"
RELEASE_FILE = FCOS_DIR / "release.json"
KEYRING_FILE = FCOS_DIR / "keyring.asc"
REJECTED_DIR = FCOS_DIR / "rejected"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Release:
        raw = json.loads(text)
        return cls(**{key: raw.get(key) for key in cls.__dataclass_fields__})


# --- paths ---------------------------------------------------------------------------------------------

def download_paths(architecture: str) -> tuple[Path, Path]:
    """Where fetch leaves the unverified ISO and its signature (static: the task graph is static)."""
    iso = DOWNLOAD_DIR / f"fedora-coreos-live.{architecture}.iso"
    return iso, iso.with_name(iso.name + ".sig")


def part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


def local_keyring_path(keyring: str) -> Path | None:
    """The keyring's file when it is local (a path, relative to the project, or a file:// URL)."""
    return None if is_remote(keyring) else local_path(keyring)


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


def read_recorded(path: Path = RELEASE_FILE) -> Release | None:
    try:
        return Release.from_json(path.read_text())
    except (OSError, ValueError, TypeError):
        return None


def reusable(recorded: Release | None, settings: dict[str, Any]) -> Release | None:
    """The recorded release when it still answers the config (same stream and arch, pin if any)."""
    if recorded is None or recorded.stream != settings["stream"] \
            or recorded.architecture != settings["architecture"]:
        return None
    if settings["release"] and recorded.release != settings["release"]:
        return None
    return recorded


def already_downloaded(recorded: Release | None, wanted: Release, iso: Path, signature: Path) -> bool:
    return (recorded is not None and recorded.release == wanted.release
            and recorded.iso_name == wanted.iso_name and recorded.size is not None
            and iso.is_file() and signature.is_file() and iso.stat().st_size == recorded.size)


# --- network steps -----------------------------------------------------------------------------------

def resolve_release(settings: dict[str, Any], policy: RetryPolicy) -> Release:
    """Ask the stream (and, for a pin it no longer lists, the build directory) which ISO to fetch."""
    stream, architecture, pin = settings["stream"], settings["architecture"], settings["release"]
    url = mirrored(settings["stream_url"], settings["mirror"])
    current = iso_from_stream(parse_stream(read_url(url, what="stream metadata", policy=policy), url=url),
                              stream=stream, architecture=architecture, url=url)
    if not pin or pin == current.release:
        return current
    tree = tree_base(current.location)  # the tree the stream points at: upstream or a site mirror
    meta_url = mirrored(build_dir_url(stream, pin, architecture, tree) + "meta.json", settings["mirror"])
    try:
        meta = read_url(meta_url, what=f"meta.json of {pin}", policy=policy)
    except BuildError as error:
        log(f"no usable meta.json for pinned release {pin} ({error.message}); the signature alone will vouch")
        meta = None
    release = iso_from_meta(meta, stream=stream, release=pin, architecture=architecture, tree=tree)
    log(f"pinned release {pin} (the stream is at {current.release}); sha256 from {release.sha256_source}")
    return release


def fetch_keyring(keyring: str, policy: RetryPolicy) -> None:
    """Copy the keyring into build/fcos/; a remote one only when it is not here yet (offline reruns)."""
    source = KEYRING_FILE.with_name(KEYRING_FILE.name + ".source")
    if is_remote(keyring) and KEYRING_FILE.is_file() and source.is_file() and source.read_text() == keyring:
        return
    data = read_url(keyring, what="keyring (fcos.keyring)", policy=policy)
    if not looks_like_keyring(data):
        raise BuildError(f"keyring {keyring} holds no OpenPGP public keys",
                         hint="fcos.keyring must be armored (or binary) public keys, e.g. "
                              "https://fedoraproject.org/fedora.gpg")
    write_atomic(KEYRING_FILE, data)
    write_atomic(source, keyring)


def fetch_files(release: Release, mirror: str | None, policy: RetryPolicy, *,
                progress: bool | None = None) -> Release:
    """Signature first (cheap, fails fast), then the ISO into a .part; both renamed once complete."""
    iso, signature = download_paths(release.architecture)
    sig_url = mirrored(release.signature, mirror)
    sig = read_url(sig_url, what="ISO signature", policy=policy)
    if not looks_like_signature(sig):
        raise BuildError(f"{sig_url} is not an OpenPGP signature",
                         hint="an HTML error page or a broken mirror? check fcos.mirror")
    part = part_path(iso)
    iso_url = mirrored(release.location, mirror)
    log(f"downloading {release.iso_name} from {iso_url}")
    done = download(iso_url, part, what=f"ISO {release.iso_name}", policy=policy,
                    identity=f"{release.location} {release.sha256}", progress=progress)
    if release.sha256 and done.sha256 != release.sha256:
        problem = (f"sha256 mismatch for {iso_url}: got {done.sha256}, "
                   f"the {release.sha256_source} says {release.sha256}")
        rejected = reject_part(part, release.iso_name, problem)
        raise BuildError(f"{problem}; moved aside to {rejected}",
                         hint="run doit again to download afresh; "
                              "if it repeats the mirror serves a wrong file")
    os.replace(part, iso)
    part.with_name(part.name + ".source").unlink(missing_ok=True)
    write_atomic(signature, sig)
    log(f"downloaded {release.iso_name}: {done.size:,} bytes, sha256 {done.sha256}")
    return replace(release, downloaded_sha256=done.sha256, size=done.size)


def reject_part(part: Path, iso_name: str, reason: str) -> Path:
    """A download that does not match its sha256: set aside, with its resume record dropped."""
    part.with_name(part.name + ".source").unlink(missing_ok=True)
    return set_aside(part, None, iso_name, reason)


def set_aside(iso: Path, signature: Path | None, iso_name: str, reason: str) -> Path:
    """Keep a rejected ISO for inspection under an unmistakable name, outside every path the build reads.

    One is kept at most (they are big), with REASON.txt; the next fetch downloads afresh.
    """
    REJECTED_DIR.mkdir(parents=True, exist_ok=True)
    for old in REJECTED_DIR.iterdir():
        old.unlink()
    rejected = REJECTED_DIR / f"REJECTED-{iso_name}"
    os.replace(iso, rejected)
    if signature is not None and signature.exists():
        os.replace(signature, rejected.with_name(rejected.name + ".sig"))
    (REJECTED_DIR / "REASON.txt").write_text(reason + "\n")
    return rejected


# --- actions -------------------------------------------------------------------------------------------

def fetch_release(settings: dict[str, Any], policy: RetryPolicy, *, refresh: bool = False,
                  progress: bool | None = None) -> Release:
    """Bring release.json, the keyring, the ISO and its signature up to date with settings."""
    recorded = read_recorded()
    wanted = None if refresh else reusable(recorded, settings)
    if wanted is None:
        wanted = resolve_release(settings, policy)
        log(f"Fedora CoreOS {wanted.stream} {wanted.architecture}: release {wanted.release}")
    else:
        log(f"keeping recorded release {wanted.release} (`doit update` moves to a newer one)")
    if refresh and recorded and not settings["release"] and recorded.stream == wanted.stream \
            and recorded.architecture == wanted.architecture \
            and version_key(wanted.release) <= version_key(recorded.release):
        log(f"already at the stream's latest release {recorded.release}")
        wanted = recorded
    fetch_keyring(settings["keyring"], policy)
    iso, signature = download_paths(wanted.architecture)
    if already_downloaded(recorded, wanted, iso, signature):
        assert recorded is not None
        log(f"{recorded.iso_name} is already downloaded")
        fetched = recorded
    else:
        fetched = fetch_files(wanted, settings["mirror"], policy, progress=progress)
    write_atomic(RELEASE_FILE, fetched.to_json())  # last: it names files that are now complete
    return fetched


@action
def fetch(settings: dict[str, Any], policy: RetryPolicy) -> None:
    fetch_release(settings, policy)


@action
def update(settings: dict[str, Any], policy: RetryPolicy) -> None:
    if settings["release"]:
        log(f"fcos.release pins {settings['release']}: nothing to update "
            "(remove the pin to follow the stream)")
        return
    before = read_recorded()
    after = fetch_release(settings, policy, refresh=True)
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


def task_fetch() -> Iterator[TaskDict]:
    """Download the Fedora CoreOS live ISO, signature and keyring (the recorded or pinned release)."""
    config = config_module.current()
    settings = config.fetch_slice()
    iso, signature = download_paths(config.fcos.architecture)
    keyring = local_keyring_path(config.fcos.keyring)
    policy = retry_policy()
    yield {
        "basename": "fetch",
        "doc": "Download the Fedora CoreOS live ISO, signature and keyring (the recorded or pinned release)",
        "actions": [(fetch, [settings, policy])],
        "file_dep": [keyring] if keyring else [],  # a local keyring file is an input like any other
        "targets": [RELEASE_FILE, KEYRING_FILE, iso, signature],  # no "clean": never delete the ISO
        "uptodate": [config_changed(settings)],
    }
    yield {
        "basename": "update",
        "doc": "Re-read the FCOS stream and download a newer release if there is one (then run doit)",
        "actions": [(update, [settings, policy])],
        "verbosity": 2,
    }
