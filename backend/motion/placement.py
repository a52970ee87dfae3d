"""Motion placement: where in the picture the motion is, applied to the denoiser's sampled volumes.

Why (issue 20): on real photos the denoiser, trained mostly on synthetic scenes, puts its motion in the wrong
places (energy-map correlation 0.18 on the held-out gid_loops scenes, 0.76 on synthetic ones; 0.76 on the real
training pictures too: it memorises the 16 real clips rather than learning from them). A cue as plain as the
picture's blurred gradient magnitude correlates 0.46-0.50 with the real truth there: in real footage what moves,
and what optical flow can see move, is textured (foliage, flames, lantern rims), while sky, walls and candle wax
are smooth and still (the flow extraction even zeroes pixels whose grey level never changes, backend/data/flow.py).

The placement map comes from one of two sources (PlacementConfig.source):
- "texture" (shipped): the blurred gradient magnitude itself (`log_texture`), no weights;
- "net": a small U-Net from the picture (RGB, log gradient magnitude) to the log motion-energy map up to a
  constant, as a learned correction of the texture map (`gid train placement`, real windows and synthetic
  scenes). Measured in session 12 on 5 real training scenes held out from it: 0.19-0.27 where the texture map
  alone scores 0.41 (it learns synthetic cues, or memorises the real scenes it sees), so not shipped.

`apply_placement` moves a sampled volume's energy towards the map by a per-pixel positive gain (direction, phase
and spectrum of every pixel are kept, so loops stay loops; the picture's mean energy too):
    gain = (P / E_model_smoothed) ** strength,   normalised so that mean(E_model * gain) = mean(E_model)
strength 0 = the denoiser alone, 1 = the energy shape of the placement map. Then (config.spread > 0) the energy is
spread over the picture's colour regions (spread.py): objects move as wholes.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .metrics import energy_map

GAIN_LIMIT = 8.0                 # a pixel's energy changes by at most this factor either way


@dataclass(frozen=True)
class PlacementConfig:
    # "texture": the map is the blurred gradient magnitude itself (no weights; the shipped default, see the
    # model card: nets trained on our 16 real clips placed held-out real scenes worse than texture alone);
    # "net": a trained PlacementNet (model.safetensors beside config.json).
    source: str = "net"
    size: tuple[int, int] = (128, 80)             # (W, H) the map is made at; maps are resized to the volume's grid
    channels: tuple[int, ...] = (16, 32, 48, 64)  # per level; each level after the first halves the grid
    strength: float = 0.5                         # exponent of the gain (chosen on held-out training scenes)
    smooth_px: float = 2.0                        # Gaussian sigma (pixels of the volume's grid) of E_model
    # The net learns a correction of the texture cue: log P = log(blurred gradient magnitude) + net(picture),
    # with the net's last layer zero at the start (so training starts from the texture prior of `gid eval`).
    texture_anchor: bool = True
    texture_sigma: float = 4.0 / 256              # blur of the gradient magnitude, fraction of the width
    # After the gain: the energy spread over the picture's colour regions (spread.py), a guided filter of this
    # radius (fraction of the prediction grid's width; 0 = off) and regulariser (colours in [0, 1]).
    spread: float = 0.0
    spread_eps: float = 1e-4

    def validate(self) -> "PlacementConfig":
        w, h = self.size
        f = 2 ** (len(self.channels) - 1)
        if w % f or h % f:
            raise ValueError(f"placement size {self.size} must be divisible by {f}")
        if self.source not in ("net", "texture"):
            raise ValueError(f"placement source must be 'net' or 'texture', not {self.source!r}")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"placement strength must be in [0, 1], got {self.strength}")
        if not 0.0 <= self.spread <= 0.5 or self.spread_eps <= 0:
            raise ValueError(f"placement spread must be in [0, 0.5] and spread_eps > 0, got {self.spread}, "
                             f"{self.spread_eps}")
        return self

    def save(self, path: str | Path) -> None:
        from backend.train.common import atomic_write_text
        atomic_write_text(Path(path), json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "PlacementConfig":
        raw = json.loads(Path(path).read_text())
        known = set(cls.__dataclass_fields__)
        if set(raw) - known:
            raise ValueError(f"{path}: unknown placement config keys {sorted(set(raw) - known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}).validate()


def gradient_magnitude(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) |grad luminance| (Sobel, per pixel)."""
    lum = (0.299 * image[:, 0:1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3])
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=image.device) / 8
    k = torch.stack([kx, kx.t()])[:, None].to(image.dtype)
    g = F.conv2d(F.pad(lum, (1, 1, 1, 1), mode="replicate"), k)
    return torch.sqrt((g * g).sum(1, keepdim=True) + 1e-8)


