#!/usr/bin/env python3
"""Where the build's time goes, against what the machine itself can do, side by side in one run.

    python tests/bench.py                          # every scenario, 800 MiB ISO
    python tests/bench.py --iso-mb 200 --repeat 3  # quicker
    python tests/bench.py --scenarios noop,embed   # a subset (names below)
    python tests/bench.py --markdown docs/bench.md # also write the table into that page

Not part of the default test run (pytest collects test_*.py only). It builds a local HTTP mirror
(tests/mirror.py) serving a synthetic FCOS live ISO (tests/synthetic_iso.py) of --iso-mb MiB,
signed with a throw-away key, and a throw-away copy of the project wired to it
(tests/pipeline_project.py). Each scenario runs interleaved with its baseline (A B A B ...), so
both see the same page-cache state; the cache is never dropped, so with enough RAM these are
warm-cache numbers. Scenarios (goals from the issue):

  noop       `doit` with everything up to date          vs `doit list`                ≤ 1.5x
             (and no large file read: the read bytes of both are compared)
  embed      `doit embed` after a keys/*.pub change     vs `cp` of the base ISO       ≤ 1.2x (stretch 0.1x)
  cold       `doit` from an empty build/               vs curl -o + gpgv + cp        ≤ 1.3x
  rss        peak RSS of the cold build at 200 MiB and at --iso-mb                  ≤ 150 MB
  transpile  butane.transpile of a node's rendered .bu/.fcc, in-process, ms          (reported)
  iso-cli    `python -m tasks.iso ignition embed -o`   vs `cp`                       (reported)
             `python -m tasks.iso ignition embed` in place vs `cp`                  ≤ 0.05x

The synthetic ISO is made dense (its sparse rootfs placeholder is overwritten with pseudo-random
bytes) unless --sparse: a real FCOS ISO has no holes, and a hole-aware copy of a sparse file would
make every `cp` baseline unrealistically cheap.

Exit status: 0 every goal met, 1 a goal missed, 2 a scenario could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python tests/bench.py` puts tests/ first, not the repo
    sys.path.insert(0, str(REPO))

from tests import pipeline_project  # noqa: E402
from tests.mirror import Mirror  # noqa: E402
from tests.pipeline_project import Project  # noqa: E402
from tests.synthetic_iso import build_fcos_iso  # noqa: E402

MiB = 1024 * 1024
SCENARIOS = ("noop", "embed", "cold", "rss", "transpile", "iso-cli")
RSS_SIZES_MB = (200,)  # always shown besides --iso-mb
NODE = "node1"  # Project.create's default single server node

# `python -m doit ARGS`, plus /proc/self/io written to $BENCH_IO_FILE at exit: the bytes this process
# read (rchar counts page-cache hits too), to show that a no-op build reads no large file.
DOIT_PROBE = """\
import atexit, os, runpy, sys
def _dump():
    path = os.environ.get("BENCH_IO_FILE")
    if path:
        with open("/proc/self/io") as src, open(path, "w") as dst:
            dst.write(src.read())
