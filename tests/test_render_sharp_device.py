"""The device warp (backend/render/sharp_device.py) against the host path it replaces on a GPU (`SharpFrame`):
the same frames (99.7% of pixels equal with the bicubic kernel on hard synthetic edges; OpenCV's fixed-point
weights and 1/32-pixel rounding ties account for the rest), with and without the detail gain and the fill, on the
CPU (the same torch code as on CUDA)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from backend.render.sharp import SharpFrame, gain_table, source_bounds
from backend.render.sharp_device import DeviceSharpPicture

# the device warp reproduces the remap arithmetic of the pinned OpenCV 4.10; OpenCV 5 remaps differently (session 20:
# its host warp alone gives 53% equal values against 4.10 on the same frames)
OPENCV_4 = pytest.mark.skipif(int(cv2.__version__.split(".")[0]) >= 5, reason="compares with OpenCV 4's remap")


def _scene(seed: int, H: int = 61, W: int = 97, h: int = 25, w: int = 40):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (H // 3 + 2, W // 3 + 2, 3)).astype(np.uint8)
    image = cv2.resize(small, (W, H), interpolation=cv2.INTER_NEAREST)          # hard edges: the worst case
    image[::7] = rng.integers(0, 256, (len(image[::7]), W, 3))                  # and one-pixel lines
    backward = (rng.standard_normal((2, h, w)) * 3.0).astype(np.float32)
    backward = cv2.GaussianBlur(backward.transpose(1, 2, 0), (5, 5), 1.5).transpose(2, 0, 1).copy()
    confidence = np.clip(rng.uniform(0.3, 1.6, (h, w)), 0, 1).astype(np.float32)
    fill = rng.uniform(0, 1, (3, h, w)).astype(np.float32)
    return image, backward, confidence, fill


@OPENCV_4
@pytest.mark.parametrize("kernel", ["cubic", "linear"])
@pytest.mark.parametrize("gain", [True, False])
@pytest.mark.parametrize("with_fill", [True, False])
def test_device_warp_matches_the_host_warp(kernel, gain, with_fill):
    for seed in range(3):
        image, backward, confidence, fill = _scene(seed)
        bounds = source_bounds(image)
        gains = gain_table(image, kernel) if gain else None
        if gain:
            assert gains.max() > 0                      # the gain step is exercised
        host = SharpFrame(image, bounds, backward, confidence, fill if with_fill else None, kernel, gains).render()
        device = DeviceSharpPicture(image, bounds, gains, kernel, torch.device("cpu")).frame(
            torch.from_numpy(backward), torch.from_numpy(confidence),
            torch.from_numpy(fill) if with_fill else None)
        assert device.dtype == np.uint8 and device.shape == host.shape
        diff = np.abs(device.astype(int) - host.astype(int))
        # a sample position that float32 puts on the other side of a 1/32-pixel rounding tie moves by 1/32 px:
        # up to ~255/32 levels on these hard edges, on a pixel or two per frame
        assert diff.max() <= 12 and (diff.max(-1) > 2).mean() < 0.002, (seed, diff.max(), (diff.max(-1) > 2).mean())
        assert (diff == 0).mean() > 0.98 and diff.mean() < 0.03, (seed, (diff == 0).mean(), diff.mean())


def test_device_warp_of_no_motion_is_the_picture_and_rejects_lanczos():
    image, backward, confidence, fill = _scene(5)
    pic = DeviceSharpPicture(image, source_bounds(image), gain_table(image), "cubic", torch.device("cpu"))
    still = pic.frame(torch.zeros(2, 25, 40), torch.ones(25, 40), torch.from_numpy(fill))
    np.testing.assert_array_equal(still, image)
    with pytest.raises(ValueError, match="lanczos"):
        DeviceSharpPicture(image, source_bounds(image), None, "lanczos", torch.device("cpu"))


@OPENCV_4
@pytest.mark.parametrize("w_fwd", [1.0, 0.7, 0.0])
def test_device_fluid_frame_matches_sharp_pair(w_fwd):
    """The fluid loop's two-term frame (render.fluid.sharp_pair) on the device: the same mix of the two warps by
    loop weight and confidence, and the fill where neither term is confident."""
    from backend.render.fluid import sharp_pair
    for seed in range(2):
        image, b0, c0, fill = _scene(10 + seed)
        _, b1, c1, _ = _scene(20 + seed)
        c1[:5] = 0.0                                     # rows neither term covers well: the fill shows
        c0[:5] = 0.2
        backward, confidence = np.stack([b0, b1]), np.stack([c0, c1])
        bounds, gains = source_bounds(image), gain_table(image)
        host = sharp_pair(image, bounds, backward, confidence, w_fwd, fill, "cubic", gains)
        device = DeviceSharpPicture(image, bounds, gains, "cubic", torch.device("cpu")).fluid_frame(
            torch.from_numpy(backward), torch.from_numpy(confidence), w_fwd, torch.from_numpy(fill))
        diff = np.abs(device.astype(int) - host.astype(int))
        assert diff.max() <= 12 and (diff.max(-1) > 2).mean() < 0.002, (seed, diff.max())
        assert (diff == 0).mean() > 0.98, (seed, (diff == 0).mean())


@pytest.mark.parametrize("gain", [True, False])
def test_device_tiles_equal_the_whole_frame(gain):
    """Tiles of rows (a few rows each here) give exactly the one-tile frame, the gain's Laplacian included."""
    image, backward, confidence, fill = _scene(7)
    bounds, gains = source_bounds(image), (gain_table(image) if gain else None)
    args = (torch.from_numpy(backward), torch.from_numpy(confidence), torch.from_numpy(fill))
    whole = DeviceSharpPicture(image, bounds, gains, "cubic", torch.device("cpu"), tile_pixels=10 ** 9)
    tiled = DeviceSharpPicture(image, bounds, gains, "cubic", torch.device("cpu"), tile_pixels=7 * image.shape[1])
    assert tiled.tile_rows == 7 and whole.tile_rows >= image.shape[0]
    np.testing.assert_array_equal(tiled.frame(*args), whole.frame(*args))
    pair = (torch.stack([args[0], -args[0]]), torch.stack([args[1], args[1].flip(0)]), 0.6, args[2])
    np.testing.assert_array_equal(tiled.fluid_frame(*pair), whole.fluid_frame(*pair))
