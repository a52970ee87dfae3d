"""The Eulerian (fluid) bars, measured: used by tests/test_fluid.py and printed by scripts/bar_fluid.py.

river_band_bar   synthetic band flowing right at 1 px/frame from one stroke, rendered as a loop:
                 outside max diff (levels), measured flow along the stroke (DIS, median per frame pair),
                 seam ratio (|frame N-1 -> frame 0| / median |frame t -> t+1|), worst texture contrast ratio
strokes_epe      EPE (px/frame) of densified strokes vs the known field, per synthetic scene
video_epe        EPE of `average_velocity` on a clip advected by the known field, per synthetic scene
"""
from __future__ import annotations

import cv2
import numpy as np

from shared.eulerian import border_fade, densify, endpoint_error, parse_hints

from ..data.fluid_synth import SCENES, advected_clip, river_band, scene, texture


def _gray(f: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)


def contrast(frame: np.ndarray, region: np.ndarray) -> float:
    """Texture contrast: std of the grey level minus its 9x9 local mean (detail, not shading), in a region."""
    g = _gray(frame).astype(np.float32)
    return float((g - cv2.blur(g, (9, 9)))[region].std())


def river_band_bar(size: tuple[int, int] = (256, 160), loop_frames: int = 48, mode: str = "splat",
                   renderer=None, sharp: bool = True) -> dict:
    from ..render.api import Renderer
    from ..render.fluid import FluidMotion

    W, H = size
    sc = river_band(size, speed=1.0)
    image = texture(size, seed=3, sigma=1.2)
    strokes = parse_hints(sc.hints(), size, sc.mask)
    velocity = densify(strokes, sc.mask)
    motion = FluidMotion.prepare(velocity, sc.mask, loop_frames)
    renderer = renderer or Renderer.load(device="cpu")
    frames = renderer.render_fluid(image, motion, np.arange(loop_frames + 1), mode=mode, sharp=sharp)
    outside = ~sc.mask
    outside_diff = int(np.abs(frames[:, outside].astype(int) - image[outside].astype(int)).max())
    # along the stroke: the band's core (away from the faded banks and the picture's edges)
    core = sc.mask & (border_fade(sc.mask, 12) >= 1.0)
    core[:, :W // 10] = False
    core[:, -W // 10:] = False
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grays = [_gray(f) for f in frames]
    along, across = [], []
    for t in range(loop_frames):
        fl = dis.calc(grays[t], grays[t + 1], None)
        along.append(float(np.median(fl[..., 0][core])))
        across.append(float(np.median(fl[..., 1][core])))
    steps = [float(np.abs(frames[t + 1].astype(np.float32) - frames[t]).mean()) for t in range(loop_frames - 1)]
    seam = float(np.abs(frames[0].astype(np.float32) - frames[loop_frames - 1]).mean())
    c_in = contrast(image, core)
    return {
        "outside_max_diff": outside_diff,
        "frame_N_equals_frame_0": bool(np.array_equal(frames[loop_frames], frames[0])),
        "flow_along_min": min(along), "flow_along_max": max(along), "flow_along_median": float(np.median(along)),
        "flow_across_max_abs": max(abs(a) for a in across),
        "seam_ratio": seam / float(np.median(steps)),
        "contrast_ratio_worst": min(contrast(f, core) for f in frames) / c_in,
    }


def strokes_epe(size: tuple[int, int] = (256, 160)) -> dict[str, tuple[int, float]]:
    """{scene: (number of strokes, EPE px/frame inside the mask)}."""
    out = {}
    for name in SCENES:
        sc = scene(name, size)
        strokes = parse_hints(sc.hints(), size, sc.mask)
        out[name] = (len(strokes), endpoint_error(densify(strokes, sc.mask), sc.velocity, sc.mask))
    return out


def video_epe(size: tuple[int, int] = (256, 160), frames: int = 30) -> dict[str, float]:
    """{scene: EPE px/frame inside the mask} of the mean-flow field of an advected clip."""
    from ..data.eulerian_flow import average_velocity

    out = {}
    for i, name in enumerate(SCENES):
        sc = scene(name, size)
        clip = advected_clip(texture(size, seed=10 + i, sigma=1.2), sc.velocity, frames)
        v, _ = average_velocity(clip)
        out[name] = endpoint_error(v, sc.velocity, sc.mask)
    return out


def network_vs_hints(net, scenes: int = 40, size: tuple[int, int] = (96, 64), first_seed: int = 2 * 10 ** 6
                     ) -> dict[str, float]:
    """Mean EPE (px/frame, inside the mask) on held-out random synthetic scenes of: the zero field, strokes
    alone (1 and 3 streamline strokes), the network's axis signed by the true field (its ceiling: what it
    knows), and the network with 1 and 3 strokes (signed by and corrected with them)."""
    from ..data.fluid_synth import random_fluid_sample, streamline_stroke
    from ..motion.fluid_velocity import axis_to_velocity, predict_axis, predict_velocity

    rows = {k: [] for k in ("zero", "hints_1", "hints_3", "network_signed_by_truth", "network_plus_1",
                            "network_plus_3")}
    for i in range(scenes):
        image, mask, v, _ = random_fluid_sample(size, first_seed + i)
        rng = np.random.default_rng(first_seed + i)
        strokes = [s for s in (streamline_stroke(v, mask, rng) for _ in range(3)) if s is not None]
        if len(strokes) < 3:
            continue
        rows["zero"].append(endpoint_error(np.zeros_like(v), v, mask))
        rows["hints_1"].append(endpoint_error(densify(strokes[:1], mask), v, mask))
        rows["hints_3"].append(endpoint_error(densify(strokes, mask), v, mask))
        signed = axis_to_velocity(predict_axis(net, image, mask), v)
        rows["network_signed_by_truth"].append(endpoint_error(signed, v, mask))
        rows["network_plus_1"].append(endpoint_error(predict_velocity(net, image, mask, strokes[:1]), v, mask))
        rows["network_plus_3"].append(endpoint_error(predict_velocity(net, image, mask, strokes), v, mask))
    out = {k: float(np.mean(x)) for k, x in rows.items()}
    out["scenes"] = len(rows["zero"])
    return out


def _shift_x(image: np.ndarray, dx: int) -> np.ndarray:
    """I0 moved right by a whole number of pixels (edge replicated): the ideal resampling."""
    if dx == 0:
        return image.copy()
    out = np.empty_like(image)
    if dx > 0:
        out[:, dx:] = image[:, :-dx]
        out[:, :dx] = image[:, :1]
    else:
        out[:, :dx] = image[:, -dx:]
        out[:, dx:] = image[:, -1:]
    return out


def river_sharpness(size: tuple[int, int] = (256, 160), loop_frames: int = 24, speed: float = 0.6,
                    seed: int = 5, renderer=None) -> dict:
    """Detail kept on a textured river band flowing right at `speed` px/frame (sub-pixel offsets), rendered as
    a loop by the old symmetric splat and by the sharp path (splat fill), beside the ceiling of the loop's
    cross-fade: frame t blends I0 moved by whole pixels round(speed t) and -round(speed (N - t)) with the loop
    weights, i.e. perfect resampling, so what it loses is the blend of two copies itself.

    Laplacian energy in the band's core (away from the faded banks and the picture's edges) per frame
    t = 1..N-1, over the input's: {"old"|"new"|"ceiling": (N-1,) arrays}, plus "new_over_ceiling" and
    "old_over_ceiling" (per frame) and "first" (frame 1, forward weight 1 - 1/N: almost no cross-fade)."""
    from shared.eulerian import loop_pair

    from ..render.api import Renderer
    from ..render.fluid import FluidMotion
    from .metrics import laplacian_energy

    W, H = size
    sc = river_band(size, speed=speed)
    image = texture(size, seed=seed, sigma=1.0)
    motion = FluidMotion.prepare(sc.velocity, sc.mask, loop_frames)
    renderer = renderer or Renderer.load(device="cpu")
    times = np.arange(1, loop_frames)
    frames = {"old": renderer.render_fluid(image, motion, times, mode="splat", sharp=False),
              "new": renderer.render_fluid(image, motion, times, mode="splat")}
    ceiling = []
    for t in times:
        k, back, wf, wb = loop_pair(t, loop_frames)
        blend = (wf * _shift_x(image, int(round(speed * k))).astype(np.float32)
                 + wb * _shift_x(image, -int(round(speed * back))).astype(np.float32))
        ceiling.append(blend)
    frames["ceiling"] = np.stack(ceiling)
    core = sc.mask & (border_fade(sc.mask, 12) >= 1.0)
    core[:, :W // 10] = False
    core[:, -W // 10:] = False
    e0 = laplacian_energy(image, core)
    out = {k: np.array([laplacian_energy(f, core) for f in v]) / e0 for k, v in frames.items()}
    out["new_over_ceiling"] = out["new"] / out["ceiling"]
    out["old_over_ceiling"] = out["old"] / out["ceiling"]
    return out


def inversion_error(size: tuple[int, int] = (256, 160), loop_frames: int = 48,
                    times: tuple[int, ...] = (6, 24, 42)) -> dict[int, dict[str, float]]:
    """How exactly each backward field undoes the forward displacement F_0->t on the curved "river" scene:
    {t: mean |B(q) + F(q + B(q))| px} in the mask's core where q + B(q) stays in the picture (outside it the
    fields are edge-clamped, not inverse), for B = the splat inversion the renderer uses
    (render.sharp.invert_flow; over its confident pixels, "confident" = their share) and B = the steady field
    integrated backward (F_0->-t: Euler there and back is not an exact inverse)."""
    import torch

    from shared.eulerian import sample_bilinear
    from shared.spectral import resize_field

    from ..render.fluid import FluidMotion
    from ..render.sharp import invert_flow

    W, H = size
    sc = scene("river", size)
    motion = FluidMotion.prepare(sc.velocity, sc.mask, loop_frames)
    core = sc.mask & (border_fade(sc.mask, 12) >= 1.0)
    core[:, :W // 10] = False
    core[:, -W // 10:] = False
    gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = {}
    for t in times:
        fwd, _, _ = motion.flows([t], size)
        with torch.no_grad():
            inv, conf = invert_flow(fwd, torch.zeros((1, 1, H, W)))
        f = fwd[0].numpy()
        integrated = motion.backward[t]          # F_0->-t at the integration grid
        if integrated.shape[1:] != (H, W):
            integrated = resize_field(integrated, size)
        row = {}
        for name, b, valid in (("splat_inversion", inv[0].numpy(), conf[0, 0].numpy() >= 1.0),
                               ("integrated_backward", integrated, np.ones((H, W), bool))):
            x, y = gx + b[0], gy + b[1]
            r = b + sample_bilinear(f, x, y)
            inside = core & (x >= 1) & (x <= W - 2) & (y >= 1) & (y <= H - 2)
            row[name] = float(np.sqrt((r ** 2).sum(0))[inside & valid].mean())
            if name == "splat_inversion":
                row["confident"] = float((inside & valid).sum() / max(1, inside.sum()))
        out[t] = row
    return out
