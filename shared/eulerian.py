"""Eulerian motion for fluids (water, clouds, smoke): a steady velocity field V(p) in px/frame, integrated
over time and rendered as a seamless loop by symmetric splatting (Holynski et al., "Animating Pictures with
Eulerian Motion Fields", CVPR 2021). Pure numpy: the backend renders with it, the add-on bakes and displays
with it.

    V = densify(parse_hints(json.loads(text), (W, H), mask), mask)   # artist strokes -> dense field
    fwd = integrate(V * border_fade(mask), N)          # F_0->t, t = 0..N   (N+1, 2, H, W)
    bwd = integrate(-V * border_fade(mask), N)         # F_0->-t
    frame t = norm. splat of I0 by fwd[t] (weight 1 - t/N) and by bwd[N - t] (weight t/N)   # loop_pair

Units: positions and fields in pixels of their own grid, x right, y down, origin at the top-left pixel's
centre (pixel (i, j) is at x = j, y = i; HINTS.json uses the same convention).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_SPEED = 64.0          # px/frame; faster than this is a typo, not a river
MAX_STROKES = 256
MAX_POINTS = 4096         # per stroke
MAX_LOOP_FRAMES = 2400    # N: frames in one loop
MAX_SIDE = 8192           # image / mask side
WORK_LONG_SIDE = 256      # densification grid: velocity fields are smooth, solved coarse and upsampled
FADE_FRACTION = 0.02      # border fade width as a fraction of the long side ...
FADE_MIN_PX = 2           # ... and at least this many pixels
PRIOR_REACH = 0.15        # densify with a prior: a stroke's correction fades over this fraction of the side


class HintsError(ValueError):
    """Bad flow hints or fluid mask; the message names the problem."""


@dataclass(frozen=True)
class Stroke:
    """A flow stroke: polyline points (n, 2) in image pixels (x, y) and a speed in px/frame along it."""

    points: np.ndarray
    speed: float


# --------------------------------------------------------------------------------------------------------
# integration and loop weights


def sample_bilinear(field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """field (C, H, W) sampled at real positions x, y (same shape S) -> (C, *S); edges clamped (a particle
    leaving the picture keeps the border's velocity)."""
    C, H, W = field.shape
    x = np.clip(x, 0.0, W - 1.0)
    y = np.clip(y, 0.0, H - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), W - 2) if W > 1 else np.zeros(x.shape, np.int64)
    y0 = np.minimum(np.floor(y).astype(np.int64), H - 2) if H > 1 else np.zeros(y.shape, np.int64)
    ax = (x - x0).astype(field.dtype)
    ay = (y - y0).astype(field.dtype)
    x1 = np.minimum(x0 + 1, W - 1)
    y1 = np.minimum(y0 + 1, H - 1)
    top = field[:, y0, x0] * (1 - ax) + field[:, y0, x1] * ax
    bottom = field[:, y1, x0] * (1 - ax) + field[:, y1, x1] * ax
    return top * (1 - ay) + bottom * ay


def integrate(velocity: np.ndarray, steps: int) -> np.ndarray:
    """Euler integration of a steady field: F_0->t(p) = F_0->t-1(p) + V(p + F_0->t-1(p)), t = 1..steps.

    velocity (2, H, W) px/frame -> displacements (steps + 1, 2, H, W) float32, [0] = 0. The backward field
    F_0->-t is `integrate(-velocity, steps)`."""
    v = _check_velocity(velocity, steps)
    out = np.zeros((int(steps) + 1,) + v.shape, np.float32)
    for t, f in enumerate(integrate_steps(v, steps)):
        out[t] = f
    return out


def integrate_steps(velocity: np.ndarray, steps: int):
    """`integrate` one field at a time: yields F_0->t for t = 0..steps (each a fresh (2, H, W) array), so a
    long loop never holds all of them."""
    v = _check_velocity(velocity, steps)
    _, H, W = v.shape
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
    f = np.zeros(v.shape, np.float32)
    yield f
    for _ in range(int(steps)):
        f = f + sample_bilinear(v, gx + f[0], gy + f[1])
        yield f


