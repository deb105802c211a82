"""Helpers every test module shares: real tools, the shared fixtures directory, SSH keys, sha256, data URLs.

A test that needs a tool the machine lacks skips with the reason, except in CI (CI=true), where
.ci/run has installed every tool: there a missing tool is a failure, never a silent skip. Tests of
the real data in ../shared skip, saying why, only where ../shared is absent.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require_tool(*names: str) -> None:
    """Skip (locally) or fail (in CI) unless every named executable is on PATH."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    reason = f"needs {', '.join(missing)} (Debian: see .ci/run)"
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def shared_dir(*parts: str) -> Path:
    """Path inside ../shared, skipping (with the reason) where ../shared is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():  # a skip even in CI: a plain GitHub checkout has no ../shared
        pytest.skip(f"{path} absent: the shared fixtures are not beside this checkout")
    return path


def require_root() -> None:
    if os.geteuid() == 0:
        return
    if IN_CI:
        pytest.fail("CI=true but not running as root")
    pytest.skip("needs root")


def ssh_keygen(path: Path, comment: str = "test", *, keep_private: bool = False) -> str:
    """A real ed25519 key pair at path and path.pub; returns the public key line. The private half is
    deleted unless asked for: only public keys belong in keys/."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", os.fspath(path)],
                   check=True)
    if not keep_private:
        path.unlink()
    return path.with_suffix(".pub").read_text().strip()


def sha256_file(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def decode_data_url(url: str) -> bytes:
    """The contents of an Ignition `data:` source (percent-escaped or base64)."""
    match = re.match(r"^data:([^,]*),(.*)$", url, re.S)
    assert match, url
    meta, payload = match.groups()
    return base64.b64decode(payload) if meta.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
