"""`doit embed` after a keys/*.pub change, for one node and for three, against one `cp` of the base ISO
and against the floor SHA256SUMS sets: doit's start-up plus a full read and sha256 of every output ISO
(a patched byte near the start changes the hash of all that follows, so the sums cost a full read)."""

from __future__ import annotations

import os
import shutil
import statistics
import sys

from tests.bench import harness
from tests.bench.harness import Bench, Run

# jsonnet's fixed cost per evaluation (render evaluates once per document), printed as the median
# of 15 evaluations of `1`, in ms: the C++ binding paid 50-90 ms here for its standard library.
JSONNET_FLOOR = ("import _gojsonnet, statistics, time\n"
                 "def once():\n    t = time.perf_counter(); _gojsonnet.evaluate_snippet('x', '1')\n"
                 "    return time.perf_counter() - t\n"
                 "print(statistics.median(once() for _ in range(15)) * 1000)")

THREE = [{"name": harness.NODE, "role": "server"}, {"name": "node2", "role": "server"},
         {"name": "node3", "role": "agent"}]


def sha256_all(bench: Bench, isos: list[str]) -> Run:
    """sha256 of every output ISO, one process per ISO, as many at once as there are cores: OpenSSL's
    (SHA-NI where the CPU has it, like hashlib's), coreutils' sha256sum only without openssl."""
    assert bench.project is not None
    harness.settle(*(bench.project.root / iso for iso in isos))
    jobs = str(min(len(isos), os.cpu_count() or 1))
    tool = "openssl dgst -sha256" if shutil.which("openssl") else "sha256sum"
    return harness.measure(["sh", "-c", f"printf '%s\\n' {' '.join(isos)} | xargs -P {jobs} -n 1 {tool}"],
                           cwd=bench.project.root).check("sha256 floor")


def measure_nodes(bench: Bench, label: str) -> None:
    project = bench.project
    assert project is not None
    bench.ensure_built()
    key = project.root / "keys" / "alice.pub"
    base = bench.base_iso()
    target = bench.tmp / "embed-cp.iso"
    nodes = [node["name"] for node in project.nodes]
    isos = [f"build/iso/{name}.iso" for name in nodes]

    def pipeline() -> Run:
        kind, blob, *comment = key.read_text().split()
        other = "alice@laptop.test" if comment != ["alice@laptop.test"] else "alice@example.test"
        key.write_text(f"{kind} {blob} {other}\n")  # the same key, a new comment: new content
        harness.settle(base, *(project.root / iso for iso in isos))
        run = bench.doit(project, "--reporter", "json", "embed").check("doit embed")
        missing = [n for n in nodes if f"embed:{n}" not in bench.executed(run)]
        if missing:
            raise harness.ScenarioError(f"doit embed after a keys/ change did not re-embed {missing}:\n"
                                        f"{run.stdout[-2000:]}")
        return run

    ours, copies, sums, starts = harness.interleave(
        bench.repeats(5), pipeline, lambda: bench.cp(base, target), lambda: sha256_all(bench, isos),
        lambda: bench.doit(project, "list").check("doit list"))
    target.unlink(missing_ok=True)
    cp_s = harness.median(copies)
    floor = harness.median(starts) + harness.median(sums)
    ratio_floor = harness.median(ours) / floor
    within = harness.median(ours) <= 1.2 * max(cp_s, floor)
    bench.rows.append(harness.compared(
        f"`doit embed` after a keys/*.pub change, {label}", ours, "cp of the base ISO", cp_s,
        goal="≤ 1.2x of cp, or of the SHA256SUMS floor when above",
        note=f"floor {harness.fmt_s(floor)} (doit list {harness.fmt_s(harness.median(starts))} + sha256 of "
             f"{len(isos)} ISO(s), {harness.fmt_s(harness.median(sums))}), {ratio_floor:.2f}x of it; "
             f"range {harness.spread(ours)} vs {harness.spread(copies)}"))
    bench.rows[-1].ok = within
    floor_run = harness.measure([sys.executable, "-c", JSONNET_FLOOR], cwd=project.root).check("jsonnet floor")
    jsonnet_ms = float(floor_run.stdout.strip() or 0)
    renders = [bench.step_times(run).get("render", 0.0) / len(nodes) for run in ours]
    per_node = statistics.median(renders)
    bench.rows.append(harness.Row(
        f"render per node in those runs, {label}", harness.fmt_s(per_node), "", None, "≤ 50 ms",
        per_node <= 0.050, f"go-jsonnet, one evaluation per document; its fixed cost here (evaluating `1`) "
        f"{jsonnet_ms:.1f} ms; range {harness.fmt_s(min(renders))}–{harness.fmt_s(max(renders))}"))
    bench.notes.append(f"doit embed ({label}), median per step: {bench.step_breakdown(ours)[0]}")


def run(bench: Bench) -> None:
    measure_nodes(bench, "one node")

    def change_key() -> None:
        assert bench.project is not None
        key = bench.project.root / "keys" / "alice.pub"
        kind, blob, *_ = key.read_text().split()
        key.write_text(f"{kind} {blob} alice@profile.test\n")

    bench.profile("doit embed after a keys/ change", change_key, [bench.base_iso()], "embed")


def run_three(bench: Bench) -> None:
    """The same with three nodes (two servers, one agent): three ISOs to re-embed and to sum."""
    project = bench.project
    assert project is not None
    single = project.nodes
    project.nodes = THREE
    project.write_config()
    try:
        measure_nodes(bench, "three nodes")
    finally:
        for node in THREE[1:]:
            (project.root / "build" / "iso" / f"{node['name']}.iso").unlink(missing_ok=True)
        project.nodes = single
        project.write_config()
