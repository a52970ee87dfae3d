"""`gid train vae`: the spectral VAE on normalised 4-channel slices (SPEC sections 2-3).

Writes RUN/norm_stats.json (computed from the training data at the working size, once) and RUN/vae/
(config.json, norm_stats.json, model.safetensors, state.pt, log.jsonl, samples/*.png). Resumes from state.pt.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from backend.train import common
from shared.spectral import NormStats, compute_norm_stats, denormalize

from .config import MotionConfig, get_preset
from .datacache import SampleCache, list_samples, load_sample
from .metrics import energy_map
from .vae import SpectralVAE, vae_loss


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, help="folders of sample_*.npz (may still be growing)")
    parser.add_argument("--preset", default="tiny", help="tiny | base | paper (ignored when resuming)")
    parser.add_argument("--out", required=True, help="run folder (stages go to OUT/vae, OUT/ldm, OUT/ldm_freq)")
    parser.add_argument("--steps", type=int, default=None, help="total steps (default: the preset's)")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-samples", type=int, default=None, help="cap on training samples held in memory")
    parser.add_argument("--min-samples", type=int, default=32, help="wait until the data folders hold this many")
    parser.add_argument("--eval-every", type=int, default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                        help="override preset fields for a new run, e.g. work_size=[64,32] unet_channels=[16,32]")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="minutes of wall time: stop then (LR decay follows the budget), checkpoint kept")
    parser.add_argument("--holdout-every", type=int, default=50, help="every n-th sample is validation")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--decoder-only", action="store_true",
                        help="fine-tune only the decoder of the VAE already in OUT/vae: the encoder and latent scale "
                             "stay frozen, so its latents (and a denoiser trained on them) stay valid")


def wait_for_data(folders: list[str], n: int, max_wait_s: float = 3600) -> None:
    start = time.time()
    while True:
        have = len(list_samples(folders))
        if have >= n:
            return
        if time.time() - start > max_wait_s:
            raise RuntimeError(f"only {have} samples in {folders} after {max_wait_s:.0f} s (need {n})")
        print(f"waiting for data: {have}/{n} samples", flush=True)
        time.sleep(20)


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set needs KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def resolve_config(run: Path, preset: str, overrides: list[str] | None = None) -> MotionConfig:
    """The run's config.json wins (resume); otherwise the preset's (+ --set overrides), saved into the run."""
    path = run / "config.json"
    if path.is_file():
        return MotionConfig.load(path)
    cfg = get_preset(preset)
    if overrides:
        d = cfg.to_dict()
        changes = parse_overrides(overrides)
        unknown = set(changes) - set(d)
        if unknown:
            raise ValueError(f"--set: unknown config fields {sorted(unknown)}")
        d.update(changes)
        cfg = MotionConfig.from_dict(d)
    cfg.save(path)
    return cfg


def ensure_norm_stats(run: Path, folders: list[str], cfg: MotionConfig, n: int = 400) -> NormStats:
    """Per-frequency 95th percentiles at the working size (pixels of the working grid), computed once."""
    path = run / "norm_stats.json"
    if path.is_file():
        return NormStats.from_dict(json.loads(path.read_text()))
    files = list_samples(folders)[:n]
    print(f"norm stats from {len(files)} samples", flush=True)
    stats = compute_norm_stats(load_sample(p, cfg.work_size, cfg.K)[1] for p in files)
    # A frequency with (almost) no motion in the data would be blown up by a ~0 scale: floor it relative to the
    # largest scale so normalised values stay O(1).
    stats = NormStats(np.maximum(stats.scales, 1e-3 * stats.scales.max()).astype(np.float32), stats.percentile)
    common.atomic_write_text(path, json.dumps(stats.to_dict(), indent=2))
    return stats


def random_slices(cache: SampleCache, batch: int, crop: tuple[int, int] | None, rng: np.random.Generator
                  ) -> torch.Tensor:
    """(batch, 4, h, w) normalised slices: random sample, frequency, crop and left-right mirror."""
    out = []
    for _ in range(batch):
        i = rng.integers(len(cache))
        k = rng.integers(cache.K)
        s = cache.spectral[i][k].astype(np.float32)          # (4, H, W)
        if crop is not None:
            cw, ch = crop
            y = rng.integers(s.shape[1] - ch + 1)
            x = rng.integers(s.shape[2] - cw + 1)
            s = s[:, y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            s = s[:, :, ::-1].copy()
            s[0:2] *= -1
        out.append(s)
    return torch.from_numpy(np.stack(out))


def run(args: argparse.Namespace) -> int:
    dist, device = common.setup_distributed(args.device)
    common.set_threads(args.threads)     # after pick_device, which sets all cores
    run_dir = Path(args.out)
    stage_dir = run_dir / "vae"
    wait_for_data(args.data, args.min_samples)
    cfg = resolve_config(run_dir, args.preset, args.set)
    stats = ensure_norm_stats(run_dir, args.data, cfg)
    steps = args.steps or cfg.vae_steps
    batch = args.batch or cfg.vae_batch
    lr = args.lr or cfg.vae_lr
    eval_every = args.eval_every or cfg.eval_every
    max_samples = args.max_samples or min(cfg.max_train_samples, 800)

    torch.manual_seed(args.seed + dist.rank)
    model = SpectralVAE(cfg).to(device)
    decoder_only = bool(args.decoder_only)
    phase = "decoder" if decoder_only else "full"
    if decoder_only:
        opt, step = start_decoder_phase(model, stage_dir, lr, cfg)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=cfg.weight_decay)
        step = common.resume(stage_dir / "state.pt", model, opt, what="VAE")
    ddp = common.wrap_ddp(model, dist, device)
    scaler = common.make_scaler(device)

    train = SampleCache(args.data, cfg.work_size, cfg.K, stats, max_samples, args.holdout_every, "train")
    val = SampleCache(args.data, cfg.work_size, cfg.K, stats, 16, args.holdout_every, "val")
    train.scan(limit=200)
    val.scan()
    rng = np.random.default_rng(args.seed * 1000 + step + dist.rank)
    bar = common.progress(steps, step, "vae", dist.main)
    t0 = time.time()
    clock = common.TrainClock(steps, step, args.time_limit)
    while not clock.done(step):
        if step % 200 == 0 and len(train) < max_samples:
            train.scan(limit=100)
        for g in opt.param_groups:
            g["lr"] = common.lr_at(step, lr, steps, cfg.warmup_steps, progress=clock.fraction(step))
        x = random_slices(train, batch, cfg.vae_crop, rng).to(device)
        with common.autocast(device):
            loss, parts = vae_loss(common.unwrap(ddp) if dist.world == 1 else ddp.module, x)
        common.optimizer_step(opt, scaler, loss, model.parameters())
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", l1=f"{parts['l1']:.4f}", n=len(train))
        if dist.main and (step % cfg.checkpoint_every == 0 or clock.done(step)):
            save_vae(stage_dir, model, opt, step, cfg, stats, phase)
        if dist.main and (step % eval_every == 0 or clock.done(step)):
            record = evaluate_vae(model, val, stats, cfg, stage_dir, step, device)
            record.update(step=step, train_loss=loss.item(), samples=len(train), wall_s=time.time() - t0,
                          phase=phase, **parts)
            common.append_log(stage_dir / "log.jsonl", record)
            bar.write(json.dumps(record))
    bar.close()
    if dist.main:
        if not decoder_only:          # a frozen encoder keeps its latent scale: the denoiser was trained on it
            set_latent_scale(model, train, device)
        save_vae(stage_dir, model, opt, step, cfg, stats, phase)
        print(f"VAE done: {stage_dir} latent_scale={float(model.latent_scale):.4f}", flush=True)
    return 0


def start_decoder_phase(model: SpectralVAE, stage_dir: Path, lr: float, cfg: MotionConfig
                        ) -> tuple[torch.optim.Optimizer, int]:
    """Freeze the encoder side of the trained VAE in stage_dir and return (decoder optimizer, step).

    Resumes a decoder phase where it stopped; the first call starts it at step 0 from the full VAE's weights
    (its optimizer state is for other parameters and is dropped). Why a decoder-only phase: the latents stay
    exactly the ones a denoiser was trained on, so a sharper decoder improves every prediction without
    retraining the denoiser (Stable Diffusion's fine-tuned VAE decoders do the same).
    """
    state = common.load_state(stage_dir / "state.pt")
    if state is None:
        raise FileNotFoundError(f"--decoder-only needs a trained VAE in {stage_dir} (run `gid train vae` first)")
    model.load_state_dict(state["model"])
    for module in (model.ae.encoder, model.ae.quant_conv):
        module.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    if state.get("phase") == "decoder":
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        print(f"resumed VAE decoder phase at step {step}", flush=True)
        return opt, step
    print(f"VAE decoder phase: starting from the full VAE at step {int(state['step'])}", flush=True)
    return opt, 0


def save_vae(stage_dir: Path, model: SpectralVAE, opt, step: int, cfg: MotionConfig, stats: NormStats,
             phase: str = "full") -> None:
    cfg.save(stage_dir / "config.json")
    common.atomic_write_text(stage_dir / "norm_stats.json", json.dumps(stats.to_dict(), indent=2))
    common.save_module(stage_dir / "model.safetensors", model, {"step": str(step), "phase": phase})
    common.save_state(stage_dir / "state.pt", {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                               "step": step, "phase": phase})


@torch.no_grad()
def set_latent_scale(model: SpectralVAE, cache: SampleCache, device: torch.device, n: int = 64) -> None:
    """latent_scale = std of the encoder's latents, so diffusion sees unit-variance latents."""
    model.eval()
    model.latent_scale.fill_(1.0)
    zs = []
    for i in range(min(n, len(cache))):
        x = torch.from_numpy(cache.spectral[i].astype(np.float32)).to(device)
        zs.append(model.encode(x).flatten())
    model.latent_scale.fill_(float(torch.cat(zs).std()))
    model.train()


@torch.no_grad()
def evaluate_vae(model: SpectralVAE, val: SampleCache, stats: NormStats, cfg: MotionConfig, stage_dir: Path,
                 step: int, device: torch.device) -> dict:
    """Validation L1 on whole volumes + a PNG of true vs reconstructed energy maps."""
    model.eval()
    l1s, pairs, images = [], [], []
    for i in range(len(val)):
        x = torch.from_numpy(val.spectral[i].astype(np.float32)).to(device)     # (K, 4, H, W)
        recon = model._decode_raw(model.posterior(x).mean)
        l1s.append(float((recon - x).abs().mean()))
        if len(pairs) < 4:
            true = denormalize(x.cpu().numpy(), stats)
            pred = denormalize(recon.cpu().numpy(), stats)
            pairs.append((energy_map(true, cfg.T), energy_map(pred, cfg.T)))
            images.append(val.images[i])
    model.train()
    if pairs:
        common.energy_grid_png(stage_dir / "samples" / f"step_{step:06d}.png", pairs, images)
    return {"val_l1": float(np.mean(l1s)) if l1s else None}
