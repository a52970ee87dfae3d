"""ESPNet semantic segmentation (Mehta et al., ECCV 2018), p = 2, q = 8, encoder + light decoder, in torch.

Written from the paper (Sec. 3: the ESP module = point-wise reduction to N/K channels, K = 5 parallel dilated
3x3 convolutions with rates 1, 2, 4, 8, 16, hierarchical feature fusion (the dilated outputs are summed
cumulatively before concatenation, which removes gridding artefacts), residual when in and out agree; Fig. 4d:
ESPNet = ESPNet-C encoder + the decoder that projects level-2 and level-3 features to the classes and upsamples
by deconvolution) and the weight shapes of the released checkpoints (sacmehta/ESPNet, MIT,
`backend/weights/priors/espnet/PROVENANCE.md`). Parameter names follow the checkpoints so they load 1:1.

Use: `SemanticPrior.load()` (the shipped Cityscapes weights) then `.probabilities(image_rgb_uint8)` ->
(C, H, W) softmax class probabilities at the image size. Classes: `CITYSCAPES_CLASSES`; the ones that matter for
motion are vegetation (8), terrain (9) and sky (10).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights" / "priors" / "espnet"
CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                      "motorcycle", "bicycle", "unlabelled")
# The CamVid checkpoint's 12 outputs, in the SegNet CamVid order its training used (11 classes + void).
CAMVID_CLASSES = ("sky", "building", "pole", "road", "sidewalk", "tree", "sign", "fence", "car", "pedestrian",
                  "bicyclist", "void")
MAX_INPUT_PIXELS = 2048 * 1024     # the network runs at most at its training size


@dataclass(frozen=True)
class ESPNetConfig:
    classes: int = 20
    p: int = 2                     # ESP modules at level 2
    q: int = 8                     # ESP modules at level 3
    # Input transform of the released training code (its Cityscapes statistics, BGR order, in 0..255 units;
    # the normalised image is then divided by 255 as its loader did).
    mean_bgr: tuple[float, float, float] = (72.3923111, 82.90893555, 73.15840149)
    std_bgr: tuple[float, float, float] = (45.3192215, 46.15289307, 44.91483307)
    input_size: tuple[int, int] = (512, 256)    # (W, H) the image is resized to; multiples of 8
    class_names: tuple[str, ...] = CITYSCAPES_CLASSES
    # The decoder's last skip at 1/2 size: the released Cityscapes checkpoint takes level 1's 16 channels
    # ("level1"), the CamVid one level 1 concatenated with the pooled image, 19 channels ("level1_cat").
    decoder_skip: str = "level1"

    def __post_init__(self):
        w, h = self.input_size
        if w % 8 or h % 8 or w < 16 or h < 16 or w * h > MAX_INPUT_PIXELS:
            raise ValueError(f"input_size must be multiples of 8, >= 16 and at most {MAX_INPUT_PIXELS} pixels, "
                             f"got {self.input_size}")
        if self.decoder_skip not in ("level1", "level1_cat"):
            raise ValueError(f"decoder_skip must be 'level1' or 'level1_cat', got {self.decoder_skip!r}")
        if len(self.class_names) != self.classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.classes} classes")


# --------------------------------------------------------------------------------------------------------
# building blocks (BatchNorm eps 1e-3, PReLU per channel, as released)


class _Conv(nn.Module):
    """Convolution without bias, 'same' padding for odd kernels, optional dilation."""

    def __init__(self, n_in: int, n_out: int, k: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        pad = (k - 1) // 2 * dilation
        self.conv = nn.Conv2d(n_in, n_out, k, stride=stride, padding=pad, dilation=dilation, bias=False)

    def forward(self, x):
        return self.conv(x)


class _BR(nn.Module):
    """BatchNorm + PReLU."""

    def __init__(self, n: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(n, eps=1e-3)
        self.act = nn.PReLU(n)

    def forward(self, x):
        return self.act(self.bn(x))


class _CBR(nn.Module):
    """Convolution + BatchNorm + PReLU."""

    def __init__(self, n_in: int, n_out: int, k: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(n_in, n_out, k, stride=stride, padding=(k - 1) // 2, bias=False)
        self.bn = nn.BatchNorm2d(n_out, eps=1e-3)
        self.act = nn.PReLU(n_out)

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def _hff(x: torch.Tensor, d1, d2, d4, d8, d16) -> torch.Tensor:
    """Hierarchical feature fusion: [d1, d2, d2+d4, d2+d4+d8, d2+d4+d8+d16] (paper Fig. 3)."""
    a1 = d2(x)
    a2 = a1 + d4(x)
    a3 = a2 + d8(x)
    a4 = a3 + d16(x)
    return torch.cat([d1(x), a1, a2, a3, a4], 1)


class ESPDown(nn.Module):
    """Strided ESP module: 3x3 stride-2 reduction, 5 parallel dilated branches, HFF, BatchNorm + PReLU."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        n = n_out // 5
        n1 = n_out - 4 * n
        self.c1 = _Conv(n_in, n, 3, stride=2)
        self.d1 = _Conv(n, n1, 3, dilation=1)
        self.d2 = _Conv(n, n, 3, dilation=2)
        self.d4 = _Conv(n, n, 3, dilation=4)
        self.d8 = _Conv(n, n, 3, dilation=8)
        self.d16 = _Conv(n, n, 3, dilation=16)
        self.bn = nn.BatchNorm2d(n_out, eps=1e-3)
        self.act = nn.PReLU(n_out)

    def forward(self, x):
        return self.act(self.bn(_hff(self.c1(x), self.d1, self.d2, self.d4, self.d8, self.d16)))


