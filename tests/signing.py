"""Throw-away OpenPGP signing keys for tests: gpg in a private temporary home, no passphrase.

    key = SigningKey.generate(tmp_path)
    sig = key.sign(iso)                      # <iso>.sig, binary detached, signature class 0x00
    key.sign(iso, armor=True, textmode=True) # armored, canonical-text signature (class 0x01)
    key.fingerprint, key.public_armored      # what a config pins / what a keyring holds

The GnuPG home lives in a short directory under the system temp dir (gpg-agent's socket path must
stay under 108 bytes, which deep pytest tmp_paths can exceed); the armored public key is also
written to `<directory>/<fingerprint>.asc` for convenience. Agents are stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

_HOMES: list[Path] = []


def _gpg(home: Path, *args: str, input: bytes | None = None) -> bytes:
    result = subprocess.run(["gpg", "--homedir", os.fspath(home), "--batch", "--yes", "--quiet", *args],
                            input=input, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"gpg {' '.join(args)} exited {result.returncode}: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return result.stdout


@atexit.register
def _stop_agents() -> None:
    for home in _HOMES:
        subprocess.run(["gpgconf", "--homedir", os.fspath(home), "--kill", "all"],
                       capture_output=True, check=False)
        shutil.rmtree(home, ignore_errors=True)


@dataclass(frozen=True)
class SigningKey:
    home: Path
    name: str
    fingerprint: str
    public_armored: bytes

    @classmethod
    def generate(cls, directory: Path, name: str = "Test Signer", *,
                 algorithm: str = "ed25519") -> SigningKey:
        """A fresh signing-only key (no passphrase, no expiry); `algorithm` e.g. "ed25519", "rsa2048"."""
        home = Path(tempfile.mkdtemp(prefix="gpg-"))
        home.chmod(0o700)
        _HOMES.append(home)
        email = name.lower().replace(" ", "-") + "@example.test"
        _gpg(home, "--passphrase", "", "--pinentry-mode", "loopback",
             "--quick-gen-key", f"{name} <{email}>", algorithm, "sign", "never")
        fingerprint = cls._primary_fingerprint(home)
        public = _gpg(home, "--armor", "--export", fingerprint)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{fingerprint}.asc").write_bytes(public)
        return cls(home=home, name=name, fingerprint=fingerprint, public_armored=public)

    @staticmethod
    def _primary_fingerprint(home: Path) -> str:
        lines = _gpg(home, "--with-colons", "--list-secret-keys").decode().splitlines()
        for previous, line in zip(lines, lines[1:], strict=False):
            if previous.startswith("sec:") and line.startswith("fpr:"):
                return line.split(":")[9]
        raise RuntimeError(f"no secret key in {home}")

    def sign(self, path: Path, *, armor: bool = False, textmode: bool = False,
             output: Path | None = None) -> Path:
        """Write a detached signature of path to `<path>.sig` (or output) and return it."""
        signature = output or path.with_name(path.name + ".sig")
        args = ["--local-user", self.fingerprint, "--digest-algo", "SHA256", "--detach-sign"]
        if armor:
            args.append("--armor")
        if textmode:
            args.append("--textmode")
        _gpg(self.home, *args, "--output", os.fspath(signature), os.fspath(path))
        return signature
