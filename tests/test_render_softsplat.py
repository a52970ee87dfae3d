"""Softmax splatting: exactness, numerics, gradients (backend/render/softsplat.py)."""
from __future__ import annotations

import pytest
import torch

from backend.render.softsplat import softsplat


def _rand(shape, seed=0, dtype=torch.float32):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("mode", ["soft", "avg", "linear", "sum"])
def test_zero_flow_is_identity_with_full_coverage(mode):
    x = _rand((2, 5, 7, 9))
    flow = torch.zeros(2, 2, 7, 9)
    metric = _rand((2, 1, 7, 9), seed=1) if mode in ("soft", "linear") else None
    res = softsplat(x, flow, metric, mode=mode)
    assert torch.allclose(res.output, x, atol=1e-6)
    assert torch.allclose(res.coverage, torch.ones_like(res.coverage))


def test_integer_shift_is_exact_shift():
    x = _rand((1, 3, 6, 8))
    flow = torch.zeros(1, 2, 6, 8)
    flow[:, 0] = 2.0     # right by 2
    flow[:, 1] = -1.0    # up by 1
    res = softsplat(x, flow, torch.zeros(1, 1, 6, 8))
    expected = torch.zeros_like(x)
    expected[:, :, 0:5, 2:8] = x[:, :, 1:6, 0:6]
    assert torch.equal(res.output, expected)
    cov = torch.zeros(1, 1, 6, 8)
    cov[:, :, 0:5, 2:8] = 1.0
    assert torch.equal(res.coverage, cov)


def test_large_metric_does_not_overflow_and_front_wins():
    # two sources land on the same target; the one with the larger metric must win; metrics near float max
    x = torch.tensor([[[[1.0, 5.0]]]])                 # (1,1,1,2)
    flow = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # pixel 0 moves onto pixel 1
    metric = torch.tensor([[[[1e30, 1e30 - 1e24]]]])   # huge values; differences still huge -> front wins
    res = softsplat(x, flow, metric)
    assert torch.isfinite(res.output).all()
    assert res.output[0, 0, 0, 1] == pytest.approx(1.0)
    metric = torch.tensor([[[[500.0, 501.0]]]])        # exp(501) overflows float32 without the shift
    res = softsplat(x, flow, metric)
    expected = (1.0 * torch.exp(torch.tensor(-1.0)) + 5.0) / (torch.exp(torch.tensor(-1.0)) + 1.0)
    assert res.output[0, 0, 0, 1] == pytest.approx(float(expected), rel=1e-6)


def test_tiny_weights_are_not_swamped():
    # pixel 1 (metric 0) moves alone onto pixel 2, whose own source (metric 60) moved away onto pixel 0:
    # its weight exp(0 - 60) ~ 1e-26 must still give its exact value (no epsilon in the normaliser)
    x = torch.tensor([[[[3.0, 7.0, 0.0]]]])
    flow = torch.tensor([[[[0.0, 1.0, -2.0]], [[0.0, 0.0, 0.0]]]])
    metric = torch.tensor([[[[60.0, 0.0, 60.0]]]])
    res = softsplat(x, flow, metric)
    assert res.output[0, 0, 0, 2] == pytest.approx(7.0, rel=1e-6)
    assert res.coverage[0, 0, 0, 1] == 0.0 and res.output[0, 0, 0, 1] == 0.0


def test_empty_pixels_stay_empty():
    x = torch.ones(1, 2, 5, 5)
    flow = torch.zeros(1, 2, 5, 5)
    flow[:, 0, :, 2] = 1.0     # column 2 moves onto column 3: column 2 becomes a hole
    res = softsplat(x, flow, torch.zeros(1, 1, 5, 5))
    assert torch.equal(res.output[:, :, :, 2], torch.zeros(1, 2, 5))
    assert torch.equal(res.normalizer[:, :, :, 2], torch.zeros(1, 1, 5))
    assert torch.equal(res.coverage[:, :, :, 3], torch.full((1, 1, 5), 2.0))


def test_non_finite_flow_is_ignored():
    x = _rand((1, 3, 4, 4))
    flow = torch.zeros(1, 2, 4, 4)
    flow[0, 0, 1, 1] = float("nan")
    flow[0, 1, 2, 2] = float("inf")
    flow[0, 0, 3, 0] = float("-inf")
    res = softsplat(x, flow, torch.zeros(1, 1, 4, 4))
    assert torch.isfinite(res.output).all() and torch.isfinite(res.coverage).all()
    for (i, j) in ((1, 1), (2, 2), (3, 0)):
        assert res.coverage[0, 0, i, j] == 0 and torch.equal(res.output[0, :, i, j], torch.zeros(3))
    ok = res.coverage[0, 0] > 0
    assert torch.allclose(res.output[0][:, ok], x[0][:, ok])


def test_deterministic_path_matches_and_repeats():
    x = _rand((2, 4, 12, 10), seed=3)
    flow = (_rand((2, 2, 12, 10), seed=4) - 0.5) * 6
    metric = _rand((2, 1, 12, 10), seed=5) * 10
    fast = softsplat(x, flow, metric)
    det1 = softsplat(x, flow, metric, deterministic=True)
    det2 = softsplat(x, flow, metric, deterministic=True)
    assert torch.equal(det1.output, det2.output)
    assert torch.allclose(fast.output, det1.output, atol=1e-5)
    assert torch.allclose(fast.coverage, det1.coverage, atol=1e-5)


def test_matches_per_corner_reference():
    from scripts.bench_splat import make_inputs, reference_softsplat
    x, flow, metric = make_inputs(2, 6, 24, 40, torch.device("cpu"))
    assert torch.allclose(softsplat(x, flow, metric).output, reference_softsplat(x, flow, metric), atol=1e-5)


@pytest.mark.parametrize("mode", ["soft", "avg"])
def test_gradcheck_float64_input_and_flow(mode):
    g = torch.Generator().manual_seed(7)
    x = torch.rand(1, 2, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    # fractional flows away from integer boundaries (the bilinear weights have kinks at integers)
    flow = (0.3 + 0.4 * torch.rand(1, 2, 4, 5, generator=g, dtype=torch.float64)) * torch.tensor(
        [1.0, -1.0], dtype=torch.float64).view(1, 2, 1, 1)
    flow.requires_grad_(True)
    metric = torch.rand(1, 1, 4, 5, generator=g, dtype=torch.float64, requires_grad=mode == "soft")

    def fn(a, f, m):
        return softsplat(a, f, m if mode == "soft" else None, mode=mode).output

    assert torch.autograd.gradcheck(fn, (x, flow, metric), eps=1e-6, atol=1e-6)


def test_bad_input_raises():
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match="mode"):
        softsplat(x, torch.zeros(1, 2, 4, 4), mode="max")
    with pytest.raises(ValueError, match="needs metric"):
        softsplat(x, torch.zeros(1, 2, 4, 4), mode="soft")
    with pytest.raises(ValueError, match="does not match"):
        softsplat(x, torch.zeros(1, 2, 4, 5), torch.zeros(1, 1, 4, 4))


def test_half_input_accumulates_in_float32():
    x = _rand((1, 3, 8, 8)).half()
    flow = torch.full((1, 2, 8, 8), 0.5).half()
    res = softsplat(x, flow, torch.zeros(1, 1, 8, 8).half())
    ref = softsplat(x.float(), flow.float(), torch.zeros(1, 1, 8, 8))
    assert res.output.dtype == torch.float16
    assert torch.allclose(res.output.float(), ref.output, atol=2e-3)
