"""The full-resolution path: backward warping of the picture with a sharp kernel, in row tiles (issues 24, 25).

Forward splatting resamples with bilinear weights, a low-pass filter at sub-pixel offsets (a 0.5 px shift keeps
0.45x of the Laplacian energy). Instead:

1. invert the forward motion at a working resolution (long side <= FLOW_LONG_SIDE): softmax-splat the flow
   itself with the motion metric (the front-most surface wins at folds), fill the holes it leaves from their
   neighbours (push-pull) and negate: B(q) = -F(p) for the p that lands on q. Coverage of that splat says where
   the picture is disoccluded: confidence = clamp(2 * coverage, 0, 1).
2. per tile of full-resolution rows: upsample B and the confidence (bilinear, pixel centres aligned), sample I0
   at q + B(q) with cv2.remap and a sharp kernel (bicubic by default, Lanczos-4 on request), clamp every value
   to the min/max of the 2x2 source pixels around q + B(q) (no ringing: nothing the bilinear kernel could not
   give), and blend with the fill (the IBR network's output or the splat preview, at their own lower
   resolution) where the confidence is below 1.
3. gain correction: at a half-pixel offset bicubic keeps ~0.7x and Lanczos-4 ~0.8x of the Laplacian energy (no
   interpolator keeps the Nyquist band there) while whole-pixel offsets lose nothing, so detail would pulse with
   the sub-pixel phase. `gain_table` measures on I0 itself the boost k per fractional offset that restores the
   energy (out = warp - k * Laplacian(warp)); each pixel gets the boost of its own offset, before the min/max
   clamp (which still bounds it: no halo can appear).

Every step of 2. is a function of the pixel alone, so tiles give exactly the untiled result, memory per tile is
bounded (TILE_ROWS rows) and the full-resolution flow is never materialised.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .preview import push_pull_fill
from .softsplat import softsplat

KERNELS = {"linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC, "lanczos": cv2.INTER_LANCZOS4}
DEFAULT_KERNEL = "cubic"   # with the gain correction as sharp as Lanczos-4 on the bars, 3.5x cheaper
FLOW_LONG_SIDE = 1024    # flow inversion (and splat fill) at most at this long side: the motion is smooth there
TILE_ROWS = 128          # full-resolution rows per tile


def work_size(H: int, W: int, long_side: int = FLOW_LONG_SIDE) -> tuple[int, int]:
    """(h, w) of the working grid: the picture itself up to `long_side`, else scaled down to it."""
    if max(H, W) <= long_side:
        return H, W
    s = long_side / max(H, W)
    return max(2, round(H * s)), max(2, round(W * s))


def invert_flow(flow: torch.Tensor, metric: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward flows (B, 2, h, w) with metric Z (1 or B, 1, h, w) -> (backward flows (B, 2, h, w),
    confidence (B, 1, h, w) in [0, 1], 0 where nothing lands = disocclusion)."""
    B = flow.shape[0]
    res = softsplat(flow, flow, metric.expand(B, -1, -1, -1), mode="soft")
    coverage = res.coverage.clamp(max=1.0)
    forward_at_target = push_pull_fill(res.output, coverage)
    return -forward_at_target, (2.0 * coverage).clamp(max=1.0)


