"""How well the depth layers' hole filling guesses hidden background, against OpenCV's inpainting.

Squares and discs of a picture are hidden (as a near object would hide them), filled by
`blender_addon.depth_layers.fill` (push-pull, the add-on's: Blender has no OpenCV) and by cv2.inpaint
(Telea, Navier-Stokes); prints the mean |error| in 8-bit levels over the hidden pixels, side by side.

    PYTHONPATH=$PWD .venv/bin/python scripts/eval_layer_fill.py [IMAGE ...]   (default backend/assets/sample.jpg)
"""
from __future__ import annotations

import sys
import time

import cv2
import numpy as np
from PIL import Image

from blender_addon.depth_layers import fill


def holes(h: int, w: int) -> list[tuple[str, np.ndarray]]:
    out = []
    for frac in (0.05, 0.12, 0.25):
        m = np.zeros((h, w), np.uint8)
        s = int(min(h, w) * frac)
        m[h // 2 - s // 2:h // 2 + s // 2, w // 3 - s // 2:w // 3 + s // 2] = 1
        out.append((f"square {frac:.0%}", m))
        d = np.zeros((h, w), np.uint8)
        cv2.circle(d, (2 * w // 3, h // 2), s // 2, 1, -1)
        out.append((f"disc {frac:.0%}", d))
    return out


def main(paths: list[str]) -> int:
    paths = paths or ["backend/assets/sample.jpg"]
    totals = {"push-pull": [], "cv2 telea": [], "cv2 ns": []}
    for path in paths:
        img = np.asarray(Image.open(path).convert("RGB"))
        h, w = img.shape[:2]
        for name, m in holes(h, w):
            hidden = m.astype(bool)
            t0 = time.perf_counter()
            pp = fill(img.astype(np.float32) / 255.0, ~hidden) * 255.0
            t_pp = time.perf_counter() - t0
            radius = 3
            te = cv2.inpaint(img, m, radius, cv2.INPAINT_TELEA).astype(np.float32)
            ns = cv2.inpaint(img, m, radius, cv2.INPAINT_NS).astype(np.float32)
            errs = {k: float(np.abs(v[hidden] - img[hidden]).mean()) for k, v in
                    (("push-pull", pp), ("cv2 telea", te), ("cv2 ns", ns))}
            for k, v in errs.items():
                totals[k].append(v)
            print(f"{path} {name:12s} " + "  ".join(f"{k} {v:6.2f}" for k, v in errs.items())
                  + f"   (push-pull {t_pp * 1000:.0f} ms)")
    print("mean |error| (8-bit levels) over all holes: "
          + "  ".join(f"{k} {np.mean(v):.2f}" for k, v in totals.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
