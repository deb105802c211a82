"""`python -m tasks.iso ignition embed`, to a new file and in place, against `cp`."""

from __future__ import annotations

import os
import shutil
import sys

from tests.bench.harness import (
    NODE,
    Bench,
    Row,
    Run,
    fmt_s,
    interleave,
    measure,
    median,
    settle,
    spread,
)


def run(bench: Bench) -> None:
    assert bench.project is not None
    base = bench.base_iso()
    live = bench.project.root / "build" / "nodes" / NODE / "coreos-autoinstall.ign"
    config = bench.tmp / "cli-config.ign"
    if live.exists():
        shutil.copyfile(live, config)
    else:
        config.write_text('{"ignition": {"version": "3.4.0"}}\n')
    out, inplace, target = bench.tmp / "cli-out.iso", bench.tmp / "cli-inplace.iso", bench.tmp / "cli-cp.iso"
    shutil.copyfile(base, inplace)
    cli = [sys.executable, "-m", "tasks.iso", "ignition", "embed", "-f", "-i", os.fspath(config)]
    cwd = bench.project.root

    def to_output() -> Run:
        out.unlink(missing_ok=True)
        settle(base)
        return measure([*cli, "-o", os.fspath(out), os.fspath(base)], cwd=cwd).check("tasks.iso -o")

    def in_place() -> Run:
        settle(inplace)
        return measure([*cli, os.fspath(inplace)], cwd=cwd).check("tasks.iso in place")

    copies, outputs, patches = interleave(
        bench.repeats(7), lambda: bench.cp(base, target), to_output, in_place
    )
    for path in (out, inplace, target):
        path.unlink(missing_ok=True)
    cp_s = median(copies)
    ratio = median(outputs) / cp_s
    bench.rows.append(
        Row(
            "`python -m tasks.iso ignition embed -o`",
            fmt_s(median(outputs)),
            f"cp of the base ISO: {fmt_s(cp_s)}",
            ratio,
            "report",
            None,
            f"config {config.stat().st_size / 1024:.0f} KiB; range {spread(outputs)} vs {spread(copies)}",
        )
    )
    ratio = median(patches) / cp_s
    bench.rows.append(
        Row(
            "`python -m tasks.iso ignition embed` in place",
            fmt_s(median(patches)),
            f"cp of the base ISO: {fmt_s(cp_s)}",
            ratio,
            "≤ 0.05x",
            ratio <= 0.05,
            f"range {spread(patches)}",
        )
    )
    bare, imported = interleave(
        bench.repeats(5),
        lambda: measure([sys.executable, "-c", "pass"], cwd=cwd).check("python"),
        lambda: measure([sys.executable, "-c", "import tasks.iso"], cwd=cwd).check("import"),
    )
    bench.notes.append(
        f"floors: `python -c pass` {fmt_s(median(bare))}, `python -c 'import tasks.iso'` "
        f"{fmt_s(median(imported))}; 0.05x of this cp is {fmt_s(0.05 * cp_s)}"
    )
