"""`gid train refine`: the image-guided motion refiner (refine.py) behind a trained VAE.

Needs OUT/vae (a trained spectral VAE). Each step takes true slices at the refined grid (refine_factor x the
working size), makes the refiner's input the way sampling does (onto the working grid, through the VAE's encoder
and decoder) with noise added to the latents (a sampler's latents are not the truth's: the refiner must not rely
on them being exact), and regresses the true slice: L1 + 0.2 multi-scale gradient on normalised slices, like the
VAE. Writes OUT/refine/ (config.json, norm_stats.json, model.safetensors, state.pt, log.jsonl, samples/*.png);
resumes from state.pt.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from backend.train import common
from shared.spectral import NormStats, denormalize, normalize, resample_spectral

from .config import MotionConfig
from .datacache import SampleCache, hflip
from .metrics import amplitude_error, energy_map
from .refine import MotionRefiner
from .train_ldm import load_vae
from .train_vae import add_common_arguments, wait_for_data
from .vae import SpectralVAE, gradient_loss


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)


def fine_size(cfg: MotionConfig) -> tuple[int, int]:
    return cfg.work_size[0] * cfg.refine_factor, cfg.work_size[1] * cfg.refine_factor


def coarse_slices(fine: np.ndarray, ks: np.ndarray, stats: NormStats, cfg: MotionConfig) -> np.ndarray:
    """Normalised fine slices (N, 4, H, W) of frequencies ks -> normalised slices on the working grid."""
    out = []
    for s, k in zip(fine, ks):
        one = NormStats(stats.scales[k:k + 1], stats.percentile)
        raw = denormalize(s[None], one)                               # (1, 4, H, W) pixels of the fine grid
        out.append(normalize(resample_spectral(raw, cfg.work_size), one)[0])
    return np.stack(out)


@torch.no_grad()
def through_vae(vae: SpectralVAE, coarse: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """What sampling hands the refiner: decode(encode(coarse) + noise), latents in the diffusion's units."""
    return vae.decode(vae.encode(coarse) + noise)