def _check_velocity(velocity, steps) -> np.ndarray:
    v = np.asarray(velocity, dtype=np.float32)
    if v.ndim != 3 or v.shape[0] != 2:
        raise ValueError(f"velocity must be (2, H, W), got {v.shape}")
    if not 0 <= int(steps) <= MAX_LOOP_FRAMES:
        raise ValueError(f"steps must be in 0..{MAX_LOOP_FRAMES}, got {steps}")
    if not np.isfinite(v).all():
        raise ValueError("velocity contains non-finite values")
    return v


def loop_pair(t: float, loop_frames: int) -> tuple[int, int, float, float]:
    """Symmetric splatting of a loop of N = loop_frames frames: frame t is the forward splat by F_0->t with
    weight 1 - t/N plus the backward splat by F_0->-(N-t) with weight t/N. Returns (t, N - t, w_fwd, w_bwd)
    with t wrapped into 0..N-1, so frame N is frame 0 (both are I0: forward weight 1 at F_0->0 = 0)."""
    n = int(loop_frames)
    if not 1 <= n <= MAX_LOOP_FRAMES:
        raise ValueError(f"loop_frames must be in 1..{MAX_LOOP_FRAMES}, got {loop_frames}")
    k = int(round(float(t))) % n
    return k, n - k, 1.0 - k / n, k / n


# --------------------------------------------------------------------------------------------------------
# masks


def check_mask(mask, size: tuple[int, int] | None = None) -> np.ndarray:
    """Bool (H, W) fluid mask (True = fluid). Accepts bool, or numbers where >= 0.5 (floats) / >= 128 (uint8)
    is fluid. size = (W, H) the image's size, checked if given. Empty masks are an error."""
    m = np.asarray(mask)
    if m.ndim != 2 or min(m.shape) < 2 or max(m.shape) > MAX_SIDE:
        raise HintsError(f"fluid mask must be a 2-D image of 2..{MAX_SIDE} pixels a side, got shape {m.shape}")
    if size is not None and (m.shape[1], m.shape[0]) != tuple(size):
        raise HintsError(f"fluid mask is {m.shape[1]}x{m.shape[0]} but the image is {size[0]}x{size[1]}")
    if m.dtype == bool:
        out = m
    elif m.dtype == np.uint8:
        out = m >= 128
    else:
        mf = m.astype(np.float64)
        if not np.isfinite(mf).all():
            raise HintsError("fluid mask contains non-finite values")
        out = mf >= 0.5
    if not out.any():
        raise HintsError("fluid mask is empty: no white (fluid) pixel")
    return out


