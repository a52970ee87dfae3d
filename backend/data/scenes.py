"""Procedural still-camera scenes: a static background and moving objects rigged to wind-driven oscillators.

`build_scene(rng, size)` returns a `Scene`: the background canvas (H, W, 3) uint8 (sky, ground, walls, static
props: never moves), a `Rig` (moving primitives, see rig.py), the `OscillatorBank` and `Wind` of the scene, and
linear links from oscillator states to control-point displacements and rotation channels:
    disp[t, p] += (sx * q_o[t].x, sy * q_o[t].y)      angle[t, a] += wx * q_o[t].x + wy * q_o[t].y
Physics choices (issue 4): cantilever-like stems (displacement grows ~ s^2 (3 - s) / 2 along the stem, natural
frequency falls with length), leaves flutter faster and smaller (own band-pass noise), pendulums at
(1/2 pi) sqrt(g / L), flames flicker in a 1-3 Hz band. Sizes are relative to the image height so that small
test scenes look like large ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .rig import Rig, ellipse, leaf_shape
from .wind import FOLIAGE_DAMPING, OscillatorBank, Wind

SCENE_KINDS = ("meadow", "garden", "tree", "porch", "candles")
_KIND_WEIGHTS = (0.26, 0.22, 0.24, 0.14, 0.14)
# Kinds made only when asked for by name (`gid data synth --kind`): a seed's default draw over SCENE_KINDS stays
# what it was, so the stored synthetic sets and the scenes eval re-runs from their seeds do not change.
EXTRA_KINDS = ("closeup", "field")


def check_kind(kind: str) -> str:
    """A scene kind that `build_scene` can make, or ValueError naming the choices."""
    if kind not in SCENE_KINDS + EXTRA_KINDS:
        raise ValueError(f"unknown scene kind {kind!r}; choose from {SCENE_KINDS + EXTRA_KINDS}")
    return kind


def cantilever(s):
    """Static deflection shape of a cantilever, 0 at the root, 1 at the tip; slope at the tip is 1.5."""
    s = np.asarray(s, dtype=np.float64)
    return s * s * (3.0 - s) / 2.0


@dataclass
class Scene:
    kind: str
    canvas: np.ndarray
    rig: Rig
    bank: OscillatorBank
    wind: Wind
    point_links: list = field(default_factory=list)   # (point, osc, sx, sy)
    angle_links: list = field(default_factory=list)   # (angle, osc, wx, wy)

    def link_point(self, p: int, o: int, sx: float, sy: float | None = None) -> None:
        self.point_links.append((p, o, sx, sx if sy is None else sy))

    def link_angle(self, a: int, o: int, wx: float, wy: float = 0.0) -> None:
        self.angle_links.append((a, o, wx, wy))

    def apply_states(self, q: np.ndarray) -> None:
        """Oscillator states q (T, n_osc, 2) -> the rig's point displacements and rotations."""
        T = q.shape[0]
        disp = np.zeros((T, self.rig.n_points, 2))
        if self.point_links:
            pl = np.asarray(self.point_links)
            p, o = pl[:, 0].astype(int), pl[:, 1].astype(int)
            contrib = q[:, o] * pl[None, :, 2:4]                                 # (T, E, 2)
            order = np.argsort(p, kind="stable")
            p_sorted = p[order]
            starts = np.flatnonzero(np.r_[True, p_sorted[1:] != p_sorted[:-1]])
            sums = np.add.reduceat(contrib[:, order], starts, axis=1)
            disp[:, p_sorted[starts]] = sums
        angles = np.zeros((T, self.rig.n_angles))
        if self.angle_links:
            al = np.asarray(self.angle_links)
            a, o = al[:, 0].astype(int), al[:, 1].astype(int)
            contrib = q[:, o, 0] * al[None, :, 2] + q[:, o, 1] * al[None, :, 3]
            for col in range(len(a)):
                angles[:, a[col]] += contrib[:, col]
        self.rig.set_motion(disp, angles)


# ------------------------------------------------------------------------------------------------------
# backgrounds (static)


def _smooth_noise(rng, h, w, cells, channels=1):
    small = rng.standard_normal((max(2, int(h / w * cells) + 1), cells + 1, channels)).astype(np.float32)
    out = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return out.reshape(h, w, channels)


def _vgrad(h, w, top, bottom):
    a = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    return np.asarray(top, np.float32) * (1 - a) + np.asarray(bottom, np.float32) * a + np.zeros((1, w, 1), np.float32)


def _jitter(rng, color, amount=18):
    return np.clip(np.asarray(color, np.float64) + rng.uniform(-amount, amount, 3), 0, 255)


