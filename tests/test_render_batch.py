"""The GPU render path (backend/render/batch.py) on the CPU: the same code as with --device cuda. Batched frames equal Renderer.render's; autocast and torch.compile (backend "eager": the wiring, no
compiler) run and stay close; cancellation and bad options are clear."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.jobs import Cancelled, JobContext
from backend.render.api import Renderer
from backend.render.batch import BatchRenderer, GpuOptions
from shared import spectral as sp
from tests.test_render_sharp_device import OPENCV_4

W, H, T, FPS = 128, 80, 150, 30.0


@pytest.fixture(scope="module")
def scene():
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.stack([xx * 255 // (W - 1), yy * 255 // (H - 1), ((xx // 8 + yy // 8) % 2) * 255], -1).astype(np.uint8)
    t = np.arange(T)[:, None, None]
    motion = np.zeros((T, 2, H, W), np.float32)
    motion[:, 0] = 3.0 * np.sin(2 * np.pi * 3 * t / T) * (xx / W)[None]
    motion[:, 1] = 1.5 * np.sin(2 * np.pi * 5 * t / T + 1.0)
    return img, sp.motion_to_spectral(motion)


@pytest.fixture(scope="module")
def renderer():
    return Renderer.load(device="cpu")


def modes(renderer):
    return renderer.info()["modes"]


TIMES = np.arange(0, 7)            # frame 0 is the still; 7 frames = batches of 3, 3, 1


@pytest.mark.parametrize("mode", ["splat", "ibr"])
def test_batched_frames_equal_renderer(scene, renderer, mode):
    if mode not in modes(renderer):
        pytest.skip("no IBR weights")
    img, spec = scene
    want = renderer.render(img, spec, FPS, T, TIMES, 24.0, 1.0, 1.0, 24, mode).astype(np.int16)
    got = BatchRenderer(renderer, GpuOptions(batch=3, max_batch_pixels=10 ** 9)).render(
        img, spec, FPS, T, TIMES, 24.0, 1.0, 1.0, 24, mode).astype(np.int16)
    assert got.shape == want.shape == (len(TIMES), H, W, 3)
    assert np.array_equal(got[0], img)                       # zero displacement: the still, exactly
    assert np.abs(got - want).max() <= 1
    assert np.abs(got[4] - got[0]).mean() > 1.0               # it moves


def test_given_displacement_fields(scene, renderer):
    img, spec = scene
    fields = sp.displacement_for_frames(spec, T, FPS, TIMES, 24.0, 1.0, 1.0, 24)
    want = renderer.render(img, spec, FPS, T, TIMES, mode="splat", displacement=fields)
    got = BatchRenderer(renderer, GpuOptions(batch=4)).render(img, spec, FPS, T, TIMES, mode="splat",
                                                              displacement=fields)
    assert np.abs(got.astype(np.int16) - want).max() <= 1


def test_autocast_and_compile_paths(scene, renderer):
    if "ibr" not in modes(renderer):
        pytest.skip("no IBR weights")
    img, spec = scene
    exact = BatchRenderer(renderer, GpuOptions(batch=4)).render(img, spec, FPS, T, TIMES, mode="ibr").astype(np.int16)
    amp = BatchRenderer(renderer, GpuOptions(batch=4, amp=torch.bfloat16)).render(
        img, spec, FPS, T, TIMES, mode="ibr").astype(np.int16)
    # bf16 keeps 8 significant bits, and only the network (disocclusion fill) runs in it: measured on this
    # CPU mean 0.013 and max 1 level
    assert np.array_equal(amp[0], img)
    assert np.abs(amp - exact).mean() < 0.2 and np.abs(amp - exact).max() <= 2
    compiled = BatchRenderer(renderer, GpuOptions(batch=4, compile="eager"))
    got = compiled.render(img, spec, FPS, T, TIMES, mode="ibr").astype(np.int16)   # last batch padded 3 -> 4
    assert np.abs(got - exact).max() <= 1


def test_stream_order_cancel_and_options(scene, renderer):
    img, spec = scene
    br = BatchRenderer(renderer, GpuOptions(batch=2))
    starts = [(start, len(frames)) for start, frames in br.stream(img, spec, FPS, T, TIMES, mode="splat")]
    assert starts == [(0, 2), (2, 2), (4, 2), (6, 1)]
    ctx = JobContext(on_progress=lambda stage, done: ctx.cancel_event.set() if done > 0 else None)
    with pytest.raises(Cancelled):
        br.render(img, spec, FPS, T, TIMES, mode="splat", ctx=ctx)
    with pytest.raises(ValueError, match="batch and max_batch_pixels must be >= 1"):
        BatchRenderer(renderer, GpuOptions(batch=0))
    with pytest.raises(ValueError, match="mode must be one of"):
        br.render(img, spec, FPS, T, TIMES, mode="nope")
    cpu = GpuOptions.for_device(torch.device("cpu"))
    assert cpu.amp is None


@OPENCV_4
@pytest.mark.parametrize("mode", ["splat", "ibr"])
def test_device_warp_through_the_batched_path(scene, renderer, mode):
    """GpuOptions(device_warp=True) (the CUDA default) warps at full resolution with render/sharp_device.py:
    the frames of the host warp, but for OpenCV's fixed-point rounding (tests/test_render_sharp_device.py)."""
    if mode not in modes(renderer):
        pytest.skip(f"{mode} not available")
    img, spec = scene
    host = BatchRenderer(renderer, GpuOptions(batch=3, device_warp=False)).render(img, spec, FPS, T, TIMES, mode=mode)
    device = BatchRenderer(renderer, GpuOptions(batch=3, device_warp=True)).render(img, spec, FPS, T, TIMES, mode=mode)
    diff = np.abs(device.astype(int) - host.astype(int))
    np.testing.assert_array_equal(device[0], img)                   # frame 0: the still, exactly
    assert (diff == 0).mean() > 0.98 and diff.mean() < 0.05, ((diff == 0).mean(), diff.mean(), diff.max())