def border_fade(mask: np.ndarray, width: int | None = None) -> np.ndarray:
    """Float32 (H, W) in [0, 1]: 0 outside the mask, rising linearly over `width` pixels (4-neighbour distance)
    from the mask's border to 1 inside, so motion fades to zero where fluid meets still pixels. The picture's
    own edges are not a border (a river may leave the frame). width None = FADE_FRACTION of the long side."""
    m = np.asarray(mask, dtype=bool)
    if width is None:
        width = max(FADE_MIN_PX, int(round(FADE_FRACTION * max(m.shape))))
    width = int(width)
    if width <= 0:
        return m.astype(np.float32)
    dist = m.astype(np.float32)       # 1 on the outermost ring of the mask, k after k - 1 erosions
    cur = m.copy()
    for k in range(2, width + 1):
        p = np.pad(cur, 1, mode="edge")
        cur = cur & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
        if not cur.any():
            break
        dist[cur] = k
    return np.clip(dist / width, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------------------
# hints


def parse_hints(obj, size: tuple[int, int], mask: np.ndarray) -> list[Stroke]:
    """Validate decoded HINTS.json `{"strokes": [{"points": [[x, y], ...], "speed": px_per_frame}]}` against
    the image size (W, H) and the bool fluid mask. Every point, and the polyline between them (sampled every
    half pixel), must lie inside the mask. Raises HintsError naming the first problem."""
    W, H = int(size[0]), int(size[1])
    m = check_mask(mask, (W, H))
    if not isinstance(obj, dict) or not isinstance(obj.get("strokes"), list):
        raise HintsError('flow hints must be an object {"strokes": [...]}')
    unknown = set(obj) - {"strokes"}
    if unknown:
        raise HintsError(f"flow hints: unknown keys {sorted(unknown)} (only \"strokes\")")
    strokes = obj["strokes"]
    if not 1 <= len(strokes) <= MAX_STROKES:
        raise HintsError(f"flow hints need 1..{MAX_STROKES} strokes, got {len(strokes)}")
    out = []
    for i, s in enumerate(strokes):
        name = f"stroke {i}"
        if not isinstance(s, dict) or set(s) != {"points", "speed"}:
            raise HintsError(f"{name} must be an object with exactly \"points\" and \"speed\"")
        speed = s["speed"]
        if isinstance(speed, bool) or not isinstance(speed, (int, float)) or not math.isfinite(speed):
            raise HintsError(f"{name}: speed must be a finite number, got {speed!r}")
        if not 0.0 < speed <= MAX_SPEED:
            raise HintsError(f"{name}: speed must be in (0, {MAX_SPEED:g}] px/frame, got {speed!r}")
        pts = s["points"]
        if not isinstance(pts, list) or not 2 <= len(pts) <= MAX_POINTS:
            raise HintsError(f"{name}: points must be a list of 2..{MAX_POINTS} [x, y] pairs")
        for j, p in enumerate(pts):
            if (not isinstance(p, list) or len(p) != 2
                    or any(isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c)
                           for c in p)):
                raise HintsError(f"{name} point {j}: must be [x, y] with finite numbers, got {p!r}")
        arr = np.asarray(pts, dtype=np.float64)
        seg = np.linalg.norm(np.diff(arr, axis=0), axis=1)
        if seg.sum() < 1.0:
            raise HintsError(f"{name}: polyline is shorter than one pixel (no direction)")
        samples = _sample_polyline(arr, 0.5)[0]
        xi = np.rint(samples[:, 0]).astype(np.int64)
        yi = np.rint(samples[:, 1]).astype(np.int64)
        inside_img = (xi >= 0) & (xi < W) & (yi >= 0) & (yi < H)
        ok = inside_img.copy()
        ok[inside_img] = m[yi[inside_img], xi[inside_img]]
        if not ok.all():
            k = int(np.argmin(ok))
            where = "the image" if not inside_img[k] else "the fluid mask"
            raise HintsError(f"{name} leaves {where} at ({samples[k, 0]:.1f}, {samples[k, 1]:.1f})")
        out.append(Stroke(arr, float(speed)))
    return out


