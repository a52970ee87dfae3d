"""Renderer API, IBR network and preview (backend/render/api.py, ibr.py, preview.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.jobs import Cancelled, JobContext
from backend.render.api import Renderer
from backend.render.ibr import IBRConfig, IBRNet, render_full_size
from backend.render.preview import push_pull_fill, splat_metric
from shared.spectral import motion_to_spectral


def _scene(h: int, w: int, T: int = 30, amp: float = 2.0) -> np.ndarray:
    """Spectral volume of a blob oscillating left-right on a still background."""
    yy, xx = np.mgrid[0:h, 0:w]
    blob = np.exp(-(((xx - w / 2) / (w / 5)) ** 2 + ((yy - h / 2) / (h / 4)) ** 2))
    t = np.arange(T)[:, None, None]
    motion = np.stack([amp * blob * np.sin(2 * np.pi * 2 * t / T), 0.5 * amp * blob * np.sin(2 * np.pi * t / T)], 1)
    return motion_to_spectral(motion.astype(np.float32), K=8)


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def ibr_renderer(tmp_path_factory):
    torch.manual_seed(0)
    net = IBRNet(IBRConfig(work_long_side=64))
    d = tmp_path_factory.mktemp("render_weights")
    net.save_pretrained(d)
    return Renderer.load(d, device="cpu")


def test_splat_works_without_weights_and_ibr_says_why(tmp_path):
    r = Renderer.load(tmp_path, device="cpu")
    assert r.info()["modes"] == ["splat"]
    img = _image(20, 32)
    frames = r.render(img, _scene(10, 16), 30, 30, [0, 3, 7], mode="splat")
    assert frames.shape == (3, 20, 32, 3) and frames.dtype == np.uint8
    with pytest.raises(RuntimeError, match="needs trained weights"):
        r.render(img, _scene(10, 16), 30, 30, [1], mode="ibr")


@pytest.mark.parametrize("mode", ["splat", "ibr"])
def test_frame_zero_is_exact_and_frames_move(ibr_renderer, mode):
    img = _image(33, 47)
    frames = ibr_renderer.render(img, _scene(17, 24), 30, 30, [0, 4, 30], mode=mode)
    assert np.array_equal(frames[0], img)
    assert np.array_equal(frames[2], img)            # one full period later: zero displacement again
    assert not np.array_equal(frames[1], img)


@pytest.mark.parametrize("size", [(23, 37), (31, 17), (64, 65)])
@pytest.mark.parametrize("mode", ["splat", "ibr"])
def test_output_size_for_odd_images(ibr_renderer, size, mode):
    h, w = size
    frames = ibr_renderer.render(_image(h, w), _scene(10, 16), 30, 30, [2, 5], mode=mode, speed=1.5,
                                 magnitude=2.0)
    assert frames.shape == (2, h, w, 3)


def test_loop_and_progress_and_cancel(ibr_renderer):
    seen = []
    ctx = JobContext(on_progress=lambda stage, done: seen.append((stage, done)))
    frames = ibr_renderer.render(_image(20, 32), _scene(10, 16), 30, 30, np.arange(6), scene_fps=24,
                                 loop_frames=24, mode="splat", ctx=ctx)
    assert frames.shape[0] == 6
    assert [s for s, _ in seen] == ["render"] * 6 and seen[-1][1] == pytest.approx(1.0)
    ctx = JobContext()
    ctx.cancel_event.set()
    with pytest.raises(Cancelled):
        ibr_renderer.render(_image(20, 32), _scene(10, 16), 30, 30, [1, 2], mode="splat", ctx=ctx)


@pytest.mark.parametrize("mode", ["splat", "ibr"])
def test_given_displacement_equals_spectral_evaluation(ibr_renderer, mode):
    """Fields passed as `displacement` render exactly like the spectral evaluation they equal; other fields
    (a poke on top) change the frames, and bad fields are refused."""
    from shared.spectral import displacement_for_frames

    img, spec, times = _image(20, 32), _scene(10, 16), [0, 3, 7]
    fields = displacement_for_frames(spec, 30, 30, times, None, 1.5, 0.8, 0)
    ref = ibr_renderer.render(img, spec, 30, 30, times, speed=1.5, magnitude=0.8, mode=mode)
    got = ibr_renderer.render(img, spec, 30, 30, times, speed=1.5, magnitude=0.8, mode=mode, displacement=fields)
    np.testing.assert_array_equal(got, ref)
    poked = fields.copy()
    poked[2, 0, 3:7, 5:11] += 3.0
    other = ibr_renderer.render(img, spec, 30, 30, times, magnitude=0.8, mode=mode, displacement=poked)
    np.testing.assert_array_equal(other[:2], ref[:2])
    assert np.abs(other[2].astype(int) - ref[2]).max() > 0
    alone = ibr_renderer.render(img, None, 30, 30, times, mode=mode, displacement=fields)   # metric from fields
    assert alone.shape == ref.shape and np.array_equal(alone[0], img)
    with pytest.raises(ValueError, match="len\\(times\\)"):
        ibr_renderer.render(img, spec, 30, 30, times, mode=mode, displacement=fields[:2])
    with pytest.raises(ValueError, match="non-finite"):
        ibr_renderer.render(img, spec, 30, 30, times, mode=mode, displacement=np.full_like(fields, np.nan))


def test_bad_input_is_rejected(ibr_renderer):
    with pytest.raises(ValueError, match="uint8"):
        ibr_renderer.render(np.zeros((8, 8, 3), np.float32), _scene(8, 8), 30, 30, [1], mode="splat")
    with pytest.raises(ValueError, match="spectral"):
        ibr_renderer.render(_image(8, 8), np.zeros((8, 8)), 30, 30, [1], mode="splat")
    with pytest.raises(ValueError, match="mode"):
        ibr_renderer.render(_image(8, 8), _scene(8, 8), 30, 30, [1], mode="magic")


def test_large_image_path_keeps_detail():
    """Above work_long_side the network runs small, but covered pixels come from the full-res splat."""
    torch.manual_seed(0)
    net = IBRNet(IBRConfig(work_long_side=32)).eval()
    H, W = 96, 160
    img = torch.from_numpy(_image(H, W, seed=3)).permute(2, 0, 1)[None].float() / 255   # per-pixel noise
    flow = torch.zeros(1, 2, H, W)
    flow[:, 0, :, 40:120] = 1.0                     # a band moves right by exactly one pixel
    z = splat_metric(flow.norm(dim=1, keepdim=True))
    out = render_full_size(net, img, flow, z)
    expected = img.clone()
    expected[..., 41:121] = img[..., 40:120]
    keep = torch.ones(W, dtype=torch.bool)
    keep[40] = False                                # the disoccluded column is filled by the network
    keep[120] = False                               # band over background: a softmax blend (1 : e^-6.4)
    assert torch.allclose(out[..., keep], expected[..., keep], atol=1e-5)
    # the naive path (everything at the working size, upsampled) loses the per-pixel detail
    small = torch.nn.functional.interpolate(img, size=(19, 32), mode="area")
    naive = torch.nn.functional.interpolate(small, size=(H, W), mode="bilinear", align_corners=False)
    assert (naive - expected).abs().mean() > 10 * (out - expected)[..., keep].abs().mean()


def test_push_pull_fills_holes_and_keeps_known_pixels():
    img = torch.rand(1, 3, 20, 30)
    conf = torch.ones(1, 1, 20, 30)
    conf[..., 5:9, 10:16] = 0.0
    filled = push_pull_fill(img * conf, conf)
    assert torch.allclose(filled[..., conf[0, 0] > 0], img[..., conf[0, 0] > 0], atol=1e-6)
    hole = filled[..., 5:9, 10:16]
    assert torch.isfinite(hole).all() and (hole > 0.1).all() and (hole < 0.9).all()


@pytest.mark.parametrize("src,dst", [((10, 16), (23, 37)), ((17, 24), (17, 24)), ((20, 30), (12, 40))])
def test_resize_field_fast_equals_shared_resize_field(src, dst):
    from backend.render.api import resize_field_fast
    from shared.spectral import resize_field
    field = np.random.default_rng(1).normal(size=(3, 2) + src).astype(np.float32)
    fast = resize_field_fast(torch.from_numpy(field), (dst[1], dst[0])).numpy()
    assert np.allclose(fast, resize_field(field, (dst[1], dst[0])), atol=1e-5)


def test_full_preset_runs_and_unknown_preset_is_rejected():
    net = IBRNet(IBRConfig.preset_config("full")).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 24, 40), torch.randn(2, 2, 24, 40), torch.rand(1, 1, 24, 40))
    assert out.shape == (2, 3, 24, 40)
    with pytest.raises(ValueError, match="preset"):
        IBRConfig.preset_config("huge")
