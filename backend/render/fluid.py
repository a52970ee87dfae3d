"""Eulerian (fluid) loops: symmetric softmax splatting of I0 by the integrated steady field (Holynski et al.).

    motion = FluidMotion.prepare(velocity, mask, loop_frames)    # fade, integrate forward and backward once
    frames = Renderer.render_fluid(image, motion, times, ...)    # backend/render/api.py

Frame t of a loop of N: the splat of I0 forward by F_0->t with weight 1 - t/N and the splat backward by
F_0->-(N-t) with weight t/N, added as unnormalised softmax sums and normalised per pixel (each splat's
own normaliser times its loop weight), so a hole of one splat is filled by the other; what neither covers is
push-pull filled. Frame N = frame 0 = I0 (`shared.eulerian.loop_pair`).

That splat resamples bilinearly at sub-pixel offsets, which softens texture (issue 25), so the renderer's
default is `sharp_pair`: each term's forward field is inverted (`render.sharp.invert_flow`), I0 is
backward-warped with the sharp kernel, 2x2 clamp and detail gain (`render.sharp.SharpFrame`), the two warps
are blended by their loop weights times their confidences, normalised per pixel, and `symmetric_splat` at the
working resolution only fills what neither term covers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shared.eulerian import MAX_LOOP_FRAMES, border_fade, check_mask, integrate, loop_pair
from shared.spectral import resize_field

from .preview import push_pull_fill
from .sharp import TILE_ROWS, SharpFrame, _upsample_rows
from .softsplat import softsplat

INTEGRATE_LONG_SIDE = 512          # integration grid: the field is smooth, displacements are upsampled
INTEGRATE_BYTES = 512 * 2 ** 20    # both directions' N + 1 fields at the grid stay below this
MAX_SPEED_GRID = 64.0              # px/frame of the image, same bound as HINTS speeds


@dataclass
class FluidMotion:
    """A fluid loop ready to render: the mask (H, W) bool at the image size, the faded velocity (2, h, w) at
    the integration grid (px/frame of that grid), forward and backward displacements (N + 1, 2, h, w)."""

    mask: np.ndarray
    velocity: np.ndarray
    forward: np.ndarray
    backward: np.ndarray
    loop_frames: int

    @classmethod
    def prepare(cls, velocity: np.ndarray, mask: np.ndarray, loop_frames: int,
                fade_px: int | None = None) -> "FluidMotion":
        """velocity (2, h, w) px/frame of its own grid (any size; resized to the mask's), mask (H, W) at the
        image size (bool, or numbers >= 0.5 / uint8 >= 128 = fluid). The field is zeroed outside the mask
        and faded to zero over `fade_px` at its border before integration."""
        m = check_mask(mask)
        H, W = m.shape
        v = np.asarray(velocity, np.float32)
        if v.ndim != 3 or v.shape[0] != 2 or min(v.shape[1:]) < 2:
            raise ValueError(f"velocity must be (2, h, w) with h, w >= 2, got {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError("velocity contains non-finite values")
        n = int(loop_frames)
        if not 2 <= n <= MAX_LOOP_FRAMES:
            raise ValueError(f"loop_frames must be in 2..{MAX_LOOP_FRAMES}, got {loop_frames}")
        v_full = resize_field(v, (W, H)) if v.shape[1:] != (H, W) else v
        speed = float(np.sqrt((v_full ** 2).sum(0)).max())
        if speed > MAX_SPEED_GRID:
            raise ValueError(f"velocity reaches {speed:.3g} px/frame; at most {MAX_SPEED_GRID:g} is accepted")
        v_full = v_full * border_fade(m, fade_px)
        # integration grid: at most INTEGRATE_LONG_SIDE, and small enough for both directions' fields
        pixels_cap = INTEGRATE_BYTES / (2 * (n + 1) * 2 * 4)
        s = min(1.0, INTEGRATE_LONG_SIDE / max(H, W), (pixels_cap / (H * W)) ** 0.5)
        h, w = max(2, int(round(H * s))), max(2, int(round(W * s)))
        v_grid = resize_field(v_full, (w, h)) if (h, w) != (H, W) else v_full
        return cls(m, v_grid, integrate(v_grid, n), integrate(-v_grid, n), n)

    def flows(self, times, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(forward (n, 2, H, W), backward (n, 2, H, W), forward weights (n,)) at size = (W, H), times in
        frames (wrapped into the loop)."""
        pairs = [loop_pair(t, self.loop_frames) for t in np.atleast_1d(times)]
        fwd = self.forward[[p[0] for p in pairs]]
        bwd = self.backward[[p[1] for p in pairs]]
        wf = torch.tensor([p[2] for p in pairs], dtype=torch.float32)
        if fwd.shape[-2:] != (size[1], size[0]):
            fwd, bwd = resize_field(fwd, size), resize_field(bwd, size)
        return torch.from_numpy(np.ascontiguousarray(fwd)), torch.from_numpy(np.ascontiguousarray(bwd)), wf


def symmetric_splat(image: torch.Tensor, flow_fwd: torch.Tensor, flow_bwd: torch.Tensor, w_fwd: torch.Tensor,
                    metric: torch.Tensor) -> torch.Tensor:
    """image (1, 3, H, W) [0, 1]; flows (B, 2, H, W); w_fwd (B,) forward loop weights; metric Z (1, 1, H, W).
    -> (B, 3, H, W): (w S_fwd + (1 - w) S_bwd) / (w N_fwd + (1 - w) N_bwd), S = unnormalised softmax sums,
    N = their normalisers; pixels neither splat covers are push-pull filled."""
    B = flow_fwd.shape[0]
    img = image.expand(B, -1, -1, -1)
    z = metric.expand(B, -1, -1, -1)
    a = softsplat(img, flow_fwd, z, mode="soft")
    b = softsplat(img, flow_bwd, z, mode="soft")
    wf = w_fwd.to(image.dtype).view(B, 1, 1, 1)
    wb = 1.0 - wf
    num = wf * a.output * a.normalizer + wb * b.output * b.normalizer
    den = wf * a.normalizer + wb * b.normalizer
    filled = den > 0
    out = torch.where(filled, num / torch.where(filled, den, torch.ones_like(den)), torch.zeros_like(num))
    # a pixel either splat covers is known (the ratio above already takes what is there): fill only the rest
    coverage = torch.maximum(a.coverage, b.coverage).clamp(max=1.0)
    return push_pull_fill(out, coverage)


def sharp_pair(image: np.ndarray, bounds: tuple[np.ndarray, np.ndarray], backward: np.ndarray,
               confidence: np.ndarray, w_fwd: float, fill: np.ndarray, kernel: str, gains: np.ndarray | None,
               tile_rows: int = TILE_ROWS) -> np.ndarray:
    """One loop frame at full resolution, uint8 (H, W, 3). image I0 uint8 (H, W, 3), bounds its
    `sharp.source_bounds`; backward (2, 2, h, w): the inverted forward and backward terms' fields at the
    working grid; confidence (2, h, w); w_fwd the forward loop weight; fill (3, hf, wf) in [0, 1] (the
    symmetric splat or network at low resolution) where neither term is confident.

    out = c * (wf ca A + wb cb B) / (wf ca + wb cb) + (1 - c) * fill, c = max(ca, cb): as in the splat, a hole
    of one term is filled by the other whatever its loop weight."""
    H, W = image.shape[:2]
    terms = [SharpFrame(image, bounds, backward[i], confidence[i], None, kernel, gains) for i in range(2)]
    conf = np.ascontiguousarray(np.moveaxis(confidence, 0, -1).astype(np.float32))     # (h, w, 2)
    fill_hw = np.ascontiguousarray(np.moveaxis(fill, 0, -1).astype(np.float32) * 255.0)
    weights = np.array([w_fwd, 1.0 - w_fwd], np.float32)
    out = np.empty_like(image)
    for y0 in range(0, H, max(1, tile_rows)):
        y1 = min(H, y0 + tile_rows)
        a, b = (t.rows(y0, y1).astype(np.float32) for t in terms)
        c = _upsample_rows(conf, (H, W), y0, y1)                   # (rows, W, 2)
        wc = c * weights
        den = wc.sum(axis=-1, keepdims=True)
        ok = den > 0
        mix = np.where(ok, (wc[..., :1] * a + wc[..., 1:] * b) / np.where(ok, den, 1.0), 0.5 * (a + b))
        cmax = c.max(axis=-1, keepdims=True).clip(0.0, 1.0)
        if (cmax < 1.0).any():
            mix = cmax * mix + (1.0 - cmax) * _upsample_rows(fill_hw, (H, W), y0, y1)
        out[y0:y1] = np.clip(np.rint(mix), 0, 255).astype(np.uint8)
    return out
