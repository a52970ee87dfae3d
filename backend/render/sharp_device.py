"""The full-resolution step of the sharp path (render/sharp.py, `SharpFrame.rows`) on the torch device.

The GPU's first run (session 20, `gid bench --device cuda`, an H200) rendered 4K at 1.8 frames/s with plain and
batched paths alike: the low-resolution work ran on the GPU, but the full-resolution warp (OpenCV on the host)
was the frame time. This module does that step where the fields already are: upsample the backward flow and its
confidence, sample I0 with the bicubic (or bilinear) kernel, the detail gain, the 2x2 min/max clamp and the fill
blend, for the whole frame at once (8K needs about 3 GB of device memory), and returns uint8 pixels.

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
_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


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
        self.laplacian = _LAPLACIAN.to(device).view(1, 1, 3, 3).repeat(3, 1, 1, 1)
        self.xs = torch.arange(self.W, device=device, dtype=torch.float32)
        self.ys = torch.arange(self.H, device=device, dtype=torch.float32)[:, None]

    @torch.no_grad()
    def frame(self, backward: torch.Tensor, confidence: torch.Tensor, fill: torch.Tensor | None) -> np.ndarray:
        """backward (2, h, w) flow in pixels of its grid, confidence (h, w), fill (3, hf, wf) in [0, 1] or None
        -> uint8 (H, W, 3)."""
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
            lap = F.conv2d(F.pad(out, (1, 1, 1, 1), mode="replicate"), self.laplacian, groups=3)
            out = (out - k * lap).round().clamp(0, 255)
        # no ringing: within the 2x2 source pixels around the sample point (nearest lookup, edges replicated)
        ix = torch.floor(mx).clamp(0, W - 1).long()
        iy = torch.floor(my).clamp(0, H - 1).long()
        flat = iy * W + ix
        lo = self.lo.flatten(2)[..., flat.flatten()].view(1, 3, H, W)
        hi = self.hi.flatten(2)[..., flat.flatten()].view(1, 3, H, W)
        out = torch.minimum(torch.maximum(out, lo), hi)
        conf = m[2]
        if fill is not None and bool((confidence < 1.0).any()):
            holes = conf < 1.0
            up = _upsample(fill.float()[None] * 255.0, H, W)
            blended = (conf * out + (1.0 - conf) * up).round().clamp(0, 255)
            out = torch.where(holes, blended, out)
        return out[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
