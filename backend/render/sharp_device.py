"""The full-resolution step of the sharp path (render/sharp.py, `SharpFrame.rows`) on the torch device.

The GPU's first run (session 20, `gid bench --device cuda`, an H200) rendered 4K at 1.8 frames/s with plain and
batched paths alike: the low-resolution work ran on the GPU, but the full-resolution warp (OpenCV on the host)
was the frame time. This module does that step where the fields already are: upsample the backward flow and its
confidence, sample I0 with the bicubic (or bilinear) kernel, the detail gain, the 2x2 min/max clamp and the fill
blend, for the whole frame at once (8K needs about 3 GB of device memory), and returns uint8 pixels; the fluid
loop's two-term frame (render/fluid.py `sharp_pair`) likewise.

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


def _remap(src: torch.Tensor, mx: torch.Tensor, my: torch.Tensor, mode: str) -> torch.Tensor:
    """cv2.remap(src, mx, my, mode, BORDER_REPLICATE) for src (1, C, h, w) float at positions (H, W) in src
    pixels -> (1, C, H, W): positions rounded to 1/32 pixel as OpenCV does, edge taps replicated."""
    h, w = src.shape[-2:]
    qx = torch.round(mx * SUBPIXEL) / SUBPIXEL
    qy = torch.round(my * SUBPIXEL) / SUBPIXEL
    grid = torch.stack([qx * (2.0 / max(w - 1, 1)) - 1.0, qy * (2.0 / max(h - 1, 1)) - 1.0], dim=-1)[None]
    return F.grid_sample(src, grid, mode=mode, padding_mode="border", align_corners=True)


def _upsample(field: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """(1, C, h, w) -> (1, C, H, W), bilinear with pixel centres aligned and edges clamped (sharp._upsample_rows)."""
    h, w = field.shape[-2:]
    if (h, w) == (H, W):
        return field
    dev = field.device
    mx = ((torch.arange(W, device=dev, dtype=torch.float32) + 0.5) * (w / W) - 0.5).expand(H, W)
    my = ((torch.arange(H, device=dev, dtype=torch.float32) + 0.5) * (h / H) - 0.5)[:, None].expand(H, W)
    return _remap(field, mx, my, "bilinear")


class DeviceSharpPicture:
    """One picture's shared inputs on `device` (I0, its 2x2 source bounds, the detail gains); `frame` renders one
    frame from its low-resolution fields, like `SharpFrame(...).render()`."""

    def __init__(self, image: np.ndarray, bounds: tuple[np.ndarray, np.ndarray], gains: np.ndarray | None,
                 kernel: str, device: torch.device):
        if kernel not in KERNELS:
            raise ValueError(f"the device warp has kernels {sorted(KERNELS)}, not {kernel!r}")
        self.mode, self.device = KERNELS[kernel], device
        self.H, self.W = image.shape[:2]

        def planes(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device).permute(2, 0, 1)[None].float()

        self.image = planes(image)
        self.lo, self.hi = planes(bounds[0]), planes(bounds[1])
        self.gains = None if gains is None else torch.from_numpy(np.asarray(gains, np.float32)).to(device)[None, None]
        self.xs = torch.arange(self.W, device=device, dtype=torch.float32)
        self.ys = torch.arange(self.H, device=device, dtype=torch.float32)[:, None]

    @torch.no_grad()
    def warp(self, backward: torch.Tensor, confidence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`SharpFrame.rows` without the fill: backward (2, h, w) flow in pixels of its grid and confidence (h, w)
        -> (I0 warped, gained and clamped: (1, 3, H, W) float of whole levels, confidence upsampled (H, W))."""
        H, W = self.H, self.W
        h, w = backward.shape[-2:]
        motion = torch.stack([backward[0].float() * (W / w), backward[1].float() * (H / h),
                              confidence.float()])[None]
        m = _upsample(motion, H, W)[0]
        mx, my = m[0] + self.xs, m[1] + self.ys
        out = _remap(self.image, mx, my, self.mode).round().clamp(0, 255)       # cv2 returns uint8
        if self.gains is not None:
            n = self.gains.shape[-1] - 1
            fx = (0.5 - (mx - torch.floor(mx) - 0.5).abs()) * (2 * n)
            fy = (0.5 - (my - torch.floor(my) - 0.5).abs()) * (2 * n)
            k = _remap(self.gains, fx, fy, "bilinear")
            out = (out - k * _laplacian(out)).round().clamp(0, 255)
        # no ringing: within the 2x2 source pixels around the sample point (nearest lookup, edges replicated)
        ix = torch.floor(mx).clamp(0, W - 1).long()
        iy = torch.floor(my).clamp(0, H - 1).long()
        flat = (iy * W + ix).flatten()
        lo = self.lo.flatten(2)[..., flat].view(1, 3, H, W)
        hi = self.hi.flatten(2)[..., flat].view(1, 3, H, W)
        return torch.minimum(torch.maximum(out, lo), hi), m[2]

    @torch.no_grad()
    def frame(self, backward: torch.Tensor, confidence: torch.Tensor, fill: torch.Tensor | None) -> np.ndarray:
        """backward (2, h, w) flow in pixels of its grid, confidence (h, w), fill (3, hf, wf) in [0, 1] or None
        -> uint8 (H, W, 3), as `SharpFrame(...).render()`."""
        out, conf = self.warp(backward, confidence)
        if fill is not None and bool((confidence < 1.0).any()):
            up = _upsample(fill.float()[None] * 255.0, self.H, self.W)
            blended = (conf * out + (1.0 - conf) * up).round().clamp(0, 255)
            out = torch.where(conf < 1.0, blended, out)
        return _to_uint8(out)

    @torch.no_grad()
    def fluid_frame(self, backward: torch.Tensor, confidence: torch.Tensor, w_fwd: float,
                    fill: torch.Tensor) -> np.ndarray:
        """`render.fluid.sharp_pair` on the device: backward (2, 2, h, w) and confidence (2, h, w) of the forward
        and backward loop terms, w_fwd the forward term's loop weight, fill (3, hf, wf) in [0, 1] -> uint8 (H, W, 3).
        out = c (wf ca A + wb cb B) / (wf ca + wb cb) + (1 - c) fill, c = max(ca, cb)."""
        (a, ca), (b, cb) = self.warp(backward[0], confidence[0]), self.warp(backward[1], confidence[1])
        wa, wb = ca * w_fwd, cb * (1.0 - w_fwd)
        den = wa + wb
        ok = den > 0
        mix = torch.where(ok, (wa * a + wb * b) / torch.where(ok, den, torch.ones_like(den)), 0.5 * (a + b))
        cmax = torch.maximum(ca, cb).clamp(0.0, 1.0)
        if bool((cmax < 1.0).any()):
            mix = cmax * mix + (1.0 - cmax) * _upsample(fill.float()[None] * 255.0, self.H, self.W)
        return _to_uint8(mix.round().clamp(0, 255))


def _laplacian(x: torch.Tensor) -> torch.Tensor:
    """cv2.Laplacian(ksize=1, BORDER_REPLICATE) of (1, C, H, W) by shifted sums: exact on whole levels, and no
    convolution algorithm (TF32, Winograd) between it and the host's result."""
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return p[..., :-2, 1:-1] + p[..., 2:, 1:-1] + p[..., 1:-1, :-2] + p[..., 1:-1, 2:] - 4.0 * x


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) float of whole levels -> uint8 (H, W, 3) on the host."""
    return x[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