atexit.register(_dump)
sys.argv = ["doit", *sys.argv[1:]]
runpy.run_module("doit", run_name="__main__", alter_sys=True)
"""


# --------------------------------------------------------------------------------------------------
# Measuring one command


@dataclass
class Run:
    argv: list[str]
    seconds: float
    maxrss_kb: int  # the largest process of the tree (wait4's ru_maxrss, as /usr/bin/time -f %M)
    returncode: int
    stdout: str
    stderr: str
    io: dict[str, int] = field(default_factory=dict)

    def check(self, what: str) -> Run:
        if self.returncode != 0:
            tail = "\n".join((self.stdout + "\n" + self.stderr).strip().splitlines()[-15:])
            raise ScenarioError(f"{what}: `{' '.join(self.argv[:6])}` exited {self.returncode}:\n{tail}")
        return self


class ScenarioError(Exception):
    pass


def measure(argv: Sequence[str], *, cwd: Path, env: dict[str, str] | None = None) -> Run:
    """Run argv, timing it by the wall clock and taking its peak RSS from wait4."""
    env = dict(os.environ if env is None else env)
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(prefix="bench-io-") as io_file,
    ):
        env["BENCH_IO_FILE"] = io_file.name
        start = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        io_text = Path(io_file.name).read_text()
        io = {k: int(v) for k, v in (line.split(": ") for line in io_text.splitlines() if ": " in line)}
        return Run(
            list(argv),
            seconds,
            usage.ru_maxrss,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            io,
        )


def settle(*warm: Path) -> None:
    """Before a timed run: write back dirty pages (no run pays for the previous one's writeback),
    then read its inputs through, so that every run starts with them in the page cache. (On a VM
    that pages out idle page cache, as DAMON does on the reference machine, an input left alone for
    a few seconds is back on disk, and a `cp` takes 0.2 s or 2 s depending on luck.)"""
    os.sync()
    buffer = bytearray(8 * MiB)
    for path in warm:
        with open(path, "rb", buffering=0) as stream:
            while stream.readinto(buffer):
                pass


def page_cache_policy() -> str:
    """DAMON-based proactive reclaim, if any: it evicts idle page cache within seconds."""
    schemes = []
    for state in Path("/sys/kernel/mm/damon/admin/kdamonds").glob("*/state"):
        if state.read_text().strip() == "on":
            for action in state.parent.glob("contexts/*/schemes/*/action"):
                schemes.append(action.read_text().strip())
    if (
        Path("/sys/module/damon_reclaim/parameters/enabled").exists()
        and Path("/sys/module/damon_reclaim/parameters/enabled").read_text().strip() == "Y"
    ):
        schemes.append("damon_reclaim")
    return (
        (
            "DAMON " + ", ".join(schemes) + " active: idle page cache is evicted, inputs are read through "
            "before each run"
        )
        if schemes
        else "no proactive reclaim found"
    )


def interleave(rounds: int, *steps: Callable[[], Run]) -> list[list[Run]]:
    """Run steps A B ... A B ... `rounds` times; returns one list of runs per step."""
    results: list[list[Run]] = [[] for _ in steps]
    for _ in range(rounds):
        for index, step in enumerate(steps):
            results[index].append(step())
    return results


def median(runs: list[Run]) -> float:
    return statistics.median(run.seconds for run in runs)


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def spread(runs: list[Run]) -> str:
    values = sorted(run.seconds for run in runs)
    return f"{fmt_s(values[0])}–{fmt_s(values[-1])}" if len(values) > 1 else "1 run"


def profile_summary(path: Path, top: int = 8) -> str:
    """The functions with the most own time in a cProfile dump, and doit's md5 file checks."""
    import pstats

    stats = pstats.Stats(os.fspath(path)).stats  # type: ignore[attr-defined]

    def name(key: tuple[str, int, str]) -> str:
        file, _, func = key
        return func.strip("<>") if file == "~" else f"{Path(file).parent.name}/{Path(file).name}:{func}"

    ranked = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    parts = [f"{name(key)} {fmt_s(value[2])}" for key, value in ranked if value[2] >= 0.02]
    md5 = sum(
        value[3]
        for key, value in stats.items()
        if key[2] == "get_file_md5" and key[0].endswith(os.path.join("doit", "dependency.py"))
    )
    return (
        "; ".join(parts)
        + f" — of which doit's md5 of file_dep/targets (get_file_md5, cumulative) {fmt_s(md5)}"
    )


# --------------------------------------------------------------------------------------------------
# The machine


def machine_info(tmpdir: Path) -> dict[str, str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    filesystem = findmnt(tmpdir, "FSTYPE,SOURCE") or "?"
    free = shutil.disk_usage(tmpdir).free / 1024**3

    def version(argv: list[str]) -> str:
        try:
            first = subprocess.run(argv, capture_output=True, text=True, check=False).stdout.splitlines()
            return first[0].split(" libcurl")[0] if first else "?"
        except FileNotFoundError:
            return "missing"

    import doit

    return {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} ({len(os.sched_getaffinity(0))} usable)",
        "RAM": ram,
        "temp dir": f"{tmpdir} ({filesystem}, {free:.0f} GiB free)",
        "Python": f"{platform.python_version()} ({sys.executable})",
        "kernel": platform.release(),
        "doit": ".".join(map(str, doit.__version__)),
        "page cache": page_cache_policy(),
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg())
        + " (1/5/15 min; other work skews results)",
        "tools": "; ".join(
            version(argv) for argv in (["curl", "--version"], ["gpgv", "--version"], ["cp", "--version"])
        ),
    }


