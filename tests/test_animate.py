"""`gid animate` through the real CLI entry point: outputs, atomic writes, one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.cli import main

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def scene(tmp_path):
    rng = np.random.default_rng(0)
    image = (rng.random((32, 48, 3)) * 255).astype(np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    spectral = np.zeros((16, 4, 16, 24), np.float32)
    spectral[1, 0] = 150.0 * 3.0           # ~3 px sway in x at frequency 1 (T=150 frames at 30 fps)
    np.savez(tmp_path / "motion.npz", spectral=spectral, fps=np.float32(30), T=np.int32(150))
    return tmp_path, image


def test_png_folder_frame0_is_the_image(scene):
    tmp, image = scene
    rc = main(["animate", str(tmp / "in.png"), "-o", str(tmp / "frames"), "--spectral", str(tmp / "motion.npz"),
               "--mode", "splat", "--seconds", "0.5", "--fps", "8"])
    assert rc == 0
    files = sorted(p.name for p in (tmp / "frames").iterdir())
    assert files == [f"frame_{i:05d}.png" for i in range(4)]     # no temporary files left
    frames = [np.asarray(Image.open(tmp / "frames" / f)) for f in files]
    np.testing.assert_array_equal(frames[0], image)
    assert np.abs(frames[2].astype(int) - image).mean() > 1      # it moves


def test_mp4_looped_odd_size(scene):
    import imageio_ffmpeg
    tmp, _ = scene
    Image.fromarray(np.full((31, 47, 3), 128, np.uint8)).save(tmp / "odd.png")
    out = tmp / "clip.mp4"
    rc = main(["animate", str(tmp / "odd.png"), "-o", str(out), "--spectral", str(tmp / "motion.npz"),
               "--mode", "splat", "--seconds", "1", "--fps", "6", "--loop"])
    assert rc == 0
    assert [p.name for p in tmp.iterdir() if p.name.startswith(".")] == []
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert tuple(meta["size"]) == (48, 32)                        # padded to even for H.264
    assert sum(1 for _ in reader) == 6


@pytest.mark.parametrize("argv, needle", [
    (["animate", "{tmp}/missing.png", "-o", "{tmp}/o.mp4", "--spectral", "{tmp}/motion.npz"], "does not exist"),
    (["animate", "{tmp}/in.png", "-o", "{tmp}/o.gif", "--spectral", "{tmp}/motion.npz"], "must end in .mp4"),
    (["animate", "{tmp}/in.png", "-o", "{tmp}/o.mp4", "--spectral", "{tmp}/in.png"], "cannot read"),
    (["animate", "{tmp}/in.png", "-o", "{tmp}/o.mp4", "--spectral", "{tmp}/motion.npz", "--seconds", "0"], "> 0"),
    (["animate", "{tmp}/motion.npz", "-o", "{tmp}/o.mp4"], "cannot read image"),
    (["animate", "{tmp}/in.png", "-o", "{tmp}/o.mp4", "--placement", "2"], "--placement must be in 0..1"),
])
def test_errors_are_one_line_and_nonzero(scene, capsys, argv, needle):
    tmp, _ = scene
    rc = main([a.format(tmp=tmp) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0
    assert len(err) == 1 and err[0].startswith("gid animate: error:") and needle in err[0], err
    assert not (tmp / "o.mp4").exists()


def test_predict_path_needs_a_motion_model_or_works(scene, capsys):
    tmp, _ = scene
    rc = main(["animate", str(tmp / "in.png"), "-o", str(tmp / "p"), "--mode", "splat", "--seconds", "0.25",
               "--fps", "8", "--steps", "2", "--save-spectral", str(tmp / "saved.npz")])
    if rc != 0:
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "no motion model available" in err[0], err
        assert not (tmp / "p").exists()
    else:
        assert len(list((tmp / "p").iterdir())) == 2
        with np.load(tmp / "saved.npz", allow_pickle=False) as z:
            assert z["spectral"].ndim == 5 and np.isfinite(z["spectral"]).all()