def paint_outdoor(rng, w, h, horizon):
    """Sky with soft clouds, optional hills, textured ground below `horizon` (pixel row)."""
    top = _jitter(rng, (80, 130, 200), 30)
    bottom = _jitter(rng, (190, 210, 230), 20)
    if rng.random() < 0.2:  # sunset
        top, bottom = _jitter(rng, (90, 90, 160)), _jitter(rng, (240, 170, 110))
    img = _vgrad(h, w, top, bottom)
    clouds = np.clip(_smooth_noise(rng, h, w, rng.integers(3, 8)) * 0.6 + rng.uniform(-0.5, 0.3), 0, 1)
    img = img * (1 - clouds * 0.7) + 245 * clouds * 0.7
    if rng.random() < 0.7:  # distant hills / tree line, static
        xs = np.arange(w)
        ridge = horizon - h * (0.05 + 0.12 * np.abs(_smooth_noise(rng, 1, w, rng.integers(2, 6))[0, :, 0]))
        col = _jitter(rng, (70, 100, 80), 25)
        mask = np.arange(h)[:, None] > ridge[None, xs]
        img[mask] = img[mask] * 0.35 + col * 0.65
    ground_col = _jitter(rng, (85, 120, 55), 30) if rng.random() < 0.8 else _jitter(rng, (130, 110, 80), 25)
    ground = _vgrad(h, w, ground_col * 0.8, ground_col * 1.05)
    tex = _smooth_noise(rng, h, w, max(4, w // 6)) * 12 + rng.standard_normal((h, w, 1)) * 5
    ground = ground + tex
    gmask = (np.arange(h)[:, None, None] >= horizon)
    img = np.where(gmask, ground, img)
    return np.clip(img, 0, 255).astype(np.uint8)


def paint_wall(rng, w, h, floor, dark=False):
    """Plaster, bricks or planks above `floor`; a table/floor below. dark=True for candle-lit rooms."""
    base = _jitter(rng, (150, 135, 115), 40) * (0.35 if dark else 1.0)
    img = np.zeros((h, w, 3), np.float32) + base
    img += _smooth_noise(rng, h, w, max(3, w // 16)) * (6 if dark else 12)
    style = rng.integers(0, 3)
    if style == 1:  # bricks
        bh = max(3, int(h * rng.uniform(0.04, 0.07)))
        bw = bh * rng.uniform(2.0, 3.0)
        for row, y in enumerate(range(0, h, bh)):
            cv2.line(img, (0, y), (w, y), (base * 0.7).tolist(), 1, cv2.LINE_AA)
            off = (row % 2) * bw / 2
            for x in np.arange(-off, w, bw):
                cv2.line(img, (int(x), y), (int(x), y + bh), (base * 0.7).tolist(), 1, cv2.LINE_AA)
    elif style == 2:  # planks
        pw = max(4, int(w * rng.uniform(0.05, 0.1)))
        for x in range(0, w, pw):
            cv2.line(img, (x, 0), (x, h), (base * 0.75).tolist(), 1, cv2.LINE_AA)
    floor_col = _jitter(rng, (110, 80, 55), 30) * (0.45 if dark else 1.0)
    fl = _vgrad(h, w, floor_col * 0.85, floor_col * 1.1) + _smooth_noise(rng, h, w, max(4, w // 8)) * 8
    img = np.where(np.arange(h)[:, None, None] >= floor, fl, img)
    img += rng.standard_normal((h, w, 1)) * 3
    return np.clip(img, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------------------
# moving objects


def _green(rng, light=1.0):
    c = np.array([rng.uniform(30, 90), rng.uniform(90, 170), rng.uniform(20, 70)]) * light
    return np.clip(c, 0, 255)


def add_stem(sc: Scene, rng, x, y, length, angle, thick0, thick1, color, freq, zeta, gain, n_nodes=5,
             curve=0.0, wind_weight=1.0, second_mode=0.15, flicker=0.0):
    """A tapered cantilever from (x, y) pointing along angle (rad, 0 = up... measured from vertical, + right).

    Returns (node point ids, arc parameters s, main oscillator id, tip slope link factor).
    """
    rig = sc.rig
    s = np.linspace(0, 1, n_nodes)
    dx, dy = np.sin(angle), -np.cos(angle)
    nx, ny = -dy, dx                                                 # normal (for the rest-pose curve)
    bend = curve * length * s * s
    pts = [rig.add_point(x + dx * length * si + nx * b, y + dy * length * si + ny * b) for si, b in zip(s, bend)]
    o = sc.bank.add(freq, zeta, gain, x, y - length * 0.6, wind_weight=wind_weight,
                    noise_weight=flicker, noise_band=(3.0, 0.8))
    o2 = None
    if second_mode > 0:
        o2 = sc.bank.add(min(freq * 3.5, 6.0), zeta, gain * second_mode, x, y - length * 0.6,
                         wind_weight=wind_weight, noise_weight=0.4, noise_band=(4.0, 1.0))
    shape = cantilever(s)
    mode2 = np.sin(np.pi * s) * s
    for p, sh, m2 in zip(pts, shape, mode2):
        if sh > 0:
            sc.link_point(p, o, sh, sh * 0.3)
        if o2 is not None and m2 > 0:
            sc.link_point(p, o2, m2, m2 * 0.3)
    th = np.linspace(thick0, thick1, n_nodes - 1)
    shade = np.linspace(0.85, 1.1, n_nodes - 1)
    for i in range(n_nodes - 1):
        rig.add_segment(pts[i], pts[i + 1], th[i], np.asarray(color) * shade[i])
    return pts, s, o, 1.5 / max(length, 1.0)


def add_leaf(sc: Scene, rng, anchor, base_xy, length, width, angle, color, flutter_osc=None, slope_links=()):
    """A rigid two-tone leaf anchored at a control point; its rotation channel follows the stem and flutters."""
    rig = sc.rig
    a = rig.add_angle()
    v = leaf_shape(base_xy[0], base_xy[1], length, width, angle)
    rig.add_poly(v, anchor, a, color)
    half = leaf_shape(base_xy[0], base_xy[1], length * 0.95, width * 0.45, angle)
    rig.add_poly(half, anchor, a, np.clip(np.asarray(color) * 1.25 + 10, 0, 255))
    if flutter_osc is not None:
        sc.link_angle(a, flutter_osc, 1.0, 0.4)
    for o, wx in slope_links:
        sc.link_angle(a, o, wx)
    return a


def grass(sc: Scene, rng, x0, x1, y0, y1, count, height, scale):
    base = _green(rng)
    ys = np.sort(rng.uniform(y0, y1, count))          # back to front: painter's order
    for y in ys:
        x = rng.uniform(x0, x1)
        depth = (y - y0) / max(1.0, y1 - y0) * 0.5 + 0.75
        length = height * rng.uniform(0.5, 1.2) * depth
        if length < 3:
            continue
        col = base * rng.uniform(0.7, 1.3) + rng.uniform(-10, 10, 3)
        freq = float(np.clip(1.2 * (height / max(length, 1)) ** 0.7 * rng.uniform(1.2, 1.8), 1.0, 3.2))
        add_stem(sc, rng, x, y, length, rng.normal(0, 0.25), max(1, 2.2 * scale), 1, col, freq,
                 rng.uniform(0.08, 0.2), length * 0.06, n_nodes=4, curve=rng.normal(0, 0.12), second_mode=0.0)


def flower(sc: Scene, rng, x, y, length, scale):
    stem_col = _green(rng, 0.9)
    freq = float(np.clip(rng.uniform(0.8, 1.6) * (0.35 * sc.canvas.shape[0] / max(length, 1)) ** 0.5, 0.6, 2.5))
    pts, s, o, slope = add_stem(sc, rng, x, y, length, rng.normal(0, 0.15), max(1, 2 * scale), max(1, 1.5 * scale),
                                stem_col, freq, rng.uniform(0.06, 0.15), length * 0.045, n_nodes=6,
                                curve=rng.normal(0, 0.1))
    rig = sc.rig
    for i in rng.choice(np.arange(1, 4), size=rng.integers(1, 3), replace=False):   # a few leaves on the stem
        px, py = rig.points0[pts[i]]
        side = rng.choice([-1, 1])
        flut = sc.bank.add(rng.uniform(2.0, 4.0), 0.15, 0.06, px, py, wind_weight=0.3, noise_weight=1.0,
                           noise_band=(4.5, 1.2))
        add_leaf(sc, rng, pts[i], (px, py), length * rng.uniform(0.15, 0.3), length * 0.07,
                 -np.pi / 2 + side * rng.uniform(0.5, 1.2), stem_col * 1.1, flut, [(o, slope * float(cantilever(s[i]) / max(s[i], 1e-3)))])
    tip = pts[-1]
    cx, cy = rig.points0[tip]
    a = rig.add_angle()
    sc.link_angle(a, o, slope)
    wob = sc.bank.add(rng.uniform(1.5, 3.0), 0.12, 0.08, cx, cy, wind_weight=0.3, noise_weight=1.0, noise_band=(4.0, 1.0))
    sc.link_angle(a, wob, 1.0, 0.3)
    r = max(2.0, length * rng.uniform(0.07, 0.13))
    petal_col = np.array([rng.uniform(150, 255), rng.uniform(40, 230), rng.uniform(40, 230)])
    if rng.random() < 0.3:
        petal_col = np.array([240, 240, 235.0])
    n_pet = int(rng.integers(5, 9))
    rot0 = rng.uniform(0, np.pi)
    for k in range(n_pet):
        ang = rot0 + 2 * np.pi * k / n_pet
        rig.add_poly(ellipse(cx + np.cos(ang) * r * 0.6, cy + np.sin(ang) * r * 0.6 * 0.8, r * 0.6, r * 0.3, ang, 10),
                     tip, a, petal_col * rng.uniform(0.85, 1.05))
    rig.add_poly(ellipse(cx, cy, r * 0.38, r * 0.33, 0, 10), tip, a,
                 (rng.uniform(180, 240), rng.uniform(130, 200), rng.uniform(0, 60)))


def shrub(sc: Scene, rng, cx, cy, rx, ry, scale):
    """A dome of leaves on a few short branches; the dark core is static background."""
    cv2.ellipse(sc.canvas, (int(cx), int(cy)), (int(rx * 0.85), int(ry * 0.8)), 0, 180, 360,
                (_green(rng, 0.4)).tolist(), -1, cv2.LINE_AA)
    base = _green(rng, rng.uniform(0.7, 1.1))
    n_branch = int(rng.integers(3, 7))
    osc = [sc.bank.add(rng.uniform(0.9, 2.2), rng.uniform(0.08, 0.18), ry * rng.uniform(0.05, 0.09),
                       cx + rng.uniform(-rx, rx), cy - ry * 0.5) for _ in range(n_branch)]
    n_leaf = int(np.clip(rx * ry * 0.05 / max(scale, 0.3) ** 2 * scale ** 2, 12, 220))
    for _ in range(n_leaf):
        ang = rng.uniform(np.pi, 2 * np.pi)
        rad = np.sqrt(rng.uniform(0.1, 1.0))
        lx, ly = cx + np.cos(ang) * rx * rad, cy + np.sin(ang) * ry * rad
        p = sc.rig.add_point(lx, ly)
        height = np.clip((cy - ly) / max(ry, 1), 0, 1)
        sc.link_point(p, osc[int(rng.integers(n_branch))], 0.3 + 0.7 * height, (0.3 + 0.7 * height) * 0.4)
        flut = sc.bank.add(rng.uniform(2.0, 4.5), 0.15, 0.05, lx, ly, wind_weight=0.2, noise_weight=1.0,
                           noise_band=(5.0, 1.5))
        size = max(2.5, ry * rng.uniform(0.18, 0.3))
        add_leaf(sc, rng, p, (lx, ly), size, size * rng.uniform(0.4, 0.6), rng.uniform(0, 2 * np.pi),
                 base * rng.uniform(0.75, 1.25), flut)


def branch(sc: Scene, rng, w, h, scale):
    """A tree branch entering from a side or the top edge, with twigs and foliage."""
    side = rng.choice(["left", "right", "top"])
    if side == "left":
        x, y, angle = -2.0, rng.uniform(0.05, 0.6) * h, rng.uniform(0.9, 1.9)
    elif side == "right":
        x, y, angle = w + 2.0, rng.uniform(0.05, 0.6) * h, -rng.uniform(0.9, 1.9)
    else:
        x, y, angle = rng.uniform(0.15, 0.85) * w, -2.0, np.pi + rng.normal(0, 0.5)
    length = rng.uniform(0.45, 0.85) * (w if side != "top" else h * 1.2)
    bark = _jitter(rng, (90, 70, 50), 25)
    freq = rng.uniform(0.3, 0.9)
    pts, s, o, slope = add_stem(sc, rng, x, y, length, angle, max(2, 6 * scale), max(1, 2 * scale), bark, freq,
                                rng.uniform(0.05, 0.12), length * 0.02, n_nodes=6, curve=rng.normal(0, 0.15),
                                second_mode=0.25)
    leaf_col = _green(rng, rng.uniform(0.8, 1.2))
    if rng.random() < 0.2:
        leaf_col = _jitter(rng, (200, 120, 40), 30)    # autumn
    rig = sc.rig
    for i in range(1, len(pts)):
        for _ in range(int(rng.integers(2, 4))):
            bx, by = rig.points0[pts[i]]
            twig_len = length * rng.uniform(0.12, 0.3)
            t_ang = angle + rng.choice([-1, 1]) * rng.uniform(0.4, 1.1)
            tf = rng.uniform(1.0, 2.2)
            tpts, ts, to, tslope = add_stem(sc, rng, bx, by, twig_len, t_ang, max(1, 2 * scale), 1, bark * 0.9, tf,
                                            rng.uniform(0.08, 0.16), twig_len * 0.05, n_nodes=3, second_mode=0.0)
            # a twig rides on its branch: every twig node also gets the branch node's displacement
            sh = float(cantilever(s[i]))
            for tp in tpts:
                sc.link_point(tp, o, sh, sh * 0.3)
            for tp in tpts[1:]:
                tx, ty = rig.points0[tp]
                for _ in range(int(rng.integers(3, 7))):
                    flut = sc.bank.add(rng.uniform(2.0, 4.5), 0.15, 0.06, tx, ty, wind_weight=0.3,
                                       noise_weight=1.0, noise_band=(5.0, 1.5))
                    size = max(2.5, h * rng.uniform(0.045, 0.08))
                    add_leaf(sc, rng, tp, (tx, ty), size, size * rng.uniform(0.4, 0.55), rng.uniform(0, 2 * np.pi),
                             leaf_col * rng.uniform(0.75, 1.25), flut, [(to, tslope)])


def hanging(sc: Scene, rng, x, top_y, length, scale, kind):
    """A pendulum from a fixed point: lantern, cloth strip or chime."""
    rig = sc.rig
    freq = float(np.clip(rng.uniform(0.45, 0.7) * np.sqrt(sc.canvas.shape[0] * 0.5 / max(length, 1)), 0.4, 1.4))
    o = sc.bank.add(freq, rng.uniform(0.03, 0.08), length * 0.05, x, top_y + length, wind_weight=1.0,
                    noise_weight=0.15, noise_band=(1.5, 0.2))
    n = 6 if kind == "cloth" else 3
    s = np.linspace(0, 1, n)
    pts = [rig.add_point(x, top_y + length * si) for si in s]
    for p, si in zip(pts, s):
        if si > 0:
            sc.link_point(p, o, si, 0.05 * si)
    if kind == "cloth":
        flutter = sc.bank.add(rng.uniform(1.5, 2.8), 0.12, length * 0.02, x, top_y + length, wind_weight=0.5,
                              noise_weight=1.0, noise_band=(3.5, 0.8))
        for p, si in zip(pts, s):
            if si > 0:
                sc.link_point(p, flutter, np.sin(np.pi * si * 0.75) * si, 0.1)
        col = _jitter(rng, rng.choice([(200, 40, 40), (40, 60, 180), (230, 200, 60), (230, 230, 230)]), 25)
        wdt = max(2, length * rng.uniform(0.15, 0.35))
        for i in range(n - 1):
            rig.add_segment(pts[i], pts[i + 1], wdt, col * (0.9 + 0.1 * (i % 2)))
        return
    string = (40, 40, 40)
    for i in range(n - 1):
        rig.add_segment(pts[i], pts[i + 1], 1, string)
    a = rig.add_angle()
    sc.link_angle(a, o, -1.0 / max(length, 1.0))     # pendulum angle (bottom moving +x rotates the body)
    bx, by = rig.points0[pts[-1]]
    if kind == "lantern":
        r = max(3.0, length * rng.uniform(0.25, 0.4))
        col = _jitter(rng, rng.choice([(230, 80, 40), (240, 200, 90), (200, 50, 60)]), 20)
        rig.add_poly(ellipse(bx, by + r, r * 0.8, r, 0, 16), pts[-1], a, col)
        rig.add_poly(ellipse(bx, by + r, r * 0.35, r * 0.8, 0, 12), pts[-1], a, np.clip(col * 1.2 + 30, 0, 255))
        rig.add_poly(np.array([[bx - r * 0.4, by], [bx + r * 0.4, by], [bx + r * 0.4, by + r * 0.2],
                               [bx - r * 0.4, by + r * 0.2]]), pts[-1], a, (40, 30, 20))
    else:  # chime: a few metal tubes on a small disk
        r = max(3.0, length * 0.35)
        rig.add_poly(ellipse(bx, by, r, r * 0.25, 0, 12), pts[-1], a, (120, 90, 60))
        metal = _jitter(rng, (190, 190, 200), 20)
        for k in range(int(rng.integers(3, 6))):
            tx = bx + (k - 2) * r * 0.45
            tl = length * rng.uniform(0.5, 0.9)
            tw = max(1.2, r * 0.18)
            rig.add_poly(np.array([[tx - tw, by + 2], [tx + tw, by + 2], [tx + tw, by + 2 + tl],
                                   [tx - tw, by + 2 + tl]]), pts[-1], a, metal * rng.uniform(0.85, 1.1))


def candle(sc: Scene, rng, x, table_y, scale):
    """Static candle body (background) and a flickering flame (two tapered spines)."""
    h = sc.canvas.shape[0]
    cw = max(3, h * rng.uniform(0.05, 0.09))
    ch = h * rng.uniform(0.15, 0.4)
    top = table_y - ch
    wax = _jitter(rng, (235, 225, 200), 20)
    glow = np.zeros_like(sc.canvas, np.float32)
    cv2.circle(glow, (int(x), int(top - ch * 0.15)), int(h * 0.25), (255, 170, 80), -1, cv2.LINE_AA)
    glow = cv2.GaussianBlur(glow, (0, 0), h * 0.08)
    sc.canvas[:] = np.clip(sc.canvas.astype(np.float32) + glow * 0.35, 0, 255).astype(np.uint8)
    cv2.rectangle(sc.canvas, (int(x - cw / 2), int(top)), (int(x + cw / 2), int(table_y)), wax.tolist(), -1)
    cv2.ellipse(sc.canvas, (int(x), int(top)), (int(cw / 2), max(1, int(cw * 0.15))), 0, 0, 360,
                (wax * 1.05).clip(0, 255).tolist(), -1, cv2.LINE_AA)
    cv2.line(sc.canvas, (int(x), int(top)), (int(x), int(top - max(2, h * 0.015))), (30, 25, 20), 1, cv2.LINE_AA)
    fl = h * rng.uniform(0.09, 0.18)
    base_y = top - max(2, h * 0.015)
    flick = rng.uniform(1.0, 3.0)
    ox = sc.bank.add(flick, rng.uniform(0.15, 0.35), fl * 0.12, x, base_y, wind_weight=0.3, noise_weight=1.0,
                     noise_band=(3.0, 0.9))
    oy = sc.bank.add(flick * rng.uniform(1.1, 1.5), 0.3, fl * 0.08, x, base_y, wind_weight=0.0, noise_weight=1.0,
                     noise_band=(3.0, 0.9))
    for width, col, frac in ((max(2, fl * 0.45), (255, 150, 40), 1.0), (max(1, fl * 0.25), (255, 230, 150), 0.75)):
        n = 4
        s = np.linspace(0, 1, n)
        pts = [sc.rig.add_point(x, base_y - fl * frac * si) for si in s]
        for p, si in zip(pts, s):
            if si > 0:
                sc.link_point(p, ox, si ** 1.5, 0.0)
                sc.link_point(p, oy, 0.0, si)
        th = np.linspace(width, max(1, width * 0.35), n - 1)
        for i in range(n - 1):
            sc.rig.add_segment(pts[i], pts[i + 1], th[i], col)


def paint_bokeh(rng, w, h):
    """An out-of-focus background, as behind a close-up taken with a shallow depth of field: large soft blobs of
    foliage greens and browns (sometimes a bright sky gap), a few bright discs, all blurred; no fine texture."""
    dark = _jitter(rng, (35, 60, 30), 25) * rng.uniform(0.5, 1.2)
    light = _jitter(rng, (110, 150, 70), 40)
    if rng.random() < 0.3:                           # a flowerbed or a wall behind: warmer tones
        light = _jitter(rng, (170, 120, 90), 50)
    mix = np.clip(_smooth_noise(rng, h, w, int(rng.integers(3, 7))) * 0.7 + 0.5, 0, 1)
    img = dark * (1 - mix) + light * mix
    if rng.random() < 0.35:                          # sky seen through the leaves
        gap = np.clip(_smooth_noise(rng, h, w, int(rng.integers(2, 5))) * 1.5 - 0.6, 0, 1)
        img = img * (1 - gap) + _jitter(rng, (200, 215, 230), 25) * gap
    for _ in range(int(rng.integers(0, 12))):        # highlights and out-of-focus blossoms
        col = _jitter(rng, rng.choice([(230, 240, 200), (240, 150, 170), (250, 230, 120)]), 20)
        r = int(h * rng.uniform(0.02, 0.08))
        cv2.circle(img, (int(rng.uniform(0, w)), int(rng.uniform(0, h))), max(2, r),
                   (img.mean((0, 1)) * 0.4 + col * 0.6).tolist(), -1, cv2.LINE_AA)
    img = cv2.GaussianBlur(img.astype(np.float32), (0, 0), h * rng.uniform(0.02, 0.05))
    img += rng.standard_normal((h, w, 1)) * 2
    return np.clip(img, 0, 255).astype(np.uint8)


def flower_head(sc: Scene, rng, anchor: int, angle: int, cx, cy, r):
    """A large flower head riding on a control point and a rotation channel: rings of shaded petals (a rose-like
    cup or a daisy-like star) around a centre; drawn back to front, every ring turned a little."""
    rig = sc.rig
    base = np.array([rng.uniform(160, 255), rng.uniform(40, 220), rng.uniform(40, 220)])
    if rng.random() < 0.25:
        base = _jitter(rng, (240, 238, 228), 12)
    cup = rng.random() < 0.6                         # rose-like rings of broad petals, else one star of petals
    rings = int(rng.integers(3, 6)) if cup else 1
    rot = rng.uniform(0, np.pi)
    for ring in range(rings):
        frac = 1.0 - ring / rings                    # outer ring first
        n = int(rng.integers(5, 9)) if cup else int(rng.integers(8, 16))
        length = r * (0.55 * frac + 0.2) if cup else r * 0.6
        width = length * (rng.uniform(0.7, 1.0) if cup else rng.uniform(0.2, 0.35))
        shade = 0.65 + 0.45 * (1 - frac) if cup else 1.0
        rot += rng.uniform(0.3, 1.0)
        for k in range(n):
            ang = rot + 2 * np.pi * k / n + rng.normal(0, 0.08)
            d = length * (0.55 if cup else 0.75)
            px, py = cx + np.cos(ang) * d, cy + np.sin(ang) * d * rng.uniform(0.75, 0.95)
            col = np.clip(base * shade * rng.uniform(0.85, 1.1), 0, 255)
            rig.add_poly(ellipse(px, py, length * 0.6, width * 0.5, ang, 14), anchor, angle, col)
            # a lighter patch towards the petal's tip: two-tone, like the leaves
            rig.add_poly(ellipse(px + np.cos(ang) * length * 0.15, py + np.sin(ang) * length * 0.15,
                                 length * 0.35, width * 0.3, ang, 10), anchor, angle,
                         np.clip(col * 1.15 + 15, 0, 255))
    centre = (rng.uniform(180, 240), rng.uniform(130, 200), rng.uniform(0, 60)) if not cup else base * 0.55
    rig.add_poly(ellipse(cx, cy, r * 0.22, r * 0.2, rot, 12), anchor, angle, centre)


def closeup(sc: Scene, rng, w, h, scale):
    """One to three large flower heads on stems rising from below the frame, with a few broad leaves: the
    subject fills much of the frame and moves as a whole (the stem sways, the head nods and wobbles)."""
    n = int(rng.choice([1, 1, 2, 3]))
    for i in range(n):
        r = h * rng.uniform(0.14, 0.42) / (1.0 + 0.3 * i)
        cx = w * (rng.uniform(0.3, 0.7) if i == 0 else rng.uniform(0.05, 0.95))
        cy = h * rng.uniform(0.3, 0.65)
        x0 = cx + rng.normal(0, 0.08 * w)
        y0 = h + r * rng.uniform(0.5, 1.5)
        length = float(np.hypot(cx - x0, y0 - cy))
        angle = float(np.arctan2(cx - x0, y0 - cy))
        stem_col = _green(rng, 0.9)
        freq = float(np.clip(rng.uniform(0.8, 1.6) * (0.35 * h / max(length, 1)) ** 0.5, 0.6, 2.5))
        pts, s, o, slope = add_stem(sc, rng, x0, y0, length, angle, max(2, r * 0.14), max(2, r * 0.1), stem_col,
                                    freq, rng.uniform(0.06, 0.15), length * 0.045, n_nodes=6,
                                    curve=rng.normal(0, 0.1))
        rig = sc.rig
        for j in rng.choice(np.arange(1, 4), size=int(rng.integers(1, 4)), replace=False):
            px, py = rig.points0[pts[j]]
            flut = sc.bank.add(rng.uniform(1.5, 3.5), 0.15, 0.05, px, py, wind_weight=0.4, noise_weight=1.0,
                               noise_band=(4.0, 1.2))
            size = r * rng.uniform(0.9, 1.8)
            add_leaf(sc, rng, pts[j], (px, py), size, size * rng.uniform(0.35, 0.5),
                     -np.pi / 2 + rng.choice([-1, 1]) * rng.uniform(0.4, 1.3), stem_col * rng.uniform(0.9, 1.3), flut,
                     [(o, slope * float(cantilever(s[j]) / max(s[j], 1e-3)))])
        head = pts[-1]
        a = rig.add_angle()
        sc.link_angle(a, o, slope)
        wob = sc.bank.add(rng.uniform(1.2, 3.0), 0.12, 0.06, cx, cy, wind_weight=0.3, noise_weight=1.0,
                          noise_band=(4.0, 1.0))
        sc.link_angle(a, wob, 1.0, 0.3)
        flower_head(sc, rng, head, a, cx, cy, r)


def wheat(sc: Scene, rng, x0, x1, y0, y1, count, height, scale):
    """A dense field of grain stalks with heavy ears, back to front, shorter towards the horizon (y0): in a strong
    wind the whole field moves, and the travelling gusts of the wind (wind.py) roll across it in waves."""
    ripe = rng.random() < 0.6
    base = _jitter(rng, (205, 170, 90), 25) if ripe else _green(rng, 1.1)
    ys = np.sort(rng.uniform(y0, y1, count))
    for y in ys:
        depth = 0.35 + 0.65 * (y - y0) / max(1.0, y1 - y0)   # perspective: far stalks are small
        length = height * depth * rng.uniform(0.8, 1.2)
        if length < 3:
            continue
        col = base * rng.uniform(0.75, 1.2)
        freq = float(np.clip(rng.uniform(0.8, 1.5) * (height / max(length, 1)) ** 0.5, 0.6, 2.5))
        pts, s, o, slope = add_stem(sc, rng, rng.uniform(x0, x1), y, length, rng.normal(0.1, 0.15),
                                    max(1, 1.6 * scale * depth), 1, col * 0.9, freq, rng.uniform(0.08, 0.2),
                                    length * 0.06, n_nodes=4, curve=rng.normal(0.05, 0.1), second_mode=0.0)
        a = sc.rig.add_angle()
        sc.link_angle(a, o, slope)
        tx, ty = sc.rig.points0[pts[-1]]
        ear = max(1.5, length * rng.uniform(0.12, 0.2))
        sc.rig.add_poly(leaf_shape(tx, ty, ear, ear * 0.35, -np.pi / 2 + rng.normal(0.1, 0.2), 8), pts[-1], a,
                        np.clip(col * 1.1 + 10, 0, 255))


# ------------------------------------------------------------------------------------------------------
# compositions


def kind_of_seed(seed: int) -> str:
    """The kind `build_scene` draws for a sample generated from `seed` with no kind given (its rng's first draw)."""
    return str(np.random.default_rng(seed).choice(SCENE_KINDS, p=_KIND_WEIGHTS))


def build_scene(rng: np.random.Generator, size: tuple[int, int], T: int, fps: float, kind: str | None = None) -> Scene:
    """A random scene of the given kind (or a random kind) at size (W, H)."""
    w, h = size
    scale = h / 160.0
    if kind is None:
        kind = str(rng.choice(SCENE_KINDS, p=_KIND_WEIGHTS))
    check_kind(kind)
    indoor = kind in ("porch", "candles")
    horizon = int(h * rng.uniform(0.35, 0.7))
    if kind == "closeup":
        canvas = paint_bokeh(rng, w, h)
    elif kind == "field":
        horizon = int(h * rng.uniform(0.15, 0.45))
        canvas = paint_outdoor(rng, w, h, horizon)
    elif indoor:
        canvas = paint_wall(rng, w, h, horizon, dark=(kind == "candles"))
    else:
        canvas = paint_outdoor(rng, w, h, horizon)
    wind = Wind(rng, float(w), period_s=T / fps, strength=(0.35 if kind == "candles" else 1.0))
    sc = Scene(kind, canvas, Rig(), OscillatorBank(), wind)

    if kind == "closeup":
        closeup(sc, rng, w, h, scale)
    elif kind == "field":
        wheat(sc, rng, -5, w + 5, horizon, h + h * 0.2, int(rng.integers(250, 500) * w / 256),
              h * rng.uniform(0.2, 0.4), scale)
    elif kind == "meadow":
        for _ in range(int(rng.integers(0, 6))):
            flower(sc, rng, rng.uniform(0, w), rng.uniform(horizon, h * 0.9), h * rng.uniform(0.25, 0.55), scale)
        grass(sc, rng, -5, w + 5, horizon + h * 0.05, h + 3, int(rng.integers(40, 160) * w / 256), h * rng.uniform(0.12, 0.3), scale)
        for _ in range(int(rng.integers(1, 5))):
            flower(sc, rng, rng.uniform(0, w), rng.uniform(h * 0.8, h * 1.02), h * rng.uniform(0.3, 0.7), scale)
    elif kind == "garden":
        for _ in range(int(rng.integers(1, 4))):
            shrub(sc, rng, rng.uniform(0, w), rng.uniform(horizon, h), w * rng.uniform(0.08, 0.2), h * rng.uniform(0.12, 0.3), scale)
        for _ in range(int(rng.integers(2, 8))):
            flower(sc, rng, rng.uniform(0, w), rng.uniform(horizon + 5, h), h * rng.uniform(0.2, 0.5), scale)
        if rng.random() < 0.6:
            grass(sc, rng, -5, w + 5, h * 0.85, h + 3, int(rng.integers(20, 80) * w / 256), h * rng.uniform(0.08, 0.18), scale)
    elif kind == "tree":
        for _ in range(int(rng.integers(1, 4))):
            branch(sc, rng, w, h, scale)
        if rng.random() < 0.4:
            grass(sc, rng, -5, w + 5, h * 0.88, h + 3, int(rng.integers(20, 70) * w / 256), h * rng.uniform(0.08, 0.15), scale)
    elif kind == "porch":
        beam_y = int(h * rng.uniform(0.03, 0.12))
        cv2.rectangle(canvas, (0, 0), (w, beam_y), _jitter(rng, (90, 60, 40)).tolist(), -1)
        n = int(rng.integers(2, 7))
        for x in np.sort(rng.uniform(0.05, 0.95, n)) * w:
            hk = rng.choice(["lantern", "cloth", "chime"], p=[0.4, 0.35, 0.25])
            hanging(sc, rng, x, beam_y, h * rng.uniform(0.2, 0.5), scale, hk)
        for _ in range(int(rng.integers(1, 5))):  # potted plants
            px = rng.uniform(0.05, 0.95) * w
            py = rng.uniform(horizon, h * 0.95)
            pot = _jitter(rng, (170, 90, 60))
            cv2.rectangle(canvas, (int(px - h * 0.05), int(py)), (int(px + h * 0.05), int(min(h, py + h * 0.1))), pot.tolist(), -1)
            for _ in range(int(rng.integers(2, 5))):
                flower(sc, rng, px + rng.normal(0, h * 0.02), py, h * rng.uniform(0.15, 0.35), scale)
    else:  # candles
        # an indoor draft: cloth strips / chimes from the top, plants on the table, candles in front
        for _ in range(int(rng.integers(1, 5))):
            hanging(sc, rng, rng.uniform(0.05, 0.95) * w, -2, h * rng.uniform(0.3, 0.6), scale,
                    str(rng.choice(["cloth", "chime", "lantern"], p=[0.6, 0.2, 0.2])))
        for _ in range(int(rng.integers(0, 3))):
            px, py = rng.uniform(0.05, 0.95) * w, rng.uniform(horizon, h * 0.95)
            for _ in range(int(rng.integers(2, 6))):
                flower(sc, rng, px + rng.normal(0, h * 0.03), py, h * rng.uniform(0.2, 0.45), scale)
        n = int(rng.integers(1, 7))
        for x in np.sort(rng.uniform(0.1, 0.9, n)) * w:
            candle(sc, rng, x, rng.uniform(horizon, h * 0.98), scale)
    if kind in ("meadow", "garden", "tree", "closeup", "field"):
        sc.bank.damping_floor = float(rng.uniform(*FOLIAGE_DAMPING))
    return sc
