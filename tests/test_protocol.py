import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import protocol as pr


def test_round_trip_arrays_inline_and_in_frames():
    img = np.arange(160 * 256 * 3, dtype=np.uint8).reshape(160, 256, 3)
    small = np.array([0.5, 1.5], np.float32)
    msg = pr.request("render", {"image": img, "times": small, "nested": [{"s": np.ones((2, 3), np.float16)}],
                                "seed": np.int64(3)})
    frames = pr.encode(msg)
    assert len(frames) == 2                         # the image in its own frame, the small arrays inline
    req = pr.parse_request([bytes(f) for f in frames])
    assert req.op == "render" and req.id == msg["id"]
    np.testing.assert_array_equal(req.args["image"], img)
    np.testing.assert_array_equal(req.args["times"], small)
    assert req.args["nested"][0]["s"].dtype == np.float16
    assert req.args["seed"] == 3


def test_reply_builders_parse():
    for msg in (pr.progress("a", "diffusion", 0.5), pr.result("a", {"x": np.zeros(3, np.float32)}),
                pr.error("a", pr.BUSY, "queue full")):
        out = pr.parse_reply(pr.encode(msg))
        assert out["type"] == msg["type"]
    assert pr.error(None, "nonsense", "x")["error"]["code"] == pr.INTERNAL


@pytest.mark.parametrize("bad,code", [
    ([b"\xc1"], pr.BAD_REQUEST),                                      # never-used msgpack byte
    ([msgpack.packb([1, 2])], pr.BAD_REQUEST),                         # not a map
    ([msgpack.packb({"v": 2, "id": "x", "op": "ping", "args": {}})], pr.UNSUPPORTED_VERSION),
    ([msgpack.packb({"v": 1, "id": "x", "op": "ping"})], pr.BAD_REQUEST),
    ([msgpack.packb({"v": 1, "id": "x", "op": "ping", "args": {}, "evil": 1})], pr.BAD_REQUEST),
    ([msgpack.packb({"v": 1, "id": 5, "op": "ping", "args": {}})], pr.BAD_REQUEST),
    ([msgpack.packb({"v": 1, "id": "x", "op": "p", "args": {"a": {"nd": True, "dtype": "float64",
                                                                 "shape": [1], "data": b"12345678"}}})],
     pr.INVALID_ARGUMENT),
    ([msgpack.packb({"v": 1, "id": "x", "op": "p", "args": {"a": {"nd": True, "dtype": "uint8",
                                                                 "shape": [3], "data": b"12"}}})],
     pr.INVALID_ARGUMENT),
    ([msgpack.packb({"v": 1, "id": "x", "op": "p", "args": {"a": {"nd": True, "dtype": "uint8",
                                                                 "shape": [100000, 100000, 3],
                                                                 "frame": 1}}}), b""], pr.TOO_LARGE),
    ([msgpack.packb({"v": 1, "id": "x", "op": "p", "args": {"a": {"nd": True, "dtype": "uint8",
                                                                 "shape": [2], "frame": 5}}})],
     pr.INVALID_ARGUMENT),
    ([msgpack.packb({"v": 1, "id": "x", "op": "p", "args": {}}), b"orphan"], pr.INVALID_ARGUMENT),
    ([msgpack.packb(msgpack.ExtType(1, b"x"))], pr.BAD_REQUEST),       # ext types are refused
])
def test_malformed_messages_give_codes(bad, code):
    with pytest.raises(pr.ProtocolError) as exc:
        pr.parse_request(bad)
    assert exc.value.code == code


def test_limits_bound_everything():
    limits = pr.Limits(max_header_bytes=100, max_frames=1, max_pixels=100)
    with pytest.raises(pr.ProtocolError) as exc:
        pr.parse_request([msgpack.packb({"v": 1, "id": "x", "op": "p", "args": {"s": "a" * 200}})], limits)
    assert exc.value.code == pr.TOO_LARGE
    with pytest.raises(pr.ProtocolError) as exc:
        pr.parse_request([msgpack.packb({"v": 1, "id": "x", "op": "p", "args": {}}), b"a", b"b"], limits)
    assert exc.value.code == pr.TOO_LARGE
    with pytest.raises(pr.ProtocolError) as exc:
        pr.check_pixels(11, 10, limits)
    assert exc.value.code == pr.TOO_LARGE
    deep = {}
    for _ in range(40):
        deep = {"d": deep}
    with pytest.raises(pr.ProtocolError):
        pr.parse_request([msgpack.packb({"v": 1, "id": "x", "op": "p", "args": deep})])


def _valid_frames():
    return pr.encode(pr.request("predict", {"image": np.zeros((40, 64, 3), np.uint8), "seed": 1,
                                            "times": np.linspace(0, 1, 8).astype(np.float32)}),
                     inline_below=64)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=4))
def test_fuzz_random_bytes_never_escape(frames):
    try:
        pr.parse_request(frames)
    except pr.ProtocolError as exc:
        assert exc.code in pr.ERROR_CODES


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fuzz_mutated_valid_messages_never_escape(data):
    frames = [bytearray(f) for f in _valid_frames()]
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(frames) - 1))
        f = frames[i]
        action = data.draw(st.sampled_from(["flip", "truncate", "insert", "drop_frame"]))
        if action == "flip" and f:
            j = data.draw(st.integers(0, len(f) - 1))
            f[j] = data.draw(st.integers(0, 255))
        elif action == "truncate":
            del f[data.draw(st.integers(0, len(f))):]
        elif action == "insert":
            j = data.draw(st.integers(0, len(f)))
            f[j:j] = data.draw(st.binary(min_size=1, max_size=8))
        elif action == "drop_frame" and len(frames) > 1:
            frames.pop(i)
    try:
        req = pr.parse_request([bytes(f) for f in frames])
        assert isinstance(req.args, dict)
    except pr.ProtocolError as exc:
        assert exc.code in pr.ERROR_CODES


@pytest.mark.parametrize("v", [True, 1.0, "1", None, 2])
def test_version_must_be_the_integer_one(v):
    envelope = {"v": v, "id": "x", "op": "ping", "args": {}}
    with pytest.raises(pr.ProtocolError) as exc:
        pr.parse_request([msgpack.packb(envelope)])
    assert exc.value.code == pr.UNSUPPORTED_VERSION and exc.value.request_id == "x"
    assert "integer 1" in exc.value.message
    with pytest.raises(pr.ProtocolError) as exc:
        pr.parse_reply([msgpack.packb({"v": v, "id": "x", "type": "result", "result": {}})])
    assert exc.value.code == pr.UNSUPPORTED_VERSION


@pytest.mark.parametrize("shape", [[0, 2**63], [0, 2**63 - 1], [2**40, 0], [0, 0, 2**62, 3]])
def test_zero_dimension_beside_a_huge_one_is_invalid_argument_with_its_id(shape):
    array = {"nd": True, "dtype": "uint8", "shape": shape, "data": b""}
    with pytest.raises(pr.ProtocolError) as exc:
        pr.parse_request([msgpack.packb({"v": 1, "id": "huge-dim", "op": "p", "args": {"a": array}})])
    assert exc.value.code == pr.INVALID_ARGUMENT and exc.value.request_id == "huge-dim"


def test_empty_arrays_with_sane_dimensions_still_decode():
    req = pr.parse_request(pr.encode(pr.request("p", {"a": np.zeros((0, 7, 3), np.float32)})))
    assert req.args["a"].shape == (0, 7, 3)
