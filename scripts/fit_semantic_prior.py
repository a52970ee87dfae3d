"""Fit the semantic-prior baseline of `gid eval` (backend/priors/semantic_amount.py) on training data.

    python scripts/fit_semantic_prior.py --real runs/data/loops/train --synth runs/data/synth_train \
        --max-synth 100 --out backend/weights/priors/espnet/semantic_amounts.json

Per-class motion amount from ESPNet (Cityscapes) class probabilities: the probability-weighted mean of the true
energy map per source (real gid_loops training windows, synthetic scenes), averaged over sources with equal
weight (see the module docstring). Only training data: the gid_loops validation scenes are never read.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.data.samples import list_samples  # noqa: E402
from backend.priors.espnet import SemanticPrior  # noqa: E402
from backend.priors.semantic_amount import FIT_FILE, accumulate, fit, load_samples, write_fit  # noqa: E402


def evenly(paths: list[Path], n: int | None) -> list[Path]:
    if n is None or len(paths) <= n:
        return paths
    return [paths[i] for i in np.unique(np.linspace(0, len(paths) - 1, n).round().astype(int))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", nargs="+", type=Path, required=True, help="real-clip training sample folders")
    ap.add_argument("--synth", nargs="+", type=Path, required=True, help="synthetic training sample folders")
    ap.add_argument("--max-real", type=int)
    ap.add_argument("--max-synth", type=int, default=100)
    ap.add_argument("--real-weight", type=float, default=0.5, help="weight of the real source (synthetic: 1 - it)")
    ap.add_argument("--out", type=Path, default=FIT_FILE)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not 0 <= args.real_weight <= 1:
        raise SystemExit("--real-weight must be in 0..1")
    torch.set_num_threads(args.threads)
    prior = SemanticPrior.load()
    sources = {}
    for name, folders, cap in (("real", args.real, args.max_real), ("synthetic", args.synth, args.max_synth)):
        paths = evenly(list_samples(folders), cap)
        print(f"{name}: {len(paths)} samples from {', '.join(map(str, folders))}", flush=True)
        sources[name] = accumulate(load_samples(paths), prior)
    data = fit(sources, {"real": args.real_weight, "synthetic": 1.0 - args.real_weight}, prior)
    data["folders"] = {"real": [str(f) for f in args.real], "synthetic": [str(f) for f in args.synth]}
    write_fit(args.out, data)
    for c, a in zip(data["classes"], data["amount_px"]):
        r, s = (data["sources"][n]["amount_px"][data["classes"].index(c)] for n in ("real", "synthetic"))
        mr = data["sources"]["real"]["class_mass_fraction"][data["classes"].index(c)]
        ms = data["sources"]["synthetic"]["class_mass_fraction"][data["classes"].index(c)]
        print(f"{c:14s} amount {a:.3f} px  (real {r:.3f} px, mass {mr:.1%}; synthetic {s:.3f} px, mass {ms:.1%})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
