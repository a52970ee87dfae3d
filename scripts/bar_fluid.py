"""Print the Eulerian (fluid) bars in one run: river band loop, strokes -> field EPE, video -> field EPE.

    PYTHONPATH=$PWD GID_THREADS=1 .venv/bin/python scripts/bar_fluid.py [--mode splat|ibr]
"""
from __future__ import annotations

import argparse

from backend.eval.fluid import river_band_bar, strokes_epe, video_epe


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("splat", "ibr"), default="splat")
    args = ap.parse_args()
    r = river_band_bar(mode=args.mode)
    print(f"river band ({args.mode}), 48-frame loop, 256x160, one stroke at 1 px/frame:")
    print(f"  outside the mask: max |frame - input| = {r['outside_max_diff']} levels (bar <= 2)")
    print(f"  measured flow along the stroke (DIS, per frame pair): {r['flow_along_min']:.3f} .. "
          f"{r['flow_along_max']:.3f} px/frame, median {r['flow_along_median']:.3f} (bar 0.75..1.25); "
          f"across max {r['flow_across_max_abs']:.3f}")
    print(f"  loop seam / median frame-to-frame change = {r['seam_ratio']:.2f} (bar <= 1.5); "
          f"frame N == frame 0: {r['frame_N_equals_frame_0']}")
    print(f"  texture contrast at the worst frame / input = {r['contrast_ratio_worst']:.2f} (bar >= 0.6)")
    o = river_band_bar(mode=args.mode, sharp=False)
    print(f"  the same with the old symmetric splat (render_fluid sharp=False): outside {o['outside_max_diff']}, "
          f"flow {o['flow_along_min']:.3f} .. {o['flow_along_max']:.3f}, seam {o['seam_ratio']:.2f}, "
          f"contrast {o['contrast_ratio_worst']:.2f}")
    print("strokes -> field, EPE inside the mask (bar <= 0.25 px/frame):")
    for name, (n, e) in strokes_epe().items():
        print(f"  {name:7s} {n} strokes  EPE {e:.3f}")
    print("from-video --eulerian (30-frame advected clip), EPE inside the mask (bar <= 0.15 px/frame):")
    for name, e in video_epe().items():
        print(f"  {name:7s} EPE {e:.3f}")


if __name__ == "__main__":
    main()
