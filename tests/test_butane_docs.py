"""Every Butane example of the Fedora CoreOS docs and of Butane's own docs, against Butane v0.29.0.

``../shared/fixtures/butane-docs/`` holds each example (``NAME.bu``) with the reference Butane's exit
status, stderr and output, with ``--strict`` (``NAME.rc`` ...) and without (``NAME.nostrict.rc`` ...); see
its SOURCE.md. Each example must give the same exit status and stderr, and output equal by content: data
URLs are decoded before comparing, because gzip bytes differ between Go and Python (the choice of gzip
or not must still be Butane's).

Run as a script to print the count: ``.venv/bin/python tests/test_butane_docs.py``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import os
import shutil
import stat
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # when run as a script
    sys.path.insert(0, str(REPO))

from butane.__main__ import main  # noqa: E402

DOCS = REPO.parent / "shared" / "fixtures" / "butane-docs"
EXAMPLES = sorted(path.stem for path in DOCS.glob("*.bu")) if DOCS.is_dir() else []
TREE_SYMLINK = Path("tree/directory/symlink")


def files_dir_copy(target: Path) -> Path:
    """The examples' files directory, as SOURCE.md describes it.

    SOURCE.md says ``tree/directory/symlink -> ../file``; a copy of the fixtures that lost the link
    (a regular file holding the target's name) would make butane-examples-08 and
    butane-upgrading-fcos-20 produce a file where Butane produced a link, so the link is restored
    here. A copy that kept it is used as is.
    """
    files = target / "files"
    shutil.copytree(DOCS / "files", files, symlinks=True)
    for directory, _, _ in os.walk(files):
        os.chmod(directory, os.stat(directory).st_mode | stat.S_IWUSR)
    link = files / TREE_SYMLINK
    if link.is_file() and not link.is_symlink():
        link_target = link.read_text().strip()
        link.unlink()
        link.symlink_to(link_target)
    return files


def decoded(value: Any) -> Any:
    """The Ignition config with every data URL replaced by its decoded (and gunzipped) bytes."""
    if isinstance(value, list):
        return [decoded(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {key: decoded(item) for key, item in value.items()}
    source = value.get("source")
    if isinstance(source, str) and source.startswith("data:"):
        meta, _, payload = source[len("data:") :].partition(",")
        data = base64.b64decode(payload) if meta.endswith(";base64") else urllib.parse.unquote_to_bytes(payload)
        if value.get("compression") == "gzip":
            data = gzip.decompress(data)
        out["source"] = ("data", data)
    return out


def run_example(name: str, strict: bool, files: Path) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of ``butane [--strict] -d FILES NAME.bu``."""
    args = ["-d", str(files), str(DOCS / f"{name}.bu")] + (["--strict"] if strict else [])
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main(args)
    return status, stdout.getvalue(), stderr.getvalue()


def differences(name: str, strict: bool, files: Path) -> list[str]:
    """What differs from Butane v0.29.0 for one example and mode (empty: identical)."""
    suffix = "" if strict else ".nostrict"
    want_status = int((DOCS / f"{name}{suffix}.rc").read_text())
    stderr_file = DOCS / f"{name}{suffix}.stderr"
    want_stderr = stderr_file.read_text() if stderr_file.exists() else ""
    output_file = DOCS / f"{name}{suffix}.out.json"
    status, stdout, stderr = run_example(name, strict, files)
    problems = []
    if status != want_status:
        problems.append(f"exit status {status}, Butane {want_status}")
    if stderr != want_stderr:
        problems.append(f"stderr {stderr!r}, Butane {want_stderr!r}")
    if output_file.exists() and status == 0:
        want = json.loads(output_file.read_text())
        if decoded(json.loads(stdout)) != decoded(want):
            problems.append(f"output {stdout.strip()}\n  Butane {json.dumps(want, separators=(',', ':'))}")
    return problems


@pytest.fixture(scope="module")
def docs_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return files_dir_copy(tmp_path_factory.mktemp("butane-docs"))


@pytest.mark.skipif(not DOCS.is_dir(), reason=f"{DOCS} is absent (the shared fixtures are not beside the checkout)")
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "nostrict"])
@pytest.mark.parametrize("name", EXAMPLES or ["none"])
def test_docs_example_matches_butane(name: str, strict: bool, docs_files: Path) -> None:
    assert differences(name, strict, docs_files) == []


@pytest.mark.skipif(not DOCS.is_dir(), reason=f"{DOCS} is absent (the shared fixtures are not beside the checkout)")
def test_docs_corpus_is_complete() -> None:
    # SOURCE.md: 99 fedora-coreos-docs blocks and 27 + 1 + 27 from Butane's docs
    assert len(EXAMPLES) == 154


def report() -> int:
    import tempfile

    with tempfile.TemporaryDirectory() as temp:
        files = files_dir_copy(Path(temp))
        identical = 0
        for name in EXAMPLES:
            problems = [f"{mode}: {p}" for mode, strict in (("--strict", True), ("no --strict", False))
                        for p in differences(name, strict, files)]
            if problems:
                print(f"{name}:\n  " + "\n  ".join(problems))
            else:
                identical += 1
        print(f"{identical} of {len(EXAMPLES)} docs examples identical to Butane v0.29.0")
    return 0 if identical == len(EXAMPLES) else 1


if __name__ == "__main__":
    sys.exit(report())
