"""Image + fluid mask -> steady velocity field V (px/frame): a small U-Net, a starting point the artist
then corrects with strokes (`shared.eulerian.densify(..., prior=V)`).

    net = FluidVelocityNet.from_pretrained(dir)           # config.json + model.safetensors
    v = predict_velocity(net, image (H, W, 3) uint8, mask (H, W) bool)   # (2, H, W) float32, 0 outside

The network runs at `work_long_side` (velocity in px/frame of that grid, resized back with its vectors
rescaled). Trained on synthetic scenes only (`backend.data.fluid_synth.random_fluid_sample`: streaks that
trail downstream of bright specks), so it reads flow from such streaks; see MODEL_CARD for what it was
measured on.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default" / "fluid"


@dataclass(frozen=True)
class FluidNetConfig:
    channels: tuple[int, ...] = (16, 32, 48, 64)
    work_long_side: int = 96

    @classmethod
    def from_dict(cls, d: dict) -> "FluidNetConfig":
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "channels" in known:
            known["channels"] = tuple(int(c) for c in known["channels"])
        return cls(**known)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GELU(), nn.Conv2d(cout, cout, 3, padding=1),
                         nn.GELU())


class FluidVelocityNet(nn.Module):
    """(B, 4, H, W) = RGB in [-0.5, 0.5] + mask -> (B, 2, H, W) px/frame, zero outside the mask."""

    def __init__(self, config: FluidNetConfig = FluidNetConfig()):
        super().__init__()
        self.config = config
        ch = config.channels
        self.inc = _block(4, ch[0])
        self.down = nn.ModuleList(nn.Sequential(nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1), nn.GELU(),
                                                _block(ch[i + 1], ch[i + 1])) for i in range(len(ch) - 1))
        self.up = nn.ModuleList(_block(ch[i + 1] + ch[i], ch[i]) for i in reversed(range(len(ch) - 1)))
        self.out = nn.Conv2d(ch[0], 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = x[:, 3:4]
        skips = [self.inc(x)]
        for d in self.down:
            skips.append(d(skips[-1]))
        h = skips.pop()
        for u in self.up:
            s = skips.pop()
            h = u(torch.cat([F.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False), s], 1))
        return self.out(h) * mask

    def save_pretrained(self, directory: str | Path) -> None:
        """config.json + model.safetensors, each written atomically."""
        from safetensors.torch import save_file

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        os.close(fd)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, d / "model.safetensors")
        fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self.config), fh, indent=2)
        os.chmod(tmp, 0o644)
        os.replace(tmp, d / "config.json")

    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None) -> "FluidVelocityNet":
        from safetensors.torch import load_file

        d = Path(directory) if directory is not None else DEFAULT_WEIGHTS
        for name in ("config.json", "model.safetensors"):
            if not (d / name).exists():
                raise FileNotFoundError(f"{d / name} is missing (train one with `gid train fluid`)")
        net = cls(FluidNetConfig.from_dict(json.loads((d / "config.json").read_text())))
        net.load_state_dict(load_file(str(d / "model.safetensors")))
        return net.eval()


def network_input(image: np.ndarray, mask: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) + bool (H, W) -> (1, 4, H, W) float32."""
    x = np.concatenate([image.astype(np.float32) / 255.0 - 0.5, mask[..., None].astype(np.float32)], -1)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


@torch.no_grad()
def predict_velocity(net: FluidVelocityNet, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(2, H, W) float32 px/frame of the image, zero outside the mask."""
    from shared.spectral import resize_field

    img = np.asarray(image)
    m = np.asarray(mask, bool)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or m.shape != img.shape[:2]:
        raise ValueError(f"need uint8 (H, W, 3) and a bool (H, W) mask, got {img.dtype} {img.shape}, {m.shape}")
    H, W = m.shape
    s = min(1.0, net.config.work_long_side / max(H, W))
    w, h = max(8, round(W * s)), max(8, round(H * s))
    x = network_input(img, m)
    if (h, w) != (H, W):
        x = F.interpolate(x, size=(h, w), mode="area")
        x[:, 3:] = (x[:, 3:] >= 0.5).float()
    dev = next(net.parameters()).device
    v = net(x.to(dev))[0].cpu().numpy()
    if (h, w) != (H, W):
        v = resize_field(v, (W, H))
    return (v * m).astype(np.float32)
