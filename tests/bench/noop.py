"""`doit` with everything up to date against `doit list`, and the bytes each reads."""

from __future__ import annotations

from tests.bench import harness
from tests.bench.harness import Bench, Run


def run(bench: Bench) -> None:
    project = bench.project
    assert project is not None
    bench.ensure_built()
    iso_bytes = bench.args.iso_mb * harness.MiB

    def noop() -> Run:
        run = bench.doit(project).check("no-op doit")
        if bench.executed(run):
            raise harness.ScenarioError(f"doit with nothing changed ran tasks: {bench.executed(run)}")
        return run

    ours, theirs = harness.interleave(
        bench.repeats(7), noop, lambda: bench.doit(project, "list").check("doit list")
    )
    read_ours = max(run.io.get("rchar", 0) for run in ours)
    read_theirs = max(run.io.get("rchar", 0) for run in theirs)
    no_large_read = read_ours - read_theirs < min(8 * harness.MiB, iso_bytes // 10)
    bench.rows.append(harness.compared(
        "no-op `doit`, everything up to date", ours, "doit list", harness.median(theirs),
        goal="≤ 1.5x, no large file read", limit=1.5, also_ok=no_large_read,
        note=f"read {read_ours / harness.MiB:.1f} MiB vs {read_theirs / harness.MiB:.1f} MiB "
             f"({'no large file read' if no_large_read else 'READS A LARGE FILE'}); peak RSS "
             f"{max(r.maxrss_kb for r in ours) / 1024:.0f} vs {max(r.maxrss_kb for r in theirs) / 1024:.0f} MiB; "
             f"range {harness.spread(ours)} vs {harness.spread(theirs)}"))
