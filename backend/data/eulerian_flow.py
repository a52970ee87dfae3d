"""A steady velocity field from video (Holynski et al. 2021, section 3.3: the Eulerian field of a real clip is
the average of its frame-to-frame optical flow). `gid data from-video VIDEO --eulerian --out V.npz`.

Per consecutive pair: DIS flow I_t -> I_t+1 and I_t+1 -> I_t; a measurement at p counts when the pair is
forward-backward consistent there (same test as flow.py). V(p) = mean of the consistent measurements;
pixels consistent in fewer than `min_consistent` of the pairs are invalid (V = 0, mask 0), and pixels whose
(5x5 mean) grey level never changes by more than `still_levels` are still (V = 0, mask 0).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .flow import FlowConfig, make_dis

MAX_PAIRS = 600          # frames beyond this are not needed for a mean (and bound the work)


@dataclass(frozen=True)
class EulerianConfig:
    min_consistent: float = 0.5
    still_levels: float = 3.0
    max_pairs: int = MAX_PAIRS


def average_velocity(frames: np.ndarray, cfg: EulerianConfig = EulerianConfig(), flow_cfg: FlowConfig = FlowConfig(),
                     ctx=None) -> tuple[np.ndarray, np.ndarray]:
    """frames uint8 (L, H, W, 3) RGB, L >= 2 -> (velocity float32 (2, H, W) px/frame, mask bool (H, W))."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
        raise ValueError(f"frames must be uint8 (L >= 2, H, W, 3), got {frames.dtype} {frames.shape}")
    frames = frames[:cfg.max_pairs + 1]
    n, h, w = frames.shape[:3]
    dis = make_dis(flow_cfg)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    total = np.zeros((h, w, 2), np.float64)
    count = np.zeros((h, w), np.int32)
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames]
    blur0 = cv2.blur(gray[0].astype(np.float32), (5, 5))
    change = np.zeros((h, w), np.float32)
    for t in range(n - 1):
        f = dis.calc(gray[t], gray[t + 1], None)
        b = dis.calc(gray[t + 1], gray[t], None)
        b_at = cv2.remap(b, xs + f[..., 0], ys + f[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = ((f + b_at) ** 2).sum(-1)
        ok = err <= 0.01 * ((f ** 2).sum(-1) + (b_at ** 2).sum(-1)) + 0.25
        total[ok] += f[ok]
        count += ok
        change = np.maximum(change, np.abs(cv2.blur(gray[t + 1].astype(np.float32), (5, 5)) - blur0))
        if ctx is not None:
            ctx.step("flow", (t + 1) / (n - 1))
    mask = (count >= cfg.min_consistent * (n - 1)) & (change > cfg.still_levels)
    v = np.where(mask[..., None], total / np.maximum(count, 1)[..., None], 0.0)
    return np.ascontiguousarray(v.transpose(2, 0, 1)).astype(np.float32), mask
