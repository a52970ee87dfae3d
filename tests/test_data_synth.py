"""Synthetic scenes: exact motion (frames agree with it), static background, statistics, files, CLI."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from backend.data.samples import list_samples, load_sample
from backend.data.synth import REFERENCE_HEIGHT, SynthConfig, generate, prepare, resimulate, run
from shared.spectral import motion_to_spectral

SMALL = SynthConfig(size=(64, 40), frames=32, fps=30.0)


@pytest.fixture(scope="module")
def full_samples():
    return {seed: generate(seed, SMALL) for seed in range(3)}


def test_sample_layout_and_consistency(full_samples):
    s = full_samples[0]
    assert s["image"].dtype == np.uint8 and s["image"].shape == (40, 64, 3)
    assert s["spectral"].dtype == np.float32 and s["spectral"].shape == (16, 4, 40, 64)
    assert s["valid"].dtype == bool and s["valid"].all()
    assert s["frames"].shape == (32, 40, 64, 3) and s["motion"].shape == (32, 2, 40, 64)
    assert float(s["fps"]) == 30.0 and int(s["T"]) == 32
    np.testing.assert_array_equal(s["frames"][0], s["image"])
    assert np.all(s["motion"][0] == 0)
    np.testing.assert_allclose(motion_to_spectral(s["motion"]), s["spectral"], atol=1e-4)


def test_deterministic_per_seed():
    a = generate(11, SynthConfig(size=(64, 40), frames=32, lite=True))
    b = generate(11, SynthConfig(size=(64, 40), frames=32, lite=True))
    c = generate(12, SynthConfig(size=(64, 40), frames=32, lite=True))
    assert set(a) == {"image", "spectral", "valid", "fps", "T", "seed"}
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["spectral"], b["spectral"])
    assert not np.array_equal(a["image"], c["image"])


def test_lite_spectral_equals_full():
    lite = generate(5, SynthConfig(size=(64, 40), frames=32, lite=True))
    full = generate(5, SMALL)
    np.testing.assert_array_equal(lite["image"], full["image"])
    np.testing.assert_array_equal(lite["spectral"], full["spectral"])


WARP = SynthConfig(size=(128, 80), frames=32, fps=30.0)


@pytest.mark.parametrize("seed", [1, 3, 4, 5])  # tree, meadow, candles, porch
def test_frames_move_exactly_as_motion_says(seed):
    """Frame t sampled at p + F_t(p) reproduces frame 0 at p wherever p's object is still visible there;
    following no motion, or the opposite motion, does clearly worse (so the check is not vacuous)."""
    cfg = WARP
    sc, owner, idx, _ = prepare(seed, cfg)
    s = generate(seed, cfg)
    h, w = owner.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    img0 = s["image"].astype(np.float32)
    err = {"true": [], "zero": [], "negated": []}
    for t in range(2, cfg.frames, 3):
        m = s["motion"][t]
        mx, my = xs + m[0], ys + m[1]
        owner_t = sc.rig.owner_map(cfg.size, t)
        tx = np.clip(np.rint(mx).astype(int), 0, w - 1)
        ty = np.clip(np.rint(my).astype(int), 0, h - 1)
        visible = (owner >= 0) & (owner_t[ty, tx] == owner) & (mx > 0) & (mx < w - 1) & (my > 0) & (my < h - 1)
        big = visible & (np.hypot(m[0], m[1]) > 1.0)
        for name, (fx, fy) in {"true": (mx, my), "zero": (xs, ys), "negated": (xs - m[0], ys - m[1])}.items():
            warped = cv2.remap(s["frames"][t], fx, fy, cv2.INTER_LINEAR).astype(np.float32)
            diff = np.abs(warped - img0).mean(-1)
            err[name].append(diff[visible] if name == "true" else diff[big])
        err.setdefault("true_big", []).append(np.abs(cv2.remap(s["frames"][t], mx, my, cv2.INTER_LINEAR)
                                                     .astype(np.float32) - img0).mean(-1)[big])
    e = {k: np.concatenate(v) for k, v in err.items()}
    assert e["true"].size > 200
    # Grey levels of 255. Rasterising bent, anti-aliased stems leaves a residual that grows with the swing: since
    # the calibration to the real clips (session 11) trees swing 3x more (mean 1.8 px here) and reach a median of
    # 3.3 and a 90th percentile of 14, against 38 for following no motion (checked just below).
    assert np.median(e["true"]) < 4.0, np.median(e["true"])
    assert np.percentile(e["true"], 90) < 16.0, np.percentile(e["true"], 90)
    assert e["true_big"].size > 50
    assert e["true_big"].mean() < 0.5 * e["zero"].mean(), (e["true_big"].mean(), e["zero"].mean())
    assert e["true_big"].mean() < 0.5 * e["negated"].mean()


def test_static_background_is_static(full_samples):
    seed = 2
    sc, owner, idx, motion = prepare(seed, SMALL)
    s = full_samples[seed]
    assert np.all(s["motion"][:, :, owner < 0] == 0)
    assert np.all(s["spectral"][:, :, owner < 0] == 0)
    # pixels never covered by a moving object in any frame (with a 1 px margin) keep their colour exactly
    swept = np.zeros(owner.shape, np.uint8)
    for t in range(SMALL.frames):
        swept |= (sc.rig.owner_map(SMALL.size, t) >= 0).astype(np.uint8)
    far = cv2.dilate(swept, np.ones((5, 5), np.uint8)) == 0
    assert far.sum() > 100
    assert np.all(s["frames"][:, far] == s["image"][far][None])


def test_scene_statistics():
    """Coverage 10-60 %, mean moving displacement ~0.2-2 px at 256x160, most power below 3 Hz."""
    cfg = SynthConfig(size=(128, 80), frames=60, fps=30.0)
    cover, mean_px, in_band = [], [], []
    below_3hz = np.fft.rfftfreq(cfg.frames, 1 / cfg.fps)[1:] <= 3.0
    for seed in range(100, 110):
        sc, owner, idx, motion = prepare(seed, cfg)
        cover.append((owner >= 0).mean())
        if idx.size:
            mean_px.append(np.linalg.norm(motion, axis=1).mean() * REFERENCE_HEIGHT / cfg.size[1])
            spec = np.abs(np.fft.rfft(motion, axis=0)) ** 2
            in_band.append(spec[1:][below_3hz].sum() / spec[1:].sum())
    assert 0.10 <= np.mean(cover) <= 0.60, np.mean(cover)
    assert 0.2 <= np.mean(mean_px) <= 2.0, np.mean(mean_px)
    assert np.median(in_band) > 0.8, np.median(in_band)


def test_run_writes_resumable_atomic_files(tmp_path):
    cfg = SynthConfig(size=(64, 40), frames=32, lite=True)
    r1 = run(tmp_path, 3, 7, cfg, workers=1, log=lambda m: None)
    assert r1["made"] == 3
    files = list_samples(tmp_path)
    assert [p.name for p in files] == ["sample_000000.npz", "sample_000001.npz", "sample_000002.npz"]
    assert (tmp_path / "contact.png").exists()
    assert not list(tmp_path.glob("*.tmp*"))
    r2 = run(tmp_path, 4, 7, cfg, workers=1, log=lambda m: None)
    assert r2["made"] == 1
    # scene i uses seed S + i
    np.testing.assert_array_equal(np.asarray(load_sample(files[1])["image"]), generate(8, cfg)["image"])
    with np.load(files[0], allow_pickle=False) as z:
        assert sorted(z.files) == ["T", "fps", "image", "seed", "spectral", "valid"] and int(z["seed"]) == 7


def _cli(argv):
    """`gid data ...` through the data module's own parser (backend.cli would import every other command)."""
    import argparse

    from backend.data.cli import register

    parser = argparse.ArgumentParser(prog="gid")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"error: {exc}", file=__import__("sys").stderr)
        return 1