def findmnt(path: Path, columns: str) -> str:
    """What findmnt says of the filesystem holding path (e.g. "ext4 /dev/vda"), "" if it can't."""
    result = subprocess.run(["findmnt", "-n", "-o", columns, "-T", os.fspath(path)],
                            capture_output=True, text=True, check=False)
    return " ".join(result.stdout.split())


def pick_tmpdir(requested: Path | None, needed: int) -> Path:
    """--tmpdir, else /var/tmp, else the repo's build/bench: never tmpfs, with room for ~10 ISOs."""
    candidates = [requested] if requested else [Path("/var/tmp"), REPO / "build" / "bench"]
    for candidate in candidates:
        candidate.mkdir(parents=True, exist_ok=True)
        fstype = findmnt(candidate, "FSTYPE")
        if requested or (fstype != "tmpfs" and shutil.disk_usage(candidate).free > needed):
            if shutil.disk_usage(candidate).free < needed:
                print(f"warning: {candidate} has less than {needed / 1024**3:.1f} GiB free", file=sys.stderr)
            return Path(tempfile.mkdtemp(prefix="k3s-iso-bench-", dir=candidate))
    raise SystemExit(f"no temp dir with {needed / 1024**3:.1f} GiB free off tmpfs: pass --tmpdir")


# --------------------------------------------------------------------------------------------------
# The synthetic ISO, dense


def densify(iso: Path) -> None:
    """Overwrite the sparse rootfs placeholder with pseudo-random bytes: a real ISO has no holes."""
    import pycdlib

    reader = pycdlib.PyCdlib()
    reader.open(os.fspath(iso))
    try:
        record = reader.get_record(iso_path="/IMAGES/PXEBOOT/ROOTFS.IMG;1")
        offset, size = record.extent_location() * 2048, record.get_data_length()
    finally:
        reader.close()
    block = random.Random(800).randbytes(4 * MiB)
    fd = os.open(iso, os.O_WRONLY)
    try:
        position, index = 0, 0
        while position < size:
            shift = (index * 4099) % len(block)
            chunk = (block[shift:] + block[:shift])[: size - position]
            os.pwrite(fd, chunk, offset + position)
            position += len(chunk)
            index += 1
        os.fsync(fd)
    finally:
        os.close(fd)


def make_project(root: Path, iso_mb: int, *, dense: bool) -> tuple[Project, Mirror, Path]:
    """A mirror of its own (one release per mirror tree) and a project copy wired to it."""
    mirror = Mirror(root / "mirror").start()
    original = build_fcos_iso

    def build(path: Path, **kwargs: Any) -> None:
        original(path, **kwargs)
        if dense:
            densify(path)

    pipeline_project.build_fcos_iso = build  # type: ignore[attr-defined]  # Project.create uses it
    try:
        project = Project.create(root / "checkout", mirror, iso_bytes=iso_mb * MiB)
    finally:
        pipeline_project.build_fcos_iso = original  # type: ignore[attr-defined]
    upstream = root / "checkout-upstream.iso"
    return project, mirror, upstream


# --------------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    scenario: str
    measured: str
    baseline: str
    ratio: float | None = None
    goal: str = ""
    ok: bool | None = None  # None: reported only
    note: str = ""

    @property
    def status(self) -> str:
        return {True: "ok", False: "MISSED", None: "—"}[self.ok]


