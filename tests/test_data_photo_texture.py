"""Real photo texture in synthetic scenes (backend/data/photo_texture.py): the bank is cut where the real motion
says, the texture goes on the right pixels, and the motion target is untouched."""
from __future__ import annotations

import numpy as np
import pytest

from backend.data import photo_texture as pt
from backend.data.samples import load_sample, sample_path, write_npz_atomic
from backend.data.synth import SynthConfig, generate

W, H = 256, 160


def _real_like_folder(tmp_path):
    """One 'real' sample: the left half red and moving 1 px, the right half blue and still."""
    folder = tmp_path / "real"
    folder.mkdir()
    image = np.zeros((H, W, 3), np.uint8)
    image[:, :W // 2] = (200, 30, 30)
    image[:, W // 2:] = (30, 30, 200)
    spectral = np.zeros((16, 4, H, W), np.float32)
    spectral[1, 0, :, :W // 2] = 75.0          # a cosine term in x: the left half swings by ~1 px on average
    write_npz_atomic(sample_path(folder, 0), {"image": image, "spectral": spectral, "valid": np.ones((H, W), bool),
                                              "fps": np.float32(30), "T": np.int32(150)})
    return folder


def test_bank_cuts_moving_and_still_patches_where_the_motion_says(tmp_path):
    bank = pt.build_bank([_real_like_folder(tmp_path)], per_picture=20)
    assert bank["moving"].shape[1:] == (pt.PATCH, pt.PATCH, 3) and len(bank["moving"]) == 20
    assert len(bank["still"]) == 20
    red = bank["moving"][..., 0].astype(int) - bank["moving"][..., 2]
    blue = bank["still"][..., 2].astype(int) - bank["still"][..., 0]
    # MIN_COVER lets a patch overlap the other side by a few columns, never mostly
    assert (red.mean(axis=(1, 2)) > 100).all() and (blue.mean(axis=(1, 2)) > 100).all()
    pt.save_bank(bank, tmp_path / "bank.npz")
    loaded = pt.load_bank(str(tmp_path / "bank.npz"))
    assert np.array_equal(loaded["moving"], bank["moving"])


def test_bank_needs_both_kinds(tmp_path):
    folder = tmp_path / "still"
    folder.mkdir()
    write_npz_atomic(sample_path(folder, 0), {"image": np.zeros((H, W, 3), np.uint8),
                                              "spectral": np.zeros((16, 4, H, W), np.float32),
                                              "valid": np.ones((H, W), bool), "fps": np.float32(30),
                                              "T": np.int32(150)})
    with pytest.raises(ValueError, match="no moving patches"):
        pt.build_bank([folder])


def test_quilt_has_no_seams_and_stays_in_range():
    rng = np.random.default_rng(0)
    flat = np.full((3, pt.PATCH, pt.PATCH, 3), 77, np.uint8)
    out = pt.quilt(flat, (W, H), rng)
    assert out.shape == (H, W, 3) and np.allclose(out, 77, atol=1e-3)
    mixed = rng.integers(40, 200, (8, pt.PATCH, pt.PATCH, 3)).astype(np.uint8)
    out = pt.quilt(mixed, (W, H), rng)
    assert out.min() >= 40 - 1e-3 and out.max() <= 200 + 1e-3


def test_texture_goes_on_the_right_pixels():
    rng = np.random.default_rng(1)
    bank = {"moving": np.zeros((4, pt.PATCH, pt.PATCH, 3), np.uint8), "still": np.zeros((4, pt.PATCH, pt.PATCH, 3),
                                                                                          np.uint8)}
    bank["moving"][..., 1] = 250                              # flat green: colour, no detail
    image = np.full((H, W, 3), 128, np.uint8)
    moving = np.zeros((H, W), bool)
    moving[40:120, 60:200] = True
    outs = [pt.apply_photo_texture(image, moving, bank, np.random.default_rng(s)) for s in range(8)]
    for out in outs:
        assert out.shape == image.shape and out.dtype == np.uint8
        g_moving, g_still = out[moving][:, 1].astype(int), out[~moving][:, 1].astype(int)
        assert (g_moving >= 128).all() and (g_still <= 128).all()
    assert np.mean([o[moving][:, 1].mean() for o in outs]) > 150        # on average ~30 % of the colour comes
    with pytest.raises(ValueError, match="does not match"):
        pt.apply_photo_texture(image, moving[:-1], bank, rng)


def test_textured_scene_keeps_its_exact_motion(tmp_path):
    bank = pt.build_bank([_real_like_folder(tmp_path)], per_picture=20)
    pt.save_bank(bank, tmp_path / "bank.npz")
    plain = generate(3, SynthConfig(lite=True))
    cfg = SynthConfig(lite=True, photo_texture=str(tmp_path / "bank.npz"), photo_texture_share=1.0)
    textured, again = generate(3, cfg), generate(3, cfg)
    assert np.array_equal(textured["spectral"], plain["spectral"])          # the motion target is untouched
    assert not np.array_equal(textured["image"], plain["image"])
    assert np.array_equal(textured["image"], again["image"])                # deterministic in the seed
    assert bool(textured["photo_texture"]) and "photo_texture" not in plain
    none = generate(3, SynthConfig(lite=True, photo_texture=str(tmp_path / "bank.npz"), photo_texture_share=0.0))
    assert np.array_equal(none["image"], plain["image"])


def test_config_refuses_what_it_cannot_do(tmp_path):
    with pytest.raises(ValueError, match="lite"):
        SynthConfig(lite=False, photo_texture=str(tmp_path / "bank.npz"), photo_texture_share=0.5)
    with pytest.raises(ValueError, match="needs a photo_texture bank"):
        SynthConfig(lite=True, photo_texture_share=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        SynthConfig(lite=True, photo_texture="x.npz", photo_texture_share=1.5)


def test_cli_makes_a_textured_set(tmp_path, capsys):
    from backend.cli import main
    real = _real_like_folder(tmp_path)
    out = tmp_path / "tex"
    assert main(["data", "synth", "--out", str(out), "--count", "2", "--lite", "--workers", "1",
                 "--photo-texture", str(real), "--photo-texture-share", "1"]) == 0
    assert (out / "photo_texture_bank.npz").exists()
    s = load_sample(sample_path(out, 0))
    assert s["image"].shape == (H, W, 3)
    capsys.readouterr()
    assert main(["data", "synth", "--out", str(tmp_path / "full"), "--count", "1", "--photo-texture", str(real)]) != 0
    assert "--photo-texture needs --lite" in capsys.readouterr().err
    assert not (tmp_path / "full").exists()