def test_cli_registered():
    from backend.cli import SUBCOMMANDS

    assert "backend.data.cli" in SUBCOMMANDS


def test_cli_and_bad_input(tmp_path, capsys):
    main = _cli

    assert main(["data", "synth", "--out", str(tmp_path / "d"), "--count", "1", "--size", "64x40",
                 "--frames", "32", "--lite", "--workers", "1"]) == 0
    assert (tmp_path / "d" / "sample_000000.npz").exists()
    with pytest.raises(SystemExit):
        main(["data", "synth", "--out", str(tmp_path), "--count", "1", "--size", "64by40"])
    assert main(["data", "synth", "--out", str(tmp_path / "e"), "--count", "1", "--frames", "8"]) == 1
    assert "too few" in capsys.readouterr().err


def test_resimulate_is_the_same_scene_under_another_wind():
    """`resimulate` keeps the picture and who moves, redraws the wind: the perfect-sampler reference of eval."""
    cfg = SynthConfig(size=(64, 40), frames=32, lite=True)
    s = generate(3, cfg)
    assert int(s["seed"]) == 3
    a = resimulate(3, cfg, wind_seed=1)
    b = resimulate(3, cfg, wind_seed=2)
    np.testing.assert_array_equal(resimulate(3, cfg, wind_seed=1), a)          # deterministic
    moving = np.abs(s["spectral"]).sum(axis=(0, 1)) > 0
    assert moving.any()
    for r in (a, b):
        assert r.shape == s["spectral"].shape
        np.testing.assert_array_equal(np.abs(r).sum(axis=(0, 1)) > 0, moving)   # the same pixels move
        assert not np.allclose(r, s["spectral"])                                 # under another wind
    assert not np.allclose(a, b)
    jittered = resimulate(3, cfg, wind_seed=1, freq_jitter=0.4)                 # + hidden natural frequencies
    np.testing.assert_array_equal(np.abs(jittered).sum(axis=(0, 1)) > 0, moving)
    assert not np.allclose(jittered, a)


