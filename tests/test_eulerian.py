"""shared/eulerian.py alone: integration, loop weights, border fade, hints validation, densification."""
from __future__ import annotations

import numpy as np
import pytest

from shared import eulerian as E


def test_uniform_field_integrates_to_t_times_v_both_ways():
    v = np.zeros((2, 20, 30), np.float32)
    v[0], v[1] = 0.75, -0.25
    fwd, bwd = E.integrate(v, 10), E.integrate(-v, 10)
    assert fwd.shape == (11, 2, 20, 30) and np.all(fwd[0] == 0)
    np.testing.assert_allclose(fwd[7, 0], 5.25, atol=1e-5)
    np.testing.assert_allclose(fwd[7, 1], -1.75, atol=1e-5)
    np.testing.assert_allclose(bwd[7], -fwd[7], atol=1e-5)


def test_integration_follows_a_curved_field():
    # rigid rotation about the centre (a linear field, so bilinear sampling is exact): each Euler step turns
    # by atan(w) and scales the radius by sqrt(1 + w^2), exactly
    H = W = 61
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    w = 2 * np.pi / 200                               # radians per frame
    v = np.stack([-(yy - 30) * w, (xx - 30) * w])
    f = E.integrate(v, 25)[25]
    r0 = np.hypot(xx - 30, yy - 30)
    r1 = np.hypot(xx + f[0] - 30, yy + f[1] - 30)
    inner = r0 < 20
    np.testing.assert_allclose(r1[inner], r0[inner] * (1 + w * w) ** 12.5, atol=2e-3)
    ang = np.arctan2(yy + f[1] - 30, xx + f[0] - 30) - np.arctan2(yy - 30, xx - 30)
    ang = (ang + np.pi) % (2 * np.pi) - np.pi
    assert np.abs(ang[inner & (r0 > 3)] - 25 * np.arctan(w)).max() < 1e-3


def test_sample_bilinear_matches_linear_field_and_clamps():
    yy, xx = np.mgrid[0:8, 0:10].astype(np.float32)
    field = np.stack([2 * xx + 3 * yy])
    out = E.sample_bilinear(field, np.array([1.25, 20.0, -3.0]), np.array([2.5, 1.0, 7.5]))
    np.testing.assert_allclose(out[0], [2 * 1.25 + 3 * 2.5, 2 * 9 + 3 * 1, 0 + 3 * 7], atol=1e-5)


def test_loop_pair_weights_and_wrap():
    assert E.loop_pair(0, 8) == (0, 8, 1.0, 0.0)
    assert E.loop_pair(8, 8) == E.loop_pair(0, 8)          # frame N is frame 0
    k, back, wf, wb = E.loop_pair(6, 8)
    assert (k, back) == (6, 2) and wf == pytest.approx(0.25) and wb == pytest.approx(0.75)
    with pytest.raises(ValueError):
        E.loop_pair(0, 0)


