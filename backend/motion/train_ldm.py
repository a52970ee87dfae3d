"""`gid train ldm` (stage 1) and `gid train ldm-freq` (stage 2): the latent diffusion U-Net (SPEC section 3).

Stage 1 trains the U-Net on single frequency slices: batches of random (sample, k) latents, the frequency
embedding of k added to the timestep embedding. Stage 2 loads stage 1, freezes it, inserts attention across the
K frequencies and trains only that, on batches of whole volumes (B*K slices, one timestep per volume).
Latents of the training set are cached (both mirror images) with the trained VAE of RUN/vae.
Writes RUN/ldm or RUN/ldm_freq: config.json, norm_stats.json, model.safetensors (EMA weights), state.pt,
log.jsonl, samples/*.png (true vs predicted motion-energy maps of validation images).
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from backend.train import common
from shared.spectral import NormStats, normalize

from .config import MotionConfig
from .datacache import folders_in_turn, hflip, load_sample
from .metrics import energy_map
from .photometric import jitter_pictures
from .pipeline import MotionPipeline, training_scheduler, training_target
from .train_vae import add_common_arguments, wait_for_data
from .unet import FrequencyUNet
from .vae import SpectralVAE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    parser.add_argument("--weights", nargs="+", type=float, default=None,
                        help="sampling weight per --data folder (default: proportional to its size)")
    parser.add_argument("--initial-samples", type=int, default=300, help="samples encoded before step 0 (-1: only those already in RUN/latents)")
    parser.add_argument("--scan-samples", type=int, default=20, help="new samples encoded every 50 steps")
    parser.add_argument("--sample-steps", type=int, default=10, help="sampler steps for the validation grid")
    parser.add_argument("--init-from", default=None, metavar="DIR",
                        help="a new stage starts from the U-Net weights in DIR/model.safetensors (e.g. a shipped "
                             "checkpoint's ldm/, stage 1 and frequency attention), not from scratch: how a trained "
                             "model is fine-tuned at another working size (set in RUN/vae/config.json); ignored "
                             "when the stage resumes. Stage 2 with --steps 0 only pairs RUN/ldm with DIR's "
                             "frequency attention")
    parser.add_argument("--photometric", type=float, default=0.0, metavar="P",
                        help="share of conditioning pictures whose brightness, contrast, gamma, saturation and hue "
                             "are jittered (backend/motion/photometric.py; the motion target is unchanged)")


def load_vae(stage_dir: Path, device: torch.device) -> tuple[SpectralVAE, MotionConfig, NormStats]:
    """The trained, frozen VAE of RUN/vae (the LDM and the refiner train behind it) -> (vae, config, stats)."""
    for name in ("config.json", "model.safetensors", "norm_stats.json"):
        if not (stage_dir / name).is_file():
            raise FileNotFoundError(f"no trained VAE in {stage_dir}: {name} is missing; it needs a trained VAE "
                                    "(run `gid train vae` first)")
    cfg = MotionConfig.load(stage_dir / "config.json")
    stats = NormStats.from_dict(json.loads((stage_dir / "norm_stats.json").read_text()))
    vae = SpectralVAE(cfg)
    common.load_module(vae, stage_dir / "model.safetensors")
    return vae.to(device).eval().requires_grad_(False), cfg, stats


class LatentCache:
    """Per sample: images (2, h, w, 3) uint8 (original, mirrored), latents (2, K, C, lh, lw) float16."""

    def __init__(self, folders: list[str], vae: SpectralVAE, cfg: MotionConfig, stats: NormStats,
                 max_samples: int, holdout_every: int, split: str, device: torch.device,
                 disk_cache: Path | None = None):
        self.folders, self.vae, self.cfg, self.stats = folders, vae, cfg, stats
        self.disk_cache = disk_cache      # latents persist here (per source file), so restarts skip encoding
        self.cached_only = False          # take only samples already in disk_cache (no encoding)
        self.max_samples, self.holdout_every, self.split, self.device = max_samples, holdout_every, split, device
        self.images: list[np.ndarray] = []
        self.latents: list[np.ndarray] = []
        self.spectral: list[np.ndarray] = []        # raw spectral of validation samples (for the energy grid)
        self.folder_of: list[int] = []
        self._seen: set[Path] = set()

    def _wanted(self, index: int) -> bool:
        held = self.holdout_every > 0 and index % self.holdout_every == self.holdout_every - 1
        return held if self.split == "val" else not held

    @torch.no_grad()
    def scan(self, limit: int | None = None) -> int:
        """Load up to `limit` new samples (all when None; encoded, or read from disk_cache), one file from each
        folder in turn, so that max_samples holds every folder. Filled folder by folder, a large folder (3,000
        synthetic scenes) crowds out every folder listed after it, and `pick` then gives their weights to the
        others without a word: session 13 found a run whose last two folders never entered the cache.
        Files are read and resampled by worker threads ahead of the encoder (as many as torch's thread count, at
        most 8: a GPU run's scan of thousands of 10 MB files is otherwise bound by one core); the result and
        its order are the same at any thread count."""
        added = 0
        candidates = ((fi, p) for fi, i, p in folders_in_turn(self.folders)
                      if p not in self._seen and self._wanted(i)
                      and not (self.cached_only and not self._cached_file(p, fi)))
        threads = max(1, min(8, torch.get_num_threads()))
        pending: collections.deque = collections.deque()
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            try:
                while True:
                    while len(pending) < 2 * threads and (item := next(candidates, None)) is not None:
                        pending.append((item, pool.submit(self._read, *item)))
                    if not pending or len(self.images) >= self.max_samples or (limit is not None and added >= limit):
                        return added
                    (fi, p), future = pending.popleft()
                    self._seen.add(p)
                    try:
                        kind, a, b = future.result()
                    except (OSError, ValueError, KeyError) as exc:
                        print(f"latent cache: skipping {p}: {exc}", flush=True)
                        continue
                    if kind == "cached":
                        self.images.append(a)
                        self.latents.append(b)
                    else:
                        self._encode(p, fi, a, b)
                    self.folder_of.append(fi)
                    added += 1
            finally:
                for _, future in pending:
                    future.cancel()

    def _cached_file(self, p: Path, fi: int) -> bool:
        cached = self._cache_path(p, fi)
        return cached is not None and cached.is_file()

    def _read(self, fi: int, p: Path) -> tuple[str, np.ndarray, np.ndarray]:
        """A worker thread's part: ("cached", images, latents) from disk_cache, or ("raw", image, spectral)."""
        cached = self._cache_path(p, fi)
        if self.split == "train" and cached is not None and cached.is_file():
            with np.load(cached, allow_pickle=False) as z:
                return "cached", z["images"], z["latents"]
        image, spectral, _, _ = load_sample(p, self.cfg.work_size, self.cfg.K)
        return "raw", image, spectral

    def _encode(self, p: Path, fi: int, image: np.ndarray, spectral: np.ndarray) -> None:
        image_m, spectral_m = hflip(image, spectral)
        x = torch.from_numpy(np.concatenate([normalize(spectral, self.stats),
                                             normalize(spectral_m, self.stats)])).to(self.device)
        z = self.vae.encode(x).view(2, self.cfg.K, *self.vae_latent_shape())
        self.images.append(np.stack([image, image_m]))
        self.latents.append(z.cpu().numpy().astype(np.float16))
        cached = self._cache_path(p, fi)
        if cached is not None:
            images, latents = self.images[-1], self.latents[-1]
            common._atomic(cached, lambda tmp: _savez(tmp, images=images, latents=latents))
        if self.split == "val":
            self.spectral.append(spectral)

    def folder_counts(self) -> list[int]:
        """Samples held per folder (in the order of `folders`)."""
        return [int(np.sum(np.asarray(self.folder_of, int) == f)) for f in range(len(self.folders))]

    def _cache_path(self, p: Path, folder_index: int) -> Path | None:
        if self.disk_cache is None:
            return None
        return self.disk_cache / f"{folder_index}_{Path(self.folders[folder_index]).name}_{p.stem}.npz"

    def vae_latent_shape(self) -> tuple[int, int, int]:
        w, h = self.cfg.latent_size
        return self.cfg.latent_channels, h, w

    def __len__(self) -> int:
        return len(self.images)

    def pick(self, rng: np.random.Generator, weights: list[float] | None, n: int | None = None):
        """A random sample index (n None) or n of them: a folder by `weights` (among the folders present), then
        a sample of it. Drawn as arrays: a GPU step of 256 picks one by one took 80 ms of Python."""
        if weights is None:
            return int(rng.integers(len(self))) if n is None else rng.integers(len(self), size=n)
        folder_of = np.asarray(self.folder_of)
        present = [f for f in range(len(self.folders)) if np.any(folder_of == f)]
        w = np.array([weights[f] for f in present], float)
        chosen = rng.choice(len(present), size=1 if n is None else n, p=w / w.sum())
        out = np.empty(len(chosen), int)
        for j, f in enumerate(present):
            sel = np.flatnonzero(chosen == j)
            if len(sel):
                members = np.flatnonzero(folder_of == f)
                out[sel] = members[rng.integers(len(members), size=len(sel))]
        return int(out[0]) if n is None else out


def _savez(path: str, **arrays) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def image_tensor(images: list[np.ndarray], device: torch.device) -> torch.Tensor:
    """uint8 (h, w, 3) pictures -> (N, 3, h, w) float in [0, 1] on `device` (moved as bytes: 4x less to copy)."""
    return torch.from_numpy(np.stack(images)).to(device).permute(0, 3, 1, 2).float().div(255)


def make_batch(cache: LatentCache, stage: int, batch: int, rng: np.random.Generator, weights,
               device: torch.device, photometric: float = 0.0):
    """-> z0 (N, C, h, w), k (N,), images (N, 3, H, W), volume index of each slice (N,). photometric: share
    of pictures colour-jittered (`jitter_pictures`)."""
    K = cache.cfg.K
    picks, mirrors = cache.pick(rng, weights, batch), rng.integers(2, size=batch)
    imgs = [cache.images[i][m] for i, m in zip(picks, mirrors)]
    if stage == 1:
        ks = rng.integers(K, size=batch)
        zs = np.stack([cache.latents[i][m, k] for i, m, k in zip(picks, mirrors, ks)])
        vol = np.arange(batch)
    else:
        zs = np.concatenate([cache.latents[i][m] for i, m in zip(picks, mirrors)])
        ks, vol = np.tile(np.arange(K), batch), np.repeat(np.arange(batch), K)
    z0 = torch.from_numpy(zs.astype(np.float32)).to(device)
    images = image_tensor(imgs, device)
    if photometric > 0:
        images = jitter_pictures(images, rng, photometric)
    return z0, torch.as_tensor(ks, device=device), images, torch.as_tensor(vol, device=device)


def diffusion_loss(unet, scheduler, cfg: MotionConfig, z0, k, images, vol, rng_t: torch.Generator):
    """MSE of eps/v prediction. One timestep and one CFG drop decision per volume (stage 2: the whole volume)."""
    n_vol = int(vol.max()) + 1
    t_vol = torch.randint(0, cfg.train_timesteps, (n_vol,), generator=rng_t).to(z0.device)
    keep = (torch.rand(n_vol, generator=rng_t) >= cfg.cfg_dropout).float().to(z0.device)
    cond = common.unwrap(unet).encode_condition(images) * keep.view(-1, 1, 1, 1)
    t, cond = t_vol[vol], cond[vol]
    noise = torch.randn(z0.shape, generator=rng_t).to(z0.device)
    zt = scheduler.add_noise(z0, noise, t)
    target = training_target(cfg, scheduler, z0, noise, t)
    pred = unet(zt, t, k, cond)
    return F.mse_loss(pred.float(), target.float())


def run(args: argparse.Namespace) -> int:
    stage = 2 if args.kind == "ldm-freq" else 1
    dist, device = common.setup_distributed(args.device)
    common.set_threads(args.threads)
    run_dir = Path(args.out)
    stage_dir = run_dir / ("ldm_freq" if stage == 2 else "ldm")
    wait_for_data(args.data, args.min_samples)
    vae, cfg, stats = load_vae(run_dir / "vae", device)
    steps = args.steps if args.steps is not None else (cfg.freq_steps if stage == 2 else cfg.ldm_steps)
    batch = args.batch or (cfg.freq_batch if stage == 2 else cfg.ldm_batch)
    lr = args.lr or (cfg.freq_lr if stage == 2 else cfg.ldm_lr)
    eval_every = args.eval_every or cfg.eval_every
    max_samples = args.max_samples or cfg.max_train_samples
    if args.weights is not None and len(args.weights) != len(args.data):
        raise ValueError(f"--weights needs one number per --data folder ({len(args.data)}), got {len(args.weights)}")

    torch.manual_seed(args.seed + dist.rank)
    unet = FrequencyUNet(cfg)
    if stage == 2:
        stage1 = run_dir / "ldm" / "model.safetensors"
        common.load_module(unet, stage1)     # raises FileNotFoundError with the path
        unet.requires_grad_(False)
        unet.enable_freq_attention()
        trainable = unet.freq_attention_parameters()
    else:
        trainable = list(unet.parameters())
    if args.init_from is not None and not (stage_dir / "state.pt").is_file():
        init_unet(unet, Path(args.init_from) / "model.safetensors", stage)
    unet.to(device)
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=cfg.weight_decay)
    ema = copy.deepcopy(unet).requires_grad_(False)
    step = common.resume(stage_dir / "state.pt", unet, opt, ema, what=f"stage {stage}")
    model = common.wrap_ddp(unet, dist, device)
    scaler = common.make_scaler(device)
    scheduler = training_scheduler(cfg)

    train = LatentCache(args.data, vae, cfg, stats, max_samples, args.holdout_every, "train", device,
                        disk_cache=run_dir / "latents")
    val = LatentCache(args.data, vae, cfg, stats, 8, args.holdout_every, "val", device)
    if args.initial_samples < 0:       # stage 2 on exactly what stage 1 encoded
        train.cached_only = True
        train.scan()
    else:
        train.scan(limit=args.initial_samples)
    val.scan()
    counts = train.folder_counts()
    print(f"latent cache: {len(train)} train, {len(val)} val samples; per folder "
          + ", ".join(f"{Path(f).name} {n}" for f, n in zip(train.folders, counts)), flush=True)
    empty = [f for f, n in zip(train.folders, counts) if n == 0]
    if empty:
        print(f"latent cache: WARNING no training sample yet from {empty}: their weight goes to the other folders "
              "until one is loaded", flush=True)
    rng = np.random.default_rng(args.seed * 1000 + step + dist.rank)
    rng_t = torch.Generator().manual_seed(args.seed * 1000 + step + dist.rank)
    bar = common.progress(steps, step, f"ldm stage {stage}", dist.main)
    t0 = time.time()
    losses: list[float] = []
    clock = common.TrainClock(steps, step, args.time_limit)
    while not clock.done(step):
        if step % 50 == 0 and step and len(train) < max_samples:
            train.scan(limit=args.scan_samples)     # the data folders may still be growing
        for g in opt.param_groups:
            g["lr"] = common.lr_at(step, lr, steps, cfg.warmup_steps, progress=clock.fraction(step))
        z0, k, images, vol = make_batch(train, stage, batch, rng, args.weights, device, args.photometric)
        with common.autocast(device):
            loss = diffusion_loss(model, scheduler, cfg, z0, k, images, vol, rng_t)
        common.optimizer_step(opt, scaler, loss, trainable)
        update_ema(ema, unet, cfg.ema_decay if step > cfg.warmup_steps else 0.0)
        step += 1
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", n=len(train))
        if dist.main and (step % cfg.checkpoint_every == 0 or clock.done(step)):
            save_unet(stage_dir, unet, ema, opt, step, cfg, stats)
        if dist.main and (step % eval_every == 0 or clock.done(step)):
            record = evaluate(ema, vae, val, scheduler, cfg, stats, stage, stage_dir, step, device,
                              args.sample_steps)
            record.update(step=step, train_loss=float(np.mean(losses[-eval_every:])), samples=len(train),
                          wall_s=round(time.time() - t0, 1))
            common.append_log(stage_dir / "log.jsonl", record)
            bar.write(json.dumps(record))
    bar.close()
    if dist.main:
        save_unet(stage_dir, unet, ema, opt, step, cfg, stats)
        print(f"stage {stage} done: {stage_dir}", flush=True)
    return 0


