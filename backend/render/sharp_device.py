"""The full-resolution step of the sharp path (render/sharp.py, `SharpFrame.rows`) on the torch device.

The GPU's first run (session 20, `gid bench --device cuda`, an H200) rendered 4K at 1.8 frames/s with plain and
batched paths alike: the low-resolution work ran on the GPU, but the full-resolution warp (OpenCV on the host)
was the frame time. This module does that step where the fields already are: upsample the backward flow and its
confidence, sample I0 with the bicubic (or bilinear) kernel, the detail gain, the 2x2 min/max clamp and the fill
blend, in tiles of rows (TILE_PIXELS: 8K holds ~0.6 GB for the picture and ~0.4 GB per tile, not ~4 GB for a
whole frame), and returns uint8 pixels; the fluid loop's two-term frame (render/fluid.py `sharp_pair`) likewise.
Tiles give exactly the untiled frame (a row of halo for the detail gain's Laplacian, as on the host).

It reproduces OpenCV's arithmetic where it matters: cv2.remap rounds sample positions to 1/32 pixel
(INTER_TAB_SIZE) and, on uint8 pictures, rounds the sampled value to uint8 before the gain step sees it; both
are done here too, so frames agree with `SharpFrame`: 99.7% of pixels equal on hard synthetic edges, the rest
its fixed-point weights or a position that float32 puts across a 1/32-pixel rounding tie
(tests/test_render_sharp_device.py). Lanczos-4 has no torch kernel: that kernel stays on the host path.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

KERNELS = {"cubic": "bicubic", "linear": "bilinear"}
SUBPIXEL = 32                      # OpenCV's INTER_TAB_SIZE: sample positions in 1/32 pixel
TILE_PIXELS = 4_000_000            # full-resolution pixels per tile of rows: ~0.4 GB of temporaries at any size


def _remap(src: torch.Tensor, mx: torch.Tensor, my: torch.Tensor, mode: str) -> torch.Tensor:
    """cv2.remap(src, mx, my, mode, BORDER_REPLICATE) for src (1, C, h, w) float at positions (H, W) in src
    pixels -> (1, C, H, W): positions rounded to 1/32 pixel as OpenCV does, edge taps replicated."""
    h, w = src.shape[-2:]
    qx = torch.round(mx * SUBPIXEL) / SUBPIXEL
    qy = torch.round(my * SUBPIXEL) / SUBPIXEL
    grid = torch.stack([qx * (2.0 / max(w - 1, 1)) - 1.0, qy * (2.0 / max(h - 1, 1)) - 1.0], dim=-1)[None]
    return F.grid_sample(src, grid, mode=mode, padding_mode="border", align_corners=True)


def _upsample_rows(field: torch.Tensor, H: int, W: int, y0: int, y1: int) -> torch.Tensor:
    """(1, C, h, w) -> rows y0..y1 of its (H, W) upsampling (1, C, y1 - y0, W): bilinear with pixel centres aligned
    and edges clamped (sharp._upsample_rows)."""
    h, w = field.shape[-2:]
    if (h, w) == (H, W):
        return field[..., y0:y1, :]
    dev = field.device
    mx = ((torch.arange(W, device=dev, dtype=torch.float32) + 0.5) * (w / W) - 0.5).expand(y1 - y0, W)
    my = ((torch.arange(y0, y1, device=dev, dtype=torch.float32) + 0.5) * (h / H) - 0.5)[:, None].expand(y1 - y0, W)
    return _remap(field, mx, my, "bilinear")


class DeviceSharpPicture:
    """One picture's shared inputs on `device` (I0, its 2x2 source bounds, the detail gains); `frame` renders one
    frame from its low-resolution fields, like `SharpFrame(...).render()`, `fluid_frame` like `sharp_pair`."""

    def __init__(self, image: np.ndarray, bounds: tuple[np.ndarray, np.ndarray], gains: np.ndarray | None,
                 kernel: str, device: torch.device, tile_pixels: int = TILE_PIXELS):
        if kernel not in KERNELS:
            raise ValueError(f"the device warp has kernels {sorted(KERNELS)}, not {kernel!r}")
        self.mode, self.device = KERNELS[kernel], device
        self.H, self.W = image.shape[:2]
        self.tile_rows = max(1, tile_pixels // self.W)

        def planes(a: np.ndarray) -> torch.Tensor:           # uint8 (H, W, 3) -> uint8 (1, 3, H, W) on the device
            return torch.from_numpy(np.ascontiguousarray(a)).to(device).permute(2, 0, 1)[None]

        self.image = planes(image).float()                    # sampled anywhere: kept whole, as float
        self.lo, self.hi = planes(bounds[0]), planes(bounds[1])
        self.gains = None if gains is None else torch.from_numpy(np.asarray(gains, np.float32)).to(device)[None, None]
        self.xs = torch.arange(self.W, device=device, dtype=torch.float32)

    def _motion(self, backward: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        """(2, h, w) flow in pixels of its grid + (h, w) confidence -> (1, 3, h, w): flow in full-size pixels."""
        h, w = backward.shape[-2:]
        return torch.stack([backward[0].float() * (self.W / w), backward[1].float() * (self.H / h),
                            confidence.float()])[None]

    def _rows(self, motion: torch.Tensor, y0: int, y1: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`SharpFrame.rows` without the fill for rows y0..y1 -> (I0 warped, gained and clamped: (1, 3, r, W)
        float of whole levels; the confidence upsampled (r, W))."""
        H, W = self.H, self.W
        # one row of halo each side for the gain's Laplacian (clipped at the picture's edge: replicated there)
        a, b = (max(0, y0 - 1), min(H, y1 + 1)) if self.gains is not None else (y0, y1)
        m = _upsample_rows(motion, H, W, a, b)[0]
        mx = m[0] + self.xs
        my = m[1] + torch.arange(a, b, device=self.device, dtype=torch.float32)[:, None]
        out = _remap(self.image, mx, my, self.mode).round().clamp(0, 255)       # cv2 returns uint8
        if self.gains is not None:
            n = self.gains.shape[-1] - 1
            fx = (0.5 - (mx - torch.floor(mx) - 0.5).abs()) * (2 * n)
            fy = (0.5 - (my - torch.floor(my) - 0.5).abs()) * (2 * n)
            k = _remap(self.gains, fx, fy, "bilinear")
            out = (out - k * _laplacian(out)).round().clamp(0, 255)
            inner = slice(y0 - a, y0 - a + (y1 - y0))
            out, m, mx, my = out[..., inner, :], m[:, inner], mx[inner], my[inner]
        # no ringing: within the 2x2 source pixels around the sample point (nearest lookup, edges replicated)
        ix = torch.floor(mx).clamp(0, W - 1).long()
        iy = torch.floor(my).clamp(0, H - 1).long()
        flat = (iy * W + ix).flatten()
        lo = self.lo.flatten(2)[..., flat].view(out.shape).float()
        hi = self.hi.flatten(2)[..., flat].view(out.shape).float()
        return torch.minimum(torch.maximum(out, lo), hi), m[2]

    def _tiles(self):
        for y0 in range(0, self.H, self.tile_rows):
            yield y0, min(self.H, y0 + self.tile_rows)

    @torch.no_grad()
    def frame(self, backward: torch.Tensor, confidence: torch.Tensor, fill: torch.Tensor | None) -> np.ndarray:
        """backward (2, h, w) flow in pixels of its grid, confidence (h, w), fill (3, hf, wf) in [0, 1] or None
        -> uint8 (H, W, 3), as `SharpFrame(...).render()`."""
        motion = self._motion(backward, confidence)
        fill = None if fill is None or not bool((confidence < 1.0).any()) else fill.float()[None] * 255.0
        frame = np.empty((self.H, self.W, 3), np.uint8)
        for y0, y1 in self._tiles():
            out, conf = self._rows(motion, y0, y1)
            if fill is not None:
                blended = (conf * out + (1.0 - conf) * _upsample_rows(fill, self.H, self.W, y0, y1)).round().clamp(0, 255)
                out = torch.where(conf < 1.0, blended, out)
            frame[y0:y1] = _to_uint8(out)
        return frame

    @torch.no_grad()
    def fluid_frame(self, backward: torch.Tensor, confidence: torch.Tensor, w_fwd: float,
                    fill: torch.Tensor) -> np.ndarray:
        """`render.fluid.sharp_pair` on the device: backward (2, 2, h, w) and confidence (2, h, w) of the forward
        and backward loop terms, w_fwd the forward term's loop weight, fill (3, hf, wf) in [0, 1] -> uint8 (H, W, 3).
        out = c (wf ca A + wb cb B) / (wf ca + wb cb) + (1 - c) fill, c = max(ca, cb)."""
        motions = [self._motion(backward[i], confidence[i]) for i in range(2)]
        fill = fill.float()[None] * 255.0
        frame = np.empty((self.H, self.W, 3), np.uint8)
        for y0, y1 in self._tiles():
            (a, ca), (b, cb) = self._rows(motions[0], y0, y1), self._rows(motions[1], y0, y1)
            wa, wb = ca * w_fwd, cb * (1.0 - w_fwd)
            den = wa + wb
            ok = den > 0
            mix = torch.where(ok, (wa * a + wb * b) / torch.where(ok, den, torch.ones_like(den)), 0.5 * (a + b))
            cmax = torch.maximum(ca, cb).clamp(0.0, 1.0)
            if bool((cmax < 1.0).any()):
                mix = cmax * mix + (1.0 - cmax) * _upsample_rows(fill, self.H, self.W, y0, y1)
            frame[y0:y1] = _to_uint8(mix.round().clamp(0, 255))
        return frame


def _laplacian(x: torch.Tensor) -> torch.Tensor:
    """cv2.Laplacian(ksize=1, BORDER_REPLICATE) of (1, C, H, W) by shifted sums: exact on whole levels, and no
    convolution algorithm (TF32, Winograd) between it and the host's result."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:] - 4.0 * x


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, r, W) float of whole levels -> uint8 (r, W, 3) on the host."""
    return x[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
