"""What every module shares, without doit: build paths, the failure type, running tools, atomic writes.

Paths are relative (doit runs with the dodo.py directory as cwd) so that doit's dependency file stays
valid when build/ is restored into a checkout at another path, as a CI cache does. The ISO tool
(tasks/iso/) and the butane CLI use this module too, so it never imports doit: that is tasks/doit_glue.py.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUILD = Path("build")
DEP_FILE = BUILD / ".doit.json"  # doit's record of what is built: in build/, so a CI cache carries it
FCOS_DIR = BUILD / "fcos"
SECRETS_DIR = BUILD / "secrets"
TOKEN_FILE = SECRETS_DIR / "k3s-token"
AGENT_TOKEN_FILE = SECRETS_DIR / "k3s-agent-token"
# A random name for the token's current value: what render depends on, so that doit's DB (cached in
# CI) records the md5 of this, never the md5 of the token itself.
TOKEN_VERSION_FILE = BUILD / "token-version"
CLUSTER_ID_FILE = SECRETS_DIR / "cluster-id"  # render: the cluster id under the token version it was made for
NODES_DIR = BUILD / "nodes"
CLUSTER_DIR = BUILD / "cluster"  # output: 'cluster': the one live config that carries every node
ISO_DIR = BUILD / "iso"
JSONNET_DIR = Path("jsonnet")
KEYS_DIR = Path("keys")


# --- the failure type ------------------------------------------------------------------------------------

class BuildError(Exception):
    """An expected failure: what went wrong and where (`message`), and what to do (`hint`).

    `str()` is the message alone (as the ISO tool's CLI prints it); `line` is the one line a build prints.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    @property
    def line(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def prefixed(self, where: str) -> BuildError:
        """The same failure, placed: `<where>: <message>`, hint kept."""
        return type(self)(f"{where}: {self.message}", hint=self.hint)


DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


def disk_error(error: OSError, path: Path, *, then: str = "") -> BuildError:
    """A full or read-only disk is the machine's state, not a bug: one line saying what to do."""
    if error.errno == errno.ENOSPC:
        return BuildError(f"disk full while writing {path}", hint=f"free some space, then run doit again{then}")
    return BuildError(f"cannot write {path}: {error.strerror}")


def log(message: str) -> None:
    """Progress for humans: stderr, live at doit's default verbosity."""
    print(f"‣ {message}", file=sys.stderr, flush=True)


# --- running tools -----------------------------------------------------------------------------------------

INSTALL_HINTS = {
    "gpg": "install GnuPG (apt install gnupg / dnf install gnupg2)",
    "gpgv": "install gpgv (apt install gpgv / dnf install gnupg2)",
}


def not_found(tool: str) -> BuildError:
    return BuildError(f"{tool} not found", hint=INSTALL_HINTS.get(tool, f"install {tool} (see README)"))


def run(argv: list[str], *, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run a tool, capturing its output. A missing binary, or (with check) a non-zero exit, is a
    BuildError naming the command, its exit status and the last lines it wrote to stderr."""
    try:
        result = subprocess.run(argv, input=input, capture_output=True, check=False)
    except FileNotFoundError:
        raise not_found(argv[0]) from None
    if check and result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise BuildError(f"{shlex.join(argv)} exited {result.returncode}: {' / '.join(tail) or 'no message'}")
    return result


# --- atomic writes -----------------------------------------------------------------------------------------

def temporary_path(target: Path) -> Path:
    """The one temporary name for target: fixed, so what a SIGKILL leaves behind (no `finally` runs
    then) is reused by the next run, never piled up."""
    return target.with_name(f".{target.name}.part")


@contextmanager
def atomic_path(target: Path, *, mode: int = 0o644, replace: bool = True,
                create_parent: bool = True) -> Iterator[Path]:
    """Yield an empty temporary file beside target, with `mode` whatever the umask; on success it is
    renamed onto target (with replace=False, linked: FileExistsError rather than replace a file).
    A target exists only when complete: Ctrl-C, kill or an error leaves at most the temporary file,
    which the next run overwrites."""
    if create_parent:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(target)
    tmp.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode))
    try:
        os.chmod(tmp, mode)
        yield tmp
        if replace:
            os.replace(tmp, target)
        else:
            os.link(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(target: Path, data: bytes | str, *, mode: int = 0o644, create_parent: bool = True) -> None:
    """Write target via the temporary file and a rename; secrets pass mode=0o600."""
    payload = data.encode() if isinstance(data, str) else data
    with atomic_path(target, mode=mode, create_parent=create_parent) as tmp:
        tmp.write_bytes(payload)


def link_atomic(source: Path, target: Path) -> None:
    """Make target the same file as source (a hard link; a copy across filesystems), atomically."""
    with atomic_path(target) as tmp:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:  # another filesystem, or no hard links
            shutil.copyfile(source, tmp)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks: constant memory whatever its size."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


# --- build paths ---------------------------------------------------------------------------------------

class FcosFiles:
    """Where fetch and verify put the FCOS files of one architecture (static: the task graph is static)."""

    def __init__(self, architecture: str) -> None:
        self.architecture = architecture
        self.dir = FCOS_DIR

    @property
    def release(self) -> Path:  # fetch: what was resolved and downloaded
        return self.dir / "release.json"

    @property
    def keyring(self) -> Path:  # fetch
        return self.dir / "keyring.asc"

    @property
    def downloaded_iso(self) -> Path:  # fetch: not trusted yet
        return self.dir / "download" / f"fedora-coreos-live.{self.architecture}.iso"

    @property
    def downloaded_signature(self) -> Path:  # fetch
        return self.downloaded_iso.with_name(self.downloaded_iso.name + ".sig")

    @property
    def rejected_dir(self) -> Path:  # verify (or fetch, on a sha256 mismatch): one bad download kept aside
        return self.dir / "rejected"

    @property
    def verified_iso(self) -> Path:  # verify: a hard link to the download
        return self.dir / f"fedora-coreos-live.{self.architecture}.iso"

    @property
    def verified_stamp(self) -> Path:  # verify: what the verified ISO is (release, sha256, signer)
        return self.dir / "verified.json"


class NodeFiles:
    """Where each step puts a node's files (and a live image's: a node's own, or the cluster's under
    build/cluster/): one place, so that steps agree on their inputs."""

    def __init__(self, node: str, *, root: Path = NODES_DIR) -> None:
        self.dir = root / node

    @classmethod
    def of_image(cls, name: str, *, cluster: bool) -> NodeFiles:
        return cls(name, root=CLUSTER_DIR) if cluster else cls(name)

    @property
    def installed_butane(self) -> Path:  # render
        return self.dir / "k3s-autoinstall.bu"

    @property
    def live_butane(self) -> Path:  # render
        return self.dir / "coreos-autoinstall.fcc"

    @property
    def installed_ignition(self) -> Path:  # butane, stage 1
        return self.dir / "k3s-autoinstall.ign"

    @property
    def inlined_live_butane(self) -> Path:  # inline
        return self.dir / "inline" / "coreos-autoinstall.fcc"

    @property
    def live_ignition(self) -> Path:  # butane, stage 2
        return self.dir / "coreos-autoinstall.ign"

    @property
    def iso_record(self) -> Path:  # embed: the output ISO's SHA256SUMS line and what it was made from
        return self.dir / "iso.json"


def output_iso(iso_name: str) -> Path:  # embed
    return ISO_DIR / f"{iso_name}.iso"


SHA256SUMS = ISO_DIR / "SHA256SUMS"  # embed
