"""Step 2, verify: trust the downloaded ISO only after its sha256 and its Fedora signature check out.

The signature is checked with gpgv against a keyring holding *only* the keys pinned by full
fingerprint in `fcos.fingerprints` (exported from the fetched keyring in a throw-away GnuPG home),
and gpgv's `VALIDSIG` status line must name a pinned key (a signing subkey counts as its primary)
with a SHA-256 or stronger digest. Binary and text-mode signatures, armored or not, all work: gpgv
handles them. The sha256 is computed while gpgv runs (one read of the ISO each, in parallel) and
compared with the stream metadata's.

Usually that check has already happened: fetch feeds the ISO to gpgv while it downloads
(`StreamedCheck`) and records gpgv's verdict with the sha256 of the bytes fed. verify accepts that
record only while it covers the files as they are (the same pinned keys, signature and keyring,
the ISO's size and mtime unchanged), so a cold build reads the ISO once; otherwise it checks again.

Only then is the ISO published, at static paths downstream tasks depend on:
build/fcos/fedora-coreos-live.<arch>.iso (a hard link to the download, so no copy) and
build/fcos/verified.json (release, sha256, signer…: it changes whenever the ISO does).
A failed check leaves any earlier verified ISO alone and moves the download aside to
build/fcos/rejected/REJECTED-<name>, so the next fetch downloads it afresh.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import queue
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doit.tools import config_changed

from tasks import config as config_module
from tasks.common import BuildError, FcosFiles, link_atomic, log, not_found, run, sha256_file, write_atomic
from tasks.doit_glue import TaskDict, action
from tasks.release import Release, read_recorded, set_aside

STRONG_DIGESTS = {8: "SHA256", 9: "SHA384", 10: "SHA512"}  # OpenPGP hash algorithm ids


@dataclass(frozen=True)
class Key:
    primary: str  # fingerprint of the primary key
    fingerprints: tuple[str, ...]  # primary and subkeys
    uid: str


@dataclass(frozen=True)
class GoodSignature:
    signer: str  # primary fingerprint of the key that signed
    signing_key: str  # the (sub)key that made the signature
    digest: str


# --- pure parsing ----------------------------------------------------------------------------------------

def parse_key_listing(colons: str) -> list[Key]:
    """`gpg --with-colons --list-keys` → keys with their primary and subkey fingerprints."""
    keys: list[Key] = []
    fingerprints: list[str] = []  # the first fpr after "pub" is the primary's, then the subkeys'
    uid = ""

    def flush() -> None:
        if fingerprints:
            keys.append(Key(primary=fingerprints[0], fingerprints=tuple(fingerprints), uid=uid))

    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] == "pub":
            flush()
            fingerprints, uid = [], ""
        elif fields[0] == "fpr" and len(fields) > 9:
            fingerprints.append(fields[9].upper())
        elif fields[0] == "uid" and not uid and len(fields) > 9:
            uid = fields[9]
    flush()
    return keys


def trusted_keys(keys: Iterable[Key], pinned: Iterable[str]) -> list[Key]:
    """Keys whose primary or one of whose subkeys is pinned by full fingerprint."""
    wanted = {fp.upper() for fp in pinned}
    return [key for key in keys if wanted & set(key.fingerprints)]


def status_lines(status: str) -> list[list[str]]:
    return [line.split()[1:] for line in status.splitlines() if line.startswith("[GNUPG:] ")]


def good_signature(status: str, pinned: Iterable[str]) -> GoodSignature | None:
    """The VALIDSIG by a pinned key with a strong digest, if gpgv's status output has one."""
    wanted = {fp.upper() for fp in pinned}
    for words in status_lines(status):
        # VALIDSIG <fpr> <date> <timestamp> <expire> <version> <reserved> <pk-algo> <hash-algo> <class>
        #          <primary fpr>
        if words[0] == "VALIDSIG" and len(words) >= 11:
            key, primary, digest = words[1].upper(), words[10].upper(), int(words[8])
            if (primary in wanted or key in wanted) and digest in STRONG_DIGESTS:
                return GoodSignature(signer=primary, signing_key=key, digest=STRONG_DIGESTS[digest])
    return None


