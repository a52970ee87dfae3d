"""`gid train vae|ldm|ldm-freq|render`: one trainer module per kind, each with add_arguments(parser), run(args)."""
from __future__ import annotations

import argparse
import importlib

TRAINERS = {
    "vae": "backend.motion.train_vae",
    "ldm": "backend.motion.train_ldm",
    "ldm-freq": "backend.motion.train_ldm",
    "render": "backend.render.train",
}


def _load(kind: str):
    name = TRAINERS[kind]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise RuntimeError(f"trainer for {kind!r} ({name}) is not there yet") from exc
        raise


def _missing(exc: Exception):
    def fail(args) -> int:
        raise exc
    return fail


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a model (vae, ldm, ldm-freq, render)")
    kinds = parser.add_subparsers(dest="kind", required=True)
    for kind in TRAINERS:
        sub = kinds.add_parser(kind, help=f"train {kind}")
        try:
            module = _load(kind)
        except RuntimeError as exc:
            sub.set_defaults(func=_missing(exc))
            sub.add_argument("rest", nargs=argparse.REMAINDER)
            continue
        module.add_arguments(sub)
        sub.set_defaults(func=lambda args, m=module: m.run(args))
