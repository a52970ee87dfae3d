"""Eulerian (fluid) loops: symmetric softmax splatting of I0 by the integrated steady field (Holynski et al.).

    motion = FluidMotion.prepare(velocity, mask, loop_frames)    # fade, integrate forward and backward once
    frames = Renderer.render_fluid(image, motion, times, ...)    # backend/render/api.py

Frame t of a loop of N: the splat of I0 forward by F_0->t with weight 1 - t/N and the splat backward by
F_0->-(N-t) with weight t/N, added as unnormalised softmax sums and normalised per pixel (each splat's
own normaliser times its loop weight), so a hole of one splat is filled by the other; what neither covers is
push-pull filled. Frame N = frame 0 = I0 (`shared.eulerian.loop_pair`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from shared.eulerian import MAX_LOOP_FRAMES, border_fade, check_mask, integrate, loop_pair
from shared.spectral import resize_field

from .preview import push_pull_fill
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
