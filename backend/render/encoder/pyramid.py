"""Feature pyramid of I0: a ResNet-34-like encoder trained from scratch (no pretrained weights exist here).

Stage s works at 1 / 2^s of the input size; each stage is a stack of basic residual blocks (two 3x3 convs +
identity, as in ResNet-34's [3, 4, 6, 3] layout). The full preset is that layout; the tiny CPU preset keeps
one block per stage and slim widths. Output: one feature map per stage, finest first.
"""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """conv3x3-norm-act-conv3x3-norm + skip (1x1 conv when stride or width change)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(c_out), c_out)
        self.act = nn.SiLU(inplace=True)
        self.skip = (nn.Identity() if stride == 1 and c_in == c_out
                     else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.GroupNorm(_groups(c_out), c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm1(self.conv1(x)))
        y = self.norm2(self.conv2(y))
        return self.act(y + self.skip(x))


def _groups(c: int) -> int:
    """GroupNorm groups: 8 channels per group (batch-size independent, fine for batch 1 at render time)."""
    return max(1, c // 8)


class FeaturePyramid(nn.Module):
    """I0 (B, 3, H, W) in [0, 1] -> [f_0 (B, c_0, H, W), f_1 (B, c_1, H/2, W/2), ...] (ceil sizes)."""

    def __init__(self, channels: tuple[int, ...], blocks: tuple[int, ...]):
        super().__init__()
        if len(channels) != len(blocks) or not channels:
            raise ValueError(f"channels {channels} and blocks {blocks} must be non-empty and of equal length")
        self.stem = nn.Sequential(nn.Conv2d(3, channels[0], 3, 1, 1, bias=False),
                                  nn.GroupNorm(_groups(channels[0]), channels[0]), nn.SiLU(inplace=True))
        stages = []
        c_prev = channels[0]
        for s, (c, n) in enumerate(zip(channels, blocks)):
            layers = [BasicBlock(c_prev, c, stride=1 if s == 0 else 2)]
            layers += [BasicBlock(c, c) for _ in range(n - 1)]
            stages.append(nn.Sequential(*layers))
            c_prev = c
        self.stages = nn.ModuleList(stages)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(image * 2.0 - 1.0)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats
