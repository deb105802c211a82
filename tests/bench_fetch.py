"""Benchmark fetch+verify against `curl -o` + `gpgv` for a big ISO from a local mirror (not a test).

    /tmp/venv/bin/python tests/bench_fetch.py [--size-mib 1024] [--rounds 3] [--workdir /tmp/fcos-bench]

Each round, interleaved, each run after a sync (no run pays for an earlier run's writeback):
  baseline  curl -s -o ISO; curl -s -o ISO.sig; gpgv --keyring K ISO.sig ISO
  library   python -c: fetch_release() + verify_release() (the task actions, in a fresh build/)
  doit      python -m doit in a fresh project (adds doit's own md5 of the ISO, recorded as a file_dep)
The python runs go through `/usr/bin/time -v` for their peak RSS (gpgv, a child, is far smaller).
Prints per-round times and the medians, and the ratios to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.fspath(REPO))

from tests.mirror import Mirror, publish_fcos  # noqa: E402
from tests.signing import SigningKey  # noqa: E402

LIBRARY_RUN = """
from tasks.download import RetryPolicy
from tasks.common import FcosFiles
from tasks.config import Fcos
from tasks.fetch import fetch_release
from tasks.verify import verify_release
files = FcosFiles("x86_64")
fetch_release(Fcos(stream_url={stream_url!r}, keyring={keyring!r}), files, RetryPolicy(), progress=False)
verify_release(files, ({fingerprint!r},))
"""

DODO = """\
from pathlib import Path
Path("build").mkdir(exist_ok=True)
from tasks.fetch import task_fetch, task_update  # noqa
from tasks.verify import task_verify  # noqa
DOIT_CONFIG = {"default_tasks": ["verify"], "dep_file": "build/.doit.json", "backend": "json",
               "check_file_uptodate": "md5"}
"""


def make_iso(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size == size:
        return
    with path.open("wb") as f:
        for _ in range(size >> 20):
            f.write(os.urandom(1 << 20))


def settle() -> None:
    """Write back dirty pages first, so no run pays for the previous run's 1 GiB of writeback."""
    os.sync()
    time.sleep(0.5)


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, int | None]:
    """Wall seconds and, for /usr/bin/time -v runs, peak RSS in KiB."""
    start = time.monotonic()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if result.returncode != 0:
        sys.exit(f"{argv} failed:\n{result.stderr[-2000:]}")
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)
    return wall, int(match[1]) if match else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fcos-bench"))
    args = parser.parse_args()
    for tool in ("curl", "gpgv", "gpg", "/usr/bin/time", "ssh-keygen"):
        if shutil.which(tool) is None:
            sys.exit(f"needs {tool}")

    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    iso = work / "source.iso"
    make_iso(iso, args.size_mib << 20)
    key = SigningKey.generate(work / "key")
    keyring_gpg = work / "keyring.gpg"
    subprocess.run(["gpg", "--batch", "--yes", "--dearmor", "-o", os.fspath(keyring_gpg)],
                   input=key.public_armored, check=True)
    env = dict(os.environ, PYTHONPATH=os.fspath(REPO))
    python = sys.executable

    with Mirror(work / "mirror") as mirror:
        published = publish_fcos(mirror.root, iso, key, base_url=mirror.url(""))
        doit_project = work / "doit-project"
        shutil.rmtree(doit_project, ignore_errors=True)
        (doit_project / "jsonnet").mkdir(parents=True)
        (doit_project / "keys").mkdir()
        (doit_project / "dodo.py").write_text(DODO)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.fspath(doit_project / "id")],
                       check=True)
        os.replace(doit_project / "id.pub", doit_project / "keys" / "id.pub")
        (doit_project / "jsonnet" / "cluster.jsonnet").write_text(json.dumps({
            "fcos": {"stream_url": published["stream_url"], "keyring": published["keyring_url"],
                     "fingerprints": [key.fingerprint]}}))
        library_project = work / "library-project"

        rows: dict[str, list[float]] = {"baseline": [], "library": [], "doit": []}
        rss: dict[str, list[int]] = {"library": [], "doit": []}
        for round_number in range(1, args.rounds + 1):
            plain = work / "curl"
            shutil.rmtree(plain, ignore_errors=True)
            plain.mkdir()
            settle()
            start = time.monotonic()
            subprocess.run(["curl", "-sf", "-o", os.fspath(plain / "live.iso"), published["iso_url"]],
                           check=True)
            subprocess.run(["curl", "-sf", "-o", os.fspath(plain / "live.iso.sig"), published["sig_url"]],
                           check=True)
            subprocess.run(["gpgv", "--keyring", os.fspath(keyring_gpg), os.fspath(plain / "live.iso.sig"),
                            os.fspath(plain / "live.iso")], check=True, capture_output=True)
            rows["baseline"].append(time.monotonic() - start)
            shutil.rmtree(plain)

            shutil.rmtree(library_project, ignore_errors=True)
            library_project.mkdir()
            code = LIBRARY_RUN.format(stream_url=published["stream_url"], keyring=published["keyring_url"],
                                      fingerprint=key.fingerprint)
            settle()
            wall, peak = timed(["/usr/bin/time", "-v", python, "-c", code], library_project, env)
            rows["library"].append(wall)
            rss["library"].append(peak or 0)
            shutil.rmtree(library_project)

            shutil.rmtree(doit_project / "build", ignore_errors=True)
            settle()
            wall, peak = timed(["/usr/bin/time", "-v", python, "-m", "doit"], doit_project, env)
            rows["doit"].append(wall)
            rss["doit"].append(peak or 0)
            shutil.rmtree(doit_project / "build")
            print(f"round {round_number}: curl+gpgv {rows['baseline'][-1]:.2f} s | fetch+verify "
                  f"{rows['library'][-1]:.2f} s, {rss['library'][-1] / 1024:.0f} MiB | doit "
                  f"{rows['doit'][-1]:.2f} s, {rss['doit'][-1] / 1024:.0f} MiB", flush=True)

    base = statistics.median(rows["baseline"])
    print(f"\n{args.size_mib} MiB ISO, {args.rounds} rounds, medians:")
    print(f"  curl -o + gpgv           {base:6.2f} s")
    for name, label in (("library", "fetch+verify (actions)"), ("doit", "doit fetch+verify")):
        median = statistics.median(rows[name])
        print(f"  {label:24} {median:6.2f} s  ratio {median / base:.2f}  "
              f"peak RSS {max(rss[name]) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
