"""A 2D rig of moving primitives: drawing any frame and the exact motion of every pixel of frame 0.

A scene's moving content is a set of control points whose displacement over time is known (from the physics
in `wind.py`), plus two kinds of primitive drawn in painter's order:
- a *segment*: a thick anti-aliased line (a capsule) between two control points; a pixel p of frame 0 at
  along-segment parameter u and signed normal offset r goes to  A_t + u (B_t - A_t) + r n_t  at frame t,
  where n_t is the unit normal of the displaced segment (so stems bend, stretch a little and rotate);
- a *rigid polygon* attached to an anchor control point with a rotation channel; a pixel goes to
  c_0 + d_t + R(theta_t) (p - c_0).
Frame 0 is drawn with the same rule at t = 0, so the per-pixel motion F_t(p) = pos_t(p) - p is exactly the
displacement the renderer applied to the front-most primitive at p (0 where nothing moving is drawn).

Coordinates are pixels, x right, y down, pixel centres at integers. All trajectories are relative to
frame 0: disp[0] = 0 and angles[0] = 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

_SHIFT = 4                    # cv2 sub-pixel bits: coordinates are drawn at 1/16 px
_SCALE = float(1 << _SHIFT)


@dataclass
class Rig:
    """Geometry at frame 0 plus motion channels. Build with the add_* methods, then call `finalize(T)`."""

    points0: list = field(default_factory=list)       # (x, y) of each control point at frame 0
    n_angles: int = 0
    # painter's order: ("seg", a, b, thickness, color) or ("poly", vertices (n,2), anchor, angle, color)
    prims: list = field(default_factory=list)
    disp: np.ndarray | None = None                    # (T, P, 2) float64 displacement rel. frame 0
    angles: np.ndarray | None = None                  # (T, A) float64 rotation (rad) rel. frame 0

    # ---- building -------------------------------------------------------------------------------------
    def add_point(self, x: float, y: float) -> int:
        self.points0.append((float(x), float(y)))
        return len(self.points0) - 1

    def add_angle(self) -> int:
        self.n_angles += 1
        return self.n_angles - 1

    def add_segment(self, a: int, b: int, thickness: int, color) -> None:
        pa, pb = np.asarray(self.points0[a]), np.asarray(self.points0[b])
        if np.hypot(*(pb - pa)) < 0.5:
            raise ValueError("segment shorter than 0.5 px: its normal is undefined")
        self.prims.append(("seg", a, b, max(1, int(round(thickness))), _color(color)))

    def add_poly(self, vertices, anchor: int, angle: int, color) -> None:
        v = np.asarray(vertices, dtype=np.float64).reshape(-1, 2)
        if len(v) < 3:
            raise ValueError("a polygon needs at least 3 vertices")
        self.prims.append(("poly", v, anchor, angle, _color(color)))

    @property
    def n_points(self) -> int:
        return len(self.points0)

    # ---- motion ---------------------------------------------------------------------------------------
    def set_motion(self, disp: np.ndarray, angles: np.ndarray) -> None:
        """disp (T, P, 2), angles (T, A); made relative to frame 0 here."""
        disp = np.asarray(disp, dtype=np.float64)
        angles = np.asarray(angles, dtype=np.float64).reshape(disp.shape[0], self.n_angles)
        if disp.shape[1:] != (self.n_points, 2):
            raise ValueError(f"disp must be (T, {self.n_points}, 2), got {disp.shape}")
        self.disp = disp - disp[:1]
        self.angles = angles - angles[:1]

    def scale_motion(self, factor: float) -> None:
        """Scale every displacement and rotation (the physics is linear in the wind, so this is a wind gain)."""
        self.disp = self.disp * factor
        self.angles = self.angles * factor

    # ---- drawing --------------------------------------------------------------------------------------
    def draw(self, canvas: np.ndarray, t: int) -> np.ndarray:
        """Draw all primitives at frame t onto a copy of canvas (H, W, 3) uint8, anti-aliased."""
        img = canvas.copy()
        pts = np.asarray(self.points0) + self.disp[t]
        for prim in self.prims:
            if prim[0] == "seg":
                _, a, b, thick, color = prim
                cv2.line(img, _fix(pts[a]), _fix(pts[b]), color, thick, cv2.LINE_AA, _SHIFT)
            else:
                _, v, anchor, ai, color = prim
                cv2.fillPoly(img, [self._poly_at(v, anchor, ai, t, pts)], color, cv2.LINE_AA, _SHIFT)
        return img

    def _poly_at(self, v: np.ndarray, anchor: int, ai: int, t: int, pts: np.ndarray) -> np.ndarray:
        c0 = np.asarray(self.points0[anchor])
        th = self.angles[t, ai]
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        moved = pts[anchor] + (v - c0) @ rot.T
        return np.round(moved * _SCALE).astype(np.int32)

    def owner_map(self, size: tuple[int, int], t: int = 0) -> np.ndarray:
        """(H, W) int32 index into prims of the front-most primitive at each pixel centre in frame t, -1 = none."""
        w, h = size
        lab = np.full((h, w), -1, np.int32)
        pts = np.asarray(self.points0) + (self.disp[t] if self.disp is not None else 0.0)
        for i, prim in enumerate(self.prims):
            if prim[0] == "seg":
                _, a, b, thick, _ = prim
                cv2.line(lab, _fix(pts[a]), _fix(pts[b]), i, thick, cv2.LINE_8, _SHIFT)
            else:
                _, v, anchor, ai, _ = prim
                poly = self._poly_at(v, anchor, ai, t, pts) if self.disp is not None else \
                    np.round(v * _SCALE).astype(np.int32)
                cv2.fillPoly(lab, [poly], i, cv2.LINE_8, _SHIFT)
        return lab

    def pixel_motion(self, owner: np.ndarray, times=None) -> tuple[np.ndarray, np.ndarray]:
        """Exact motion of the owned pixels of frame 0.

        Returns (idx, motion): idx (N,) flat pixel indices with an owner, motion (n_times, 2, N) float64,
        F_t(p) = pos_t(p) - p for the primitive that owns p.
        """
        times = np.arange(self.disp.shape[0]) if times is None else np.asarray(times)
        h, w = owner.shape
        idx = np.flatnonzero(owner.ravel() >= 0)
        lab = owner.ravel()[idx]
        px = np.stack([idx % w, idx // w], axis=1).astype(np.float64)      # (N, 2)
        out = np.zeros((len(times), 2, len(idx)))
        kinds = np.array([p[0] == "seg" for p in self.prims])
        is_seg = kinds[lab]
        p0 = np.asarray(self.points0)
        disp = self.disp[times]                                            # (n, P, 2)
        if is_seg.any():
            sel = np.flatnonzero(is_seg)
            a = np.array([self.prims[i][1] for i in lab[sel]])
            b = np.array([self.prims[i][2] for i in lab[sel]])
            a0, b0, p = p0[a], p0[b], px[sel]
            e0 = b0 - a0
            len0 = np.linalg.norm(e0, axis=1)
            u = np.einsum("ij,ij->i", p - a0, e0) / len0**2
            n0 = np.stack([-e0[:, 1], e0[:, 0]], axis=1) / len0[:, None]
            r = np.einsum("ij,ij->i", p - a0, n0)
            at, bt = a0 + disp[:, a], b0 + disp[:, b]                       # (n, N, 2)
            et = bt - at
            nt = np.stack([-et[..., 1], et[..., 0]], axis=-1) / np.linalg.norm(et, axis=-1, keepdims=True)
            pos = at + u[None, :, None] * et + r[None, :, None] * nt
            pos0 = a0 + u[:, None] * e0 + r[:, None] * n0     # == p up to rounding; makes F_0 exactly 0
            out[:, :, sel] = (pos - pos0).transpose(0, 2, 1)
        if (~is_seg).any():
            sel = np.flatnonzero(~is_seg)
            anc = np.array([self.prims[i][2] for i in lab[sel]])
            ang = np.array([self.prims[i][3] for i in lab[sel]])
            c0 = p0[anc]
            rel = px[sel] - c0
            th = self.angles[times][:, ang]                                 # (n, N)
            cos, sin = np.cos(th), np.sin(th)
            d = disp[:, anc]
            out[:, 0, sel] = d[..., 0] + (cos - 1) * rel[:, 0] - sin * rel[:, 1]
            out[:, 1, sel] = d[..., 1] + sin * rel[:, 0] + (cos - 1) * rel[:, 1]
        return idx, out


def _fix(p) -> tuple[int, int]:
    return int(round(p[0] * _SCALE)), int(round(p[1] * _SCALE))


def _color(c) -> tuple[int, int, int]:
    c = np.clip(np.asarray(c, dtype=np.float64), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def ellipse(cx: float, cy: float, rx: float, ry: float, angle: float, n: int = 14) -> np.ndarray:
    """(n, 2) vertices of an ellipse centred at (cx, cy), semi-axes rx, ry, rotated by angle (rad)."""
    s = np.linspace(0, 2 * np.pi, n, endpoint=False)
    x, y = rx * np.cos(s), ry * np.sin(s)
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([cx + ca * x - sa * y, cy + sa * x + ca * y], axis=1)


def leaf_shape(base_x: float, base_y: float, length: float, width: float, angle: float, n: int = 8) -> np.ndarray:
    """Pointed leaf polygon starting at its base, pointing along angle (rad)."""
    s = np.linspace(0, 1, n)
    half = width * 0.5 * np.sin(np.pi * s) ** 0.8
    upper = np.stack([s * length, -half], axis=1)
    lower = np.stack([s * length, half], axis=1)[::-1][1:-1]
    v = np.concatenate([upper, lower])
    ca, sa = np.cos(angle), np.sin(angle)
    return np.stack([base_x + ca * v[:, 0] - sa * v[:, 1], base_y + sa * v[:, 0] + ca * v[:, 1]], axis=1)
