"""`python -m tasks.iso`: coreos-installer's `iso` subcommands, byte-compatible."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tasks.common import BuildError
from tasks.iso import api

DESCRIPTION = "Embed, show and remove Ignition configs, network keyfiles and kernel arguments in CoreOS live ISOs."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tasks.iso", description=DESCRIPTION)
    groups = parser.add_subparsers(dest="group", required=True)

    def output_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-o", "--output", type=Path, metavar="path", help="write ISO to a new output file")

    ignition = groups.add_parser("ignition", help="embed an Ignition config in the ISO").add_subparsers(
        dest="command", required=True
    )
    sub = ignition.add_parser("embed", help="embed an Ignition config")
    sub.add_argument("-f", "--force", action="store_true", help="overwrite an existing Ignition config")
    sub.add_argument("-i", "--ignition-file", type=Path, metavar="path", help="config file (default: stdin)")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = ignition.add_parser("show", help="show the embedded Ignition config")
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = ignition.add_parser("remove", help="remove the embedded Ignition config")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")

    kargs = groups.add_parser("kargs", help="modify the live kernel arguments").add_subparsers(
        dest="command", required=True
    )
    sub = kargs.add_parser("modify", help="modify kernel arguments")
    sub.add_argument("-a", "--append", action="append", default=[], metavar="KARG")
    sub.add_argument("-d", "--delete", action="append", default=[], metavar="KARG")
    sub.add_argument("-r", "--replace", action="append", default=[], metavar="KARG=OLDVAL=NEWVAL")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = kargs.add_parser("reset", help="reset kernel arguments to the default")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = kargs.add_parser("show", help="show the kernel arguments")
    sub.add_argument("-d", "--default", action="store_true", help="show the default kargs")
    sub.add_argument("input", type=Path, metavar="ISO")

    network = groups.add_parser("network", help="embed network settings").add_subparsers(
        dest="command", required=True
    )
    sub = network.add_parser("embed", help="embed NetworkManager keyfiles")
    sub.add_argument("-k", "--keyfile", action="append", required=True, type=Path, metavar="path")
    sub.add_argument("-f", "--force", action="store_true", help="overwrite existing network settings")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = network.add_parser("extract", help="extract embedded keyfiles")
    sub.add_argument("-C", "--directory", type=Path, metavar="path", help="extract to directory")
    sub.add_argument("input", type=Path, metavar="ISO")
    sub = network.add_parser("remove", help="remove embedded keyfiles")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")

    sub = groups.add_parser("reset", help="restore the ISO to its pristine state")
    output_option(sub)
    sub.add_argument("input", type=Path, metavar="ISO")
    return parser


def _read_config(path: Path | None) -> bytes:
    if path is None:
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BuildError(f"reading {path}: {exc.strerror}") from exc


def _write_stdout(data: bytes) -> None:
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _extract_network_cli(iso: Path, directory: Path | None) -> None:
    files = api.extract_network(iso)
    if directory is None:
        for index, (name, data) in enumerate(files.items()):
            _write_stdout((b"\n" if index else b"") + f"########## {name} ##########\n".encode() + data)
        return
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = directory / name
        try:
            with open(target, "xb") as handle:
                handle.write(data)
        except OSError as exc:
            raise BuildError(f"opening {target}: {exc.strerror}") from exc
        print(target)


def run(argv: Sequence[str]) -> None:
    """Execute one CLI command (raises BuildError on expected failures)."""
    args = _parser().parse_args(argv)
    command = (args.group, getattr(args, "command", None))
    output: Path | None = getattr(args, "output", None)
    if command == ("ignition", "embed"):
        api.embed_ignition(args.input, _read_config(args.ignition_file), force=args.force, output=output)
    elif command == ("ignition", "show"):
        _write_stdout(api.show_ignition(args.input))
    elif command == ("ignition", "remove"):
        api.remove_ignition(args.input, output=output)
    elif command == ("kargs", "show"):
        print(api.show_kargs(args.input, default=args.default))
    elif command == ("kargs", "modify"):
        api.modify_kargs(args.input, append=args.append, delete=args.delete, replace=args.replace, output=output)
    elif command == ("kargs", "reset"):
        api.reset_kargs(args.input, output=output)
    elif command == ("network", "embed"):
        api.embed_network(args.input, args.keyfile, force=args.force, output=output)
    elif command == ("network", "extract"):
        _extract_network_cli(args.input, args.directory)
    elif command == ("network", "remove"):
        api.remove_network(args.input, output=output)
    elif command == ("reset", None):
        api.reset_iso(args.input, output=output)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        run(sys.argv[1:] if argv is None else argv)
    except BuildError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    except OSError as exc:  # e.g. an output directory that does not exist, a full disk
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"Error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    return 0



