"""IBR training: a few real steps on small real sample files, checkpoint, resume, ship (backend/render/train.py)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from backend.render.api import Renderer
from backend.render.train import add_arguments, lr_at, render_loss, run
from shared.spectral import motion_to_spectral


def _write_sample(path, seed: int, h: int = 40, w: int = 64, T: int = 20) -> None:
    """A textured square oscillating over a textured still background; frames drawn with that exact motion."""
    rng = np.random.default_rng(seed)
    bg = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    fg = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
    amp = rng.uniform(1, 4)
    frames = np.empty((T, h, w, 3), np.uint8)
    motion = np.zeros((T, 2, h, w), np.float32)
    for t in range(T):
        dx = int(round(amp * np.sin(2 * np.pi * t / T)))
        frames[t] = bg
        frames[t, 12:28, 24 + dx:40 + dx] = fg
        motion[t, 0, 12:28, 24:40] = dx
    np.savez(path, image=frames[0], spectral=motion_to_spectral(motion, K=8), valid=np.ones((h, w), bool),
             fps=np.float32(30), T=np.int32(T), frames=frames, motion=motion)


def _args(tmp_path, **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--batch", "2", "--crop", "48x32",
            "--val-count", "1", "--val-every", "2", "--warmup", "1"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return parser.parse_args(argv)


def test_train_checkpoint_resume_and_ship(tmp_path):
    (tmp_path / "data").mkdir()
    for i in range(3):
        _write_sample(tmp_path / "data" / f"sample_{i:06d}.npz", seed=i)
    assert run(_args(tmp_path, steps=2)) == 0
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 2 and np.isfinite(state["best_psnr"])
    assert (tmp_path / "run" / "best" / "model.safetensors").exists()
    ship = tmp_path / "ship"
    assert run(_args(tmp_path, steps=4, resume=True, ship=ship)) == 0
    state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 4
    r = Renderer.load(ship, device="cpu")
    assert "ibr" in r.info()["modes"]


def test_loss_is_zero_for_a_perfect_frame_and_lr_schedule():
    x = torch.rand(2, 3, 24, 24)
    loss, parts = render_loss(x, x, torch.ones(2, 1, 24, 24), 0.2, 0.5)
    assert float(loss) < 1e-6 and parts["ssim"] > 0.999
    bad, _ = render_loss(x, x.flip(-1), torch.ones(2, 1, 24, 24), 0.2, 0.5)
    assert float(bad) > 0.1
    assert lr_at(0, 1.0, 10, 100) == 0.1 and lr_at(10, 1.0, 10, 100) == 1.0
    assert abs(lr_at(100, 1.0, 10, 100) - 0.1) < 1e-9
