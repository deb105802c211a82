"""What every step shares: relative build paths, expected failures, atomic writes, subprocesses.

Paths are relative (doit runs with the dodo.py directory as cwd) so that doit's dependency file stays
valid when build/ is restored into a checkout at another path, as a CI cache does.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from doit.exceptions import TaskFailed

TaskDict = dict[str, Any]

BUILD = Path("build")
DEP_FILE = BUILD / ".doit.json"  # doit's record of what is built: in build/, so a CI cache carries it
FCOS_DIR = BUILD / "fcos"
SECRETS_DIR = BUILD / "secrets"
TOKEN_FILE = SECRETS_DIR / "k3s-token"
AGENT_TOKEN_FILE = SECRETS_DIR / "k3s-agent-token"
# A random name for the token's current value: what render depends on, so that doit's DB (cached in
# CI) records the md5 of this, never the md5 of the token itself.
TOKEN_VERSION_FILE = BUILD / "token-version"
NODES_DIR = BUILD / "nodes"
ISO_DIR = BUILD / "iso"
JSONNET_DIR = Path("jsonnet")
KEYS_DIR = Path("keys")

P = ParamSpec("P")
R = TypeVar("R")


class BuildError(Exception):
    """An expected failure: one line saying what went wrong and where, plus what to do."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES)


def disk_error(error: OSError, path: Path, *, then: str = "") -> BuildError:
    """A full or read-only disk is the machine's state, not a bug: one line saying what to do."""
    if error.errno == errno.ENOSPC:
        return BuildError(f"disk full while writing {path}", hint=f"free some space, then run doit again{then}")
    return BuildError(f"cannot write {path}: {error.strerror}")


def action(func: Callable[P, R]) -> Callable[P, R | TaskFailed]:
    """A doit python-action: an expected failure becomes one clear `‣ error:` line on stderr (doit
    repeats it on stdout in its summary, naming the task); a bug keeps its traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | TaskFailed:
        try:
            return func(*args, **kwargs)
        except BuildError as error:
            failure = error
        except OSError as error:
            if error.errno not in DISK_ERRORS:
                raise
            failure = disk_error(error, Path(error.filename or "build/"))
        log(f"error: {failure}")
        return TaskFailed(str(failure))

    return wrapper


def log(message: str) -> None:
    """Progress for humans: stderr, live at doit's default verbosity."""
    print(f"‣ {message}", file=sys.stderr, flush=True)


def run(argv: list[str], *, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
    """Run a tool; a missing binary or a failure becomes a BuildError naming the command."""
    try:
        result = subprocess.run(argv, input=input, capture_output=True, check=False, env=env)
    except FileNotFoundError:
        raise BuildError(f"{argv[0]} not found", hint=f"install {argv[0]} (see README)") from None
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise BuildError(f"{shlex.join(argv)} exited {result.returncode}: {' / '.join(tail)}")
    return result.stdout.decode(errors="replace")


@contextmanager
def atomic_path(target: Path, *, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path beside target; on success it is renamed onto target.

    A target exists only when complete: Ctrl-C, kill or an error leaves at most the temporary file,
    which the next run overwrites.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    # A fixed name: what a SIGKILL leaves behind (no `finally` runs then) is reused, not piled up.
    tmp = target.with_name(f".{target.name}.part")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    os.close(fd)
    try:
        os.chmod(tmp, mode)  # whatever the umask
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks: constant memory whatever its size."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def write_atomic(target: Path, data: bytes | str, *, mode: int = 0o644) -> None:
    """Write target via a temporary file and a rename; secrets pass mode=0o600."""
    payload = data.encode() if isinstance(data, str) else data
    with atomic_path(target, mode=mode) as tmp:
        tmp.write_bytes(payload)


class NodeFiles:
    """Where each step puts a node's files: one place, so that steps agree on their inputs."""

    def __init__(self, node: str) -> None:
        self.dir = NODES_DIR / node

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
