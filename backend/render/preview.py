"""The `splat` preview: pixel-space softmax splatting of I0 plus a push-pull hole fill. No network.

Also home of the motion-derived splat metric shared by the preview and the IBR network (SPEC section 4):
    W(p) = mean_t ||F_t(p)||  (pixels),   Z(p) = METRIC_SCALE * W(p) * REFERENCE_SIDE / max(H, W)
i.e. W is measured in pixels of a picture whose long side is REFERENCE_SIDE (256, the training size), so the
same Z comes out at every resolution and pyramid level. The paper does not say whether W is scaled before
exp(); we choose METRIC_SCALE = 4: a surface moving 1 px (at 256) more than another wins by e^4 ~ 55x, so
a moving branch covers the static sky behind it, while neighbours inside one object (whose W differ by a
fraction of a pixel) still blend smoothly instead of z-fighting.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .softsplat import softsplat

METRIC_SCALE = 4.0
REFERENCE_SIDE = 256


def mean_motion(displacements: torch.Tensor) -> torch.Tensor:
    """W(p) = mean over frames of ||F_t(p)||: (n, 2, H, W) -> (1, 1, H, W) pixels."""
    return displacements.norm(dim=1, keepdim=True).mean(dim=0, keepdim=True)


def splat_metric(mean_norm: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Z from W (B, 1, H, W) in pixels of its own grid (or of `size` = (W, H) if given)."""
    h, w = mean_norm.shape[-2:] if size is None else (size[1], size[0])
    return mean_norm * (METRIC_SCALE * REFERENCE_SIDE / max(h, w))


def push_pull_fill(image: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """Fill low-confidence pixels of image (B, C, H, W) from coarser averages of the confident ones.

    confidence (B, 1, H, W) in [0, 1]. Push: halve with confidence-weighted averages down to a few pixels.
    Pull: at each finer level, out = conf * own + (1 - conf) * upsampled coarser result. O(N), no iterations.
    """
    levels = []
    c = image * confidence
    w = confidence
    while True:
        levels.append((c, w))
        h, wd = c.shape[-2:]
        if min(h, wd) <= 2:
            break
        c = F.avg_pool2d(c, 2, ceil_mode=True)
        w = F.avg_pool2d(w, 2, ceil_mode=True)
    c, w = levels[-1]
    filled = c / w.clamp(min=1e-12)
    # a coarsest level with no confident pixel at all: grey rather than 0/0
    filled = torch.where(w > 0, filled, torch.full_like(filled, 0.5))
    for c, w in reversed(levels[:-1]):
        up = F.interpolate(filled, size=c.shape[-2:], mode="bilinear", align_corners=False)
        own = c / w.clamp(min=1e-12)
        # a coarse average of partly empty pixels is itself a confident estimate: scale the weight up
        conf = (w * 2.0).clamp(max=1.0)
        filled = torch.where(w > 0, conf * own + (1.0 - conf) * up, up)
    return filled


def splat_preview(image: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
    """Forward-warp image (1 or B, 3, H, W) in [0, 1] by flow (B, 2, H, W) with Z metric (1 or B, 1, H, W);
    holes and thin cracks filled by push-pull. Returns (B, 3, H, W)."""
    B = flow.shape[0]
    res = softsplat(image.expand(B, -1, -1, -1), flow, metric.expand(B, -1, -1, -1), mode="soft")
    confidence = res.coverage.clamp(max=1.0)
    return push_pull_fill(res.output, confidence)
