"""`doit embed` after a keys/*.pub change against a `cp` of the base ISO."""

from __future__ import annotations

import statistics

from tests.bench.harness import (
    NODE,
    Bench,
    Row,
    Run,
    ScenarioError,
    fmt_s,
    interleave,
    median,
    settle,
    spread,
)


def run(bench: Bench) -> None:
    project = bench.project
    assert project is not None
    bench.ensure_built()
    key = project.root / "keys" / "alice.pub"
    base = bench.base_iso()
    target = bench.tmp / "embed-cp.iso"

    def pipeline() -> Run:
        kind, blob, *comment = key.read_text().split()
        other = "alice@laptop.test" if comment != ["alice@laptop.test"] else "alice@example.test"
        key.write_text(f"{kind} {blob} {other}\n")  # the same key, a new comment: new content
        settle(base)
        run = bench.doit(project, "--reporter", "json", "embed").check("doit embed")
        if f"embed:{NODE}" not in bench.executed(run):
            raise ScenarioError(
                f"doit embed after a keys/ change did not re-embed:\n{run.stdout[-2000:]}"
            )
        return run

    ours, theirs = interleave(bench.repeats(5), pipeline, lambda: bench.cp(base, target))
    target.unlink(missing_ok=True)

    def change_key() -> None:
        kind, blob, *_ = key.read_text().split()
        key.write_text(f"{kind} {blob} alice@profile.test\n")

    bench.profile("doit embed after a keys/ change", change_key, [base], "embed")
    ratio = median(ours) / median(theirs)
    bench.rows.append(
        Row(
            "`doit embed` after a keys/*.pub change",
            fmt_s(median(ours)),
            f"cp of the base ISO: {fmt_s(median(theirs))}",
            ratio,
            "≤ 1.2x (stretch 0.1x)",
            ratio <= 1.2,
            f"range {spread(ours)} vs {spread(theirs)}"
            + ("; stretch met" if ratio <= 0.1 else "; stretch 0.1x not met"),
        )
    )
    steps = [bench.step_times(run) for run in ours]
    names = sorted(
        {n for s in steps for n in s}, key=lambda n: -statistics.median(s.get(n, 0.0) for s in steps)
    )
    bench.notes.append(
        "doit embed, median per step: "
        + ", ".join(f"{n} {fmt_s(statistics.median(s.get(n, 0.0) for s in steps))}" for n in names)
    )