def init_unet(unet: FrequencyUNet, path: Path, stage: int) -> None:
    """Start a stage from trained weights: stage 1 takes the U-Net's spatial weights (a stage-2 file's frequency
    attention is left out), stage 2 its frequency attention (the frozen rest came from RUN/ldm). The U-Net is
    fully convolutional, so weights trained at one working size are a head start at another."""
    from safetensors.torch import load_file
    if not path.is_file():
        raise FileNotFoundError(f"--init-from: no weights at {path}")
    tensors = load_file(str(path))
    own = unet.state_dict()
    # aliased parameters (diffusers' Downsample2D conv) are saved under one of their names: either will do
    wanted = {k for k in own if k.startswith("freq_attn_") == (stage == 2)} - (common._aliased_names(unet) - set(tensors))
    missing = sorted(wanted - set(tensors))
    if missing:
        raise ValueError(f"--init-from {path} lacks {len(missing)} weights of stage {stage}, e.g. {missing[:3]} "
                         "(stage 2 needs a file trained with frequency attention)")
    extra = own["conv_in.weight"].shape[1] - tensors["conv_in.weight"].shape[1] if "conv_in.weight" in wanted else 0
    prior_inputs = len(unet.config.semantic_classes) + int(unet.config.depth_condition)
    if 0 < extra <= prior_inputs:
        # A model without (some of) the frozen priors' condition channels (semantic, depth): they are the last
        # inputs of conv_in; give them zero weights, so the new model starts as exactly the old one and learns
        # to use them.
        w = tensors["conv_in.weight"]
        tensors["conv_in.weight"] = torch.cat([w, w.new_zeros((w.shape[0], extra) + tuple(w.shape[2:]))], 1)
        print(f"--init-from: conv_in gets {extra} zero-initialised prior condition inputs", flush=True)
    bad = [k for k in wanted if tensors[k].shape != own[k].shape]
    if bad:
        raise ValueError(f"--init-from {path} has other shapes (another preset?), e.g. {bad[0]}: "
                         f"{tuple(tensors[bad[0]].shape)} vs {tuple(own[bad[0]].shape)}")
    unet.load_state_dict({k: tensors[k] for k in wanted}, strict=False)
    print(f"stage {stage} initialised from {path} ({len(wanted)} tensors)", flush=True)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        if p.requires_grad or decay == 0.0:
            e.lerp_(p.detach(), 1.0 - decay)


