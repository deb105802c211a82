"""A local FCOS download site for the fetch and verify tests: a mirror on 127.0.0.1 serving a signed
"ISO", used from a fresh project directory (the build paths are relative). The `site` fixture is in
conftest.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tasks.common import BuildError, FcosFiles
from tasks.config import Fcos
from tasks.download import RetryPolicy
from tasks.fetch import fetch_release
from tasks.release import Release
from tasks.verify import verify_release
from tests.mirror import Mirror, publish_fcos
from tests.signing import SigningKey

POLICY = RetryPolicy(attempts=3, backoff=0.01, timeout=5)
RELEASE = "44.20260707.3.1"
NEWER = "44.20260721.3.0"
ISO_SIZE = 3_000_000
FILES = FcosFiles("x86_64")


@dataclass
class Site:
    mirror: Mirror
    key: SigningKey
    iso: Path  # the pristine ISO as published
    published: dict[str, str]
    fcos: Fcos
    project: Path

    @property
    def iso_rel(self) -> str:
        return self.published["iso_relpath"]

    def fetch(self, **kwargs: Any) -> Release:
        return fetch_release(self.fcos, FILES, POLICY, **kwargs)

    def verify(self, pinned: tuple[str, ...] | None = None) -> dict[str, Any]:
        return verify_release(FILES, pinned or (self.key.fingerprint,))

    def publish(self, iso: Path, **kwargs: Any) -> dict[str, str]:
        kwargs.setdefault("base_url", self.mirror.url(""))
        self.published = publish_fcos(self.mirror.root, iso, kwargs.pop("key", self.key), **kwargs)
        return self.published


def fcos_for(published: dict[str, str]) -> Fcos:
    return Fcos(stream_url=published["stream_url"], keyring=published["keyring_url"])


def one_line_error(excinfo: pytest.ExceptionInfo[BuildError], *needles: str) -> str:
    text = excinfo.value.line  # what the user sees: the message and the hint
    assert "\n" not in text, text
    for needle in needles:
        assert needle in text, text
    return text


def assert_nothing_verified() -> None:
    assert not FILES.verified_iso.exists()
    assert not FILES.verified_stamp.exists()


