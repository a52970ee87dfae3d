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


# --------------------------------------------------------------------------------------------------------
# random scenes for the image -> velocity network (backend/train/fluid_velocity.py)

FAMILIES = ("stream", "vortex", "fan")


def random_field(size: tuple[int, int], rng: np.random.Generator) -> tuple[str, np.ndarray]:
    """A steady field (2, H, W) px/frame from one of FAMILIES, speed 0.4..2.5 px/frame (constant along
    streamlines): a stream whose direction bends smoothly, a vortex, or a fan from/to a far point (falls,
    rising smoke)."""
    W, H = size
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    speed = rng.uniform(0.4, 2.5)
    family = FAMILIES[rng.integers(len(FAMILIES))]
    if family == "stream":
        theta0 = rng.uniform(-np.pi, np.pi)
        k = rng.uniform(0.5, 2.0) * 2 * np.pi / max(W, H)
        phi = rng.uniform(0, 2 * np.pi)
        amp = rng.uniform(0.0, 0.6)
        across = -np.sin(theta0) * xx + np.cos(theta0) * yy      # bends vary across the stream
        theta = theta0 + amp * np.sin(k * across + phi)
        d = np.stack([np.cos(theta), np.sin(theta)])
    elif family == "vortex":
        cx, cy = rng.uniform(0.2, 0.8) * W, rng.uniform(0.2, 0.8) * H
        sign = rng.choice([-1.0, 1.0])
        r = np.maximum(np.hypot(xx - cx, yy - cy), 1e-6)
        d = sign * np.stack([-(yy - cy) / r, (xx - cx) / r])
    else:
        ang = rng.uniform(-np.pi, np.pi)
        dist = rng.uniform(1.5, 4.0) * max(W, H)
        ax, ay = W / 2 - dist * np.cos(ang), H / 2 - dist * np.sin(ang)
        sign = rng.choice([-1.0, 1.0])
        r = np.maximum(np.hypot(xx - ax, yy - ay), 1e-6)
        d = sign * np.stack([(xx - ax) / r, (yy - ay) / r])
    return family, (speed * d).astype(np.float32)


def random_mask(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth blob covering 25..65 % of the picture (thresholded low-frequency noise)."""
    W, H = size
    noise = cv2.GaussianBlur(rng.standard_normal((H, W)).astype(np.float32), (0, 0), max(W, H) / 8)
    q = rng.uniform(0.35, 0.75)
    return noise >= np.quantile(noise, q)


def streak_image(velocity: np.ndarray, mask: np.ndarray, rng: np.random.Generator, steps: int = 16,
                 frames: float = 8.0) -> np.ndarray:
    """uint8 (H, W, 3): a background texture, and inside the mask foam-like streaks that trail downstream
    of bright specks over `frames` frames of motion (a still of flowing water in a long-ish exposure:
    direction, sign (bright head, fading tail) and speed (streak length) are visible)."""
    H, W = mask.shape
    bg = texture((W, H), int(rng.integers(1 << 30)), sigma=rng.uniform(1.0, 3.0)).astype(np.float32)
    bg = bg * rng.uniform(0.3, 1.0, 3) + rng.uniform(0, 80, 3)
    specks = (rng.random((H, W)) < 0.02).astype(np.float32)
    specks = cv2.GaussianBlur(specks, (0, 0), 0.7)
    specks /= max(float(specks.max()), 1e-6)
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
    # a speck at q lights p = q + s V(q) for s in [0, 1] (fading): sample upstream along the field
    acc = np.zeros((H, W), np.float32)
    norm = 0.0
    back = -velocity * (frames / steps)              # streak length: `frames` frames of motion
    f = np.zeros_like(velocity)
    for k in range(steps + 1):
        w = float(np.exp(-3.0 * k / steps))
        acc += w * cv2.remap(specks, gx + f[0], gy + f[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        norm += w
        x, y = gx + f[0], gy + f[1]
        f = f + np.stack([cv2.remap(back[0], x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
                          cv2.remap(back[1], x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)])
    streak = np.clip(acc / norm * 6.0, 0.0, 1.0)
    water = rng.uniform(20, 120, 3) + streak[..., None] * rng.uniform(120, 230, 3)
    base = cv2.GaussianBlur(rng.random((H, W)).astype(np.float32), (0, 0), 4.0)[..., None] * 30.0
    img = np.where(mask[..., None], water + base, bg)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def random_fluid_sample(size: tuple[int, int], seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(image uint8 (H, W, 3), mask bool (H, W), velocity float32 (2, H, W) zero outside, family)."""
    rng = np.random.default_rng(seed)
    family, v = random_field(size, rng)
    mask = random_mask(size, rng)
    v = (v * mask).astype(np.float32)
    return streak_image(v, mask, rng), mask, v, family


def streamline_stroke(velocity: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
                      length: int = 40) -> Stroke | None:
    """A stroke an artist would draw: a streamline of the field from a random point deep inside the mask,
    traced both ways while it stays inside, with the mean speed along it."""
    from shared.eulerian import border_fade, sample_bilinear

    H, W = mask.shape
    core = np.argwhere(border_fade(mask, 4) >= 1.0)
    if len(core) == 0:
        return None
    y, x = core[rng.integers(len(core))].astype(np.float64)
    pts, speeds = [np.array([x, y])], []
    for sign in (1.0, -1.0):
        p = np.array([x, y])
        for _ in range(length // 2):
            u = sample_bilinear(velocity.astype(np.float64), np.array(p[0]), np.array(p[1]))
            s = float(np.hypot(u[0], u[1]))
            if s < 1e-6:
                break
            q = p + sign * u / s * 2.0                       # 2-pixel steps along the streamline
            xi, yi = int(round(q[0])), int(round(q[1]))
            if not (0 <= xi < W and 0 <= yi < H and mask[yi, xi]):
                break
            p = q
            speeds.append(s)
            pts.append(p) if sign > 0 else pts.insert(0, p)
    if len(pts) < 3:
        return None
    return Stroke(np.array(pts), float(np.mean(speeds)))
