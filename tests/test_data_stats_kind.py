"""`gid data stats --by-kind`: kinds of real clips and synthetic scenes, spectrum slope / peak / tail, amounts."""
from __future__ import annotations

import json

import numpy as np
import pytest

from backend import cli
from backend.data.samples import write_npz_atomic
from backend.data.scenes import SCENE_KINDS, kind_of_seed
from backend.data.stats import clip_kind, spectrum_figures, stats_by_kind
from backend.data.synth import SynthConfig, generate
from shared.spectral import from_complex


def test_clip_kinds_from_names():
    assert clip_kind("/x/tree_0_loop.mp4") == "trees"
    assert clip_kind("8531246_loop_29.mp4") == "trees"          # an alternate render of fern_loop
    assert clip_kind("candle_0.mp4") == "candles" and clip_kind("latern_2_loop.mp4") == "cloth"
    assert clip_kind("wheat_field_wind.mov") == "grass" and clip_kind("my_flag.mp4") == "cloth"
    assert clip_kind("12345.mp4") == "other"


def test_spectrum_figures_of_a_power_law():
    k = np.arange(1, 16, dtype=float)
    f = spectrum_figures(k ** -2.0)
    assert f["slope"] == pytest.approx(-2.0) and f["peak_k"] == 1
    assert f["tail_share"] == pytest.approx((k[4:] ** -2).sum() / (k ** -2).sum())
    assert spectrum_figures(np.exp(-0.5 * (k - 6) ** 2))["peak_k"] == 6


def test_kind_of_seed_is_the_generators_kind():
    cfg = SynthConfig(size=(64, 40), frames=32, lite=True)
    from backend.data.synth import prepare
    for seed in range(4):
        assert kind_of_seed(seed) == prepare(seed, cfg)[0].kind and kind_of_seed(seed) in SCENE_KINDS


def test_stats_by_kind_on_real_and_synthetic_folders(tmp_path):
    real, synth = tmp_path / "real", tmp_path / "synth"
    real.mkdir()
    T, K, h, w = 30, 8, 20, 32
    windows = {}
    for i, (video, term, swing) in enumerate((("a/tree_0_loop.mp4", 1, 0.5), ("candle_0.mp4", 3, 0.1))):
        c = np.zeros((K, 2, h, w), np.complex128)
        c[term, 0] = swing * T / 2                       # every pixel swings by `swing` px at one term, along x
        write_npz_atomic(real / f"sample_{i * 10000:06d}.npz",
                         {"image": np.zeros((h, w, 3), np.uint8), "spectral": from_complex(c),
                          "valid": np.ones((h, w), bool), "fps": np.float32(30), "T": np.int32(T)})
        windows[f"{i * 10000:06d}"] = {"video": video, "start": 0}
    (real / "windows.json").write_text(json.dumps(windows))
    assert cli.main(["data", "synth", "--out", str(synth), "--count", "2", "--size", "64x40", "--frames", "32",
                     "--lite", "--workers", "1"]) == 0
    out = stats_by_kind([real, synth])
    assert out["trees"]["samples"] == 1 and out["trees"]["peak_k"] == 1
    assert out["candles"]["peak_k"] == 3
    # amounts on a 256-wide grid: a 0.5 px cosine swing has mean |F_t - F_0| = 0.5 px on a 32-wide grid
    assert out["trees"]["amount_px"] == pytest.approx(0.5 * 256 / w, rel=1e-3)
    assert sum(v["samples"] for k, v in out.items() if k.startswith("synthetic ")) == 2
    rc = cli.main(["data", "stats", str(real), "--out", str(tmp_path / "s.json"), "--by-kind"])
    assert rc == 0 and set(json.loads((tmp_path / "s.json").read_text())["by_kind"]) == {"trees", "candles"}