class ESPBlock(nn.Module):
    """ESP module: 1x1 reduction, 5 parallel dilated branches, HFF, residual (when `add`), BatchNorm + PReLU."""

    def __init__(self, n_in: int, n_out: int, add: bool = True):
        super().__init__()
        n = n_out // 5
        n1 = n_out - 4 * n
        self.c1 = _Conv(n_in, n, 1)
        self.d1 = _Conv(n, n1, 3, dilation=1)
        self.d2 = _Conv(n, n, 3, dilation=2)
        self.d4 = _Conv(n, n, 3, dilation=4)
        self.d8 = _Conv(n, n, 3, dilation=8)
        self.d16 = _Conv(n, n, 3, dilation=16)
        self.bn = _BR(n_out)
        self.add = add

    def forward(self, x):
        y = _hff(self.c1(x), self.d1, self.d2, self.d4, self.d8, self.d16)
        return self.bn(x + y if self.add else y)


class _InputProjection(nn.Module):
    """The RGB image average-pooled `times` times by 2 (fed again to deeper levels)."""

    def __init__(self, times: int):
        super().__init__()
        self.pool = nn.ModuleList([nn.AvgPool2d(3, stride=2, padding=1) for _ in range(times)])

    def forward(self, x):
        for p in self.pool:
            x = p(x)
        return x


class ESPNetEncoder(nn.Module):
    """ESPNet-C: level 1 at 1/2, level 2 (p ESP modules) at 1/4, level 3 (q ESP modules) at 1/8."""

    def __init__(self, classes: int, p: int, q: int):
        super().__init__()
        self.level1 = _CBR(3, 16, 3, 2)
        self.sample1 = _InputProjection(1)
        self.sample2 = _InputProjection(2)
        self.b1 = _BR(16 + 3)
        self.level2_0 = ESPDown(16 + 3, 64)
        self.level2 = nn.ModuleList([ESPBlock(64, 64) for _ in range(p)])
        self.b2 = _BR(128 + 3)
        self.level3_0 = ESPDown(128 + 3, 128)
        self.level3 = nn.ModuleList([ESPBlock(128, 128) for _ in range(q)])
        self.b3 = _BR(256)
        self.classifier = _Conv(256, classes, 1)


