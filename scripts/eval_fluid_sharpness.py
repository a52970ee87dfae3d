"""Detail kept by fluid loops (issue 25): the old symmetric splat vs the sharp path vs the cross-fade's ceiling.

    PYTHONPATH=$PWD GID_THREADS=1 .venv/bin/python scripts/eval_fluid_sharpness.py

Textured river band flowing at 0.6 px/frame (sub-pixel offsets), 24-frame loop, 256x160: Laplacian energy in the
band's core per frame / the input's. The ceiling blends I0 moved by whole pixels with the loop weights (perfect
resampling): mid-loop it is ~0.5x (two uncorrelated copies at weight 1/2 each), so 0.85x of the input is
reachable only near the loop's ends; the reachable bar is new / ceiling. Also: how exactly the two candidate
backward fields undo the forward displacement on the curved river (why the renderer inverts by splatting).
"""
from __future__ import annotations

import time

import numpy as np

from backend.data.fluid_synth import river_band, texture
from backend.eval.fluid import inversion_error, river_sharpness
from backend.render.api import Renderer
from backend.render.fluid import FluidMotion


def cpu_per_frame(renderer: Renderer, size: tuple[int, int], sharp: bool) -> float:
    """CPU seconds per loop frame of render_fluid (splat) on the river band at `size`."""
    sc = river_band(size, speed=0.6)
    image = texture(size, seed=5, sigma=1.0)
    motion = FluidMotion.prepare(sc.velocity, sc.mask, 24)
    renderer.render_fluid(image, motion, [1], mode="splat", sharp=sharp)      # warm-up (gain table)
    c0 = time.process_time()
    renderer.render_fluid(image, motion, [3, 7, 12, 17], mode="splat", sharp=sharp)
    return (time.process_time() - c0) / 4


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
    big = river_sharpness(size=(2048, 1152), loop_frames=8)
    print("2048x1152, 8-frame loop (flow inverted at 1024 and upsampled): min over frames of old/ceil "
          f"{big['old_over_ceiling'].min():.3f}, new/ceil {big['new_over_ceiling'].min():.3f}; frame 1 old "
          f"{big['old'][0]:.3f}, new {big['new'][0]:.3f}, ceiling {big['ceiling'][0]:.3f}")
    renderer = Renderer.load(device="cpu")
    for size in ((512, 320), (2048, 1152)):
        old, new = cpu_per_frame(renderer, size, False), cpu_per_frame(renderer, size, True)
        print(f"cost at {size[0]}x{size[1]}: sharp / old CPU time per frame = {new / old:.2f} (one thread)")
    print("inversion of F_0->t on the curved river, mean round-trip error |B(q) + F(q + B(q))| px:")
    for t, row in inversion_error().items():
        print(f"  t = {t:2d}: splat inversion {row['splat_inversion']:.3f} (confident {row['confident']:.0%} of the "
              f"core; the rest comes from the other term or the fill), integrated backward "
              f"{row['integrated_backward']:.3f}")


if __name__ == "__main__":
    main()
