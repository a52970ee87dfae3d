"""Image-guided motion refiner: the VAE's decoded slices, upsampled `refine_factor` times, sharpened by the image.

Why: the spectral VAE decodes motion without seeing the picture, and the working grid is coarse, so motion is
blurred across object boundaries (static background next to a swaying branch wobbles) and thin structures
(grass blades) lose theirs. Moving pixels are where the picture has a movable thing, and motion boundaries are
picture edges, so a small CNN that sees the image at the output resolution can put them back. It is the
learned-guided-upsampling idea of optical flow (RAFT's convex upsampling, joint bilateral upsampling), applied to
each frequency slice; it predicts a residual over the plain upsampling and starts at zero (the identity).

Shapes: coarse (N, 4, h, w) normalised slices of the working grid, image (N, 3, f*h, f*w) in [0, 1], k (N,)
frequency indices -> (N, 4, f*h, f*w) normalised slices of the f-times grid (pixel units of that grid: the
normalisation S' = sign(S) sqrt(|S| / s_k) is homogeneous, so a grid f times finer multiplies S' by sqrt(f)).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import MotionConfig


class _Block(torch.nn.Module):
    """Residual block: two dilated 3x3 convs (dilation widens the view across boundaries at no cost)."""

    def __init__(self, channels: int, dilation: int, groups: int):
        super().__init__()
        self.norm1 = torch.nn.GroupNorm(groups, channels)
        self.conv1 = torch.nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.norm2 = torch.nn.GroupNorm(groups, channels)
        self.conv2 = torch.nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class MotionRefiner(torch.nn.Module):
    def __init__(self, config: MotionConfig):
        super().__init__()
        if config.refine_factor < 1:
            raise ValueError(f"refine_factor must be >= 1, got {config.refine_factor}")
        self.config = config
        self.factor = int(config.refine_factor)
        c = int(config.refine_channels)
        groups = math.gcd(c, 8)
        self.k_embed = torch.nn.Embedding(config.K, 8)
        self.conv_in = torch.nn.Conv2d(4 + 3 + 8, c, 3, padding=1)
        dilations = [(1, 2, 4, 8)[i % 4] for i in range(config.refine_blocks)]
        self.blocks = torch.nn.ModuleList(_Block(c, d, groups) for d in dilations)
        self.norm_out = torch.nn.GroupNorm(groups, c)
        self.conv_out = torch.nn.Conv2d(c, 4, 3, padding=1)
        with torch.no_grad():                 # start as the plain upsampling
            self.conv_out.weight.zero_()
            self.conv_out.bias.zero_()

    def upsample(self, coarse: torch.Tensor) -> torch.Tensor:
        """Plain upsampling of normalised slices to the fine grid (the refiner's starting point)."""
        if self.factor == 1:
            return coarse
        up = F.interpolate(coarse, scale_factor=self.factor, mode="bilinear", align_corners=False)
        return up * math.sqrt(self.factor)

    def forward(self, coarse: torch.Tensor, image: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        up = self.upsample(coarse)
        if image.shape[-2:] != up.shape[-2:]:
            raise ValueError(f"image is {tuple(image.shape[-2:])}, the refined grid is {tuple(up.shape[-2:])}")
        emb = self.k_embed(k)[:, :, None, None].expand(-1, -1, *up.shape[-2:])
        h = self.conv_in(torch.cat([up, image * 2 - 1, emb], dim=1))
        for block in self.blocks:
            h = block(h)
        out = up + self.conv_out(F.silu(self.norm_out(h)))
        return keep_amount(out, up) if self.config.refine_keep_amount else out


def keep_amount(refined: torch.Tensor, plain: torch.Tensor) -> torch.Tensor:
    """Rescale each slice channel so its total |S| equals the plain upsampling's: the refiner then only moves
    motion (off static pixels, onto edges) and cannot shrink it, which an L1 regressor does where it is unsure.
    Normalised S' = sign(S) sqrt(|S| / s_k), so sum |S| is proportional to sum S'^2."""
    want = plain.square().sum(dim=(-2, -1), keepdim=True)
    have = refined.square().sum(dim=(-2, -1), keepdim=True)
    return refined * torch.sqrt(want / have.clamp_min(1e-12))
