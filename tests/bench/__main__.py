"""`python -m tests.bench`: options, the scenarios in order, the report, the exit status."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.bench import __doc__ as DOC
from tests.bench import cold, embed, fetch, iso_cli, noop, rss, transpile
from tests.bench.harness import Bench, MiB, Row, ScenarioError, machine_info, pick_tmpdir
from tests.bench.report import report, write_markdown

# In this order: cold leaves a fresh build that rss reuses; embed leaves an up-to-date tree for noop;
# embed3 switches the project to three nodes and back; fetch last, as it empties build/.
SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "cold": cold.run, "rss": rss.run, "embed": embed.run, "noop": noop.run, "transpile": transpile.run,
    "iso-cli": iso_cli.run, "embed3": embed.run_three, "fetch": fetch.run,
}


def run_scenarios(bench: Bench, names: list[str]) -> None:
    for name in [s for s in SCENARIOS if s in names]:
        started = time.perf_counter()
        print(f"running {name} ...", flush=True)
        try:
            SCENARIOS[name](bench)
        except ScenarioError as error:
            bench.errors.append(f"{name}: {error}")
            bench.rows.append(Row(name, "ERROR", "", None, "", False, str(error).splitlines()[0][:160]))
        print(f"  {name} done in {time.perf_counter() - started:.1f} s", flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description=DOC.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(DOC.split("\n")[1:]),
    )
    parser.add_argument(
        "--iso-mb", type=int, default=800, help="size of the synthetic ISO in MiB (default 800)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=0,
        help="runs per scenario (default: 3 cold, 5 embed, 7 noop and iso-cli, 20 transpile)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--tmpdir", type=Path, help="where to build (default: under /var/tmp, else build/bench)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (its path is printed)")
    parser.add_argument("--sparse", action="store_true", help="keep the synthetic ISO sparse (holes)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="one more cold build and doit embed under cProfile, summarised in the notes",
    )
    parser.add_argument(
        "--markdown", type=Path, help="also write the results into this page (e.g. docs/bench.md)"
    )
    args = parser.parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(args.scenario_list) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    if args.iso_mb < 1 or args.repeat < 0:
        parser.error("--iso-mb must be ≥ 1 and --repeat ≥ 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = " ".join(["python", "-m", "tests.bench", *(sys.argv[1:] if argv is None else argv)])
    started = time.perf_counter()
    # users' runs cache bytecode: so do ours (an environment may have turned that off)
    bytecode_note = os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None
    tmp = pick_tmpdir(args.tmpdir, needed=12 * args.iso_mb * MiB)
    machine = machine_info(tmp)
    print("Machine:")
    for key, value in machine.items():
        print(f"  {key}: {value}")
    print(
        "Each scenario runs interleaved with its baseline (A B A B ...): both see the same page-cache state "
        "(the cache is not dropped; each run's inputs are read through, untimed, just before it).",
        flush=True,
    )
    bench = Bench(args, tmp)
    try:
        bench.setup()
        run_scenarios(bench, args.scenario_list)
    finally:
        for mirror in bench.mirrors:
            mirror.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    if bytecode_note:
        machine["note"] = (
            "PYTHONDONTWRITEBYTECODE was set; unset for the measured runs (users cache bytecode)"
        )
    text = report(bench, machine, command, time.perf_counter() - started)
    print()
    print(text, end="")
    for error in bench.errors:
        print(f"\nerror: {error}", file=sys.stderr)
    if args.markdown:
        write_markdown(args.markdown, text)
        print(f"wrote {args.markdown}")
    missed = [row.scenario for row in bench.rows if row.ok is False and row.measured != "ERROR"]
    if bench.errors:
        print(f"FAILED: {len(bench.errors)} scenario(s) could not run", file=sys.stderr)
        return 2
    if missed:
        print(f"MISSED: {'; '.join(missed)}", file=sys.stderr)
        return 1
    print("every goal met")
    return 0



sys.exit(main())
