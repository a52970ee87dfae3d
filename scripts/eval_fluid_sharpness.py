"""Detail kept by fluid loops (issue 25): the old symmetric splat vs the sharp path vs the cross-fade's ceiling.

    PYTHONPATH=$PWD GID_THREADS=1 .venv/bin/python scripts/eval_fluid_sharpness.py

Textured river band flowing at 0.6 px/frame (sub-pixel offsets), 24-frame loop, 256x160: Laplacian energy in the
band's core per frame / the input's. The ceiling blends I0 moved by whole pixels with the loop weights (perfect
resampling): mid-loop it is ~0.5x (two uncorrelated copies at weight 1/2 each), so 0.85x of the input is
reachable only near the loop's ends; the reachable bar is new / ceiling. Also: how exactly the two candidate
backward fields undo the forward displacement on the curved river (why the renderer inverts by splatting).
"""
from __future__ import annotations

import numpy as np

from backend.eval.fluid import inversion_error, river_sharpness


def main() -> None:
    r = river_sharpness()
    n = len(r["new"]) + 1
    print(f"river band, {n}-frame loop, 0.6 px/frame: Laplacian energy / input's in the band's core")
    print("  frame   old    new    ceiling   old/ceil  new/ceil")
    for i in range(len(r["new"])):
        print(f"  {i + 1:5d}  {r['old'][i]:.3f}  {r['new'][i]:.3f}  {r['ceiling'][i]:.3f}     "
              f"{r['old_over_ceiling'][i]:.3f}     {r['new_over_ceiling'][i]:.3f}")
    for name, f in (("min", np.min), ("mean", np.mean)):
        print(f"  {name:5s}  {f(r['old']):.3f}  {f(r['new']):.3f}  {f(r['ceiling']):.3f}     "
              f"{f(r['old_over_ceiling']):.3f}     {f(r['new_over_ceiling']):.3f}")
    print("  bars: frame 1 (no cross-fade yet) new >= 0.85x input; every frame new >= 0.85x ceiling")
    print("inversion of F_0->t on the curved river, mean round-trip error |B(q) + F(q + B(q))| px:")
    for t, row in inversion_error().items():
        print(f"  t = {t:2d}: splat inversion {row['splat_inversion']:.3f} (confident {row['confident']:.0%} of the "
              f"core; the rest comes from the other term or the fill), integrated backward "
              f"{row['integrated_backward']:.3f}")


if __name__ == "__main__":
    main()
