"""Monocular depth for any picture size: mobilePyDNet at a few sizes up to its trained 640x448, then edge-aware
upsampling.

Scales: the small network's answer changes a lot with the input size (scripts/eval_depth_synthetic.py, per
scene: one size gets a scene right that another gets backwards; sizes above the trained 640x448 area are worse
everywhere), so we average its normalised answers over four sizes from 0.34x to 1x that area (multiples of
64), each mirror-averaged. Measured on the synthetic scenes: mean Spearman 0.57 at 640x448 alone -> 0.78.
Aspect: the picture is stretched to the network's 640:448 at every size. The authors' app crops instead (it
keeps the aspect), but a crop loses the picture's edges, and keeping the aspect with sizes of the picture's own
shape measured worse at 16:9 (`eval_depth_synthetic.py --size 768x432`: 0.727 kept vs 0.753 stretched).
Its inverse-depth-like map goes back to full size with a fast guided filter (He & Sun 2015): the local linear
model q = a * I + b is fitted between the low-resolution guide (grey picture) and the map, then a and b are
upsampled and applied to the full-resolution guide, so depth edges snap to picture edges. Only numpy/cv2.boxFilter
and cv2.resize; memory stays a few float32 planes of the full picture (a 4K picture fits well under 1 GB).

Output: float32 (H, W) inverse depth, larger = nearer, normalised to [0, 1] over the picture (relative only).

Sign: the graph's output grows with DISTANCE: the authors' Android app colours it with a plasma list that
starts at yellow (index 0 = smallest value = nearest), the sky of backend/assets/sample.jpg gets its largest
values, and on most of scripts/eval_depth_synthetic.py's scenes it correlates negatively with the true inverse
depth (the weights' notes call it inverse-depth-like; that is not what it does). We take it as depth and invert
it: 1 / output (the output is positive: ~5..100). Measured, 1 / output and -output fit the true inverse depth
about equally (Pearson 0.83 / 0.83, 0.75 / 0.74, 0.89 / 0.90 on scenes 0..2) and far better than the output fits
depth itself (0.69, 0.58, 0.70): it behaves like an offset minus a disparity, so either map is fine for layers.
"""
from __future__ import annotations

import numpy as np

MAX_PIXELS = 64_000_000           # refuse absurd inputs (8K x 8K)
GUIDE_RADIUS = 4                  # box radius at the network resolution (640x448)
GUIDE_EPS = 1e-3                  # guided-filter regulariser, on a [0, 1] guide
SCALE_AREAS = (0.34, 0.5, 0.69, 1.0)   # input areas as fractions of the trained 640x448
MAX_ASPECT = 3.0                  # beyond this the network input is stretched rather than kept


def _box(x: np.ndarray, r: int) -> np.ndarray:
    import cv2

    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_upsample(guide_full: np.ndarray, guide_low: np.ndarray, p_low: np.ndarray,
                    r: int = GUIDE_RADIUS, eps: float = GUIDE_EPS) -> np.ndarray:
    """Fast guided filter: fit q = a I + b at low resolution, upsample a and b, apply to the full guide."""
    import cv2

    mean_i, mean_p = _box(guide_low, r), _box(p_low, r)
    cov_ip = _box(guide_low * p_low, r) - mean_i * mean_p
    var_i = _box(guide_low * guide_low, r) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    a, b = _box(a, r), _box(b, r)
    h, w = guide_full.shape
    a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
    b = cv2.resize(b, (w, h), interpolation=cv2.INTER_LINEAR)
    a *= guide_full
    a += b
    return a


def network_sizes(width: int, height: int, keep_aspect: bool = False) -> list[tuple[int, int]]:
    """The (w, h) inputs for a picture: SCALE_AREAS of 640x448 at 640:448 (the picture stretched), or at the
    picture's own aspect when keep_aspect (measured against in scripts/eval_depth_synthetic.py); multiples of 64."""
    from . import pydnet

    aspect = width / height if keep_aspect else pydnet.NET_WIDTH / pydnet.NET_HEIGHT
    aspect = min(max(aspect, 1.0 / MAX_ASPECT), MAX_ASPECT)
    sizes = []
    for frac in SCALE_AREAS:
        area = frac * pydnet.NET_WIDTH * pydnet.NET_HEIGHT
        w = max(64, int(round((area * aspect) ** 0.5 / 64)) * 64)
        h = max(64, int(round((area / aspect) ** 0.5 / 64)) * 64)
        if (w, h) not in sizes:
            sizes.append((w, h))
    return sizes


