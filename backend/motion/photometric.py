"""Photometric jitter of the denoiser's conditioning pictures (training only).

Why (issue 20, session 14): the denoiser learns from 16 real clips and synthetic scenes whose colours are few, and
it takes colour shortcuts: the held-out rose stayed still whatever its texture, and turning its hue to green alone
multiplied the predicted motion and lifted the energy correlation from -0.10 to 0.36 (session 13). Jittering
brightness, contrast, gamma, saturation and hue of the picture, while the motion target stays as it is, tells the
model that these do not decide what moves. Geometry is never touched: every pixel keeps its place, so the picture
still lines up with its motion (flips are done elsewhere, on picture and motion together).

Ranges are moderate on purpose: sky blue and foliage green remain real cues (the hue turns by at most
HUE_RAD, about 30 degrees), and a picture is left unchanged with probability 1 - p.
"""
from __future__ import annotations

import math

import numpy as np
import torch

LOG_BRIGHTNESS = 0.35     # brightness x exp(U(-a, a))
LOG_CONTRAST = 0.35       # contrast about the picture's mean grey x exp(U(-a, a))
LOG_GAMMA = 0.3           # x ** exp(U(-a, a))
SATURATION = (0.3, 1.5)   # lerp from grey
GREY_P = 0.1              # share of jittered pictures turned grey
HUE_RAD = 0.52            # hue rotation in YIQ, uniform in +-HUE_RAD

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.596, -0.274, -0.322],
                            [0.211, -0.523, 0.312]])
_YIQ_TO_RGB = torch.linalg.inv(_RGB_TO_YIQ)
_LUMA = _RGB_TO_YIQ[0]


def jitter_pictures(images: torch.Tensor, rng: np.random.Generator, p: float) -> torch.Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> the same, each picture jittered with probability p (values stay in [0, 1]).
    Draws from `rng` only, so a resumed run repeats its batches."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"photometric jitter probability must be in [0, 1], got {p}")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected pictures (N, 3, H, W), got {tuple(images.shape)}")
    out = images.clone()
    for n in range(images.shape[0]):
        if p <= 0 or rng.random() >= p:
            continue
        out[n] = _jitter_one(images[n], rng)
    return out


def _jitter_one(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    draw = lambda a: math.exp(rng.uniform(-a, a))          # noqa: E731
    brightness, contrast, gamma = draw(LOG_BRIGHTNESS), draw(LOG_CONTRAST), draw(LOG_GAMMA)
    saturation = 0.0 if rng.random() < GREY_P else rng.uniform(*SATURATION)
    angle = rng.uniform(-HUE_RAD, HUE_RAD)
    dtype = x.dtype
    x = x.float().clamp(0, 1) ** gamma * brightness
    grey_mean = float(torch.einsum("c,chw->hw", _LUMA, x).mean())
    x = (x - grey_mean) * contrast + grey_mean
    yiq = torch.einsum("ij,jhw->ihw", _RGB_TO_YIQ, x)
    c, s = math.cos(angle) * saturation, math.sin(angle) * saturation
    i, q = yiq[1] * c - yiq[2] * s, yiq[1] * s + yiq[2] * c
    rgb = torch.einsum("ij,jhw->ihw", _YIQ_TO_RGB, torch.stack([yiq[0], i, q]))
    return rgb.clamp(0, 1).to(dtype)
