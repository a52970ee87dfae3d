"""Synthetic fluid scenes with a known steady velocity field, for the Eulerian bars and training.

Each scene: a fluid mask, the true field V (2, H, W) px/frame (zero outside the mask), and 3-5 strokes as an
artist would draw them: streamlines of V (the field's speed is constant along each), with that speed.
    river   a meandering band at constant speed (3 strokes parallel to the banks)
    vortex  an annulus turning at constant speed (3 circles)
    fall    a fan of straight rays from a point above the picture (4 rays), like water spreading as it falls
    clouds  the sky drifting right, faster high up (4 horizontal lines with their own speeds)
`advected_clip` renders a texture carried by a field: frame t samples the texture where each pixel was t
frames ago (backward integration, no resampling drift), so consecutive frames differ by V.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from shared.eulerian import Stroke, integrate

SCENES = ("river", "vortex", "fall", "clouds")


@dataclass(frozen=True)
class FluidScene:
    name: str
    mask: np.ndarray          # bool (H, W)
    velocity: np.ndarray      # float32 (2, H, W), 0 outside the mask
    strokes: list[Stroke]

    def hints(self) -> dict:
        """The strokes as a HINTS.json object."""
        return {"strokes": [{"points": s.points.round(2).tolist(), "speed": s.speed} for s in self.strokes]}


def texture(size: tuple[int, int], seed: int = 0, sigma: float = 1.5) -> np.ndarray:
    """Band-limited noise texture uint8 (H, W, 3), full range; sigma = blur in pixels (detail size)."""
    W, H = size
    rng = np.random.default_rng(seed)
    t = cv2.GaussianBlur(rng.random((H, W, 3)).astype(np.float32), (0, 0), sigma)
    t = (t - t.min()) / (t.max() - t.min())
    return (t * 255.0).round().astype(np.uint8)


def river_band(size: tuple[int, int] = (256, 160), speed: float = 1.0) -> FluidScene:
    """The bar's river: a straight horizontal band (middle 3/8 of the height), flowing right, one stroke."""
    W, H = size
    mask = np.zeros((H, W), bool)
    y0, y1 = int(H * 5 / 16), int(H * 11 / 16)
    mask[y0:y1] = True
    v = np.zeros((2, H, W), np.float32)
    v[0][mask] = speed
    yc = (y0 + y1 - 1) / 2
    return FluidScene("band", mask, v, [Stroke(np.array([[W * 0.05, yc], [W * 0.95, yc]]), speed)])


def scene(name: str, size: tuple[int, int] = (256, 160)) -> FluidScene:
    W, H = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    if name == "river":
        speed, amp, k, half = 1.2, H * 0.12, 2 * np.pi / W * 1.5, H * 0.2
        centre = lambda x: H / 2 + amp * np.sin(k * x)             # noqa: E731
        slope = amp * k * np.cos(k * xx)
        mask = np.abs(yy - centre(xx)) < half
        norm = np.sqrt(1 + slope ** 2)
        v = np.stack([speed / norm, speed * slope / norm])
        xs = np.linspace(2, W - 3, 60)
        strokes = [Stroke(np.stack([xs, centre(xs) + off], 1), speed) for off in (-half * 0.6, 0.0, half * 0.6)]
    elif name == "vortex":
        speed, cx, cy = 1.5, W / 2, H / 2
        r = np.hypot(xx - cx, yy - cy)
        r_in, r_out = H * 0.1, H * 0.45
        mask = (r > r_in) & (r < r_out)
        rs = np.maximum(r, 1e-6)
        v = np.stack([-(yy - cy) / rs, (xx - cx) / rs]) * speed
        a = np.linspace(0, 2 * np.pi, 90)
        strokes = [Stroke(np.stack([cx + rad * np.cos(a), cy + rad * np.sin(a)], 1), speed)
                   for rad in np.linspace(r_in + 4, r_out - 4, 3)]
    elif name == "fall":
        speed, ax, ay = 2.0, W / 2, -H * 1.5                      # apex above the picture
        d = np.stack([xx - ax, yy - ay])
        dist = np.sqrt((d ** 2).sum(0))
        ang = np.arctan2(xx - ax, yy - ay)
        half_angle = np.arctan2(W * 0.2, H * 2.0)
        mask = np.abs(ang) < half_angle
        v = d / dist * speed
        strokes = []
        for a in np.linspace(-half_angle * 0.8, half_angle * 0.8, 4):
            t = np.linspace(H * 1.5 + 2, H * 1.5 + H - 3, 20)
            strokes.append(Stroke(np.stack([ax + t * np.sin(a), ay + t * np.cos(a)], 1), speed))
    elif name == "clouds":
        mask = yy < H * 0.55
        prof = lambda y: 0.4 + 1.2 * (1 - y / (H * 0.55))          # noqa: E731
        v = np.stack([prof(yy), np.zeros_like(yy)])
        strokes = [Stroke(np.array([[3.0, y], [W - 4.0, y]]), float(prof(y)))
                   for y in np.linspace(3, H * 0.55 - 4, 4)]
    else:
        raise ValueError(f"unknown fluid scene {name!r}; choose from {SCENES}")
    v = (v * mask).astype(np.float32)
    return FluidScene(name, mask, v, strokes)


def advected_clip(image: np.ndarray, velocity: np.ndarray, frames: int) -> np.ndarray:
    """uint8 (frames, H, W, 3): frame t = image sampled at p + F_0->-t(p) (where p's fluid was t frames
    earlier); frame t+1 is frame t moved by V."""
    H, W = image.shape[:2]
    back = integrate(-np.asarray(velocity, np.float32), frames - 1)
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = np.empty((frames, H, W, 3), np.uint8)
    for t in range(frames):
        out[t] = cv2.remap(image, gx + back[t, 0], gy + back[t, 1], cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REFLECT)
    return out