def estimate_inverse_depth(image: np.ndarray, device: str = "cpu", keep_aspect: bool = False) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (H, W) inverse depth in [0, 1] (1 = nearest). keep_aspect: see
    network_sizes."""
    import cv2
    import torch

    from . import pydnet

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"depth: expected a uint8 (H, W, 3) RGB picture, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    if h * w > MAX_PIXELS or min(h, w) < 8:
        raise ValueError(f"depth: a {w}x{h} picture is outside 8..{MAX_PIXELS} pixels")
    sizes = network_sizes(w, h, keep_aspect)
    guide_w, guide_h = sizes[-1]                 # the largest input is the grid the answers are averaged on
    net = pydnet.load().to(device)
    disp = np.zeros((guide_h, guide_w), np.float32)
    for size in sizes:
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        x = torch.from_numpy(small).to(device=device, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0
        # Test-time flip: the mean of the picture's and its mirror's predictions (halves the left/right bias
        # of this small network).
        out = 0.5 * (pydnet.predict(x, net) + pydnet.predict(x.flip(-1), net).flip(-1))
        out = out[0, 0].float().cpu().numpy()
        inv = 1.0 / np.maximum(out, max(float(out.max()), 1e-6) * 1e-3)
        inv = cv2.resize(inv, (guide_w, guide_h), interpolation=cv2.INTER_LINEAR)
        # Each size's answer is relative (unknown scale and offset): standardise before averaging.
        disp += (inv - inv.mean()) / max(float(inv.std()), 1e-6)
    lo, hi = np.percentile(disp, [0.5, 99.5])
    disp = np.clip((disp - lo) / max(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)
    grey_full = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey_full *= 1.0 / 255.0
    small = cv2.resize(image, (guide_w, guide_h), interpolation=cv2.INTER_AREA)
    grey_low = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    out = guided_upsample(grey_full, grey_low, disp)
    np.clip(out, 0.0, 1.0, out=out)
    return out


CONDITION_SIZE = (256, 192)       # (w, h) network input of the denoiser's depth condition (one size: cost)


def condition_inverse_depth(image, size: tuple[int, int] = CONDITION_SIZE):
    """(B, 3, H, W) torch RGB in [0, 1] -> (B, 1, H, W) inverse depth in [0, 1] per picture (1 = nearest): the
    denoiser's depth condition (MotionConfig.depth_condition).

    Cheaper than `estimate_inverse_depth` (one network size, 0.34x the trained area's 0.12 s instead of four
    sizes' ~1 s a picture on one CPU core: training computes it for every picture it sees), the same sign, the
    same test-time flip. The flip average makes it mirror-equivariant: the map of a mirrored picture is the
    mirrored map (what lets training compute it once for a picture and its mirror image)."""
    import torch
    import torch.nn.functional as F

    from . import pydnet

    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"depth condition: expected (B, 3, H, W), got {tuple(image.shape)}")
    h, w = image.shape[-2:]
    net = pydnet.load().to(image.device)
    x = F.interpolate(image.float(), size=size[::-1], mode="area" if h >= size[1] else "bilinear")
    with torch.no_grad():
        out = 0.5 * (pydnet.predict(x, net) + pydnet.predict(x.flip(-1), net).flip(-1))
    peak = out.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1, 1)
    inv = 1.0 / torch.maximum(out, peak * 1e-3)
    # relative only (unknown scale and offset): each picture to [0, 1] between its 0.5 and 99.5 percentiles
    flat = inv.flatten(1)
    lo = torch.quantile(flat, 0.005, dim=1).view(-1, 1, 1, 1)
    hi = torch.quantile(flat, 0.995, dim=1).view(-1, 1, 1, 1)
    inv = ((inv - lo) / (hi - lo).clamp_min(1e-6)).clamp(0.0, 1.0)
    return F.interpolate(inv, size=(h, w), mode="bilinear", align_corners=False).to(image.dtype)


def write_depth_exr(path, depth: np.ndarray) -> None:
    """float32 (H, W) -> a float32 ZIP EXR with R = G = B = depth (any viewer or Blender reads it), atomically."""
    import os
    from pathlib import Path

    import OpenEXR

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.exr")
    d = np.ascontiguousarray(depth, np.float32)
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"R": d, "G": d, "B": d}) as f:
        f.write(str(tmp))
    os.replace(tmp, path)
