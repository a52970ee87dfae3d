"""`gid train vae|ldm|ldm-freq|refine|placement|render|fluid`: one trainer module per kind, each with add_arguments(parser), run(args)."""
from __future__ import annotations

import argparse
import importlib

TRAINERS = {
    "vae": "backend.motion.train_vae",
    "ldm": "backend.motion.train_ldm",
    "ldm-freq": "backend.motion.train_ldm",
    "refine": "backend.motion.train_refine",
    "placement": "backend.motion.train_placement",
    "render": "backend.render.train",
    "fluid": "backend.motion.train_fluid",
}


def _load(kind: str):
    name = TRAINERS[kind]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise RuntimeError(f"trainer for {kind!r} ({name}) is not there yet") from exc
        raise


def _parse_trainer_args(args: argparse.Namespace, rest: list[str]) -> argparse.Namespace:
    """Import the trainer only now (it pulls in torch and diffusers) and parse its own arguments."""
    module = _load(args.kind)
    parser = argparse.ArgumentParser(prog=f"gid train {args.kind}")
    module.add_arguments(parser)
    parsed = parser.parse_args(rest)
    parsed.command, parsed.kind = args.command, args.kind
    parsed.func = module.run
    return parsed


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a model (vae, ldm, ldm-freq, refine, render, fluid)")
    kinds = parser.add_subparsers(dest="kind", required=True)
    for kind in TRAINERS:
        # add_help=False: `gid train KIND --help` reaches the trainer's own parser, built lazily so that
        # `gid --help` and the other commands start without importing torch and diffusers.
        sub = kinds.add_parser(kind, help=f"train {kind} (see gid train {kind} --help)", add_help=False)
        sub.set_defaults(parse_rest=_parse_trainer_args)
