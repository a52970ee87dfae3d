"""Why the depth estimate is weak, measured: mobilePyDNet variants on the scenes that
scripts/eval_depth_synthetic.py rendered (`--out DIR` keeps sceneN.png and sceneN_z.npy there).

Rows: the network's finest output (L1) at the trained 640x448 (as before), without the mirror average, its
coarser heads L2 / L3, BGR instead of RGB, 0..255 instead of 0..1 input, single input sizes, and the shipped
estimator (backend.priors.depth: four sizes, mirror-averaged). Spearman against the true inverse depth; then,
for the monotone map, Pearson of output vs depth, 1 / output vs 1 / depth and -output vs 1 / depth (non-sky).

    PYTHONPATH=$PWD GID_THREADS=1 .venv/bin/python scripts/eval_depth_synthetic.py --out /tmp/depth_eval
    PYTHONPATH=$PWD GID_THREADS=1 .venv/bin/python scripts/ablate_depth_synthetic.py /tmp/depth_eval
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def heads(net, x):
    """The graph's 1-channel heads {level: (B, 1, h, w)} (L1 finest .. L3 coarsest)."""
    import torch

    feats, h = [], x
    for i in range(1, 7):
        h = getattr(net.encoder, f"conv{i}b")(getattr(net.encoder, f"conv{i}a")(h))
        feats.append(h)
    up, out = None, {}
    for level in range(6, 0, -1):
        h = feats[level - 1] if up is None else torch.cat([feats[level - 1], up], 1)
        _, disp, up = getattr(net.decoder, f"L{level}")(h)
        if disp is not None:
            out[level] = disp
    return out


def main(argv: list[str]) -> int:
    import cv2
    import torch

    from backend.priors import depth, pydnet
    from scripts.eval_depth_synthetic import spearman

    folder = Path(argv[0])
    scenes = []
    for i in range(100):
        if not (folder / f"scene{i}.png").is_file():
            break
        scenes.append((cv2.cvtColor(cv2.imread(str(folder / f"scene{i}.png")), cv2.COLOR_BGR2RGB),
                       np.load(folder / f"scene{i}_z.npy")))
    net = pydnet.load()

    @torch.no_grad()
    def raw(img, level=1, size=(640, 448), scale=1.0, flip=True):
        h, w = img.shape[:2]
        x = torch.from_numpy(cv2.resize(img, size, interpolation=cv2.INTER_AREA)).float().permute(2, 0, 1)[None]
        x = x / 255.0 * scale
        o = heads(net, x)[level]
        if flip:
            o = 0.5 * (o + heads(net, x.flip(-1))[level].flip(-1))
        return cv2.resize(o[0, 0].numpy(), (w, h), interpolation=cv2.INTER_LINEAR)

    rows = [("L1 640x448 mirrored (before)", lambda im: -raw(im)),
            ("L1 without the mirror average", lambda im: -raw(im, flip=False)),
            ("L2 head", lambda im: -raw(im, 2)), ("L3 head", lambda im: -raw(im, 3)),
            ("BGR input", lambda im: -raw(im[..., ::-1].copy())),
            ("0..255 input", lambda im: -raw(im, scale=255.0))]
    rows += [(f"L1 at {w}x{h} only", lambda im, s=(w, h): -raw(im, size=s))
             for w, h in [(320, 256), (384, 256), (448, 320), (512, 384), (768, 512), (1280, 896)]]
    rows += [("shipped: 4 sizes, mirrored (after)", depth.estimate_inverse_depth)]
    print(f"{'variant':38s}" + "".join(f" scene{i}" for i in range(len(scenes))) + "   mean")
    for name, fn in rows:
        r = [spearman(fn(img), 1.0 / z) for img, z in scenes]
        print(f"{name:38s}" + "".join(f" {v:+.3f}" for v in r) + f"  {np.mean(r):.3f}", flush=True)
    for i, (img, z) in enumerate(scenes):
        o, m = raw(img), z < 1e3
        c = [np.corrcoef(a[m], b[m])[0, 1] for a, b in ((o, z), (1 / o, 1 / z), (-o, 1 / z))]
        print(f"scene {i} Pearson (non-sky): output~depth {c[0]:+.3f}  1/output~1/depth {c[1]:+.3f}  "
              f"-output~1/depth {c[2]:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
