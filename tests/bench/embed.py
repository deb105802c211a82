"""`doit embed` after a keys/*.pub change against a `cp` of the base ISO."""

from __future__ import annotations

from tests.bench import harness
from tests.bench.harness import Bench, Run


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
        harness.settle(base)
        run = bench.doit(project, "--reporter", "json", "embed").check("doit embed")
        if f"embed:{harness.NODE}" not in bench.executed(run):
            raise harness.ScenarioError(
                f"doit embed after a keys/ change did not re-embed:\n{run.stdout[-2000:]}"
            )
        return run

    ours, theirs = harness.interleave(bench.repeats(5), pipeline, lambda: bench.cp(base, target))
    target.unlink(missing_ok=True)

    def change_key() -> None:
        kind, blob, *_ = key.read_text().split()
        key.write_text(f"{kind} {blob} alice@profile.test\n")

    bench.profile("doit embed after a keys/ change", change_key, [base], "embed")
    stretch = "; stretch met" if harness.median(ours) <= 0.1 * harness.median(theirs) else "; stretch 0.1x not met"
    bench.rows.append(harness.compared(
        "`doit embed` after a keys/*.pub change", ours, "cp of the base ISO", harness.median(theirs),
        goal="≤ 1.2x (stretch 0.1x)", limit=1.2,
        note=f"range {harness.spread(ours)} vs {harness.spread(theirs)}{stretch}"))
    bench.notes.append(f"doit embed, median per step: {bench.step_breakdown(ours)[0]}")