def save_unet(stage_dir: Path, unet, ema, opt, step: int, cfg: MotionConfig, stats: NormStats) -> None:
    cfg.save(stage_dir / "config.json")
    common.atomic_write_text(stage_dir / "norm_stats.json", json.dumps(stats.to_dict(), indent=2))
    common.save_module(stage_dir / "model.safetensors", ema, {"step": str(step)})
    common.save_state(stage_dir / "state.pt", {"model": unet.state_dict(), "ema": ema.state_dict(),
                                               "optimizer": opt.state_dict(), "step": step})


@torch.no_grad()
def evaluate(ema, vae, val: LatentCache, scheduler, cfg: MotionConfig, stats: NormStats, stage: int,
             stage_dir: Path, step: int, device: torch.device, sample_steps: int) -> dict:
    """Validation loss (fixed noise) and a grid of true vs sampled energy maps."""
    if len(val) == 0:
        return {"val_loss": None}
    ema.eval()
    g = torch.Generator().manual_seed(1234)
    rng = np.random.default_rng(1234)
    vals = []
    for _ in range(4):
        z0, k, images, vol = make_batch(val, 2, min(2, len(val)), rng, None, device)
        vals.append(float(diffusion_loss(ema, scheduler, cfg, z0, k, images, vol, g)))
    pipe = MotionPipeline(vae, ema, stats, cfg)
    pairs, imgs = [], []
    for i in range(min(3, len(val))):
        image = image_tensor([val.images[i][0]], device)[0]
        pred = pipe(image, samples=1, steps=sample_steps, seed=0).spectral[0]
        pairs.append((energy_map(val.spectral[i], cfg.T), energy_map(pred, cfg.T)))
        imgs.append(val.images[i][0])
    common.energy_grid_png(stage_dir / "samples" / f"step_{step:06d}.png", pairs, imgs)
    from .metrics import correlation
    ema.train()
    return {"val_loss": float(np.mean(vals)),
            "val_energy_corr": float(np.mean([correlation(a, b) for a, b in pairs]))}
