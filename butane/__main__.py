"""Command line mirroring Butane's: ``python -m butane [--strict] [--pretty] [-d DIR] [-o FILE] [INPUT]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tasks.common import write_atomic

from . import ButaneError, transpile


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="butane", description="Translate a Butane config to Ignition JSON.")
    parser.add_argument("input", nargs="?", help="Butane config (default: stdin)")
    parser.add_argument("-s", "--strict", action="store_true", help="fail on any warning")
    parser.add_argument("-p", "--pretty", action="store_true", help="output formatted JSON")
    parser.add_argument("-c", "--check", action="store_true", help="check config only, no output")
    parser.add_argument("-d", "--files-dir", help="directory for local file references")
    parser.add_argument("-o", "--output", help="output file (default: stdout)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    try:
        if args.input:
            with open(args.input, "rb") as handle:
                text = handle.read()
        else:
            text = sys.stdin.buffer.read()
    except OSError as exc:
        print(f"failed to open {args.input}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        output, warnings = transpile(text, files_dir=args.files_dir, pretty=args.pretty)
    except ButaneError as exc:
        if exc.summary == str(exc):
            print(f"Error translating config: {exc}", file=sys.stderr)
        else:
            for line in exc.entries:
                print(line, file=sys.stderr)
            print(f"Error translating config: {exc.summary}", file=sys.stderr)
        return 1
    for line in warnings:
        print(line, file=sys.stderr)
    if args.strict and warnings:
        print("Config produced warnings and --strict was specified", file=sys.stderr)
        return 1
    if args.check:
        return 0
    if args.output:
        write_atomic(Path(args.output), output + "\n", create_parent=False)
    else:
        sys.stdout.write(output + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
