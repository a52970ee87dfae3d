"""Image quality figures for training and evaluation: PSNR and SSIM (Gaussian window 11, sigma 1.5, as in
Wang et al. 2004), in torch so that SSIM also serves as a training loss."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _gaussian_window(channels: int, size: int = 11, sigma: float = 1.5, device=None, dtype=None) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype or torch.float32) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim_map(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-pixel SSIM of (B, C, H, W) images (valid convolution: (B, C, H-10, W-10))."""
    c = a.shape[1]
    win = _gaussian_window(c, device=a.device, dtype=a.dtype)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a = F.conv2d(a, win, groups=c)
    mu_b = F.conv2d(b, win, groups=c)
    s_aa = F.conv2d(a * a, win, groups=c) - mu_a ** 2
    s_bb = F.conv2d(b * b, win, groups=c) - mu_b ** 2
    s_ab = F.conv2d(a * b, win, groups=c) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (s_aa + s_bb + c2))


def ssim(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image: (B,)."""
    return ssim_map(a, b, data_range).flatten(1).mean(dim=1)


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB per image: (B,). Identical images give +inf."""
    mse = (a - b).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range ** 2 / mse)
