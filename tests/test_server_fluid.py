"""The `render` op with a velocity field: validation (bounds, one error code each) and a real server round trip
on 127.0.0.1 that renders the same frames as the library."""
from __future__ import annotations

import numpy as np
import pytest

from backend.data.fluid_synth import river_band, texture
from backend.service.client import Client, start_local_server, stop_local_server
from backend.service.ops import OPS, OpLimits
from shared.protocol import INVALID_ARGUMENT, TOO_LARGE, ProtocolError

pytestmark = pytest.mark.timeout(240)
LIMITS = OpLimits()
SIZE = (64, 36)


def fluid_args(**over) -> dict:
    sc = river_band(SIZE)
    args = {"image": texture(SIZE, seed=4), "velocity": sc.velocity[:, ::2, ::2] * 0.5,   # half grid, its px
            "fluid_mask": (sc.mask * 255).astype(np.uint8), "loop_frames": 12, "mode": "splat",
            "times": np.arange(13, dtype=np.float32)}
    args.update(over)
    return {k: v for k, v in args.items() if v is not ...}


def code_of(args: dict, limits: OpLimits = LIMITS) -> str | None:
    try:
        OPS["render"].validate(args, limits)
    except ProtocolError as exc:
        return exc.code
    return None


def test_fluid_only_needs_no_spectral():
    out = OPS["render"].validate(fluid_args(), LIMITS)
    assert out["spectral"] is None and out["fluid_mask"].dtype == bool and out["velocity"].dtype == np.float32


@pytest.mark.parametrize("over, code", [
    (dict(fluid_mask=...), INVALID_ARGUMENT),                                            # mask missing
    (dict(fluid_mask=np.zeros((36, 64), np.uint8)), INVALID_ARGUMENT),                   # empty mask
    (dict(fluid_mask=np.full((18, 64), 255, np.uint8)), INVALID_ARGUMENT),               # wrong size
    (dict(velocity=np.zeros((3, 18, 32), np.float32)), INVALID_ARGUMENT),                # shape
    (dict(velocity=np.full((2, 18, 32), np.nan, np.float32)), INVALID_ARGUMENT),         # non-finite
    (dict(velocity=np.full((2, 18, 32), 40.0, np.float32)), INVALID_ARGUMENT),           # 80 px/frame at 64x36
    (dict(velocity=np.zeros((2, 5000, 5000), np.float16)), TOO_LARGE),                   # grid too large
    (dict(loop_frames=0), INVALID_ARGUMENT),
    (dict(loop_frames=5000), INVALID_ARGUMENT),
    (dict(displacement=np.zeros((13, 2, 18, 32), np.float32)), INVALID_ARGUMENT),        # not with velocity
    (dict(velocity=...), INVALID_ARGUMENT),                                              # mask without velocity
])
def test_bad_fluid_arguments(over, code):
    assert code_of(fluid_args(**over)) == code


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, endpoint = start_local_server("--device", "cpu", log_file=tmp_path_factory.mktemp("s") / "serve.log")
    yield endpoint
    assert stop_local_server(proc) == 0


def test_fluid_render_through_the_server_matches_the_library(server):
    from backend.render.api import Renderer
    from backend.render.fluid import FluidMotion

    args = fluid_args()
    with Client(server, timeout=120) as c:
        first = c.request("render", dict(args, times=np.arange(0, 7, dtype=np.float32)))["frames"]
        second = c.request("render", dict(args, times=np.arange(7, 13, dtype=np.float32)))["frames"]
    frames = np.concatenate([first, second])
    image, mask = args["image"], args["fluid_mask"] >= 128
    assert frames.shape == (13, 36, 64, 3) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[0], image)
    np.testing.assert_array_equal(frames[12], frames[0])          # the loop closes
    assert np.array_equal(frames[:, ~mask], np.broadcast_to(image[~mask], frames[:, ~mask].shape))
    motion = FluidMotion.prepare(args["velocity"], mask, 12)
    local = Renderer.load(device="cpu").render_fluid(image, motion, np.arange(13), mode="splat")
    np.testing.assert_array_equal(frames, local)