def test_closeup_kind_is_a_large_subject_moving_as_a_whole_and_made_only_on_request(tmp_path):
    """Session 13: `--kind closeup` makes large flower heads before an out-of-focus background. The subject covers
    much of the frame and moves as one piece (its pixels share the motion of the head), the background is smooth
    and still; the default draw of every seed is unchanged (stored sets and eval's re-runs stay valid)."""
    from backend.data.scenes import EXTRA_KINDS, SCENE_KINDS, kind_of_seed
    assert "closeup" in EXTRA_KINDS and "closeup" not in SCENE_KINDS
    assert all(kind_of_seed(seed) in SCENE_KINDS for seed in range(200))
    cfg = SynthConfig(size=(128, 80), frames=32, lite=True)

    def fine_detail(canvas, still):                  # band-pass of the background: its fine texture, not its blobs
        gray = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return np.abs(cv2.GaussianBlur(gray, (0, 0), 0.8) - cv2.GaussianBlur(gray, (0, 0), 2.0))[still].mean()

    cover, detail = [], []
    for seed in range(20, 26):
        sc, owner, idx, motion = prepare(seed, cfg, kind="closeup")
        assert sc.kind == "closeup" and idx.size
        cover.append((owner >= 0).mean())
        meadow = prepare(seed, cfg, kind="meadow")
        detail.append(fine_detail(sc.canvas, owner < 0) / fine_detail(meadow[0].canvas, meadow[1] < 0))
        energy = np.linalg.norm(motion, axis=1).mean(0)   # the subject moves: no pixel of it is left behind
        assert np.median(energy) > 0.2
    assert np.mean(cover) > 0.12, cover              # a meadow's flowers cover a few per cent
    assert np.mean(detail) < 0.75, detail            # out of focus: about half a sharp background's fine detail
    # the file says what was asked for, and eval re-runs the same scene from seed + kind
    s = generate(22, cfg, kind="closeup")
    assert str(s["kind"]) == "closeup"
    assert "kind" not in generate(22, cfg)
    moving = np.abs(s["spectral"]).sum(axis=(0, 1)) > 0
    r = resimulate(22, cfg, wind_seed=1, kind="closeup")
    np.testing.assert_array_equal(np.abs(r).sum(axis=(0, 1)) > 0, moving)
    assert not np.array_equal(np.abs(resimulate(22, cfg, wind_seed=1)).sum(axis=(0, 1)) > 0, moving)
    # the CLI asks for it by name; a wrong name is a clear error, not a silent default
    assert _cli(["data", "synth", "--out", str(tmp_path / "c"), "--count", "1", "--size", "64x40",
                 "--frames", "32", "--lite", "--workers", "1", "--kind", "closeup"]) == 0
    with np.load(tmp_path / "c" / "sample_000000.npz", allow_pickle=False) as z:
        assert str(z["kind"]) == "closeup"
    with pytest.raises(ValueError, match="unknown scene kind"):
        run(tmp_path / "x", 1, 0, cfg, workers=1, log=lambda m: None, kind="volcano")


def test_field_kind_moves_most_of_the_frame():
    """Session 13: `--kind field`, a field of grain in a strong wind (the issue's wheat field that got no motion):
    the stalks cover about twice what a meadow's grass covers (thin stalks: the ground shows between them at this
    size) and all of them move; the sky above the horizon stays still."""
    from backend.data.scenes import EXTRA_KINDS
    assert "field" in EXTRA_KINDS
    cfg = SynthConfig(size=(128, 80), frames=32, lite=True)
    for seed in range(30, 33):
        sc, owner, idx, motion = prepare(seed, cfg, kind="field")
        assert sc.kind == "field"
        meadow = (prepare(seed, cfg, kind="meadow")[1] >= 0).mean()
        assert (owner >= 0).mean() > max(0.2, 1.5 * meadow), ((owner >= 0).mean(), meadow)
        assert (owner[:2] >= 0).mean() < 0.1                  # the top rows are sky (a far stalk may reach them)
        assert np.median(np.linalg.norm(motion, axis=1).mean(0)) > 0.1