def explain_failure(status: str, stderr: str, *, iso: Path, signature: Path, keys: list[Key],
                    pinned: tuple[str, ...]) -> str:
    """One line saying why gpgv did not accept the signature."""
    words_list = status_lines(status)
    kinds = {words[0]: words for words in words_list}
    if "BADSIG" in kinds:
        return (f"BAD signature: {iso} does not match {signature} (key {kinds['BADSIG'][1]}): "
                "corrupt or tampered")
    if "NODATA" in kinds or "NO_DATA" in kinds:
        return f"{signature} holds no OpenPGP signature"
    if "NO_PUBKEY" in kinds or ("ERRSIG" in kinds and kinds["ERRSIG"][6:7] == ["9"]):
        errsig = kinds.get("ERRSIG", [])
        issuer = (errsig[7] if len(errsig) > 7 and errsig[7] != "-" else "") or \
            (kinds.get("NO_PUBKEY") or errsig)[1]
        issuer = issuer.upper()
        known = [key for key in keys if any(fp.endswith(issuer) for fp in key.fingerprints)]
        where = (f"in the keyring as {known[0].primary} {known[0].uid!r} but not pinned in fcos.fingerprints"
                 if known else "not in the keyring")
        return f"{signature} is signed by key {issuer}, which is not trusted ({where})"
    for words in words_list:
        if words[0] in ("EXPKEYSIG", "REVKEYSIG", "EXPSIG"):
            return f"{signature}: {words[0]} (the signing key is expired or revoked)"
        if words[0] == "VALIDSIG" and len(words) >= 9 and int(words[8]) not in STRONG_DIGESTS:
            return (f"{signature} uses a weak digest (OpenPGP hash algorithm {words[8]}); "
                    "SHA-256 or better required")
    tail = stderr.strip().splitlines()[-1:] or ["no details"]
    return f"gpgv did not accept {signature}: {tail[0]}"


# --- gpg ---------------------------------------------------------------------------------------------