class ESPNet(nn.Module):
    """Encoder + decoder (paper Fig. 4d). forward: (B, 3, H, W) normalised, H and W multiples of 8 ->
    (B, classes, H, W) class scores; `features` also returns the encoder's 1/8 features (B, 256, H/8, W/8)."""

    def __init__(self, cfg: ESPNetConfig = ESPNetConfig()):
        super().__init__()
        c = cfg.classes
        self.cfg = cfg
        self.encoder = ESPNetEncoder(c, cfg.p, cfg.q)
        self.level3_C = _Conv(128 + 3, c, 1)
        self.br = nn.BatchNorm2d(c, eps=1e-3)
        self.conv = _CBR((16 if cfg.decoder_skip == "level1" else 19) + c, c, 3, 1)
        self.up_l3 = nn.Sequential(nn.ConvTranspose2d(c, c, 2, stride=2, bias=False))
        self.combine_l2_l3 = nn.Sequential(_BR(2 * c), ESPBlock(2 * c, c, add=False))
        self.up_l2 = nn.Sequential(nn.ConvTranspose2d(c, c, 2, stride=2, bias=False), _BR(c))
        self.classifier = nn.ConvTranspose2d(c, c, 2, stride=2, bias=False)

    def forward(self, x: torch.Tensor, features: bool = False):
        h, w = x.shape[-2:]
        if h % 8 or w % 8:
            raise ValueError(f"ESPNet input must be a multiple of 8 in both sides, got {w}x{h}")
        e = self.encoder
        out0 = e.level1(x)                                                  # 1/2, 16
        out0_cat = e.b1(torch.cat([out0, e.sample1(x)], 1))                 # 1/2, 19
        out1_0 = e.level2_0(out0_cat)                                       # 1/4, 64
        out1 = out1_0
        for layer in e.level2:
            out1 = layer(out1)
        out1_cat = e.b2(torch.cat([out1, out1_0, e.sample2(x)], 1))         # 1/4, 131
        out2_0 = e.level3_0(out1_cat)                                       # 1/8, 128
        out2 = out2_0
        for layer in e.level3:
            out2 = layer(out2)
        out2_cat = e.b3(torch.cat([out2_0, out2], 1))                       # 1/8, 256
        up3 = self.up_l3(self.br(e.classifier(out2_cat)))                   # 1/4, C
        l2 = self.level3_C(out1_cat)                                        # 1/4, C
        up2 = self.up_l2(self.combine_l2_l3(torch.cat([l2, up3], 1)))       # 1/2, C
        skip = out0 if self.cfg.decoder_skip == "level1" else out0_cat
        scores = self.classifier(self.conv(torch.cat([up2, skip], 1)))      # 1/1, C
        return (scores, out2_cat) if features else scores


# --------------------------------------------------------------------------------------------------------
# the prior as the backend uses it


class SemanticPrior:
    """A frozen ESPNet with its input transform: uint8 RGB pictures -> class probabilities at the picture's size."""

    def __init__(self, net: ESPNet, device: str = "cpu"):
        self.net = net.eval().to(device)
        self.cfg = net.cfg
        self.device = device

    @classmethod
    def load(cls, folder: str | Path | None = None, name: str = "cityscapes", device: str = "cpu") -> "SemanticPrior":
        """folder/{name}.safetensors + {name}.json (ESPNetConfig); default: the weights shipped in the repo."""
        from safetensors.torch import load_file
        folder = Path(folder) if folder is not None else WEIGHTS_DIR
        wpath, cpath = folder / f"{name}.safetensors", folder / f"{name}.json"
        for p in (wpath, cpath):
            if not p.is_file():
                raise FileNotFoundError(f"ESPNet weights missing: {p} (scripts/convert_espnet.py makes them)")
        raw = json.loads(cpath.read_text())
        cfg = ESPNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
        net = ESPNet(cfg)
        net.load_state_dict(load_file(str(wpath)), strict=True)
        return cls(net, device)

    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """uint8 RGB (H, W, 3) -> (1, 3, h, w) float tensor as the released training code fed the network."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}")
        bgr = image[..., ::-1].astype(np.float32)
        bgr = (bgr - np.asarray(self.cfg.mean_bgr, np.float32)) / np.asarray(self.cfg.std_bgr, np.float32)
        bgr = cv2.resize(bgr, tuple(self.cfg.input_size), interpolation=cv2.INTER_LINEAR) / 255.0
        return torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None].to(self.device)

    @torch.no_grad()
    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """uint8 RGB (H, W, 3) -> float32 (C, H, W) softmax probabilities, resized back to the image's size."""
        scores = self.net(self.preprocess(image))
        prob = torch.softmax(scores.float(), 1)[0]
        h, w = np.shape(image)[:2]
        prob = torch.nn.functional.interpolate(prob[None], size=(h, w), mode="bilinear", align_corners=False)[0]
        return prob.cpu().numpy().astype(np.float32)

    def class_index(self, name: str) -> int:
        try:
            return self.cfg.class_names.index(name)
        except ValueError:
            raise ValueError(f"no class {name!r} in {self.cfg.class_names}") from None


def config_json(cfg: ESPNetConfig) -> str:
    return json.dumps(asdict(cfg), indent=1)