def random_batch(cache: SampleCache, batch: int, cfg: MotionConfig, stats: NormStats, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """-> fine slices (B, 4, H, W), coarse (B, 4, h, w), images (B, 3, H, W) in [0, 1], ks (B,): whole frames
    (the VAE sees whole slices, as in sampling); the caller crops."""
    fine, images, ks = [], [], []
    for _ in range(batch):
        i = int(rng.integers(len(cache)))
        k = int(rng.integers(cache.K))
        img, s = cache.images[i], cache.spectral[i][k:k + 1]
        if rng.random() < 0.5:
            img, s = hflip(img, s)
        fine.append(s[0].astype(np.float32))
        images.append(img.astype(np.float32).transpose(2, 0, 1) / 255)
        ks.append(k)
    fine_a, ks_a = np.stack(fine), np.asarray(ks)
    return fine_a, coarse_slices(fine_a, ks_a, stats, cfg), np.stack(images), ks_a


def crop_batch(fine, coarse_up_src, images, cfg: MotionConfig, rng: np.random.Generator):
    """Same random crop (aligned to the coarse grid) of the fine target, image and coarse input."""
    f = cfg.refine_factor
    cw, ch = cfg.refine_crop
    H, W = fine.shape[-2:]
    cw, ch = min(cw, W) // f * f, min(ch, H) // f * f
    x = int(rng.integers((W - cw) // f + 1)) * f
    y = int(rng.integers((H - ch) // f + 1)) * f
    return (fine[..., y:y + ch, x:x + cw], coarse_up_src[..., y // f:(y + ch) // f, x // f:(x + cw) // f],
            images[..., y:y + ch, x:x + cw])


def refine_loss(pred: torch.Tensor, target: torch.Tensor, cfg: MotionConfig) -> tuple[torch.Tensor, dict]:
    w_l1, w_grad, _ = cfg.vae_loss_weights
    l1 = (pred - target).abs().mean()
    grad = gradient_loss(pred, target, cfg.vae_gradient_scales)
    return w_l1 * l1 + w_grad * grad, {"l1": l1.item(), "grad": grad.item()}


def run(args: argparse.Namespace) -> int:
    dist, device = common.setup_distributed(args.device)
    common.set_threads(args.threads)
    run_dir = Path(args.out)
    stage_dir = run_dir / "refine"
    wait_for_data(args.data, args.min_samples)
    vae, vae_cfg, stats = load_vae(run_dir / "vae", device)
    cfg = MotionConfig.load(stage_dir / "config.json") if (stage_dir / "config.json").is_file() else vae_cfg
    steps = args.steps or cfg.refine_steps
    batch = args.batch or cfg.refine_batch
    lr = args.lr or cfg.refine_lr
    eval_every = args.eval_every or cfg.eval_every
    max_samples = args.max_samples or 400          # fine-grid slices are large: 5 MB per sample at 256x160

    torch.manual_seed(args.seed + dist.rank)
    model = MotionRefiner(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
    step = common.resume(stage_dir / "state.pt", model, opt, what="refiner")
    ddp = common.wrap_ddp(model, dist, device)
    scaler = common.make_scaler(device)

    size = fine_size(cfg)
    train = SampleCache(args.data, size, cfg.K, stats, max_samples, args.holdout_every, "train")
    val = SampleCache(args.data, size, cfg.K, stats, 8, args.holdout_every, "val")
    train.scan(limit=100)
    val.scan()
    rng = np.random.default_rng(args.seed * 1000 + step + dist.rank)
    bar = common.progress(steps, step, "refine", dist.main)
    t0 = time.time()
    clock = common.TrainClock(steps, step, args.time_limit)
    while not clock.done(step):
        if step % 100 == 0 and len(train) < max_samples:
            train.scan(limit=50)
        for g in opt.param_groups:
            g["lr"] = common.lr_at(step, lr, steps, cfg.warmup_steps, progress=clock.fraction(step))
        fine, coarse, images, ks = random_batch(train, batch, cfg, stats, rng)
        sigma = rng.uniform(0, cfg.refine_latent_noise, size=(batch, 1, 1, 1)).astype(np.float32)
        lat_shape = (batch, cfg.latent_channels, *cfg.latent_size[::-1])
        noise = torch.from_numpy(rng.standard_normal(lat_shape).astype(np.float32) * sigma).to(device)
        decoded = through_vae(vae, torch.from_numpy(coarse).to(device), noise).cpu().numpy()
        fine, decoded, images = crop_batch(fine, decoded, images, cfg, rng)
        target = torch.from_numpy(np.ascontiguousarray(fine)).to(device)
        with common.autocast(device):
            pred = ddp(torch.from_numpy(np.ascontiguousarray(decoded)).to(device),
                       torch.from_numpy(np.ascontiguousarray(images)).to(device), torch.from_numpy(ks).to(device))
            loss, parts = refine_loss(pred.float(), target, cfg)
        common.optimizer_step(opt, scaler, loss, model.parameters())
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", l1=f"{parts['l1']:.4f}", n=len(train))
        if dist.main and (step % cfg.checkpoint_every == 0 or clock.done(step)):
            save_refiner(stage_dir, model, opt, step, cfg, stats)
        if dist.main and (step % eval_every == 0 or clock.done(step)):
            record = evaluate_refiner(model, vae, val, stats, cfg, stage_dir, step, device)
            record.update(step=step, train_loss=loss.item(), samples=len(train), wall_s=time.time() - t0, **parts)
            common.append_log(stage_dir / "log.jsonl", record)
            bar.write(json.dumps(record))
    bar.close()
    if dist.main:
        save_refiner(stage_dir, model, opt, step, cfg, stats)
        print(f"refiner done: {stage_dir}", flush=True)
    return 0


def save_refiner(stage_dir: Path, model: MotionRefiner, opt, step: int, cfg: MotionConfig, stats: NormStats) -> None:
    cfg.save(stage_dir / "config.json")
    common.atomic_write_text(stage_dir / "norm_stats.json", json.dumps(stats.to_dict(), indent=2))
    common.save_module(stage_dir / "model.safetensors", model, {"step": str(step)})
    common.save_state(stage_dir / "state.pt", {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                               "step": step})


@torch.no_grad()
def evaluate_refiner(model: MotionRefiner, vae: SpectralVAE, val: SampleCache, stats: NormStats,
                     cfg: MotionConfig, stage_dir: Path, step: int, device: torch.device) -> dict:
    """Whole held-out volumes through the VAE: amplitude error (pixels of the fine grid) of the plain upsampling
    and of the refiner, each over that of no motion, + a PNG of true vs refined energy maps."""
    model.eval()
    ks = np.arange(cfg.K)
    plain, refined, l1s, pairs, images = [], [], [], [], []
    for i in range(len(val)):
        fine = val.spectral[i].astype(np.float32)                                   # (K, 4, H, W)
        coarse = torch.from_numpy(coarse_slices(fine, ks, stats, cfg)).to(device)
        decoded = through_vae(vae, coarse, torch.zeros(1, device=device))
        image = torch.from_numpy(val.images[i].astype(np.float32).transpose(2, 0, 1) / 255).to(device)
        out = model(decoded, image[None].expand(cfg.K, -1, -1, -1), torch.from_numpy(ks).to(device))
        l1s.append(float((out - torch.from_numpy(fine).to(device)).abs().mean()))
        true = denormalize(fine, stats)
        up = denormalize(model.upsample(decoded).cpu().numpy(), stats)
        ref = denormalize(out.cpu().numpy(), stats)
        base = amplitude_error(np.zeros_like(true[1:]), true[1:])
        if base > 0:
            plain.append(amplitude_error(up[1:], true[1:]) / base)
            refined.append(amplitude_error(ref[1:], true[1:]) / base)
        if len(pairs) < 4:
            pairs.append((energy_map(true, cfg.T), energy_map(ref, cfg.T)))
            images.append(val.images[i])
    model.train()
    if pairs:
        common.energy_grid_png(stage_dir / "samples" / f"step_{step:06d}.png", pairs, images)
    mean = (lambda v: float(np.mean(v)) if v else None)
    return {"val_l1": mean(l1s), "val_amp_err_plain": mean(plain), "val_amp_err_refined": mean(refined)}