def gpg(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """gpg in a throw-away home; a failure is reported as gpg's, never taken for an answer."""
    return run(["gpg", "--homedir", os.fspath(home), "--batch", "--no-autostart", "--no-tty", *args], check=check)


def keys_in(keyring: Path, home: Path) -> list[Key]:
    # Not checked: gpg exits 2 when it skips a key it cannot use; the listing says what was imported.
    imported = gpg(home, "--import", os.fspath(keyring), check=False)
    listing = gpg(home, "--with-colons", "--fingerprint", "--fingerprint", "--list-keys")
    keys = parse_key_listing(listing.stdout.decode(errors="replace"))
    if not keys:
        detail = imported.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise BuildError(f"keyring {keyring} holds no usable OpenPGP public key ({detail[0]})",
                         hint="check fcos.keyring")
    return keys


def trusted_keyring(keyring: Path, home: Path, pinned: tuple[str, ...]) -> tuple[list[Key], Path]:
    """The keyring's keys, and a keyring file in home holding only the pinned ones (for gpgv)."""
    keys = keys_in(keyring, home)
    trusted = trusted_keys(keys, pinned)
    if not trusted:
        present = ", ".join(key.primary for key in keys)
        raise BuildError(f"none of the {len(pinned)} keys pinned in fcos.fingerprints is in the keyring "
                         f"{keyring} (it holds {present})",
                         hint="check fcos.keyring and fcos.fingerprints")
    exported = gpg(home, "--export", *(key.primary for key in trusted)).stdout
    if not exported:
        raise BuildError(f"gpg exported nothing for the pinned keys {', '.join(k.primary for k in trusted)}")
    trusted_ring = home / "trusted.gpg"
    trusted_ring.write_bytes(exported)
    return keys, trusted_ring


def gpgv_argv(home: Path, trusted_ring: Path, signature: Path, data: str) -> list[str]:
    """gpgv with only the pinned keys; data "-" reads the signed file from stdin."""
    return ["gpgv", "--homedir", os.fspath(home), "--status-fd", "1",
            "--keyring", os.fspath(trusted_ring), os.fspath(signature), data]


def check_signature(iso: Path, signature: Path, keyring: Path,
                    pinned: tuple[str, ...]) -> tuple[GoodSignature, str]:
    """Run gpgv with only the pinned keys while hashing the ISO; return the signature and the sha256."""
    with tempfile.TemporaryDirectory(prefix="fcos-gpg-") as tmp:
        home = Path(tmp)
        home.chmod(0o700)
        keys, trusted_ring = trusted_keyring(keyring, home, pinned)
        argv = gpgv_argv(home, trusted_ring, signature, os.fspath(iso))
        try:
            gpgv = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except FileNotFoundError:
            raise not_found("gpgv") from None
        try:
            sha256 = sha256_file(iso)  # meanwhile: gpgv and hashlib each read the file on their own core
        finally:
            out, err = gpgv.communicate()
        status, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        good = good_signature(status, pinned) if gpgv.returncode == 0 else None
        if good is None:
            raise VerificationError(explain_failure(status, stderr, iso=iso, signature=signature, keys=keys,
                                                    pinned=pinned))
        return good, sha256


class StreamedCheck:
    """gpgv fed the ISO while it downloads (coreos-installer holds data back the same way), so the
    download, its sha256 and the signature check overlap instead of reading 800 MB three times.

    Best effort: any problem (no gpgv, a keyring without the pinned keys, a bad signature, a restarted
    download) just yields no result, and verify then checks the file on disk, with its usual errors.
    The result vouches only for the bytes fed, in order; fetch records it with their sha256.
    """

    QUEUED_CHUNKS = 16  # chunks waiting for gpgv: bounded memory when gpgv is slower than the network

    def __init__(self, keyring: Path, signature: bytes, pinned: tuple[str, ...]) -> None:
        self.pinned = pinned
        self.queue: queue.Queue[bytes | None] = queue.Queue(self.QUEUED_CHUNKS)
        self.process: subprocess.Popen[bytes] | None = None
        self.failed = False
        self.closing = False  # close() was called: the writer stops whatever the queue holds
        self.writer: threading.Thread | None = None
        self.tmp = tempfile.TemporaryDirectory(prefix="fcos-gpg-")
        home = Path(self.tmp.name)
        home.chmod(0o700)
        try:
            _, trusted_ring = trusted_keyring(keyring, home, pinned)
            sig = home / "iso.sig"
            sig.write_bytes(signature)
            self.process = subprocess.Popen(gpgv_argv(home, trusted_ring, sig, "-"), stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert self.process.stdin is not None
            widen_pipe(self.process.stdin.fileno())
        except (BuildError, OSError):
            self.abandon()
            return
        self.writer = threading.Thread(target=self._pump, daemon=True)
        self.writer.start()

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdin is not None
        stdin = self.process.stdin
        while not self.closing:
            try:
                # Not a plain get(): a Ctrl-C in the main thread midway through a put() can lose the
                # wakeup, and then close() would wait for this thread forever.
                chunk = self.queue.get(timeout=WRITER_POLL_SECONDS)
            except queue.Empty:
                continue
            if chunk is None:
                break
            if self.failed:
                continue  # drain, so feed() never blocks
            try:
                stdin.write(chunk)
            except OSError:  # gpgv gave up early (a broken signature): the check has failed
                self.failed = True
        try:
            stdin.close()
        except OSError:
            self.failed = True

    def feed(self, chunk: bytes) -> None:
        if not self.failed and self.process is not None:
            self.queue.put(chunk)

    def abandon(self) -> None:
        """The bytes fed are not the file any more (a restarted download): no result."""
        self.failed = True
        self.close()

    def finish(self) -> GoodSignature | None:
        """gpgv's verdict on everything fed."""
        if self.failed or self.process is None:
            self.close()
            return None
        assert self.writer is not None
        self.queue.put(None)
        self.writer.join()
        self.writer = None
        out = self.process.stdout.read() if self.process.stdout else b""
        good = None
        if self.process.wait() == 0 and not self.failed:
            good = good_signature(out.decode(errors="replace"), self.pinned)
        self.close()
        return good

    def close(self) -> None:
        if self.process is not None:
            self.closing = True
            if self.process.poll() is None:
                self.process.kill()  # a writer blocked on the pipe gets EPIPE
            if self.writer is not None:  # it sees `closing` within WRITER_POLL_SECONDS
                self.writer.join()
                self.writer = None
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
            self.process = None
        self.tmp.cleanup()


WRITER_POLL_SECONDS = 0.2
PIPE_BYTES = 1 << 20  # Linux's default cap (fs.pipe-max-size)


def widen_pipe(fd: int) -> None:
    """A 1 MiB pipe instead of 64 KiB: gpgv then wakes once per chunk rather than sixteen times
    (measured: an 800 MB feed 3.0-3.3 s instead of 3.8-4.0 s). Best effort: a smaller cap is fine."""
    with contextlib.suppress(OSError, AttributeError):
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def pinned_record(pinned: tuple[str, ...]) -> list[str]:
    """The pinned fingerprints as fetch records them and verify compares them: order and case ignored."""
    return sorted(fp.upper() for fp in pinned)


def streamed_record(good: GoodSignature, pinned: tuple[str, ...], signature: bytes, keyring: Path,
                    iso: Path, sha256: str) -> dict[str, Any]:
    """What fetch records about a check made while downloading: enough for verify to see that it
    still applies (same pinned keys, signature, keyring and file) without reading the ISO again."""
    done = iso.stat()
    return {"signer": good.signer, "signing_key": good.signing_key, "digest": good.digest,
            "pinned": pinned_record(pinned), "signature_sha256": hashlib.sha256(signature).hexdigest(),
            "keyring_sha256": sha256_file(keyring), "sha256": sha256, "size": done.st_size,
            "mtime_ns": done.st_mtime_ns}


def streamed_result(release: Release, files: FcosFiles, pinned: tuple[str, ...]) -> tuple[GoodSignature, str] | None:
    """The signature check made while downloading, if it covers the files as they are now."""
    record = release.streamed_check
    if not record or release.downloaded_sha256 != record.get("sha256"):
        return None
    try:
        iso = files.downloaded_iso.stat()
        same = (record.get("pinned") == pinned_record(pinned)
                and record.get("signature_sha256") == sha256_file(files.downloaded_signature)
                and record.get("keyring_sha256") == sha256_file(files.keyring)
                and (record.get("size"), record.get("mtime_ns")) == (iso.st_size, iso.st_mtime_ns))
    except OSError:
        return None
    if not same:
        return None
    good = GoodSignature(signer=record["signer"], signing_key=record["signing_key"], digest=record["digest"])
    return good, record["sha256"]


class VerificationError(BuildError):
    """The download itself is bad: it gets moved aside."""


# --- publishing ------------------------------------------------------------------------------------------

def stamp_content(release: Release, sha256: str, good: GoodSignature) -> dict[str, Any]:
    """What the verified ISO is; no timestamps, so re-verifying the same ISO changes nothing downstream."""
    return {"release": release.release, "stream": release.stream, "architecture": release.architecture,
            "iso_name": release.iso_name, "sha256": sha256, "sha256_source": release.sha256_source,
            "signer": good.signer, "signing_key": good.signing_key, "digest": good.digest,
            "source": release.location, "size": release.size}


def verify_release(files: FcosFiles, pinned: tuple[str, ...]) -> dict[str, Any]:
    release = read_recorded(files.release)
    if release is None:
        raise BuildError(f"{files.release} is missing or unreadable", hint="run `doit fetch`")
    iso, signature, keyring = files.downloaded_iso, files.downloaded_signature, files.keyring
    for needed in (iso, signature, keyring):
        if not needed.is_file():
            raise BuildError(f"{needed} is missing", hint="run `doit fetch`")
    expected = release.sha256 or release.downloaded_sha256
    try:
        good, sha256 = streamed_result(release, files, pinned) or check_signature(iso, signature, keyring, pinned)
        if expected and sha256 != expected:
            raise VerificationError(f"sha256 mismatch: {iso} has {sha256}, the {release.sha256_source} says "
                                    f"{expected}")
    except VerificationError as error:
        rejected = set_aside(files, iso, signature, release.iso_name, error.message)
        raise BuildError(f"{error.message}; moved aside to {rejected}",
                         hint="run doit again to download afresh; "
                              "if it repeats, do not trust the source") from None
    if not release.sha256:
        log(f"{release.iso_name}: no published sha256 for this release; the signature alone vouches for it")
    link_atomic(iso, files.verified_iso)
    content = stamp_content(release, sha256, good)
    write_atomic(files.verified_stamp, json.dumps(content, indent=2, sort_keys=True) + "\n")
    log(f"verified {release.iso_name}: sha256 {sha256}, signed by {good.signer} ({good.digest})")
    return content


@action
def verify(files: FcosFiles, pinned: tuple[str, ...]) -> None:
    verify_release(files, pinned)


def task_verify() -> TaskDict:
    """Check the ISO's sha256 and Fedora signature (pinned keys only), then publish it for embed."""
    fcos = config_module.current().fcos
    files = FcosFiles(fcos.architecture)
    return {
        "actions": [(verify, [files, fcos.fingerprints])],
        # Not the ISO itself: release.json names it by the sha256 computed while downloading, so doit
        # need not md5 800 MB to notice a new download (1-2 s per run that records it).
        "file_dep": [files.release, files.keyring, files.downloaded_signature],
        "targets": [files.verified_iso, files.verified_stamp],  # no "clean": never delete the verified ISO
        "uptodate": [config_changed({"fingerprints": list(fcos.fingerprints)})],
    }
