"""Measuring commands, the machine, the benchmark's project, and the state the scenarios share."""

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

from tests.mirror import Mirror
from tests.pipeline_project import Project
from tests.synthetic_iso import build_fcos_iso
from tests.tools import REPO

MiB = 1024 * 1024
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
    upstream = root / "checkout-upstream.iso"
    build_fcos_iso(upstream, pad_to=iso_mb * MiB)
    if dense:
        densify(upstream)
    project = Project.create(root / "checkout", mirror, upstream_iso=upstream)
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

    def step_breakdown(self, runs: list[Run]) -> tuple[str, float]:
        """Median seconds per pipeline step over runs, slowest first, and their sum."""
        steps = [self.step_times(run) for run in runs]
        names = sorted({n for s in steps for n in s}, key=lambda n: -statistics.median(s.get(n, 0.0) for s in steps))
        text = ", ".join(f"{n} {fmt_s(statistics.median(s.get(n, 0.0) for s in steps))}" for n in names)
        return text, statistics.median(sum(s.values()) for s in steps)


def compared(scenario: str, ours: list[Run], baseline: str, base_seconds: float, *, goal: str = "",
             limit: float | None = None, also_ok: bool = True, note: str = "") -> Row:
    """A result row: our median against the baseline's, the ratio, and whether it is within `limit`."""
    ratio = median(ours) / base_seconds
    return Row(scenario, fmt_s(median(ours)), f"{baseline}: {fmt_s(base_seconds)}", ratio, goal,
               None if limit is None else ratio <= limit and also_ok, note)
