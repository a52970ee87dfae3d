"""How far can a spectrum shape that ignores the picture get on the real held-out windows? (issue 20, session 14)

The real bar on the log power distance asks for less than the training-set mean's. Scaled to the true total
power, the distance left is the spectrum's shape (`spectral_shape_distance`). This prints that shape distance on
the held-out windows for shapes that do not look at the picture: the training clips' mean and per-term median (in
log power), the synthetic scenes' mean, a flat spectrum, and the held-out windows' own per-term median (it knows
the answers: about the best one shape for all of them; the per-term median minimises the mean absolute log gap
before the rescaling to unit power). A model that gives every picture the same shape cannot do much better.

    python scripts/spectrum_shape_floor.py [--val runs/data/loops/val] [--train runs/data/loops/train]
        [--synth runs/data/synth_train] [--windows sample_000000 ...]
"""
from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.eval.metrics import log_power_gap, power_spectrum  # noqa: E402  (after the path line)


def shapes(folder: str, limit: int | None = None, names: list[str] | None = None) -> np.ndarray:
    """(N, K-1) power spectra of a folder's samples, each scaled to total 1."""
    out = []
    files = sorted(glob.glob(f"{folder}/sample_*.npz"))[:limit]
    for f in files:
        if names and Path(f).stem not in names:
            continue
        with np.load(f) as z:
            p = power_spectrum(z["spectral"], int(z["T"]), z["valid"] if "valid" in z.files else None)
        out.append(p / p.sum())
    if not out:
        raise SystemExit(f"no samples in {folder}")
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--val", default="runs/data/loops/val")
    ap.add_argument("--train", default="runs/data/loops/train")
    ap.add_argument("--synth", default="runs/data/synth_train")
    ap.add_argument("--windows", nargs="*", default=None, help="val sample names (default: all)")
    a = ap.parse_args()
    val = shapes(a.val, names=a.windows)
    train, synth = shapes(a.train), shapes(a.synth, limit=200)
    candidates = {"training clips: mean": train.mean(0),
                  "training clips: per-term median (log)": 10 ** np.median(np.log10(train), 0),
                  "synthetic scenes: mean": synth.mean(0),
                  "flat": np.ones(val.shape[1]),
                  "held-out windows' own per-term median (knows the answers)": 10 ** np.median(np.log10(val), 0)}
    print(f"{len(val)} held-out windows, {len(train)} training windows, {len(synth)} synthetic scenes")
    for name, shape in candidates.items():
        d = [float(log_power_gap(shape, v, shape=True).mean()) for v in val]
        print(f"  {name:58s} shape distance {np.mean(d):.3f}")


if __name__ == "__main__":
    main()