def picture_features(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 4, H, W): RGB centred, and log(1 + 8 |grad luminance|)."""
    return torch.cat([image - 0.5, torch.log1p(8.0 * gradient_magnitude(image))], 1)


def log_texture(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W): log of the blurred gradient magnitude (sigma in pixels), floored at 5 % of
    its mean so flat regions stay finite: the texture prior's map (backend.eval.baselines.texture_energy)."""
    mag = gradient_magnitude(image)
    r = max(1, int(round(3 * sigma)))
    x = torch.arange(-r, r + 1, device=image.device, dtype=image.dtype)
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    g = g / g.sum()
    mag = F.conv2d(F.pad(mag, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
    mag = F.conv2d(F.pad(mag, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))
    return torch.log(mag + 0.05 * mag.mean((2, 3), keepdim=True) + 1e-6)


class _Block(nn.Module):
    def __init__(self, n_in: int, n_out: int, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(n_in, n_out, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(n_out, n_out, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, n_out // 4), n_out)
        self.skip = nn.Conv2d(n_in, n_out, 1) if n_in != n_out else nn.Identity()

    def forward(self, x):
        return self.skip(x) + self.conv2(F.silu(self.norm(self.conv1(x))))


class PlacementNet(nn.Module):
    """Picture -> log motion energy (B, 1, H, W) up to an additive constant: a small U-Net (with texture_anchor,
    a correction of the texture cue)."""

    def __init__(self, config: PlacementConfig = PlacementConfig()):
        super().__init__()
        self.config = config.validate()
        if config.source == "texture":
            return                                   # no layers: the texture map alone
        ch = config.channels
        self.inp = _Block(4, ch[0])
        self.down = nn.ModuleList(_Block(a, b, dilation=2 if i == len(ch) - 2 else 1)
                                  for i, (a, b) in enumerate(zip(ch[:-1], ch[1:])))
        self.up = nn.ModuleList(_Block(b + a, a) for a, b in zip(ch[:-1], ch[1:]))
        self.out = nn.Conv2d(ch[0], 1, 3, padding=1)
        if config.texture_anchor:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        texture = self.config.source == "texture"
        anchor = (log_texture(image, max(0.5, self.config.texture_sigma * image.shape[-1]))
                  if self.config.texture_anchor or texture else 0.0)
        return anchor if texture else anchor + self._correction(image)

    def _correction(self, image: torch.Tensor) -> torch.Tensor:
        x = self.inp(picture_features(image))
        skips = []
        for block in self.down:
            skips.append(x)
            x = block(F.avg_pool2d(x, 2))
        for block, skip in zip(reversed(self.up), reversed(skips)):
            x = block(torch.cat([skip, F.interpolate(x, size=skip.shape[-2:], mode="bilinear",
                                                     align_corners=False)], 1))
        return self.out(x)

    @torch.no_grad()
    def placement_map(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """uint8 RGB (H, W, 3) -> float32 (h, w) at size (w, h): the placement map, mean 1. The picture is
        resized to the net's grid as it is (the caller letterboxes it when the aspects differ)."""
        import cv2
        interp = cv2.INTER_AREA if image.shape[1] > self.config.size[0] else cv2.INTER_LINEAR
        work = cv2.resize(np.ascontiguousarray(image), tuple(self.config.size), interpolation=interp)
        device = next(self.parameters(), torch.empty(0)).device
        x = torch.from_numpy(work).permute(2, 0, 1)[None].float().div(255).to(device)
        log_e = self(x)[0, 0].float().cpu().numpy()
        p = np.exp(np.clip(log_e - log_e.max(), -30, 0)).astype(np.float32)
        p = cv2.resize(p, tuple(size), interpolation=cv2.INTER_LINEAR)
        return p / max(float(p.mean()), 1e-12)


def placement_gain(energy: np.ndarray, placement: np.ndarray, strength: float, smooth_px: float) -> np.ndarray:
    """Per-pixel positive gain (H, W) that moves `energy` towards the shape of `placement` (see module doc)."""
    import cv2
    e = np.asarray(energy, np.float64)
    if strength <= 0 or e.mean() <= 0:
        return np.ones_like(e, np.float32)
    es = cv2.GaussianBlur(e, (0, 0), smooth_px) if smooth_px > 0 else e
    floor = 1e-3 * es.mean()
    gain = (np.asarray(placement, np.float64) / (es + floor) * es.mean()) ** strength
    gain = np.clip(gain, 1.0 / GAIN_LIMIT, GAIN_LIMIT)
    gain *= e.mean() / max(float((e * gain).mean()), 1e-12)
    return gain.astype(np.float32)


def apply_placement(spectral: np.ndarray, placement: np.ndarray, T: int, strength: float,
                    smooth_px: float = 2.0) -> np.ndarray:
    """A sampled volume (K, 4, H, W) -> the same with its energy moved towards `placement` (H, W)."""
    gain = placement_gain(energy_map(spectral, T), placement, strength, smooth_px)
    return (spectral * gain[None, None]).astype(np.float32)


def load_placement(folder: str | Path, device: str | torch.device = "cpu") -> PlacementNet:
    """folder/config.json (+ model.safetensors for source "net") -> PlacementNet (eval mode, frozen)."""
    from backend.train.common import load_module
    folder = Path(folder)
    net = PlacementNet(PlacementConfig.load(folder / "config.json"))
    if net.config.source == "net":
        load_module(net, folder / "model.safetensors")
    return net.to(device).eval().requires_grad_(False)