def test_border_fade_zero_outside_ramp_inside_and_picture_edge_is_not_a_border():
    m = np.zeros((40, 50), bool)
    m[10:30] = True                                          # a band touching the left and right edges
    f = E.border_fade(m, 5)
    assert np.all(f[~m] == 0) and f.max() == 1.0
    np.testing.assert_allclose(f[10:16, 25], [0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
    assert np.all(f[20, :] == 1.0)                           # no fade at the picture's left/right edges


def _band(h=40, w=60):
    m = np.zeros((h, w), bool)
    m[10:30] = True
    return m


def test_single_stroke_densifies_to_a_uniform_field_zero_outside():
    m = _band()
    strokes = E.parse_hints({"strokes": [{"points": [[5, 20], [30, 20], [55, 20]], "speed": 1.5}]}, (60, 40), m)
    v = E.densify(strokes, m)
    assert v.shape == (2, 40, 60) and v.dtype == np.float32
    np.testing.assert_allclose(v[0][m], 1.5, atol=1e-3)
    np.testing.assert_allclose(v[1][m], 0.0, atol=1e-3)
    assert np.all(v[:, ~m] == 0)


def test_region_without_stroke_stays_still():
    m = np.zeros((40, 60), bool)
    m[2:15] = True
    m[25:38] = True                                          # two separate pools, a stroke in the first only
    strokes = E.parse_hints({"strokes": [{"points": [[5, 8], [50, 8]], "speed": 1.0}]}, (60, 40), m)
    v = E.densify(strokes, m)
    assert np.abs(v[:, 25:38]).max() == 0.0 and v[0, 8, 30] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("hints, needle", [
    ({"strokes": [{"points": [[5, 2], [50, 2]], "speed": 1.0}]}, "stroke 0 leaves the fluid mask"),
    ({"strokes": [{"points": [[5, 20], [50, 20]], "speed": 1.0},
                  {"points": [[5, 20], [80, 20]], "speed": 1.0}]}, "stroke 1 leaves the image"),
    ({"strokes": [{"points": [[5, 20], [50, 20]], "speed": 0}]}, "speed must be in (0"),
    ({"strokes": [{"points": [[5, 20], [50, 20]], "speed": 1e9}]}, "speed must be in (0"),
    ({"strokes": [{"points": [[5, 20], [50, 20]], "speed": float("nan")}]}, "finite"),
    ({"strokes": [{"points": [[5, 20], [50, 20]], "speed": "fast"}]}, "finite number"),
    ({"strokes": [{"points": [[5, 20], [5.2, 20]], "speed": 1}]}, "shorter than one pixel"),
    ({"strokes": [{"points": [[5, 20]], "speed": 1}]}, "2..4096"),
    ({"strokes": [{"points": [[5, 20], [50, float("inf")]], "speed": 1}]}, "point 1"),
    ({"strokes": []}, "1..256 strokes"),
    ({"lines": []}, '{"strokes"'),
    ([1, 2], '{"strokes"'),
    ({"strokes": [{"points": [[5, 20], [50, 20]]}]}, "exactly"),
])
def test_bad_hints_name_the_problem(hints, needle):
    with pytest.raises(E.HintsError) as err:
        E.parse_hints(hints, (60, 40), _band())
    assert needle in str(err.value)


def test_bad_masks():
    with pytest.raises(E.HintsError, match="empty"):
        E.check_mask(np.zeros((10, 10), np.uint8))
    with pytest.raises(E.HintsError, match="is 10x10 but the image is 12x10"):
        E.check_mask(np.full((10, 10), 255, np.uint8), (12, 10))


def test_endpoint_error():
    m = np.ones((4, 4), bool)
    a = np.zeros((2, 4, 4))
    b = np.zeros((2, 4, 4))
    b[0] = 3
    b[1] = 4
    assert E.endpoint_error(a, b, m) == pytest.approx(5.0)


def test_prior_is_corrected_near_the_stroke_and_kept_far_from_it():
    m = np.ones((40, 160), bool)
    prior = np.zeros((2, 40, 160), np.float32)
    prior[0] = 0.5                                           # the prior says 0.5 px/frame right everywhere
    stroke = E.parse_hints({"strokes": [{"points": [[5, 20], [25, 20]], "speed": 1.5}]}, (160, 40), m)
    v = E.densify(stroke, m, prior=prior)
    assert v[0, 20, 15] == pytest.approx(1.5, abs=0.02)      # on the stroke: the stroke
    assert v[0, 20, 150] == pytest.approx(0.5, abs=0.05)     # far away: the prior
    assert 0.5 < v[0, 20, 40] < 1.5                          # in between: a blend
    plain = E.densify(stroke, m)                             # without a prior one stroke sets everything
    np.testing.assert_allclose(plain[0], 1.5, atol=1e-3)
    with pytest.raises(ValueError, match="prior"):
        E.densify(stroke, m, prior=np.zeros((2, 10, 10)))
