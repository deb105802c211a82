"""`python -m tasks.iso ignition embed`, to a new file and in place, against `cp`."""

from __future__ import annotations

import os
import shutil
import sys

from tests.bench import harness
from tests.bench.harness import Bench, Run


def run(bench: Bench) -> None:
    assert bench.project is not None
    base = bench.base_iso()
    live = bench.project.root / "build" / "nodes" / harness.NODE / "coreos-autoinstall.ign"
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
        harness.settle(base)
        return harness.measure([*cli, "-o", os.fspath(out), os.fspath(base)], cwd=cwd).check("tasks.iso -o")

    def in_place() -> Run:
        harness.settle(inplace)
        return harness.measure([*cli, os.fspath(inplace)], cwd=cwd).check("tasks.iso in place")

    copies, outputs, patches = harness.interleave(
        bench.repeats(7), lambda: bench.cp(base, target), to_output, in_place
    )
    for path in (out, inplace, target):
        path.unlink(missing_ok=True)
    cp_s = harness.median(copies)
    bench.rows.append(harness.compared("`python -m tasks.iso ignition embed -o`", outputs, "cp of the base ISO", cp_s,
                               goal="report", note=f"config {config.stat().st_size / 1024:.0f} KiB; "
                               f"range {harness.spread(outputs)} vs {harness.spread(copies)}"))
    bare, imported = harness.interleave(
        bench.repeats(5),
        lambda: harness.measure([sys.executable, "-c", "pass"], cwd=cwd).check("python"),
        lambda: harness.measure([sys.executable, "-c", "import tasks.iso"], cwd=cwd).check("import"),
    )
    floor = harness.median(imported)
    goal = 0.05 * cp_s
    # Python's start-up and the import are a floor no in-place patch can go under.
    met = harness.median(patches) <= goal or (floor > goal and harness.median(patches) <= 1.5 * floor)
    row = harness.compared(
        "`python -m tasks.iso ignition embed` in place", patches, "cp of the base ISO", cp_s,
        goal="≤ 0.05x, or ≤ 1.5x the start-up floor when that is above",
        note=f"floor (`python -c 'import tasks.iso'`) {harness.fmt_s(floor)}, "
             f"{harness.median(patches) / floor:.2f}x of it; range {harness.spread(patches)}")
    row.ok = met
    bench.rows.append(row)
    bench.notes.append(
        f"floors: `python -c pass` {harness.fmt_s(harness.median(bare))}, `python -c 'import tasks.iso'` "
        f"{harness.fmt_s(floor)}; 0.05x of this cp is {harness.fmt_s(goal)}"
    )
