"""Where the build's time goes, against what the machine itself can do, side by side in one run.

    python -m tests.bench                          # every scenario, 800 MiB ISO
    python -m tests.bench --iso-mb 200 --repeat 3  # quicker
    python -m tests.bench --scenarios noop,embed   # a subset (names below)
    python -m tests.bench --markdown docs/bench.md # also write the table into that page

Not part of the default test run (pytest collects test_*.py only). Layout: `harness` (measuring,
the machine, the project and the shared state), one module per scenario (`run(bench)`), `report`
(the table and docs/bench.md), `__main__` (options, order, exit status). It builds a local HTTP mirror
(tests/mirror.py) serving a synthetic FCOS live ISO (tests/synthetic_iso.py) of --iso-mb MiB,
signed with a throw-away key, and a throw-away copy of the project wired to it
(tests/pipeline_project.py). Each scenario runs interleaved with its baseline (A B A B ...), so
both see the same page-cache state; the cache is never dropped, so with enough RAM these are
warm-cache numbers. Scenarios (goals from the issue):

  noop       `doit` with everything up to date          vs `doit list`                ≤ 1.5x
             (and no large file read: the read bytes of both are compared)
  embed      `doit embed` after a keys/*.pub change     vs `cp` of the base ISO       ≤ 1.2x
             and the floor SHA256SUMS sets (doit list + openssl sha256 of the outputs); render per node ≤ 50 ms
  embed3     the same with three nodes (the project is switched to three and back)
  cold       `doit` from an empty build/               vs curl -o + gpgv + cp        ≤ 1.0x
  rss        peak RSS of the cold build at 200 MiB and at --iso-mb                  ≤ 150 MB
  transpile  butane.transpile of a node's rendered .bu/.fcc, in-process, ms          (reported)
  iso-cli    `python -m tasks.iso ignition embed -o`   vs `cp`                       (reported)
             `python -m tasks.iso ignition embed` in place vs `cp`                  ≤ 0.05x
             (or, when Python's start-up is above that, the start-up floor: shown)
  fetch      `doit verify` and the fetch+verify actions from an empty build/
             vs curl -o (ISO, signature) + gpgv                                     (reported)

The synthetic ISO is made dense (its sparse rootfs placeholder is overwritten with pseudo-random
bytes) unless --sparse: a real FCOS ISO has no holes, and a hole-aware copy of a sparse file would
make every `cp` baseline unrealistically cheap.

Exit status: 0 every goal met, 1 a goal missed, 2 a scenario could not run.
"""
