"""`doit` from an empty build/ against curl -o + gpgv + cp, with the time per doit step."""

from __future__ import annotations

import os
import shutil
import statistics
from pathlib import Path

from tests.bench import harness
from tests.bench.harness import Bench, Run


def baseline_steps(work: Path, gnupg: Path, published: dict[str, str]) -> list[tuple[str, list[str]]]:
    """What a person would do by hand, each with the tool it counts for: download, check, copy."""
    iso, sig, ring, keyring = work / "live.iso", work / "live.iso.sig", work / "keyring.asc", work / "keyring.gpg"
    return [
        ("curl", ["curl", "-sSfo", os.fspath(work / "stream.json"), published["stream_url"]]),
        ("curl", ["curl", "-sSfo", os.fspath(ring), published["keyring_url"]]),
        ("curl", ["curl", "-sSfo", os.fspath(sig), published["sig_url"]]),
        ("curl", ["curl", "-sSfo", os.fspath(iso), published["iso_url"]]),
        ("gpgv", ["gpg", "--batch", "--homedir", os.fspath(gnupg), "--dearmor", "-o", os.fspath(keyring),
                  os.fspath(ring)]),
        ("gpgv", ["gpgv", "--keyring", os.fspath(keyring), os.fspath(sig), os.fspath(iso)]),
        ("cp", ["cp", os.fspath(iso), os.fspath(work / f"{harness.NODE}.iso")]),
    ]


def run(bench: Bench) -> None:
    assert bench.project is not None
    project = bench.project
    published = project.published
    work = bench.tmp / "curl"
    work.mkdir(exist_ok=True)
    gnupg = bench.tmp / "gnupg"
    gnupg.mkdir(mode=0o700, exist_ok=True)
    parts: dict[str, list[float]] = {"curl": [], "gpgv": [], "cp": []}
    assert bench.mirror_root is not None
    upstream = [
        bench.mirror_root / published["iso_relpath"],
        bench.mirror_root / (published["iso_relpath"] + ".sig"),
    ]

    def pipeline() -> Run:
        shutil.rmtree(project.root / "build", ignore_errors=True)
        harness.settle(*upstream)
        run = bench.doit(project, "--reporter", "json").check("cold doit")
        if f"embed:{harness.NODE}" not in bench.executed(run):
            raise harness.ScenarioError(f"cold doit did not embed:\n{run.stdout[-2000:]}")
        return run

    def baseline() -> Run:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        harness.settle(*upstream)
        steps = baseline_steps(work, gnupg, published)
        runs = [(kind, harness.measure(argv, cwd=work).check(f"baseline {argv[0]}")) for kind, argv in steps]
        for kind in parts:
            parts[kind].append(sum(run.seconds for k, run in runs if k == kind))
        total = runs[0][1]
        return Run(
            ["curl+gpgv+cp"],
            sum(run.seconds for _, run in runs),
            max(run.maxrss_kb for _, run in runs),
            0,
            total.stdout,
            total.stderr,
        )

    ours, theirs = harness.interleave(bench.repeats(3), pipeline, baseline)
    bench.cold_runs = ours
    bench.rows.append(harness.compared(
        "cold build from the loopback mirror", ours, "curl -o + gpgv + cp", harness.median(theirs), goal="≤ 1.0x",
        limit=1.0, note=f"range {harness.spread(ours)} vs {harness.spread(theirs)}"))
    breakdown, accounted = bench.step_breakdown(ours)
    bench.profile(
        "cold build", lambda: shutil.rmtree(project.root / "build", ignore_errors=True), upstream
    )
    bench.notes.append(
        f"cold build, median per doit step: {breakdown}; doit startup and up-to-date checks "
        f"{harness.fmt_s(harness.median(ours) - accounted)}"
    )
    size_mb = bench.args.iso_mb * harness.MiB / 1e6
    curl_s = statistics.median(parts["curl"])
    bench.notes.append(
        f"cold baseline, median per tool: curl {harness.fmt_s(curl_s)} "
        f"({size_mb / curl_s:.0f} MB/s from the Python mirror), "
        f"gpgv {harness.fmt_s(statistics.median(parts['gpgv']))}, cp {harness.fmt_s(statistics.median(parts['cp']))}"
    )
