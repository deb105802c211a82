"""Peak RSS of a cold build at 200 MiB and at --iso-mb."""

from __future__ import annotations

import shutil

from tests.bench import harness
from tests.bench.harness import Bench


def run(bench: Bench) -> None:
    sizes = sorted({*harness.RSS_SIZES_MB, bench.args.iso_mb})
    for size in sizes:
        if size == bench.args.iso_mb:
            runs = bench.cold_runs
            if not runs:
                assert bench.project is not None
                shutil.rmtree(bench.project.root / "build", ignore_errors=True)
                runs = [bench.doit(bench.project).check("cold doit")]
                bench.cold_runs = runs
        else:
            project, mirror, _ = harness.make_project(bench.tmp / f"rss{size}", size, dense=not bench.args.sparse)
            bench.mirrors.append(mirror)
            try:
                runs = [bench.doit(project).check(f"cold doit, {size} MiB")]
            finally:
                mirror.stop()
                shutil.rmtree(bench.tmp / f"rss{size}", ignore_errors=True)
        peak = max(run.maxrss_kb for run in runs) / 1024
        bench.rows.append(
            harness.Row(
                f"peak RSS, cold build, {size} MiB ISO",
                f"{peak:.0f} MiB ({peak * harness.MiB / 1e6:.0f} MB)",
                "",
                None,
                "≤ 150 MB",
                peak * harness.MiB <= 150e6,
                f"max over {len(runs)} run(s)",
            )
        )