def source_bounds(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel (x, y): min and max of the source pixels x..x+1, y..y+1 (the bilinear footprint), uint8."""
    k = np.ones((2, 2), np.uint8)
    lo = cv2.erode(image, k, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    hi = cv2.dilate(image, k, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
    return lo, hi


GAIN_STEPS = 5            # fractional offsets 0, 1/8, ..., 1/2 per axis (the loss is symmetric about 1/2)
GAIN_CROP = 256           # gain measured on (at most) this centre crop of I0
# At most this Laplacian boost (4-neighbour Laplacian). Natural pictures need < 0.12 (the sample: 0.11); hard
# synthetic edges ask for far more, which would snap them to the pixel grid as they move (edge crawl).
MAX_GAIN = 0.15


def _laplacian(x: np.ndarray) -> np.ndarray:
    return cv2.Laplacian(x, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE)


def gain_table(image: np.ndarray, kernel: str = DEFAULT_KERNEL) -> np.ndarray:
    """(GAIN_STEPS, GAIN_STEPS) Laplacian boosts k[iy, ix] for fractional offsets (iy, ix) / (2 (GAIN_STEPS-1))
    so that warping I0 by that offset, then out = clamp(warp - k * Laplacian(warp)) to the 2x2 source min/max,
    keeps I0's Laplacian energy (found by bisection: the clamp makes it non-linear in k)."""
    H, W = image.shape[:2]
    c = min(GAIN_CROP, H, W)
    y0, x0 = (H - c) // 2, (W - c) // 2
    grey = image[y0:y0 + c, x0:x0 + c].astype(np.float32).mean(axis=2)
    lo, hi = source_bounds(grey)
    inner = (slice(4, -4), slice(4, -4)) if c > 12 else (slice(None), slice(None))

    def energy(x: np.ndarray) -> float:
        return float((_laplacian(x)[inner].astype(np.float64) ** 2).mean())

    target = energy(grey)
    gx, gy = np.meshgrid(np.arange(c, dtype=np.float32), np.arange(c, dtype=np.float32))
    table = np.zeros((GAIN_STEPS, GAIN_STEPS), np.float32)
    if target <= 0:
        return table
    step = 0.5 / (GAIN_STEPS - 1)
    for iy in range(GAIN_STEPS):
        for ix in range(GAIN_STEPS):
            if ix == iy == 0:
                continue
            w = cv2.remap(grey, gx + ix * step, gy + iy * step, KERNELS[kernel], borderMode=cv2.BORDER_REPLICATE)
            lw = _laplacian(w)

            def boosted(k: float) -> float:
                return energy(np.clip(w - k * lw, lo, hi))

            if boosted(0.0) >= target:
                continue
            a, b = 0.0, MAX_GAIN
            if boosted(b) < target:       # cannot be reached within the bounds: the most that is safe
                table[iy, ix] = b
                continue
            for _ in range(12):           # k to MAX_GAIN / 4096
                mid = 0.5 * (a + b)
                a, b = (mid, b) if boosted(mid) < target else (a, mid)
            table[iy, ix] = b
    return table


def _gain(table: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """Per-pixel boost from the table, bilinear in the folded fractional offsets (distance to a whole pixel)."""
    n = table.shape[0] - 1
    fx = (0.5 - np.abs(mx - np.floor(mx) - 0.5)) * (2 * n)
    fy = (0.5 - np.abs(my - np.floor(my) - 0.5)) * (2 * n)
    return cv2.remap(table, fx.astype(np.float32), fy.astype(np.float32), cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _upsample_rows(field: np.ndarray, size: tuple[int, int], y0: int, y1: int) -> np.ndarray:
    """Bilinear upsampling (pixel centres aligned, edges clamped) of field (h, w, C) to (H, W) = size,
    rows y0..y1 only -> (y1 - y0, W, C) float32."""
    h, w = field.shape[:2]
    H, W = size
    if (h, w) == (H, W):
        return field[y0:y1]
    mx = (np.arange(W, dtype=np.float32) + 0.5) * (w / W) - 0.5
    my = (np.arange(y0, y1, dtype=np.float32) + 0.5) * (h / H) - 0.5
    mx, my = np.broadcast_to(mx, (y1 - y0, W)), np.broadcast_to(my[:, None], (y1 - y0, W))
    out = cv2.remap(field, np.ascontiguousarray(mx), np.ascontiguousarray(my), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(y1 - y0, W, -1)


class SharpFrame:
    """One frame's low-resolution inputs; `rows(y0, y1)` renders full-resolution rows of it.

    image: uint8 (H, W, 3) I0; bounds: `source_bounds(image)`; backward: (2, h, w) backward flow in pixels of
    its (h, w) grid; confidence: (h, w); fill: (3, hf, wf) float in [0, 1] used where confidence < 1, or None
    for the warp alone (the caller blends: the fluid loop's two terms, render.fluid.sharp_pair)."""

    def __init__(self, image: np.ndarray, bounds: tuple[np.ndarray, np.ndarray], backward: np.ndarray,
                 confidence: np.ndarray, fill: np.ndarray | None, kernel: str = DEFAULT_KERNEL,
                 gains: np.ndarray | None = None):
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)}, not {kernel!r}")
        self.image, self.bounds, self.kernel, self.gains = image, bounds, KERNELS[kernel], gains
        H, W = image.shape[:2]
        h, w = backward.shape[-2:]
        # flow in full-resolution pixels, with the confidence as a third channel: one upsampling per tile
        self.motion = np.ascontiguousarray(np.stack([backward[0] * (W / w), backward[1] * (H / h), confidence],
                                                    axis=-1).astype(np.float32))
        self.fill = (None if fill is None
                     else np.ascontiguousarray(np.moveaxis(fill, 0, -1).astype(np.float32) * 255.0))
        self.any_fill = fill is not None and bool((confidence < 1.0).any())

    def rows(self, y0: int, y1: int) -> np.ndarray:
        H, W = self.image.shape[:2]
        # one row of halo each side for the Laplacian of the gain correction (clipped at the picture's edge,
        # where the replicated border gives the untiled result)
        a, b = (max(0, y0 - 1), min(H, y1 + 1)) if self.gains is not None else (y0, y1)
        m = _upsample_rows(self.motion, (H, W), a, b)
        mx = m[..., 0] + np.arange(W, dtype=np.float32)
        my = m[..., 1] + np.arange(a, b, dtype=np.float32)[:, None]
        if self.gains is None:
            out = cv2.remap(self.image, mx, my, self.kernel, borderMode=cv2.BORDER_REPLICATE)
        else:
            warped = cv2.remap(self.image, mx, my, self.kernel, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
            k = _gain(self.gains, mx, my)[..., None]
            boosted = warped - k * _laplacian(warped)
            inner = slice(y0 - a, y0 - a + (y1 - y0))
            out = np.clip(np.rint(boosted[inner]), 0, 255).astype(np.uint8)
            m, mx, my = m[inner], mx[inner], my[inner]
        # no ringing: stay within the 2x2 source pixels around the sample point
        fx, fy = np.floor(mx), np.floor(my)
        lo = cv2.remap(self.bounds[0], fx, fy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        hi = cv2.remap(self.bounds[1], fx, fy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
        np.clip(out, lo, hi, out=out)
        if not self.any_fill:
            return out
        conf = m[..., 2:3]
        holes = conf[..., 0] < 1.0
        if not holes.any():
            return out
        fill = _upsample_rows(self.fill, (H, W), y0, y1)
        blended = conf * out + (1.0 - conf) * fill
        out[holes] = np.clip(np.rint(blended[holes]), 0, 255).astype(np.uint8)
        return out

    def render(self, tile_rows: int = TILE_ROWS, out: np.ndarray | None = None) -> np.ndarray:
        H = self.image.shape[0]
        if out is None:
            out = np.empty_like(self.image)
        for y0 in range(0, H, max(1, tile_rows)):
            y1 = min(H, y0 + tile_rows)
            out[y0:y1] = self.rows(y0, y1)
        return out
