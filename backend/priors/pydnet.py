"""mobilePyDNet (Aleotti et al., "Real-time single image depth perception in the wild with handheld devices",
Sensors 2020) in torch, rebuilt from the weight shapes and op list of the authors' TFLite graph
(scripts/convert_pydnet_tflite.py converts it and checks every fact hard-coded here).

Graph: a 6-level encoder (two 3x3 convs per level, the first with stride 2, TF "SAME" padding, leaky ReLU 0.2;
16-32-64-96-128-192 channels); a decoder from the coarsest level up: at each level an estimator (3x3 convs
96-64-32 with leaky ReLU, then 8 channels without activation) whose 8 channels go up by a 2x2 stride-2
transposed conv + leaky ReLU and are concatenated with the next finer encoder features. L1..L3 also have a
1-channel head (+ leaky ReLU) = the inverse-depth-like output at 1/2, 1/4, 1/8 of the input. We use L1.

Input: RGB in [0, 1], (B, 3, 448, 640) as trained (other multiples of 64 run too). Output: positive, up to an
unknown scale; measured here it grows with distance (see backend/priors/depth.py, which inverts it).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

NET_HEIGHT, NET_WIDTH = 448, 640
LEAKY_SLOPE = 0.2
WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "priors" / "pydnet" / "pydnet.safetensors"
ENCODER_WIDTHS = (16, 32, 64, 96, 128, 192)


def same_pad(x: torch.Tensor, stride: int) -> torch.Tensor:
    """TF 'SAME' padding for a 3x3 kernel: the extra row/column of an odd total goes to the bottom/right."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):
        out = -(-size // stride)
        total = max((out - 1) * stride + 3 - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Conv(nn.Conv2d):
    """3x3 conv with TF SAME padding, optionally followed by leaky ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1, act: bool = True):
        super().__init__(c_in, c_out, 3, stride)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(same_pad(x, self.stride[0]))
        return F.leaky_relu(y, LEAKY_SLOPE) if self.act else y


class Level(nn.Module):
    """One decoder level: estimator convs (-> 8 channels), optional 1-channel head, optional 2x upsampler."""

    def __init__(self, c_in: int, head: bool, up: bool):
        super().__init__()
        self.disp3, self.disp4 = Conv(c_in, 96), Conv(96, 64)
        self.disp5, self.disp6 = Conv(64, 32), Conv(32, 8, act=False)
        self.head = Conv(8, 1) if head else None
        self.up = nn.ConvTranspose2d(8, 8, 2, 2) if up else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        feat = self.disp6(self.disp5(self.disp4(self.disp3(x))))
        disp = self.head(feat) if self.head is not None else None
        up = F.leaky_relu(self.up(feat), LEAKY_SLOPE) if self.up is not None else None
        return feat, disp, up


class PyDNet(nn.Module):
    """(B, 3, H, W) RGB in [0, 1], H and W multiples of 64 -> (B, 1, H/2, W/2) inverse-depth-like map (L1)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Module()
        c_prev = 3
        for i, c in enumerate(ENCODER_WIDTHS, start=1):
            setattr(self.encoder, f"conv{i}a", Conv(c_prev, c, stride=2))
            setattr(self.encoder, f"conv{i}b", Conv(c, c))
            c_prev = c
        self.decoder = nn.Module()
        for level in range(6, 0, -1):
            c_in = ENCODER_WIDTHS[level - 1] + (8 if level < 6 else 0)
            setattr(self.decoder, f"L{level}", Level(c_in, head=level <= 3, up=level >= 2))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        feats = []
        x = image
        for i in range(1, 7):
            x = getattr(self.encoder, f"conv{i}b")(getattr(self.encoder, f"conv{i}a")(x))
            feats.append(x)
        up = None
        for level in range(6, 0, -1):
            x = feats[level - 1] if up is None else torch.cat([feats[level - 1], up], dim=1)
            _, disp, up = getattr(self.decoder, f"L{level}")(x)
        return disp


def resize_legacy_bilinear(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """TF's legacy ResizeBilinear (align_corners=False, half_pixel_centers=False): src = dst * in / out."""
    def coords(n_out: int, n_in: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(n_out, device=device, dtype=torch.float32) * (n_in / n_out)
        lo = src.floor().long().clamp(max=n_in - 1)
        return lo, (lo + 1).clamp(max=n_in - 1), src - lo
    y0, y1, fy = coords(height, x.shape[-2], x.device)
    x0, x1, fx = coords(width, x.shape[-1], x.device)
    top = x[..., y0, :][..., x0] * (1 - fx) + x[..., y0, :][..., x1] * fx
    bottom = x[..., y1, :][..., x0] * (1 - fx) + x[..., y1, :][..., x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


_CACHE: dict[str, PyDNet] = {}


def load(path: str | Path = WEIGHTS) -> PyDNet:
    """The network with its converted weights, in eval mode (cached per path)."""
    from safetensors.torch import load_file

    path = Path(path)
    key = str(path.resolve())
    if key not in _CACHE:
        if not path.is_file():
            raise FileNotFoundError(f"depth weights {path} are missing (run scripts/convert_pydnet_tflite.py)")
        net = PyDNet()
        net.load_state_dict(load_file(str(path)), strict=True)
        _CACHE[key] = net.eval()
    return _CACHE[key]


@torch.no_grad()
def predict(image: torch.Tensor, net: PyDNet | None = None) -> torch.Tensor:
    """(B, 3, 448, 640) RGB in [0, 1] -> (B, 1, 448, 640), the graph's first output (L1 resized as TF does)."""
    net = net or load()
    disp = net(image)
    return resize_legacy_bilinear(disp, image.shape[-2], image.shape[-1])
