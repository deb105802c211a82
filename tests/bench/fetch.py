"""Fetch and verify alone, from an empty build/: `doit verify`, and the two actions called directly,
against curl -o (ISO, signature) + gpgv. (It was tests/bench_fetch.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.bench import harness
from tests.bench.harness import Bench, Run
from tests.tools import REPO

ACTIONS = """
from tasks.common import FcosFiles
from tasks.config import Fcos
from tasks.download import RetryPolicy
from tasks.fetch import fetch_release
from tasks.verify import verify_release
files = FcosFiles("x86_64")
fetch_release(Fcos(stream_url={stream_url!r}, keyring={keyring!r}), files, RetryPolicy(), progress=False)
verify_release(files, ({fingerprint!r},))
"""


def run(bench: Bench) -> None:
    project = bench.project
    assert project is not None and bench.mirror_root is not None
    published = project.published
    upstream = [bench.mirror_root / published["iso_relpath"], bench.mirror_root / (published["iso_relpath"] + ".sig")]
    work, library = bench.tmp / "fetch-curl", bench.tmp / "fetch-actions"
    keyring = bench.tmp / "fetch-keyring.gpg"
    gnupg = bench.tmp / "gnupg"
    gnupg.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(["gpg", "--batch", "--yes", "--homedir", os.fspath(gnupg), "--dearmor", "-o", os.fspath(keyring),
                    os.fspath(bench.mirror_root / "keys" / "test.asc")], check=True)

    def with_doit() -> Run:
        shutil.rmtree(project.root / "build", ignore_errors=True)
        harness.settle(*upstream)
        return bench.doit(project, "verify").check("doit verify")

    def actions() -> Run:
        shutil.rmtree(library, ignore_errors=True)
        library.mkdir()
        code = ACTIONS.format(stream_url=published["stream_url"], keyring=published["keyring_url"],
                              fingerprint=published["fingerprint"])
        harness.settle(*upstream)
        return harness.measure([sys.executable, "-c", code], cwd=library,
                       env=dict(os.environ, PYTHONPATH=os.fspath(REPO))).check("fetch_release + verify_release")

    def baseline() -> Run:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        harness.settle(*upstream)
        iso, sig = work / "live.iso", work / "live.iso.sig"
        runs = [harness.measure(argv, cwd=work).check(f"baseline {argv[0]}") for argv in (
            ["curl", "-sSfo", os.fspath(iso), published["iso_url"]],
            ["curl", "-sSfo", os.fspath(sig), published["sig_url"]],
            ["gpgv", "--keyring", os.fspath(keyring), os.fspath(sig), os.fspath(iso)])]
        return Run(["curl+gpgv"], sum(r.seconds for r in runs), max(r.maxrss_kb for r in runs), 0, "", "")

    ours, direct, theirs = harness.interleave(bench.repeats(3), with_doit, actions, baseline)
    for label, runs in (("`doit verify` from an empty build/", ours), ("fetch + verify actions", direct)):
        peak = max(r.maxrss_kb for r in runs) / 1024
        bench.rows.append(harness.compared(label, runs, "curl -o + gpgv", harness.median(theirs),
                                           note=f"peak RSS {peak:.0f} MiB; range {harness.spread(runs)} vs "
                                                f"{harness.spread(theirs)}"))
    shutil.rmtree(project.root / "build", ignore_errors=True)  # the next scenario builds afresh
