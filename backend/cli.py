"""`gid`: the backend's command line. Only parses arguments and calls library code.

Each sub-command lives in its own module that exposes `register(subparsers)`; the module adds its parser and
sets `func` (called with the parsed args, returns the exit code). Add a module to SUBCOMMANDS to add a command.
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = [
    "backend.train.cli",
    "backend.data.cli",
    "backend.service.serve_cli",
    "backend.animate",
    "backend.eval.cli",
    "backend.farm.bake_cli",
    "backend.depth_cli",
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    parser = argparse.ArgumentParser(prog="gid", description="Generative Image Dynamics backend")
    parser.add_argument("--version", action="version", version=f"gid {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if hasattr(args, "parse_rest"):      # a command that parses its own arguments lazily (gid train KIND)
        args = args.parse_rest(args, rest)
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("gid: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, FileNotFoundError, OSError) as exc:
        # One clear line for people and scripts; the traceback is for bugs, not for bad input.
        print(f"gid {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
