"""`doit` with everything up to date against `doit list`, and the bytes each reads."""

from __future__ import annotations

from tests.bench.harness import (
    Bench,
    MiB,
    Row,
    Run,
    ScenarioError,
    fmt_s,
    interleave,
    median,
    spread,
)


def run(bench: Bench) -> None:
    project = bench.project
    assert project is not None
    bench.ensure_built()
    iso_bytes = bench.args.iso_mb * MiB

    def noop() -> Run:
        run = bench.doit(project).check("no-op doit")
        if bench.executed(run):
            raise ScenarioError(f"doit with nothing changed ran tasks: {bench.executed(run)}")
        return run

    ours, theirs = interleave(
        bench.repeats(7), noop, lambda: bench.doit(project, "list").check("doit list")
    )
    ratio = median(ours) / median(theirs)
    read_ours = max(run.io.get("rchar", 0) for run in ours)
    read_theirs = max(run.io.get("rchar", 0) for run in theirs)
    no_large_read = read_ours - read_theirs < min(8 * MiB, iso_bytes // 10)
    bench.rows.append(
        Row(
            "no-op `doit`, everything up to date",
            fmt_s(median(ours)),
            f"doit list: {fmt_s(median(theirs))}",
            ratio,
            "≤ 1.5x, no large file read",
            ratio <= 1.5 and no_large_read,
            f"read {read_ours / MiB:.1f} MiB vs {read_theirs / MiB:.1f} MiB "
            f"({'no large file read' if no_large_read else 'READS A LARGE FILE'}); peak RSS "
            f"{max(r.maxrss_kb for r in ours) / 1024:.0f} vs "
            f"{max(r.maxrss_kb for r in theirs) / 1024:.0f} MiB; "
            f"range {spread(ours)} vs {spread(theirs)}",
        )
    )
