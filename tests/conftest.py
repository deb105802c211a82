"""Fixtures shared by several test modules (helpers that are plain functions live in tests/tools.py)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fcos_site import ISO_SIZE, Site, fcos_for
from tests.mirror import Mirror, publish_fcos
from tests.signing import SigningKey
from tests.synthetic_iso import build_fcos_iso


def pytest_configure(config: pytest.Config) -> None:
    # Run from a background job (`bash .ci/run &`, nohup), the tests inherit an ignored SIGINT, and so
    # would every doit and boot script they start: the Ctrl-C tests would then test nothing but a hang.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def signing_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate(tmp_path_factory.mktemp("signer"))


@pytest.fixture(scope="session")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.generate(tmp_path_factory.mktemp("other"), name="Someone Else")


@pytest.fixture(scope="session")
def iso_bytes() -> bytes:
    return os.urandom(ISO_SIZE)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signing_key: SigningKey, iso_bytes: bytes) -> Iterator[Site]:
    """A mirror serving a signed 3 MB "ISO", and a fresh project directory as cwd."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    iso = tmp_path / "fcos.iso"
    iso.write_bytes(iso_bytes)
    with Mirror(tmp_path / "mirror") as mirror:
        published = publish_fcos(mirror.root, iso, signing_key, base_url=mirror.url(""))
        yield Site(mirror=mirror, key=signing_key, iso=iso, published=published,
                   fcos=fcos_for(published), project=project)




@pytest.fixture
def fcos_iso(tmp_path: Path) -> Path:
    """A small synthetic FCOS live ISO, laid out as coreos-assembler lays out the real one."""
    path = tmp_path / "fcos.iso"
    build_fcos_iso(path)
    return path
