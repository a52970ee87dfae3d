"""The image-based renderer (SPEC section 4): feature pyramid of I0, softmax splatting per scale with the
motion-derived metric, synthesis decoder.

    net = IBRNet(IBRConfig.preset("tiny"))
    frame = net(image (1 or B, 3, H, W) in [0, 1], flow (B, 2, H, W) px, metric Z (1 or B, 1, H, W))

Z is `preview.splat_metric(W)`, W(p) = mean_t ||F_t(p)||; it is scale-free, so every pyramid level uses the
same Z resized. `Renderer` uses the network only to fill disocclusions, at `work_long_side` at most, and
backward-warps the picture itself at full resolution (render.sharp). `render_full_size` (network at the
working size, full-resolution forward splat where covered) is the earlier path, kept for comparisons.
Weights: `save_pretrained(dir)` / `from_pretrained(dir)` = config.json + model.safetensors.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .encoder.pyramid import FeaturePyramid
from .preview import METRIC_SCALE, REFERENCE_SIDE, push_pull_fill
from .softsplat import softsplat
from .synthesis import SynthesisDecoder


@dataclass(frozen=True)
class IBRConfig:
    """Architecture (saved as config.json beside the weights). Presets: tiny (CPU) and full (ResNet-34)."""

    encoder_channels: tuple[int, ...] = (16, 24, 32, 48)
    encoder_blocks: tuple[int, ...] = (1, 1, 1, 1)
    decoder_channels: tuple[int, ...] = (16, 24, 32, 48)
    work_long_side: int = 256          # larger images: network at this size, full-res splat keeps the detail
    metric_scale: float = METRIC_SCALE  # recorded for reference: Z = metric_scale * W * reference_side / long side
    reference_side: int = REFERENCE_SIDE
    preset: str = "tiny"

    @staticmethod
    def preset_config(name: str) -> "IBRConfig":
        presets = {
            "tiny": IBRConfig(),
            "full": IBRConfig(encoder_channels=(64, 64, 128, 256), encoder_blocks=(3, 4, 6, 3),
                              decoder_channels=(32, 64, 96, 128), work_long_side=512, preset="full"),
        }
        if name not in presets:
            raise ValueError(f"unknown IBR preset {name!r}; choose from {sorted(presets)}")
        return presets[name]

    @classmethod
    def from_dict(cls, d: dict) -> "IBRConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        for k in ("encoder_channels", "encoder_blocks", "decoder_channels"):
            if k in known:
                known[k] = tuple(int(v) for v in known[k])
        return cls(**known)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 2, H, W) -> (B, 2, h, w) with size = (h, w); vectors rescaled to the new pixel size."""
    H, W = flow.shape[-2:]
    if (H, W) == tuple(size):
        return flow
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False, antialias=size[0] < H)
    scale = torch.tensor([size[1] / W, size[0] / H], dtype=flow.dtype, device=flow.device).view(1, 2, 1, 1)
    return out * scale


def resize_plane(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=size[0] < x.shape[-2])


class IBRNet(nn.Module):
    def __init__(self, config: IBRConfig = IBRConfig()):
        super().__init__()
        self.config = config
        self.encoder = FeaturePyramid(config.encoder_channels, config.encoder_blocks)
        self.decoder = SynthesisDecoder(config.encoder_channels, config.decoder_channels)

    def forward(self, image: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor,
                features: list[torch.Tensor] | None = None) -> torch.Tensor:
        """image (1 or B, 3, H, W) [0, 1], flow (B, 2, H, W), metric Z (1 or B, 1, H, W) -> (B, 3, H, W).
        `features`: the encoder's output for `image`, when rendering many frames of one image."""
        B = flow.shape[0]
        if features is None:
            features = self.encoder(image)
        metric = metric.expand(B, -1, -1, -1)
        base = softsplat(image.expand(B, -1, -1, -1), flow, metric)
        base_cov = base.coverage.clamp(max=1.0)
        preview = push_pull_fill(base.output, base_cov)
        warped, coverage = [], []
        for f in features:
            size = tuple(f.shape[-2:])
            res = softsplat(f.expand(B, -1, -1, -1), resize_flow(flow, size), resize_plane(metric, size))
            warped.append(res.output)
            coverage.append(res.coverage.clamp(max=1.0))
        return self.decoder(warped, coverage, preview, base_cov)

    # ------------------------------------------------------------------------------------------------------

    def info(self) -> dict:
        return {"preset": self.config.preset, "parameters": sum(p.numel() for p in self.parameters()),
                "work_long_side": self.config.work_long_side}

    def save_pretrained(self, directory: str | Path) -> None:
        """config.json + model.safetensors, each written atomically."""
        from safetensors.torch import save_file
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        os.close(fd)
        save_file(state, tmp)
        os.chmod(tmp, 0o644)                     # mkstemp makes 0600; weights are meant to be shared
        os.replace(tmp, d / "model.safetensors")
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self.config), fh, indent=2)
        os.chmod(tmp, 0o644)
        os.replace(tmp, d / "config.json")

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "IBRNet":
        from safetensors.torch import load_file
        d = Path(directory)
        for name in ("config.json", "model.safetensors"):
            if not (d / name).exists():
                raise FileNotFoundError(f"{d / name} is missing")
        config = IBRConfig.from_dict(json.loads((d / "config.json").read_text()))
        net = cls(config)
        net.load_state_dict(load_file(str(d / "model.safetensors")))
        return net


@torch.no_grad()
def render_full_size(model: IBRNet, image: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
    """Frames (B, 3, H, W) of image (1, 3, H, W) for flows (B, 2, H, W) at any size.

    Up to `work_long_side` the network runs on the image itself. Above it the network runs at the working
    size and its upsampled output only fills where the full-resolution softmax splat of the full-resolution
    image is not covered (blend weight = clamp(2 * coverage, 0, 1)), so covered pixels keep their detail.
    """
    H, W = image.shape[-2:]
    long_side = max(H, W)
    work = model.config.work_long_side
    if long_side <= work:
        return model(image, flow, metric)
    scale = work / long_side
    size = (max(2, round(H * scale)), max(2, round(W * scale)))
    small = model(resize_plane(image, size), resize_flow(flow, size), resize_plane(metric, size))
    fill = F.interpolate(small, size=(H, W), mode="bilinear", align_corners=False)
    B = flow.shape[0]
    full = softsplat(image.expand(B, -1, -1, -1), flow, metric.expand(B, -1, -1, -1))
    confidence = (2.0 * full.coverage).clamp(max=1.0)
    return confidence * full.output + (1.0 - confidence) * fill
