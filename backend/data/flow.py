"""Dense motion of a video window: flow from the first frame to every later frame (not chained), as the paper.

OpenCV DIS, medium preset with finer settings (flow down to full resolution, more variational refinement).
Validity: forward-backward consistency (Sundaram et al. 2010): p is consistent at t when
|f(p) + b(p + f(p))|^2 <= 0.01 (|f|^2 + |b|^2) + 0.5^2, with b the flow I_t -> I_0; the backward flow is
computed on every `check_every`-th frame (it costs as much as the forward one), and a pixel is valid when it is
consistent on at least `min_consistent` of the checked frames and never leaves the image.
Still pixels: where the (5x5 mean) grey level never changes by more than `still_levels` and no changing pixel
is within `still_margin` px, the motion is set to 0 (flow smoothing otherwise leaks motion into sky and dark
backgrounds, which the spectral volumes would then teach as moving).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class FlowConfig:
    finest_scale: int = 0              # medium preset uses 1 (half resolution); 0 = full resolution
    variational_iterations: int = 10   # medium preset: 5
    check_every: int = 3
    min_consistent: float = 0.9
    still_levels: float = 3.0         # a pixel whose (5x5 mean) grey level never changes by more than this ...
    still_margin: int = 4             # ... and that is farther than this (px) from any pixel that does: motion 0


def make_dis(cfg: FlowConfig = FlowConfig()):
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    dis.setFinestScale(cfg.finest_scale)
    dis.setVariationalRefinementIterations(cfg.variational_iterations)
    dis.setUseSpatialPropagation(True)
    return dis


def _gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def window_motion(frames: np.ndarray, cfg: FlowConfig = FlowConfig(), ctx=None) -> tuple[np.ndarray, np.ndarray]:
    """frames uint8 (N, H, W, 3) RGB -> motion float32 (N, 2, H, W) from frame 0 (motion[0] = 0), valid bool (H, W)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    n, h, w = frames.shape[:3]
    dis = make_dis(cfg)
    g0 = _gray(frames[0])
    motion = np.zeros((n, 2, h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    consistent = np.zeros((h, w), np.int32)
    inside = np.ones((h, w), bool)
    checked = 0
    g0_blur = cv2.blur(g0.astype(np.float32), (5, 5))
    change = np.zeros((h, w), np.float32)
    for t in range(1, n):
        gt = _gray(frames[t])
        change = np.maximum(change, np.abs(cv2.blur(gt.astype(np.float32), (5, 5)) - g0_blur))
        f = dis.calc(g0, gt, None)
        motion[t, 0], motion[t, 1] = f[..., 0], f[..., 1]
        mx, my = xs + f[..., 0], ys + f[..., 1]
        inside &= (mx >= -0.5) & (mx <= w - 0.5) & (my >= -0.5) & (my <= h - 0.5)
        if t % cfg.check_every == 0 or t == n - 1:
            b = dis.calc(gt, g0, None)
            b_at = cv2.remap(b, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            err = ((f + b_at) ** 2).sum(-1)
            tol = 0.01 * ((f**2).sum(-1) + (b_at**2).sum(-1)) + 0.25
            consistent += err <= tol
            checked += 1
        if ctx is not None:
            ctx.step("flow", t / (n - 1))
    valid = inside & (consistent >= cfg.min_consistent * max(checked, 1))
    # Flow smoothing leaks motion into textureless or unchanging surroundings (sky, dark walls, compression
    # noise): where the picture provably does not change, the motion is zero.
    k = 2 * cfg.still_margin + 1
    near_change = cv2.dilate((change > cfg.still_levels).astype(np.uint8), np.ones((k, k), np.uint8)) > 0
    motion[:, :, ~near_change] = 0.0
    return motion, valid
