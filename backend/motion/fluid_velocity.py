"""Image + fluid mask -> the axis and speed of the flow (a small U-Net); the artist's strokes give the
direction along the axis and correct the rest.

    net = FluidVelocityNet.from_pretrained(dir)           # config.json + model.safetensors
    v = predict_velocity(net, image (H, W, 3) uint8, mask (H, W) bool, strokes)   # (2, H, W), 0 outside

Why an axis: in a still, a streak shows which line the fluid moves along and (by its length) how fast, but
which way along it is a much weaker cue (a first network trained to predict V directly on our synthetic
scenes learned nothing in the CPU budget: its loss stayed at the zero field's). So the network predicts the
doubled-angle vector A = s (cos 2t, sin 2t) (V = s (cos t, sin t); A is the same for V and -V) from the
picture, the mask and the picture's structure tensor (a classical orientation cue; without it the axis was
not learned in the budget either); the sign at each pixel is the one that agrees with the strokes' own
densified field, then the strokes correct the result near themselves (`shared.eulerian.densify(...,
prior=...)`). The network runs at `work_long_side` (px/frame of that grid, rescaled). Trained on synthetic
scenes only (`backend.data.fluid_synth.random_fluid_sample`); measured by scripts/bar_fluid_net.py.
"""
from __future__ import annotations

import json
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
    """(B, 6, H, W) (see `network_input`) -> (B, 2, H, W) doubled-angle field px/frame, 0 outside the mask."""

    def __init__(self, config: FluidNetConfig = FluidNetConfig()):
        super().__init__()
        self.config = config
        ch = config.channels
        self.inc = _block(6, ch[0])
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
        from ..train.common import atomic_write_text, save_module

        d = Path(directory)
        save_module(d / "model.safetensors", self)
        atomic_write_text(d / "config.json", json.dumps(asdict(self.config), indent=2))

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
    """uint8 (H, W, 3) + bool (H, W) -> (1, 6, H, W) float32: RGB in [-0.5, 0.5], the mask, and the grey
    image's structure tensor as a doubled-angle vector (streak axis x coherence, in [-1, 1]): a classical
    orientation cue the network refines (trained from scratch without it, it did not get past the zero
    field in our CPU budget)."""
    import cv2

    g = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    jxx, jyy, jxy = (cv2.GaussianBlur(a, (0, 0), 2.0) for a in (gx * gx, gy * gy, gx * gy))
    trace = jxx + jyy + 1e-4
    # the streak runs across the dominant gradient: its doubled angle is the gradient's plus pi
    st = np.stack([-(jxx - jyy) / trace, -2.0 * jxy / trace], -1)
    x = np.concatenate([image.astype(np.float32) / 255.0 - 0.5, mask[..., None].astype(np.float32),
                        st * mask[..., None]], -1)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def doubled_angle(v: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) velocity -> doubled-angle axis field s (cos 2t, sin 2t) = (vx^2 - vy^2, 2 vx vy) / s."""
    s = v.norm(dim=1, keepdim=True).clamp(min=1e-6)
    return torch.cat([v[:, :1] ** 2 - v[:, 1:] ** 2, 2 * v[:, :1] * v[:, 1:]], 1) / s


def axis_to_velocity(axis: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Doubled-angle field (2, H, W) -> velocity (2, H, W) whose sign agrees with `reference` (2, H, W)
    (where the reference is 0, the sign is +)."""
    s = np.sqrt(axis[0] ** 2 + axis[1] ** 2)
    t = 0.5 * np.arctan2(axis[1], axis[0])
    v = np.stack([np.cos(t), np.sin(t)]) * s
    sign = np.where((v * reference).sum(0) < 0, -1.0, 1.0)
    return (v * sign).astype(np.float32)


@torch.no_grad()
def predict_axis(net: FluidVelocityNet, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(2, H, W) float32 doubled-angle field in px/frame of the image, zero outside the mask."""
    img = np.asarray(image)
    m = np.asarray(mask, bool)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or m.shape != img.shape[:2]:
        raise ValueError(f"need uint8 (H, W, 3) and a bool (H, W) mask, got {img.dtype} {img.shape}, {m.shape}")
    H, W = m.shape
    s = min(1.0, net.config.work_long_side / max(H, W))
    w, h = max(8, round(W * s)), max(8, round(H * s))
    if (h, w) != (H, W):               # the cues at the working size, as in training
        import cv2

        small = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        small_mask = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
        x = network_input(small, small_mask)
    else:
        x = network_input(img, m)
    dev = next(net.parameters()).device
    a = net(x.to(dev))
    if (h, w) != (H, W):
        a = F.interpolate(a, size=(H, W), mode="bilinear", align_corners=False) * (W / w)
    return (a[0].cpu().numpy() * m).astype(np.float32)


def predict_velocity(net: FluidVelocityNet, image: np.ndarray, mask: np.ndarray, strokes) -> np.ndarray:
    """(2, H, W) float32 px/frame: the network's axis and speed, signed by the strokes' densified field,
    then corrected near the strokes. Needs at least one stroke (for the direction)."""
    from shared.eulerian import densify

    if not strokes:
        raise ValueError("the fluid network gives the flow's axis and speed; it needs at least one stroke "
                         "for its direction")
    reference = densify(strokes, mask)
    prior = axis_to_velocity(predict_axis(net, image, mask), reference)
    return densify(strokes, mask, prior=prior)
