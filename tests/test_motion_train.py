"""`gid train vae|ldm|ldm-freq` end to end on a tiny data set: outputs, resume, freezing, predictor loading."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.cli import main
from backend.train.common import TrainClock, load_state, lr_at, safetensors_keys
from tests.motion_fixtures import write_dataset

SET = ["work_size=[32,16]", "vae_channels=[8,8]", "unet_channels=[16,32]", "unet_groups=8",
       "image_encoder_channels=[8]", "cond_channels=8", "freq_attention_heads=2", "freq_attention_levels=[1]",
       "vae_crop=[16,16]", "checkpoint_every=2", "sample_steps=2", "warmup_steps=1", "refine_channels=8",
       "refine_blocks=2", "refine_crop=[32,16]"]


def test_lr_schedule_and_clock():
    assert lr_at(0, 1.0, 100, 10) == pytest.approx(0.1)
    assert lr_at(10, 1.0, 100, 10) == pytest.approx(1.0)
    assert lr_at(100, 1.0, 100, 10) == pytest.approx(0.1)
    assert lr_at(20, 1.0, 100, 10, progress=1.0) == pytest.approx(0.1)
    clock = TrainClock(5, 0, None)
    assert not clock.done(4) and clock.done(5) and clock.fraction(3) is None


def test_three_stages_resume_and_predict(tmp_path):
    data = write_dataset(tmp_path / "data", 12, size=(64, 32))
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--threads", "1", "--min-samples", "4",
              "--holdout-every", "6"]
    assert main(["train", "vae", *common, "--steps", "2", "--batch", "4", "--eval-every", "2", "--set", *SET]) == 0
    for name in ("config.json", "norm_stats.json", "model.safetensors", "state.pt", "log.jsonl"):
        assert (run / "vae" / name).is_file()
    assert list((run / "vae" / "samples").glob("*.png"))
    assert main(["train", "vae", *common, "--steps", "3", "--batch", "4", "--eval-every", "5"]) == 0   # resumes
    assert load_state(run / "vae" / "state.pt")["step"] == 3

    assert main(["train", "ldm", *common, "--steps", "2", "--batch", "4", "--eval-every", "2",
                 "--sample-steps", "1"]) == 0
    record = json.loads((run / "ldm" / "log.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(record["val_loss"]) and -1 <= record["val_energy_corr"] <= 1
    assert main(["train", "ldm-freq", *common, "--steps", "2", "--batch", "1", "--eval-every", "5"]) == 0
    keys = safetensors_keys(run / "ldm_freq" / "model.safetensors")
    assert any(k.startswith("freq_attn_up.1") for k in keys)

    # stage 2 trained only the frequency attention: every other weight equals stage 1's
    from safetensors.torch import load_file
    s1, s2 = load_file(run / "ldm" / "model.safetensors"), load_file(run / "ldm_freq" / "model.safetensors")
    for k, v in s1.items():
        np.testing.assert_array_equal(v.numpy(), s2[k].numpy())

    ckpt = tmp_path / "ckpt"
    shutil.copytree(run / "vae", ckpt / "vae")
    shutil.copytree(run / "ldm_freq", ckpt / "ldm")
    from backend.motion.predictor import MotionPredictor
    pred = MotionPredictor.load(ckpt, device="cpu").predict(np.zeros((32, 64, 3), np.uint8), steps=1)
    assert pred.spectral.shape == (1, 16, 4, 16, 32)

    # the image-guided refiner: trains behind the VAE, resumes, and the predictor then answers on its 2x grid
    assert main(["train", "refine", *common, "--steps", "2", "--batch", "3", "--eval-every", "2"]) == 0
    assert main(["train", "refine", *common, "--steps", "3", "--batch", "3", "--eval-every", "3"]) == 0
    assert load_state(run / "refine" / "state.pt")["step"] == 3
    record = json.loads((run / "refine" / "log.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(record["val_amp_err_plain"]) and np.isfinite(record["val_amp_err_refined"])
    shutil.copytree(run / "refine", ckpt / "refine")
    predictor = MotionPredictor.load(ckpt, device="cpu")
    image = np.zeros((20, 64, 3), np.uint8)                  # wider than the working aspect: letterboxed
    assert predictor.predict(image, steps=1).spectral.shape == (1, 16, 4, 20, 64)
    assert predictor.predict(image, steps=1, refine=False).spectral.shape == (1, 16, 4, 10, 32)
    truth = np.ones((16, 4, 20, 64), np.float32)
    assert predictor.autoencode(truth, image=image).shape == (16, 4, 20, 64)
    assert predictor.autoencode(truth).shape == (16, 4, 10, 32)
    assert predictor.info()["refiner"] and predictor.info()["output_size"] == [64, 32]
    (ckpt / "refine" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="refine"):
        MotionPredictor.load(ckpt, device="cpu")


def test_init_from_fine_tunes_at_another_working_size(tmp_path, capsys):
    """--init-from starts stage 1 from a trained U-Net's spatial weights and stage 2 from its frequency attention,
    at another working size (the U-Net is fully convolutional); a file of another preset fails clearly."""
    from safetensors.torch import load_file
    data = write_dataset(tmp_path / "data", 12, size=(64, 32))
    common = ["--data", str(data), "--threads", "1", "--min-samples", "4", "--holdout-every", "6", "--eval-every", "5"]
    a = tmp_path / "a"
    assert main(["train", "vae", *common, "--out", str(a), "--steps", "1", "--batch", "4", "--set", *SET]) == 0
    assert main(["train", "ldm", *common, "--out", str(a), "--steps", "2", "--batch", "4", "--sample-steps", "1"]) == 0
    assert main(["train", "ldm-freq", *common, "--out", str(a), "--steps", "2", "--batch", "1", "--sample-steps", "1"]) == 0

    b = tmp_path / "b"
    shutil.copytree(a / "vae", b / "vae")
    config = json.loads((b / "vae" / "config.json").read_text())
    config["work_size"] = [64, 32]
    (b / "vae" / "config.json").write_text(json.dumps(config))
    tiny_lr = ["--lr", "1e-30"]          # the weights stay as initialised, so the test sees where they came from
    assert main(["train", "ldm", *common, "--out", str(b), "--steps", "1", "--batch", "4", *tiny_lr,
                 "--init-from", str(a / "ldm_freq")]) == 0
    assert "stage 1 initialised from" in capsys.readouterr().out
    assert main(["train", "ldm-freq", *common, "--out", str(b), "--steps", "1", "--batch", "1", *tiny_lr,
                 "--init-from", str(a / "ldm_freq")]) == 0
    source, tuned = load_file(a / "ldm_freq" / "model.safetensors"), load_file(b / "ldm_freq" / "model.safetensors")
    assert set(source) == set(tuned)
    for k in source:
        np.testing.assert_allclose(tuned[k].numpy(), source[k].numpy(), atol=1e-6)
    assert json.loads((b / "ldm_freq" / "config.json").read_text())["work_size"] == [64, 32]
    from backend.motion.predictor import MotionPredictor
    ckpt = tmp_path / "ckpt"
    shutil.copytree(b / "vae", ckpt / "vae")
    shutil.copytree(b / "ldm_freq", ckpt / "ldm")
    assert MotionPredictor.load(ckpt, device="cpu").predict(np.zeros((32, 64, 3), np.uint8), steps=1).spectral.shape \
        == (1, 16, 4, 32, 64)

    # --steps 0: stage 2 only pairs RUN/ldm with the file's frequency attention (no training step)
    d = tmp_path / "d"
    shutil.copytree(b / "vae", d / "vae")
    shutil.copytree(b / "ldm", d / "ldm")
    assert main(["train", "ldm-freq", *common, "--out", str(d), "--steps", "0", "--init-from", str(a / "ldm_freq")]) == 0
    paired, stage1 = load_file(d / "ldm_freq" / "model.safetensors"), load_file(b / "ldm" / "model.safetensors")
    for k, v in paired.items():
        np.testing.assert_array_equal(v.numpy(), (source if k.startswith("freq_attn_") else stage1)[k].numpy())

    # stage 2 from a stage-1 file (no frequency attention to take), and a U-Net of another width: clear errors
    c = tmp_path / "c"
    shutil.copytree(b / "vae", c / "vae")
    shutil.copytree(b / "ldm", c / "ldm")
    assert main(["train", "ldm-freq", *common, "--out", str(c), "--steps", "1", "--batch", "1",
                 "--init-from", str(a / "ldm")]) == 1
    assert "frequency attention" in capsys.readouterr().err
    config["unet_channels"] = [16, 48]
    (c / "vae" / "config.json").write_text(json.dumps(config))
    shutil.rmtree(c / "ldm")
    assert main(["train", "ldm", *common, "--out", str(c), "--steps", "1", "--batch", "4",
                 "--init-from", str(a / "ldm")]) == 1
    assert "other shapes" in capsys.readouterr().err


def test_vae_decoder_phase_keeps_latents(tmp_path, capsys):
    """--decoder-only trains the decoder alone: encoder, latent scale (so every cached latent and the denoiser
    trained on them) stay bit-identical; it resumes its own phase and refuses to start without a trained VAE."""
    from safetensors.torch import load_file
    data = write_dataset(tmp_path / "data", 12, size=(64, 32))
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--threads", "1", "--min-samples", "4",
              "--holdout-every", "6", "--batch", "4", "--eval-every", "2"]
    assert main(["train", "vae", *common, "--decoder-only", "--steps", "2", "--set", *SET]) == 1
    assert "needs a trained VAE" in capsys.readouterr().err
    assert main(["train", "vae", *common, "--steps", "2", "--set", *SET]) == 0
    before = load_file(run / "vae" / "model.safetensors")
    assert main(["train", "vae", *common, "--decoder-only", "--steps", "2", "--lr", "0.01"]) == 0
    state = load_state(run / "vae" / "state.pt")
    assert state["phase"] == "decoder" and state["step"] == 2
    after = load_file(run / "vae" / "model.safetensors")
    frozen = [k for k in before if k.startswith(("ae.encoder.", "ae.quant_conv.")) or k == "latent_scale"]
    trained = [k for k in before if k.startswith("ae.decoder.")]
    assert frozen and trained
    for k in frozen:
        np.testing.assert_array_equal(before[k].numpy(), after[k].numpy())
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in trained)
    assert main(["train", "vae", *common, "--decoder-only", "--steps", "3"]) == 0      # resumes the phase
    assert load_state(run / "vae" / "state.pt")["step"] == 3
    assert json.loads((run / "vae" / "log.jsonl").read_text().splitlines()[-1])["phase"] == "decoder"


def test_refiner_without_vae_fails_clearly(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", 6, size=(64, 32))
    assert main(["train", "refine", "--data", str(data), "--out", str(tmp_path / "run"), "--steps", "1",
                 "--min-samples", "4"]) == 1
    assert "needs a trained VAE" in capsys.readouterr().err


def test_stage2_without_stage1_fails_clearly(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", 4, size=(64, 32))
    rc = main(["train", "ldm", "--data", str(data), "--out", str(tmp_path / "run"), "--min-samples", "1"])
    assert rc == 1 and "gid train vae" in capsys.readouterr().err


@pytest.mark.timeout(300)
def test_torchrun_ddp_on_cpu(tmp_path):
    """The same command under `torchrun` (2 processes, gloo on the CPU; NCCL on GPUs takes the same path):
    both ranks train, rank 0 alone writes the checkpoint, and it resumes like a single-process run."""
    import subprocess
    import sys
    data = write_dataset(tmp_path / "data", 12, size=(64, 32))
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--threads", "1", "--min-samples", "4", "--holdout-every", "6"]
    assert main(["train", "vae", *common, "--steps", "2", "--batch", "4", "--eval-every", "2", "--set", *SET]) == 0
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "backend",
           "train", "ldm", *common, "--steps", "3", "--batch", "2", "--eval-every", "3", "--sample-steps", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    state = load_state(run / "ldm" / "state.pt")
    assert state["step"] == 3
    assert not any(k.startswith("module.") for k in state["model"])     # saved unwrapped, loadable without DDP
    records = (run / "ldm" / "log.jsonl").read_text().splitlines()
    assert len(records) == 1                                             # one writer: rank 0
    assert main(["train", "ldm", *common, "--steps", "4", "--batch", "2", "--eval-every", "5"]) == 0
    assert load_state(run / "ldm" / "state.pt")["step"] == 4


def test_sample_cache_takes_folders_in_turn_and_keeps_the_split(tmp_path):
    """A cap below the first folder's size must not crowd out the second (3000 synthetic files vs 82 real clips:
    the refiner was once trained on synthetic data alone); the held-out files stay the same whatever the cap."""
    from backend.motion.datacache import SampleCache
    from shared.spectral import NormStats
    big = write_dataset(tmp_path / "synth", 9, seed=1, size=(16, 8))
    small = write_dataset(tmp_path / "real", 3, seed=2, size=(16, 8))
    stats = NormStats(np.ones(16, np.float32), 95.0)
    capped = SampleCache([big, small], (16, 8), 16, stats, max_samples=4, holdout_every=4, split="train")
    capped.scan()
    assert [p.parent.name for p in capped.paths] == ["synth", "real", "synth", "real"]
    full_train = SampleCache([big, small], (16, 8), 16, stats, max_samples=100, holdout_every=4, split="train")
    full_val = SampleCache([big, small], (16, 8), 16, stats, max_samples=100, holdout_every=4, split="val")
    full_train.scan()
    full_val.scan()
    names = lambda c: {(p.parent.name, p.name) for p in c.paths}
    # every 4th file of the concatenated listing is held out: synth 3, 7 and real 2 (index 11)
    assert names(full_val) == {("synth", "sample_000003.npz"), ("synth", "sample_000007.npz"),
                               ("real", "sample_000002.npz")}
    assert len(full_train) == 9 and not names(full_train) & names(full_val)
    assert names(capped) <= names(full_train)


def test_latent_cache_takes_folders_in_turn(tmp_path, capsys):
    """Session 13: the denoiser's latent cache filled folder by folder, so with --max-samples below the first
    folders' sizes the folders listed after them never entered it and their --weights silently went to the
    others. Now one file from each folder in turn: a cap of 6 over folders of 9, 2 and 9 holds 2 + 2 + 2, and
    the per-folder holdout split is unchanged by the cap."""
    import torch

    from backend.motion.train_ldm import LatentCache
    from backend.motion.vae import SpectralVAE
    from shared.spectral import NormStats
    from tests.test_motion_model import small_config
    cfg = small_config()
    vae = SpectralVAE(cfg).eval().requires_grad_(False)
    stats = NormStats(np.ones(cfg.K, np.float32), 95.0)
    folders = [write_dataset(tmp_path / name, n, seed=s, size=(32, 16))
               for name, n, s in (("synth", 9, 1), ("real", 2, 2), ("closeup", 9, 3))]
    capped = LatentCache([str(f) for f in folders], vae, cfg, stats, max_samples=6, holdout_every=0,
                         split="train", device=torch.device("cpu"))
    assert capped.scan() == 6 and capped.folder_counts() == [2, 2, 2]
    rng = np.random.default_rng(0)
    picked = [capped.folder_of[capped.pick(rng, [0.5, 0.3, 0.2])] for _ in range(400)]
    assert 0.1 < picked.count(2) / 400 < 0.3                       # the last folder gets its weight
    many = np.asarray(capped.folder_of)[capped.pick(rng, [0.5, 0.3, 0.2], 4000)]    # drawn as one array
    assert np.allclose(np.bincount(many, minlength=3) / 4000, [0.5, 0.3, 0.2], atol=0.03)
    assert set(capped.pick(rng, None, 50)) <= set(range(6))
    split = {}
    for which in ("train", "val"):
        c = LatentCache([str(f) for f in folders], vae, cfg, stats, max_samples=100, holdout_every=3, split=which,
                        device=torch.device("cpu"))
        c.scan(limit=2)
        c.scan()                                                   # a second scan adds the rest, nothing twice
        split[which] = c.folder_counts()
    assert split["train"] == [6, 2, 6] and split["val"] == [3, 0, 3]   # every 3rd file of each folder held out


def test_latent_cache_reads_ahead_in_threads_with_the_same_result(tmp_path):
    """The scan reads and resamples files in up to 8 threads (the torch thread count) ahead of the encoder: the
    same samples in the same order at 1 and 4 threads, a corrupt file skipped and not retried, and the disk
    cache of one scan read back by the next."""
    import torch

    from backend.motion.train_ldm import LatentCache
    from backend.motion.vae import SpectralVAE
    from shared.spectral import NormStats
    from tests.test_motion_model import small_config
    cfg = small_config()
    vae = SpectralVAE(cfg).eval().requires_grad_(False)
    stats = NormStats(np.ones(cfg.K, np.float32), 95.0)
    folders = [str(write_dataset(tmp_path / name, n, seed=s, size=(32, 16))) for name, n, s in (("a", 7, 1), ("b", 5, 2))]
    (Path(folders[1]) / "sample_000002.npz").write_bytes(b"not an npz")
    threads = torch.get_num_threads()
    caches = {}
    try:
        for n in (1, 4):
            torch.set_num_threads(n)
            c = LatentCache(folders, vae, cfg, stats, max_samples=100, holdout_every=0, split="train",
                            device=torch.device("cpu"), disk_cache=tmp_path / f"disk{n}")
            assert c.scan(limit=5) == 5 and c.scan() == 6 and c.scan() == 0   # 12 files, one corrupt
            caches[n] = c
        again = LatentCache(folders, vae, cfg, stats, max_samples=100, holdout_every=0, split="train",
                            device=torch.device("cpu"), disk_cache=tmp_path / "disk4")
        again.cached_only = True
        assert again.scan() == 11
    finally:
        torch.set_num_threads(threads)
    assert caches[1].folder_of == caches[4].folder_of == again.folder_of
    for c in (caches[4], again):
        for x, y in zip(caches[1].latents, c.latents):
            np.testing.assert_allclose(x.astype(np.float32), y.astype(np.float32), atol=1e-3)
        assert all(np.array_equal(x, y) for x, y in zip(caches[1].images, c.images))


def test_mixed_precision_training_on_cpu(tmp_path, monkeypatch):
    """GID_AUTOCAST=bf16 runs the GPU's mixed-precision training path on the CPU (torch.autocast in bf16), with the
    depth condition (its quantiles need float32 inside autocast): all three stages train to finite losses.
    GID_AUTOCAST=off turns autocast off (the GPU recipe's fallback)."""
    import torch

    from backend.device import autocast_dtype
    monkeypatch.setenv("GID_AUTOCAST", "off")
    assert autocast_dtype(torch.device("cpu")) is None and autocast_dtype(torch.device("cuda")) is None
    monkeypatch.setenv("GID_AUTOCAST", "bf16")
    assert autocast_dtype(torch.device("cpu")) == torch.bfloat16
    data = write_dataset(tmp_path / "data", 8, size=(64, 32))
    common = ["--data", str(data), "--out", str(tmp_path / "run"), "--threads", "1", "--min-samples", "4",
              "--holdout-every", "4"]
    assert main(["train", "vae", *common, "--steps", "1", "--batch", "4", "--set", *SET, "depth_condition=true"]) == 0
    assert main(["train", "ldm", *common, "--steps", "2", "--batch", "4", "--eval-every", "2", "--sample-steps", "1"]) == 0
    assert main(["train", "ldm-freq", *common, "--steps", "1", "--batch", "1", "--eval-every", "1",
                 "--sample-steps", "1"]) == 0
    for stage in ("ldm", "ldm_freq"):
        record = json.loads((tmp_path / "run" / stage / "log.jsonl").read_text().splitlines()[-1])
        assert np.isfinite(record["val_loss"]) and np.isfinite(record["train_loss"]), record