@dataclass
class Bench:
    args: argparse.Namespace
    tmp: Path
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    project: Project | None = None
    upstream: Path | None = None
    cold_runs: list[Run] = field(default_factory=list)
    mirrors: list[Mirror] = field(default_factory=list)
    mirror_root: Path | None = None

    # --- helpers --------------------------------------------------------------------------------

    def repeats(self, default: int) -> int:
        return self.args.repeat or default

    def env(self, project: Project) -> dict[str, str]:
        """The environment Project.doit uses (own HOME, no K3S_TOKEN), bytecode caching left on."""
        environment = {k: v for k, v in os.environ.items() if k != "K3S_TOKEN"}
        environment["HOME"] = os.fspath(project.home)
        return environment

    def doit(self, project: Project, *args: str) -> Run:
        return measure([sys.executable, "-c", DOIT_PROBE, *args], cwd=project.root, env=self.env(project))

    @staticmethod
    def executed(run: Run) -> list[str]:
        """Tasks that ran: from the json reporter when used, else doit's ". task" lines."""
        try:
            report = json.loads(run.stdout)
        except ValueError:
            return [line[2:].strip() for line in run.stdout.splitlines() if line.startswith(". ")]
        return [task["name"] for task in report["tasks"] if task["result"] == "success"]

    @staticmethod
    def step_times(run: Run) -> dict[str, float]:
        """Seconds per pipeline step (json reporter): fetch, verify, ..., summed over subtasks."""
        try:
            report = json.loads(run.stdout)
        except ValueError:
            return {}
        steps: dict[str, float] = {}
        for task in report["tasks"]:
            if task.get("elapsed") is not None:
                step = task["name"].split(":")[0]
                steps[step] = steps.get(step, 0.0) + float(task["elapsed"])
        return steps

    def profile(self, label: str, prepare: Callable[[], None], warm: Sequence[Path], *args: str) -> None:
        """With --profile: one more run of doit under cProfile, summarised in the notes."""
        if not self.args.profile:
            return
        assert self.project is not None
        prepare()
        settle(*warm)
        dump = self.tmp / ("".join(c if c.isalnum() else "-" for c in label) + ".prof")
        run = measure(
            [sys.executable, "-m", "cProfile", "-o", os.fspath(dump), "-m", "doit", *args],
            cwd=self.project.root,
            env=self.env(self.project),
        ).check(f"profiled {label}")
        self.notes.append(
            f"profile of one {label} ({fmt_s(run.seconds)} under cProfile; the doit process only, "
            f"a subprocess such as gpgv counts as waiting), most own time: {profile_summary(dump)}"
        )

    def base_iso(self) -> Path:
        assert self.project is not None and self.upstream is not None
        verified = self.project.root / "build" / "fcos" / "fedora-coreos-live.x86_64.iso"
        return verified if verified.exists() else self.upstream

    def cp(self, source: Path, target: Path) -> Run:
        target.unlink(missing_ok=True)
        settle(source)
        return measure(["cp", os.fspath(source), os.fspath(target)], cwd=self.tmp).check("cp")

    def ensure_built(self) -> None:
        """A complete, up-to-date build (doit from wherever the project is)."""
        assert self.project is not None
        run = self.doit(self.project).check("doit (building the project)")
        if not (self.project.root / "build" / "iso" / f"{NODE}.iso").exists():
            raise ScenarioError(
                f"doit succeeded but build/iso/{NODE}.iso is missing:\n{run.stdout}{run.stderr}"
            )

    # --- setup ----------------------------------------------------------------------------------

    def setup(self) -> None:
        started = time.perf_counter()
        project, mirror, upstream = make_project(
            self.tmp / f"p{self.args.iso_mb}", self.args.iso_mb, dense=not self.args.sparse
        )
        self.mirrors.append(mirror)
        self.project, self.upstream, self.mirror_root = project, upstream, mirror.root
        subprocess.run(["sync"], check=False)
        print(
            f"setup: {self.args.iso_mb} MiB {'sparse' if self.args.sparse else 'dense'} ISO built, signed, "
            f"published on {mirror.base_url} in {time.perf_counter() - started:.1f} s",
            flush=True,
        )

    # --- scenarios ------------------------------------------------------------------------------

    def scenario_cold(self) -> None:
        assert self.project is not None
        project = self.project
        published: dict[str, str] = project.published  # type: ignore[attr-defined]  # Project.create
        work = self.tmp / "curl"
        work.mkdir(exist_ok=True)
        gnupg = self.tmp / "gnupg"
        gnupg.mkdir(mode=0o700, exist_ok=True)
        parts: dict[str, list[float]] = {"curl": [], "gpgv": [], "cp": []}
        assert self.mirror_root is not None
        upstream = [
            self.mirror_root / published["iso_relpath"],
            self.mirror_root / (published["iso_relpath"] + ".sig"),
        ]

        def pipeline() -> Run:
            shutil.rmtree(project.root / "build", ignore_errors=True)
            settle(*upstream)
            run = self.doit(project, "--reporter", "json").check("cold doit")
            if f"embed:{NODE}" not in self.executed(run):
                raise ScenarioError(f"cold doit did not embed:\n{run.stdout[-2000:]}")
            return run

        def baseline() -> Run:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            settle(*upstream)
            iso, sig, ring = work / "live.iso", work / "live.iso.sig", work / "keyring.asc"
            steps = [
                ("curl", ["curl", "-sSfo", os.fspath(work / "stream.json"), published["stream_url"]]),
                ("curl", ["curl", "-sSfo", os.fspath(ring), published["keyring_url"]]),
                ("curl", ["curl", "-sSfo", os.fspath(sig), published["sig_url"]]),
                ("curl", ["curl", "-sSfo", os.fspath(iso), published["iso_url"]]),
                (
                    "gpgv",
                    [
                        "gpg",
                        "--batch",
                        "--homedir",
                        os.fspath(gnupg),
                        "--dearmor",
                        "-o",
                        os.fspath(work / "keyring.gpg"),
                        os.fspath(ring),
                    ],
                ),
                (
                    "gpgv",
                    ["gpgv", "--keyring", os.fspath(work / "keyring.gpg"), os.fspath(sig), os.fspath(iso)],
                ),
                ("cp", ["cp", os.fspath(iso), os.fspath(work / f"{NODE}.iso")]),
            ]
            runs = [(kind, measure(argv, cwd=work).check(f"baseline {argv[0]}")) for kind, argv in steps]
            for kind in parts:
                parts[kind].append(sum(run.seconds for k, run in runs if k == kind))
            total = runs[0][1]
            return Run(
                ["curl+gpgv+cp"],
                sum(run.seconds for _, run in runs),
                max(run.maxrss_kb for _, run in runs),
                0,
                total.stdout,
                total.stderr,
            )

        ours, theirs = interleave(self.repeats(3), pipeline, baseline)
        self.cold_runs = ours
        ratio = median(ours) / median(theirs)
        self.rows.append(
            Row(
                "cold build from the loopback mirror",
                fmt_s(median(ours)),
                f"curl -o + gpgv + cp: {fmt_s(median(theirs))}",
                ratio,
                "≤ 1.3x",
                ratio <= 1.3,
                f"range {spread(ours)} vs {spread(theirs)}",
            )
        )
        steps = [self.step_times(run) for run in ours]
        names = sorted(
            {name for step in steps for name in step},
            key=lambda n: -statistics.median(step.get(n, 0.0) for step in steps),
        )
        breakdown = ", ".join(
            f"{name} {fmt_s(statistics.median(s.get(name, 0.0) for s in steps))}" for name in names
        )
        accounted = statistics.median(sum(step.values()) for step in steps)
        self.profile(
            "cold build", lambda: shutil.rmtree(project.root / "build", ignore_errors=True), upstream
        )
        self.notes.append(
            f"cold build, median per doit step: {breakdown}; doit startup and up-to-date checks "
            f"{fmt_s(median(ours) - accounted)}"
        )
        size_mb = self.args.iso_mb * MiB / 1e6
        curl_s = statistics.median(parts["curl"])
        self.notes.append(
            f"cold baseline, median per tool: curl {fmt_s(curl_s)} "
            f"({size_mb / curl_s:.0f} MB/s from the Python mirror), "
            f"gpgv {fmt_s(statistics.median(parts['gpgv']))}, cp {fmt_s(statistics.median(parts['cp']))}"
        )

    def scenario_rss(self) -> None:
        sizes = sorted({*RSS_SIZES_MB, self.args.iso_mb})
        for size in sizes:
            if size == self.args.iso_mb:
                runs = self.cold_runs
                if not runs:
                    assert self.project is not None
                    shutil.rmtree(self.project.root / "build", ignore_errors=True)
                    runs = [self.doit(self.project).check("cold doit")]
                    self.cold_runs = runs
            else:
                project, mirror, _ = make_project(self.tmp / f"rss{size}", size, dense=not self.args.sparse)
                self.mirrors.append(mirror)
                try:
                    runs = [self.doit(project).check(f"cold doit, {size} MiB")]
                finally:
                    mirror.stop()
                    shutil.rmtree(self.tmp / f"rss{size}", ignore_errors=True)
            peak = max(run.maxrss_kb for run in runs) / 1024
            self.rows.append(
                Row(
                    f"peak RSS, cold build, {size} MiB ISO",
                    f"{peak:.0f} MiB ({peak * MiB / 1e6:.0f} MB)",
                    "",
                    None,
                    "≤ 150 MB",
                    peak * MiB <= 150e6,
                    f"max over {len(runs)} run(s)",
                )
            )

    def scenario_embed(self) -> None:
        project = self.project
        assert project is not None
        self.ensure_built()
        key = project.root / "keys" / "alice.pub"
        base = self.base_iso()
        target = self.tmp / "embed-cp.iso"

        def pipeline() -> Run:
            kind, blob, *comment = key.read_text().split()
            other = "alice@laptop.test" if comment != ["alice@laptop.test"] else "alice@example.test"
            key.write_text(f"{kind} {blob} {other}\n")  # the same key, a new comment: new content
            settle(base)
            run = self.doit(project, "--reporter", "json", "embed").check("doit embed")
            if f"embed:{NODE}" not in self.executed(run):
                raise ScenarioError(
                    f"doit embed after a keys/ change did not re-embed:\n{run.stdout[-2000:]}"
                )
            return run

        ours, theirs = interleave(self.repeats(5), pipeline, lambda: self.cp(base, target))
        target.unlink(missing_ok=True)

        def change_key() -> None:
            kind, blob, *_ = key.read_text().split()
            key.write_text(f"{kind} {blob} alice@profile.test\n")

        self.profile("doit embed after a keys/ change", change_key, [base], "embed")
        ratio = median(ours) / median(theirs)
        self.rows.append(
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
        steps = [self.step_times(run) for run in ours]
        names = sorted(
            {n for s in steps for n in s}, key=lambda n: -statistics.median(s.get(n, 0.0) for s in steps)
        )
        self.notes.append(
            "doit embed, median per step: "
            + ", ".join(f"{n} {fmt_s(statistics.median(s.get(n, 0.0) for s in steps))}" for n in names)
        )

    def scenario_noop(self) -> None:
        project = self.project
        assert project is not None
        self.ensure_built()
        iso_bytes = self.args.iso_mb * MiB

        def noop() -> Run:
            run = self.doit(project).check("no-op doit")
            if self.executed(run):
                raise ScenarioError(f"doit with nothing changed ran tasks: {self.executed(run)}")
            return run

        ours, theirs = interleave(
            self.repeats(7), noop, lambda: self.doit(project, "list").check("doit list")
        )
        ratio = median(ours) / median(theirs)
        read_ours = max(run.io.get("rchar", 0) for run in ours)
        read_theirs = max(run.io.get("rchar", 0) for run in theirs)
        no_large_read = read_ours - read_theirs < min(8 * MiB, iso_bytes // 10)
        self.rows.append(
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

    def scenario_transpile(self) -> None:
        assert self.project is not None
        nodes = self.project.root / "build" / "nodes" / NODE
        sources = [nodes / "k3s-autoinstall.bu", nodes / "inline" / "coreos-autoinstall.fcc"]
        if not all(path.exists() for path in sources):
            self.ensure_built()
        import butane

        rounds = self.repeats(20)
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
        self.rows.append(
            Row(
                "transpile a node's templates (butane.transpile, in-process)",
                f"{total * 1000:.1f} ms",
                "",
                None,
                "report",
                None,
                f"median of {rounds}: {detail}",
            )
        )

    def scenario_iso_cli(self) -> None:
        assert self.project is not None
        base = self.base_iso()
        live = self.project.root / "build" / "nodes" / NODE / "coreos-autoinstall.ign"
        config = self.tmp / "cli-config.ign"
        if live.exists():
            shutil.copyfile(live, config)
        else:
            config.write_text('{"ignition": {"version": "3.4.0"}}\n')
        out, inplace, target = self.tmp / "cli-out.iso", self.tmp / "cli-inplace.iso", self.tmp / "cli-cp.iso"
        shutil.copyfile(base, inplace)
        cli = [sys.executable, "-m", "tasks.iso", "ignition", "embed", "-f", "-i", os.fspath(config)]
        cwd = self.project.root

        def to_output() -> Run:
            out.unlink(missing_ok=True)
            settle(base)
            return measure([*cli, "-o", os.fspath(out), os.fspath(base)], cwd=cwd).check("tasks.iso -o")

        def in_place() -> Run:
            settle(inplace)
            return measure([*cli, os.fspath(inplace)], cwd=cwd).check("tasks.iso in place")

        copies, outputs, patches = interleave(
            self.repeats(7), lambda: self.cp(base, target), to_output, in_place
        )
        for path in (out, inplace, target):
            path.unlink(missing_ok=True)
        cp_s = median(copies)
        ratio = median(outputs) / cp_s
        self.rows.append(
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
        self.rows.append(
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
            self.repeats(5),
            lambda: measure([sys.executable, "-c", "pass"], cwd=cwd).check("python"),
            lambda: measure([sys.executable, "-c", "import tasks.iso"], cwd=cwd).check("import"),
        )
        self.notes.append(
            f"floors: `python -c pass` {fmt_s(median(bare))}, `python -c 'import tasks.iso'` "
            f"{fmt_s(median(imported))}; 0.05x of this cp is {fmt_s(0.05 * cp_s)}"
        )

    # --- driving --------------------------------------------------------------------------------

    def run(self, scenarios: list[str]) -> None:
        # order: cold leaves a fresh build that rss reuses; embed leaves an out-of-date-free tree for noop
        order = ["cold", "rss", "embed", "noop", "transpile", "iso-cli"]
        for name in [s for s in order if s in scenarios]:
            started = time.perf_counter()
            print(f"running {name} ...", flush=True)
            try:
                getattr(self, "scenario_" + name.replace("-", "_"))()
            except ScenarioError as error:
                self.errors.append(f"{name}: {error}")
                self.rows.append(Row(name, "ERROR", "", None, "", False, str(error).splitlines()[0][:160]))
            print(f"  {name} done in {time.perf_counter() - started:.1f} s", flush=True)


# --------------------------------------------------------------------------------------------------
# Output


def table(rows: list[Row]) -> str:
    lines = [
        "| scenario | median | baseline (median) | ratio | goal | result | notes |",
        "|---|---:|---|---:|---|---|---|",
    ]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else ""
        lines.append(
            f"| {row.scenario} | {row.measured} | {row.baseline} | {ratio} | {row.goal} | "
            f"{row.status} | {row.note} |"
        )
    return "\n".join(lines)


def report(bench: Bench, machine: dict[str, str], command: str, elapsed: float) -> str:
    parts = [
        f"Command: `{command}` ({elapsed:.0f} s in all, {time.strftime('%Y-%m-%d %H:%M %Z')})",
        "",
        "Machine:",
        "",
    ]
    parts += [f"- {key}: {value}" for key, value in machine.items()]
    parts += [
        "",
        f"ISO: synthetic FCOS live ISO, {bench.args.iso_mb} MiB, "
        + (
            "sparse (holes: cp copies almost nothing); "
            if bench.args.sparse
            else "dense (no holes, like a real one); "
        )
        + "one node. Each scenario ran interleaved with its baseline (A B A B ...) so both see the same "
        "page-cache state; the cache was not dropped, and each run's inputs were read through (untimed) "
        "just before it (warm cache). Times are medians of wall-clock "
        "time of the whole subprocess (Python start-up included); RSS is wait4's ru_maxrss, the largest "
        "process of the tree (what /usr/bin/time -f %M reports). The mirror is tests/mirror.py, a Python "
        "ThreadingHTTPServer answering with sendfile; the curl baseline downloads from the same server.",
        "",
        table(bench.rows),
    ]
    if bench.notes:
        parts += ["", "Where the time goes:", ""] + [f"- {note}" for note in bench.notes]
    return "\n".join(parts) + "\n"


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def write_markdown(path: Path, text: str) -> None:
    """Replace what is between the markers (or create the page), keeping hand-written text around it."""
    block = f"{BEGIN}\n{text}{END}\n"
    if path.exists() and BEGIN in (old := path.read_text()) and END in old:
        head, rest = old.split(BEGIN, 1)
        tail = rest.split(END, 1)[1].lstrip("\n")
        path.write_text(head + block + ("\n" + tail if tail else ""))
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "# Benchmark\n\nGenerated by `python tests/bench.py --markdown docs/bench.md`.\n\n" + block
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python tests/bench.py",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[1:]),
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
    command = " ".join(["python", "tests/bench.py", *(sys.argv[1:] if argv is None else argv)])
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
        bench.run(args.scenario_list)
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


if __name__ == "__main__":
    sys.exit(main())