def _sample_polyline(points: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points every <= spacing along a polyline (n, 2) -> (positions (m, 2), unit tangents (m, 2)).
    Zero-length segments are skipped."""
    pos, tan = [], []
    for a, b in zip(points[:-1], points[1:]):
        d = b - a
        length = float(np.hypot(d[0], d[1]))
        if length == 0.0:
            continue
        k = int(math.ceil(length / spacing)) + 1
        u = np.linspace(0.0, 1.0, k)[:, None]
        pos.append(a + u * d)
        tan.append(np.broadcast_to(d / length, (k, 2)))
    return np.concatenate(pos), np.concatenate(tan)


# --------------------------------------------------------------------------------------------------------
# densification: strokes -> dense field


def densify(strokes: list[Stroke], mask: np.ndarray, work_long_side: int = WORK_LONG_SIDE,
            tol: float = 1e-5, max_iter: int = 4000, prior: np.ndarray | None = None,
            reach: float = PRIOR_REACH) -> np.ndarray:
    """Dense velocity (2, H, W) float32 px/frame from strokes: a membrane (Laplace) interpolation inside the
    mask of the strokes' velocities (speed x unit tangent, fixed on the stroke pixels), with no flux across
    the mask border (so the field near a bank keeps the strokes' speed; `border_fade` slows it at render
    time), zero outside. A connected fluid region without a stroke stays still. Solved by conjugate
    gradients on a grid of `work_long_side` (coarse-to-fine) and upsampled bilinearly.

    prior: a field (2, H, W) to correct (e.g. a network's prediction): the strokes then set the difference
    to the prior on their pixels, and the difference spreads by a screened membrane that fades over `reach`
    (fraction of the long side), so a stroke corrects its neighbourhood and leaves far regions to the prior."""
    m = check_mask(mask)
    H, W = m.shape
    if not strokes:
        raise HintsError("densify needs at least one stroke")
    s = min(1.0, work_long_side / max(H, W))
    h, w = max(2, int(round(H * s))), max(2, int(round(W * s)))
    sx, sy = w / W, h / H
    from .spectral import resize_planes

    mask_g = resize_planes(m.astype(np.float32), (w, h)) >= 0.5
    # stroke constraints at the grid (values stay in full-image px/frame)
    acc = np.zeros((2, h, w), np.float64)
    cnt = np.zeros((h, w), np.float64)
    for st in strokes:
        pos, tan = _sample_polyline(st.points, 0.5 / max(sx, sy))
        gx = np.clip(np.rint((pos[:, 0] + 0.5) * sx - 0.5).astype(np.int64), 0, w - 1)
        gy = np.clip(np.rint((pos[:, 1] + 0.5) * sy - 0.5).astype(np.int64), 0, h - 1)
        np.add.at(acc[0], (gy, gx), tan[:, 0] * st.speed)
        np.add.at(acc[1], (gy, gx), tan[:, 1] * st.speed)
        np.add.at(cnt, (gy, gx), 1.0)
    fixed = cnt > 0
    values = np.where(fixed, acc / np.maximum(cnt, 1.0), 0.0)
    mask_g |= fixed                                   # a thin river must not vanish on the coarse grid
    screen = 0.0
    if prior is not None:
        p = np.asarray(prior, np.float32)
        if p.shape != (2, H, W) or not np.isfinite(p).all():
            raise ValueError(f"prior must be a finite (2, {H}, {W}) field, got {p.shape}")
        p_grid = resize_planes(p, (w, h)).astype(np.float64)
        values = np.where(fixed, values - p_grid, 0.0)
        screen = 1.0 / (reach * max(h, w)) ** 2
    field = _membrane_solve(values, fixed, mask_g, tol, max_iter, screen)
    field = _extend_outside(field, mask_g, 2)         # so upsampling does not pull zeros in at the banks
    full = resize_planes(field.astype(np.float32), (W, H))
    if prior is not None:
        full = full + p
    return (full * m).astype(np.float32)


def _neighbour_sum(x: np.ndarray, nb: list[tuple[np.ndarray, slice, slice]]) -> np.ndarray:
    out = np.zeros_like(x)
    for valid, dst, src in nb:
        out[..., dst[0], dst[1]] += np.where(valid, x[..., src[0], src[1]], 0.0)
    return out


def _membrane_solve(values: np.ndarray, fixed: np.ndarray, domain: np.ndarray, tol: float,
                    max_iter: int, screen: float = 0.0) -> np.ndarray:
    """Minimise sum of |grad V|^2 (+ screen |V|^2) over edges inside `domain`, V = values on `fixed`: the
    graph Laplacian (L + screen) V = 0 on free pixels (Neumann at the domain border). Coarse-to-fine: a
    half-size solve seeds CG."""
    h, w = domain.shape
    if min(h, w) >= 16:
        from .spectral import resize_planes
        h2, w2 = (h + 1) // 2, (w + 1) // 2
        cnt2 = resize_planes(fixed.astype(np.float32), (w2, h2))
        fixed2 = cnt2 > 0.2
        v2 = resize_planes((values * fixed).astype(np.float32), (w2, h2)) / np.maximum(cnt2, 1e-6)
        dom2 = (resize_planes(domain.astype(np.float32), (w2, h2)) >= 0.5) | fixed2
        coarse = _membrane_solve(np.where(fixed2, v2, 0.0), fixed2, dom2, tol * 10, max_iter, screen * 4)
        x0 = resize_planes(_extend_outside(coarse, dom2, 2).astype(np.float32), (w, h)).astype(np.float64)
    else:
        x0 = np.zeros((2, h, w))
    free = domain & ~fixed
    # edges between domain pixels: (valid mask, dst slices, src slices) for the 4 directions
    horiz = domain[:, 1:] & domain[:, :-1]
    vert = domain[1:, :] & domain[:-1, :]
    nb = [(horiz, (slice(None), slice(0, -1)), (slice(None), slice(1, None))),
          (horiz, (slice(None), slice(1, None)), (slice(None), slice(0, -1))),
          (vert, (slice(0, -1), slice(None)), (slice(1, None), slice(None))),
          (vert, (slice(1, None), slice(None)), (slice(0, -1), slice(None)))]
    deg = _neighbour_sum(np.ones((h, w)), nb) + screen

    def apply(x):           # L restricted to free pixels (x is zero elsewhere)
        return np.where(free, deg * x - _neighbour_sum(x, nb), 0.0)

    known = np.where(fixed, values, 0.0)
    b = np.where(free, _neighbour_sum(known, nb), 0.0)
    x = np.where(free, x0, 0.0)
    r = b - apply(x)
    p = r.copy()
    rs = (r * r).sum(axis=(1, 2))
    bnorm = np.maximum(np.sqrt((b * b).sum(axis=(1, 2))), 1e-12)
    for _ in range(max_iter):
        if (np.sqrt(rs) <= tol * bnorm).all():
            break
        ap = apply(p)
        pap = (p * ap).sum(axis=(1, 2))
        alpha = np.where(pap > 0, rs / np.where(pap > 0, pap, 1.0), 0.0)[:, None, None]
        x += alpha * p
        r -= alpha * ap
        rs_new = (r * r).sum(axis=(1, 2))
        beta = np.where(rs > 0, rs_new / np.where(rs > 0, rs, 1.0), 0.0)[:, None, None]
        p = r + beta * p
        rs = rs_new
    return np.where(fixed, values, np.where(domain, x, 0.0))


def _extend_outside(field: np.ndarray, domain: np.ndarray, rings: int) -> np.ndarray:
    """Copy the average of known 4-neighbours into `rings` rings of pixels outside the domain."""
    f = np.where(domain, field, 0.0).astype(np.float64)
    known = domain.copy()
    for _ in range(rings):
        fp = np.pad(f, ((0, 0), (1, 1), (1, 1)))
        kp = np.pad(known, 1).astype(np.float64)
        ssum = fp[:, :-2, 1:-1] + fp[:, 2:, 1:-1] + fp[:, 1:-1, :-2] + fp[:, 1:-1, 2:]
        n = kp[:-2, 1:-1] + kp[2:, 1:-1] + kp[1:-1, :-2] + kp[1:-1, 2:]
        grow = ~known & (n > 0)
        f = np.where(grow, ssum / np.maximum(n, 1.0), f)
        known = known | grow
    return f


def endpoint_error(velocity: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean endpoint error |V - V_true| (px/frame) over the mask's pixels."""
    d = np.asarray(velocity, np.float64) - np.asarray(truth, np.float64)
    e = np.sqrt(d[0] ** 2 + d[1] ** 2)
    return float(e[np.asarray(mask, bool)].mean())
