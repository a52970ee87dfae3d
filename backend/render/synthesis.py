"""Synthesis decoder: warped feature pyramid -> frame, filling disocclusions (SPEC section 4).

Coarse to fine: at each scale the decoder sees the upsampled coarser state, that scale's softmax-splatted
features and their coverage (where coverage is ~0, nothing landed: a disocclusion to fill from context).
At full resolution it also sees the pixel-space splat of I0 with its push-pull fill and coverage, and it
outputs a residual on top of that preview. The last conv starts at zero, so an untrained decoder renders
exactly the preview and training can only move it from there.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvBlock(nn.Module):
    """Two 3x3 convs with SiLU; no normalisation (cheap on the CPU, batch-size independent)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c_in, c_out, 3, 1, 1), nn.SiLU(inplace=True),
                                  nn.Conv2d(c_out, c_out, 3, 1, 1), nn.SiLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class SynthesisDecoder(nn.Module):
    """warped [(B, c_s, H_s, W_s)], coverage [(B, 1, H_s, W_s)] finest first, preview (B, 3, H, W),
    preview coverage (B, 1, H, W) -> frame (B, 3, H, W) (unclamped; the renderer clamps to [0, 1])."""

    def __init__(self, encoder_channels: tuple[int, ...], decoder_channels: tuple[int, ...]):
        super().__init__()
        if len(encoder_channels) != len(decoder_channels):
            raise ValueError(f"decoder_channels {decoder_channels} needs one width per encoder scale "
                             f"{encoder_channels}")
        n = len(encoder_channels)
        blocks = []
        for s in range(n):
            c_up = decoder_channels[s + 1] if s + 1 < n else 0
            blocks.append(ConvBlock(encoder_channels[s] + 1 + c_up, decoder_channels[s]))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Conv2d(decoder_channels[0] + 4, decoder_channels[0], 3, 1, 1),
                                  nn.SiLU(inplace=True), nn.Conv2d(decoder_channels[0], 3, 3, 1, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, warped: list[torch.Tensor], coverage: list[torch.Tensor], preview: torch.Tensor,
                preview_coverage: torch.Tensor) -> torch.Tensor:
        x = None
        for s in reversed(range(len(self.blocks))):
            parts = [warped[s], coverage[s]]
            if x is not None:
                parts.append(F.interpolate(x, size=warped[s].shape[-2:], mode="bilinear", align_corners=False))
            x = self.blocks[s](torch.cat(parts, dim=1))
        return preview + self.head(torch.cat([x, preview, preview_coverage], dim=1))
