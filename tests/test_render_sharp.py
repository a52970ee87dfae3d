"""The sharp full-resolution path (backend/render/sharp.py) through the Renderer: no ringing, detail kept at
sub-pixel offsets, tiles equal to the untiled frame."""
from __future__ import annotations

import cv2
import numpy as np
import torch

from backend.eval.metrics import laplacian_energy
from backend.render.api import Renderer
from backend.render.sharp import SharpFrame, gain_table, invert_flow, source_bounds


def _edge_image(h: int = 48, w: int = 64) -> np.ndarray:
    """A hard vertical and a hard diagonal edge, dark 20 / bright 235, with fine texture on the bright side."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.where((xx > w // 2) | (yy > xx + 10), 235, 20).astype(np.float32)
    tex = np.random.default_rng(0).integers(-15, 16, (h, w))
    img = np.where(img > 100, img + tex, img)
    return np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def _uniform(n: int, dx: float, dy: float, h: int, w: int) -> np.ndarray:
    """n fields of a uniform shift (dx, dy), on the image's own grid (displacement is in grid pixels)."""
    d = np.zeros((n, 2, h, w), np.float32)
    d[:, 0], d[:, 1] = dx, dy
    return d


def _overshoot(frame: np.ndarray, image: np.ndarray, dx: float, dy: float, margin: int = 3) -> float:
    """Largest distance (levels) of a pixel outside the min/max of the 2x2 source pixels around q - d."""
    H, W = image.shape[:2]
    lo, hi = source_bounds(image)
    gx, gy = np.meshgrid(np.arange(W), np.arange(H))
    sx = np.clip(np.floor(gx - dx).astype(int), 0, W - 1)
    sy = np.clip(np.floor(gy - dy).astype(int), 0, H - 1)
    f = frame.astype(int)
    over = np.maximum(f - hi[sy, sx].astype(int), lo[sy, sx].astype(int) - f)
    return float(over[margin:-margin, margin:-margin].max())


def test_no_ringing_at_strong_edges_under_subpixel_motion():
    img = _edge_image()
    r = Renderer.load(None, device="cpu")
    for dx, dy in ((0.5, 0.0), (0.3, 0.7), (-0.45, 0.25)):
        frames = r.render(img, None, 30.0, 30, [1.0], mode="splat", displacement=_uniform(1, dx, dy, *img.shape[:2]))
        assert _overshoot(frames[0], img, dx, dy) <= 2
    # the check can fail: an unclamped Lanczos warp rings at the same edge
    H, W = img.shape[:2]
    gx, gy = np.meshgrid(np.arange(W, dtype=np.float32), np.arange(H, dtype=np.float32))
    plain = cv2.remap(img.astype(np.float32), gx - 0.5, gy, cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    assert _overshoot(np.clip(plain, -255, 510), img, 0.5, 0.0) > 2


def test_detail_kept_at_half_pixel_offsets_where_bilinear_loses_it():
    img = (np.random.default_rng(1).random((64, 96, 3)) * 255).astype(np.uint8)
    img = cv2.GaussianBlur(img, (0, 0), 0.7)
    r = Renderer.load(None, device="cpu")
    e0 = laplacian_energy(img[4:-4, 4:-4])
    ratios = {}
    for kernel, gain in (("linear", False), ("cubic", True), ("lanczos", True)):
        frames = r.render(img, None, 30.0, 30, [1.0, 2.0], mode="splat", kernel=kernel, gain=gain,
                          displacement=np.concatenate([_uniform(1, 0.5, 0.0, 64, 96),
                                                       _uniform(1, 0.25, 0.5, 64, 96)]))
        ratios[kernel] = [laplacian_energy(f[4:-4, 4:-4]) / e0 for f in frames]
    for sharp in ("cubic", "lanczos"):
        assert min(ratios[sharp]) >= 0.85 and max(ratios[sharp]) <= 1.15
    assert min(ratios["linear"]) < 0.7


def test_tiles_equal_the_untiled_frame():
    rng = np.random.default_rng(2)
    img = (rng.random((37, 53, 3)) * 255).astype(np.uint8)
    # a forward flow on a coarser grid with a fold and a disocclusion, inverted there
    flow = torch.zeros(1, 2, 19, 27)
    flow[0, 0, 5:12, 8:16] = 2.5
    flow[0, 1, :, 10:] = -0.4
    backward, conf = invert_flow(flow, torch.ones(1, 1, 19, 27) * flow.norm(dim=1, keepdim=True))
    assert float(conf.min()) < 1.0                                  # there is something to fill
    fill = rng.random((3, 10, 14)).astype(np.float32)
    frame = SharpFrame(img, source_bounds(img), backward[0].numpy(), conf[0, 0].numpy(), fill,
                       gains=gain_table(img))
    whole = frame.render(tile_rows=37)
    for rows in (1, 5, 16):
        tiled = frame.render(tile_rows=rows)
        assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1


def test_frames_iterator_matches_render_and_checks_arguments_first():
    img = _edge_image(24, 32)
    r = Renderer.load(None, device="cpu")
    disp = np.concatenate([_uniform(1, 0.0, 0.0, 24, 32), _uniform(1, 0.4, -0.2, 24, 32)])
    whole = r.render(img, None, 30.0, 30, [0.0, 1.0], mode="splat", displacement=disp)
    assert np.array_equal(whole[0], img)                            # zero displacement = I0 exactly
    assert np.array_equal(np.stack(list(r.frames(img, None, 30.0, 30, [0.0, 1.0], mode="splat",
                                                 displacement=disp))), whole)
    try:
        r.frames(img, None, 30.0, 30, [0.0], mode="splat", displacement=disp[:1], kernel="box")
    except ValueError as exc:
        assert "kernel" in str(exc)
    else:
        raise AssertionError("an unknown kernel must be refused when frames() is called")
