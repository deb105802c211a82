"""butane.transpile of a node's rendered .bu/.fcc, in-process."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from tests.bench import harness
from tests.bench.harness import Bench


def run(bench: Bench) -> None:
    assert bench.project is not None
    nodes = bench.project.root / "build" / "nodes" / harness.NODE
    sources = [nodes / "k3s-autoinstall.bu", nodes / "inline" / "coreos-autoinstall.fcc"]
    if not all(path.exists() for path in sources):
        bench.ensure_built()
    import butane

    rounds = bench.repeats(20)
    timings: dict[Path, list[float]] = {}
    for source in sources:
        text = source.read_text()
        butane.transpile(text, files_dir=None, strict=True)  # warm-up (imports, caches)
        samples = []
        for _ in range(rounds):
            start = time.perf_counter()
            butane.transpile(text, files_dir=None, strict=True)
            samples.append(time.perf_counter() - start)
        timings[source] = samples
    total = sum(statistics.median(samples) for samples in timings.values())
    detail = ", ".join(
        f"{path.relative_to(nodes)} ({path.stat().st_size / 1024:.0f} KiB) "
        f"{statistics.median(s) * 1000:.1f} ms"
        for path, s in timings.items()
    )
    bench.rows.append(
        harness.Row(
            "transpile a node's templates (butane.transpile, in-process)",
            f"{total * 1000:.1f} ms",
            "",
            None,
            "report",
            None,
            f"median of {rounds}: {detail}",
        )
    )
