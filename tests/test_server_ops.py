"""backend.service.ops: every argument is checked before any work, with the matching error code; real ops via the server."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from backend.service.client import Client, ClientError, start_local_server, stop_local_server
from backend.jobs import JobContext
from backend.service.ops import OPS, Models, OpLimits, available_ops
from shared import protocol
from shared.protocol import INVALID_ARGUMENT, TOO_LARGE, ProtocolError
from tests.proc_memory import proc_memory_mib

LIMITS = OpLimits()


def render_args(**over) -> dict:
    args = {"image": np.zeros((36, 64, 3), np.uint8), "spectral": np.zeros((16, 4, 18, 32), np.float16),
            "fps": 30.0, "T": 150, "times": np.arange(4, dtype=np.float32)}
    args.update(over)
    return {k: v for k, v in args.items() if v is not ...}


def simulate_args(**over) -> dict:
    args = {"spectral": np.ones((16, 4, 18, 32), np.float32), "fps": 30.0, "T": 150, "count": 10,
            "pokes": [{"frame": 2, "x": 10.0, "y": 5.0, "dx": 2.0, "dy": -1.0}]}
    args.update(over)
    return {k: v for k, v in args.items() if v is not ...}


def code_of(op: str, args: dict, limits: OpLimits = LIMITS) -> str | None:
    try:
        OPS[op].validate(args, limits)
    except ProtocolError as exc:
        return exc.code
    return None


def test_valid_arguments_are_normalised_with_defaults():
    out = OPS["render"].validate(render_args(), LIMITS)
    assert out["mode"] == "ibr" and out["scene_fps"] == 30.0 and out["speed"] == 1.0 and out["loop_frames"] == 0
    assert out["times"].dtype == np.float64 and list(out["times"]) == [0, 1, 2, 3]
    out = OPS["predict"].validate({"image": np.zeros((8, 8, 3), np.uint8)}, LIMITS)
    assert out == {"image": out["image"], "seed": 0, "samples": 1, "steps": None, "loop": False, "guidance": None,
                   "placement": None}
    assert OPS["predict"].validate({"image": np.zeros((8, 8, 3), np.uint8), "placement": 0.25},
                                   LIMITS)["placement"] == 0.25
    out = OPS["simulate"].validate(simulate_args(), LIMITS)
    assert out["pokes"][0] == {"frame": 2, "x": 10.0, "y": 5.0, "dx": 2.0, "dy": -1.0, "duration": 1,
                               "kind": "push"}
    assert "_test_sleep" not in available_ops() and "_test_sleep" in available_ops(test_ops=True)


@pytest.mark.parametrize("args, code", [
    (render_args(image=...), INVALID_ARGUMENT),                                          # missing
    (render_args(extra=1), INVALID_ARGUMENT),                                            # extra
    (render_args(image=np.zeros((36, 64, 3), np.float32)), INVALID_ARGUMENT),            # dtype
    (render_args(image=np.zeros((36, 64, 4), np.uint8)), INVALID_ARGUMENT),              # channels
    (render_args(image=[[1, 2, 3]]), INVALID_ARGUMENT),                                  # not an array
    (render_args(spectral=np.zeros((16, 2, 18, 32), np.float16)), INVALID_ARGUMENT),     # shape
    (render_args(spectral=np.zeros((16, 4, 18, 32), np.uint8)), INVALID_ARGUMENT),       # dtype
    (render_args(spectral=np.full((16, 4, 18, 32), np.nan, np.float32)), INVALID_ARGUMENT),  # non-finite
    (render_args(spectral=np.zeros((16, 4, 18, 32), np.float16), T=20), INVALID_ARGUMENT),   # K > T/2+1
    (render_args(fps="30"), INVALID_ARGUMENT),
    (render_args(fps=float("inf")), INVALID_ARGUMENT),
    (render_args(fps=-1.0), INVALID_ARGUMENT),
    (render_args(T=True), INVALID_ARGUMENT),                                             # bool is no int
    (render_args(T=150.0), INVALID_ARGUMENT),
    (render_args(times=np.array([0, np.inf], np.float32)), INVALID_ARGUMENT),
    (render_args(times=np.zeros(0, np.float32)), INVALID_ARGUMENT),
    (render_args(times=np.zeros((2, 2), np.float32)), INVALID_ARGUMENT),
    (render_args(times=np.zeros(10_001, np.float32)), TOO_LARGE),
    (render_args(times=["a"]), INVALID_ARGUMENT),
    (render_args(mode="raytrace"), INVALID_ARGUMENT),
    (render_args(speed=0.0), INVALID_ARGUMENT),
    (render_args(loop_frames=-1), INVALID_ARGUMENT),
    (render_args(scene_fps=0.0), INVALID_ARGUMENT),
    (render_args(displacement=np.zeros((3, 2, 18, 32), np.float16)), INVALID_ARGUMENT),  # n != len(times)
    (render_args(displacement=np.zeros((4, 3, 18, 32), np.float16)), INVALID_ARGUMENT),  # not 2 components
    (render_args(displacement=np.zeros((4, 2, 18), np.float16)), INVALID_ARGUMENT),      # ndim
    (render_args(displacement=np.zeros((4, 2, 18, 32), np.float64)), INVALID_ARGUMENT),  # dtype
    (render_args(displacement=np.full((4, 2, 18, 32), np.nan, np.float32)), INVALID_ARGUMENT),  # non-finite
])
def test_render_arguments_refused(args, code):
    assert code_of("render", args) == code


def test_pixel_and_reply_limits():
    small = OpLimits(max_pixels=36 * 64 - 1)
    assert code_of("render", render_args(), small) == TOO_LARGE
    assert code_of("predict", {"image": np.zeros((36, 64, 3), np.uint8)}, small) == TOO_LARGE
    # 10,000 frames of 4000x3000 would be 360 GB: refused before any work, telling the client to ask in chunks
    big_image = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (3000, 4000, 3), (0, 0, 0))
    try:
        OPS["render"].validate(render_args(image=big_image, times=np.zeros(10_000, np.float32)), LIMITS)
        raise AssertionError("not refused")
    except ProtocolError as exc:
        assert exc.code == TOO_LARGE and "chunks" in exc.message


@pytest.mark.parametrize("op, args", [
    ("predict", {"image": np.zeros((8, 8, 3), np.uint8), "samples": 0}),
    ("predict", {"image": np.zeros((8, 8, 3), np.uint8), "samples": 17}),
    ("predict", {"image": np.zeros((8, 8, 3), np.uint8), "steps": 1001}),
    ("predict", {"image": np.zeros((8, 8, 3), np.uint8), "seed": -1}),
    ("predict", {"image": np.zeros((8, 8, 3), np.uint8), "loop": 1}),
    ("predict", {"image": np.zeros((8, 8, 3), np.uint8), "guidance": float("nan")}),
    ("predict", {"image": np.zeros((8, 8, 3), np.uint8), "placement": 1.5}),
    ("predict", {"image": np.zeros((8, 8, 3), np.uint8), "placement": -0.1}),
    ("simulate", simulate_args(count=...)),
    ("simulate", simulate_args(count=0)),
    ("simulate", simulate_args(pokes={"frame": 1})),
    ("simulate", simulate_args(pokes=[{"frame": 1, "x": 1.0, "y": 1.0, "dx": 1.0}])),           # no dy
    ("simulate", simulate_args(pokes=[{"frame": 1, "x": 99.0, "y": 1.0, "dx": 1.0, "dy": 0.0}])),  # off grid
    ("simulate", simulate_args(pokes=[{"frame": 1, "x": 1.0, "y": 1.0, "dx": 1.0, "dy": 0.0, "kind": "x"}])),
    ("simulate", simulate_args(damping=[0.1, 0.2])),                                            # not K-1
    ("simulate", simulate_args(mass=0.0)),
    ("simulate", simulate_args(rayleigh=[1.0])),
    ("cancel", {}),
    ("cancel", {"target": 5}),
    ("ping", {"x": 1}),
])
def test_other_ops_refuse_bad_arguments(op, args):
    assert code_of(op, args) == INVALID_ARGUMENT


def test_simulate_runner_matches_shared_modal():
    from shared.modal import simulate
    args = OPS["simulate"].validate(simulate_args(), LIMITS)
    out = OPS["simulate"].run(args, Models("cpu"), JobContext())["displacement"]
    expected = simulate(np.ones((16, 4, 18, 32), np.float32), 30.0, 150,
                        [{"frame": 2, "x": 10.0, "y": 5.0, "dx": 2.0, "dy": -1.0}], 0, 10)
    assert out.dtype == np.float16 and out.shape == (10, 2, 18, 32)
    np.testing.assert_allclose(out.astype(np.float32), expected, rtol=2e-3, atol=1e-3)
    assert np.abs(expected).max() > 0


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, endpoint = start_local_server("--device", "cpu", log_file=tmp_path_factory.mktemp("s") / "serve.log")
    yield endpoint
    assert stop_local_server(proc) == 0


def test_simulate_through_the_server(server):
    with Client(server, timeout=60) as c:
        out = c.request("simulate", simulate_args(count=5, start=3))
    from shared.modal import simulate
    expected = simulate(np.ones((16, 4, 18, 32), np.float32), 30.0, 150,
                        [{"frame": 2, "x": 10.0, "y": 5.0, "dx": 2.0, "dy": -1.0}], 3, 5)
    np.testing.assert_allclose(out["displacement"].astype(np.float32), expected, rtol=2e-3, atol=1e-3)


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def test_predict_answers_spectral_or_no_model(server):
    image = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    with Client(server, timeout=300) as c:
        try:
            out = c.request("predict", {"image": image, "seed": 1, "steps": 2})
        except ClientError as exc:
            # Without a motion model the server must say so, never invent motion.
            assert exc.code == INVALID_ARGUMENT and "no motion model loaded" in exc.message
            assert c.ping()["models"]["motion"]["state"] == "unavailable"
            return
    s = out["spectral"]
    assert s.dtype == np.float16 and s.ndim == 5 and s.shape[:3] == (1, 16, 4) and np.isfinite(s).all()
    assert out["size"] == [64, 48] and out["T"] >= 2 and out["fps"] > 0


def test_render_splat_through_the_server(server):
    image = (np.random.default_rng(0).random((36, 64, 3)) * 255).astype(np.uint8)
    spectral = np.zeros((16, 4, 18, 32), np.float32)
    spectral[1, 0] = 150.0 * 2  # x moves ~2 px at frequency 1
    with Client(server, timeout=120) as c:
        try:
            out = c.request("render", render_args(image=image, spectral=spectral, mode="splat"))
        except ClientError as exc:
            assert not _has("backend.render.api"), exc           # only acceptable while the renderer is absent
            assert exc.code == INVALID_ARGUMENT and "no renderer loaded" in exc.message
            return
    frames = out["frames"]
    assert frames.dtype == np.uint8 and frames.shape == (4, 36, 64, 3)
    np.testing.assert_array_equal(frames[0], image)              # frame 0 is I0
    assert np.abs(frames[2].astype(int) - image).mean() > 1      # the motion shows
    # the same motion sent as per-frame fields (what the add-on does for pokes) renders the same frames
    from shared.spectral import displacement_for_frames

    fields = displacement_for_frames(spectral, 150, 30.0, np.arange(4), None, 1.0, 1.0, 0)
    with Client(server, timeout=120) as c:
        given = c.request("render", render_args(image=image, spectral=spectral, mode="splat",
                                                displacement=fields.astype(np.float32)))["frames"]
    np.testing.assert_array_equal(given, frames)


def test_unknown_op_lists_public_ops(server):
    with Client(server, timeout=10) as c:
        with pytest.raises(ClientError) as err:
            c.request("_test_sleep", {"steps": 1})   # test ops are off by default
    assert err.value.code == protocol.UNKNOWN_OP and "render" in err.value.message


def test_simulate_far_start_is_allowed_and_work_is_bounded_by_the_output():
    assert code_of("simulate", simulate_args(start=990_000, count=1)) is None      # cheap: jumps to the start
    assert code_of("simulate", simulate_args(start=10**9, count=1)) is None
    assert code_of("simulate", simulate_args(start=10**9 + 1, count=1)) == INVALID_ARGUMENT
    many_modes = np.ones((1000, 4, 18, 32), np.float32)                          # 999 modes x 576 px
    assert code_of("simulate", simulate_args(spectral=many_modes, T=2000, count=10_000)) == TOO_LARGE
    assert code_of("simulate", simulate_args(spectral=many_modes, T=2000, count=100)) is None
    pokes = [{"frame": 1, "x": 1.0, "y": 1.0, "dx": 1.0, "dy": 0.0}] * 300
    assert code_of("simulate", simulate_args(T=1_000_000, pokes=pokes)) == TOO_LARGE   # 300 FFTs of 1e6
    assert code_of("simulate", simulate_args(T=1_000_000, pokes=pokes[:100])) is None


@pytest.mark.parametrize("rayleigh", [[0.0, 1e300], [1e300, 0.0], [0.0, 1e6], [1e9, 0.0]])
def test_huge_rayleigh_damping_is_refused_not_zeroed(rayleigh):
    try:
        OPS["simulate"].validate(simulate_args(rayleigh=rayleigh), LIMITS)
        raise AssertionError("not refused")
    except ProtocolError as exc:
        assert exc.code == INVALID_ARGUMENT and "rayleigh" in exc.message


def test_non_finite_or_out_of_range_results_are_errors_never_zeros():
    from backend.service.ops import _to_float16

    np.testing.assert_array_equal(_to_float16(np.array([1.5, -2.0], np.float32), "x", INVALID_ARGUMENT),
                                  np.array([1.5, -2.0], np.float16))
    for bad in (np.array([1.0, np.nan]), np.array([np.inf, 0.0]), np.array([1e6, 0.0])):
        with pytest.raises(ProtocolError) as exc:
            _to_float16(bad, "simulate: the displacement", INVALID_ARGUMENT)
        assert exc.value.code == INVALID_ARGUMENT and "nothing is sent" in exc.value.message
    # a poke whose answer cannot be carried by float16 is an error, not a clipped or zeroed field
    args = OPS["simulate"].validate(simulate_args(pokes=[{"frame": 0, "x": 10.0, "y": 5.0, "dx": 1e6,
                                                          "dy": 0.0, "duration": 1000}], count=3, start=500),
                                    LIMITS)
    with pytest.raises(ProtocolError) as exc:
        OPS["simulate"].run(args, Models("cpu"), JobContext())
    assert exc.value.code == INVALID_ARGUMENT


def test_one_kilobyte_simulate_never_costs_more_than_500_mb(tmp_path):
    """Issue 23 bar: K=101, start=990000, count=1 (~1 KB) took the server from 245 MB to 4.8 GB."""
    proc, endpoint = start_local_server("--device", "cpu", log_file=tmp_path / "serve.log")
    try:
        poke = [{"frame": 3, "x": 0.0, "y": 0.0, "dx": 1.0, "dy": 0.0, "duration": 2}]
        rng = np.random.default_rng(0)
        requests = [  # (K, T): the request is K x 4 float16 values plus a few keys
            dict(spectral=rng.normal(size=(101, 4, 1, 1)).astype(np.float16), T=200),
            dict(spectral=rng.normal(size=(1000, 4, 1, 1)).astype(np.float16), T=2000),
            dict(spectral=rng.normal(size=(1000, 4, 1, 1)).astype(np.float16), T=1_000_000),
        ]
        with Client(endpoint, timeout=120) as c:
            c.ping()
            before = proc_memory_mib(proc.pid)
            for req in requests:
                size = sum(len(bytes(f)) for f in protocol.encode(protocol.request(
                    "simulate", dict(req, fps=30.0, pokes=poke, start=990_000, count=1))))
                out = c.request("simulate", dict(req, fps=30.0, pokes=poke, start=990_000, count=1))
                assert out["displacement"].shape == (1, 2, 1, 1)
                assert np.isfinite(out["displacement"]).all()
                after = proc_memory_mib(proc.pid)
                print(f"simulate K={len(req['spectral'])} T={req['T']} start=990000 count=1 ({size} B request): "
                      f"server VmRSS {before['VmRSS']:.0f} MiB before, VmHWM {after['VmHWM']:.0f} MiB after")
                assert after["VmHWM"] < 500, after
            assert c.ping()["protocol"] == protocol.PROTOCOL_VERSION
    finally:
        stop_local_server(proc)


def test_depth_through_the_server(server):
    """The depth op over real sockets: a float32 map of the picture's size in [0, 1]; bad input refused
    by the validator before any work."""
    image = (np.random.default_rng(0).random((40, 72, 3)) * 255).astype(np.uint8)
    with Client(server, timeout=120) as c:
        out = c.request("depth", {"image": image})
    d = out["depth"]
    assert d.dtype == np.float32 and d.shape == (40, 72)
    assert np.isfinite(d).all() and d.min() >= 0.0 and d.max() <= 1.0 and d.max() > d.min()
    assert code_of("depth", {"image": np.zeros((4, 4, 3), np.uint8)}) == INVALID_ARGUMENT
    assert code_of("depth", {"image": np.zeros((16, 16), np.uint8)}) == INVALID_ARGUMENT
    assert code_of("depth", {"image": image, "extra": 1}) == INVALID_ARGUMENT
