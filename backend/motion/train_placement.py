"""`gid train placement`: the motion placement net (placement.py) from sample folders (real windows and synthetic).

Each sample gives its picture and its true motion-energy map (mean over the clip of ||F_t - F_0||, zero where the
flow was not valid); both are held in memory at the samples' own size (OUT/energy_cache.npz, made once). A batch
draws samples by folder weight, crops 55-100 % of each side at a random place (close-ups the data lacks), flips,
jitters brightness, contrast and saturation, and resizes to the net's grid. Loss: 1 - Pearson correlation of
exp(output) with the true map over valid pixels (the figure `gid eval` reports), plus 0.1 x a scale-invariant
log error (so near-still regions are ordered too). `--val` folders are scored every --eval-every steps (mean
correlation at the samples' size); OUT/placement/ holds config.json + model.safetensors (final), OUT/best/ the
best on --val, OUT/log.jsonl the history.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from backend.data.samples import list_samples
from backend.train import common

from .metrics import energy_map
from .placement import PlacementConfig, PlacementNet

CROP_SCALE = (0.55, 1.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, help="training sample folders")
    parser.add_argument("--weights", nargs="+", type=float, help="sampling weight of each --data folder")
    parser.add_argument("--val", nargs="*", default=[], help="held-out folders scored during training")
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-samples", type=int, default=1200, help="at most this many samples per folder")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--strength", type=float, default=0.5, help="gain exponent written to the config")
    parser.add_argument("--no-texture-anchor", action="store_true",
                        help="learn the map from scratch instead of as a correction of the texture map")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=None, help="minutes")
    parser.add_argument("--seed", type=int, default=0)


def load_energy_set(folders: list[str], max_samples: int, cache: Path | None = None, log=print) -> list[dict]:
    """Per folder: images (N, H, W, 3) uint8, energy (N, H, W) float32, valid (N, H, W) bool."""
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if list(z["folders"]) == [str(f) for f in folders] and int(z["max_samples"]) == max_samples:
                return [{k: z[f"{k}{i}"] for k in ("images", "energy", "valid")} for i in range(len(folders))]
    sets = []
    for folder in folders:
        paths = list_samples(folder)[:max_samples]
        if not paths:
            raise ValueError(f"{folder}: no samples")
        images, energy, valid = [], [], []
        t0 = time.perf_counter()
        for p in paths:
            with np.load(p, allow_pickle=False) as z:
                v = z["valid"].astype(bool) if "valid" in z.files else np.ones(z["image"].shape[:2], bool)
                images.append(z["image"])
                energy.append((energy_map(z["spectral"], int(z["T"])) * v).astype(np.float32))
                valid.append(v)
        log(f"placement: {len(paths)} samples of {folder} in {time.perf_counter() - t0:.0f} s")
        sets.append({"images": np.stack(images), "energy": np.stack(energy), "valid": np.stack(valid)})
    if cache is not None:
        from backend.data.samples import write_npz_atomic
        write_npz_atomic(cache, {"folders": np.array([str(f) for f in folders]), "max_samples": np.int64(max_samples),
                                 **{f"{k}{i}": s[k] for i, s in enumerate(sets) for k in s}})
    return sets


def _augment(image, energy, valid, size, rng):
    h, w = energy.shape
    s = rng.uniform(*CROP_SCALE)
    cw, ch = max(8, int(w * s)), max(8, int(h * s))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = cv2.resize(image[y0:y0 + ch, x0:x0 + cw], size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    e = cv2.resize(energy[y0:y0 + ch, x0:x0 + cw], size, interpolation=cv2.INTER_AREA)
    v = cv2.resize(valid[y0:y0 + ch, x0:x0 + cw].astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
    if rng.random() < 0.5:
        img, e, v = img[:, ::-1], e[:, ::-1], v[:, ::-1]
    gray = img.mean(2, keepdims=True)
    img = gray + (img - gray) * rng.uniform(0.6, 1.4)                       # saturation
    img = (img - img.mean()) * rng.uniform(0.7, 1.3) + img.mean()           # contrast
    img = np.clip(img * rng.uniform(0.7, 1.3), 0, 1)                        # brightness
    return img.transpose(2, 0, 1), e, v


def batch(sets, weights, n, size, rng):
    which = rng.choice(len(sets), size=n, p=weights)
    xs, es, vs = [], [], []
    for i in which:
        j = int(rng.integers(len(sets[i]["images"])))
        x, e, v = _augment(sets[i]["images"][j], sets[i]["energy"][j], sets[i]["valid"][j], size, rng)
        xs.append(x), es.append(e), vs.append(v)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(np.stack(a)))
    return t(xs).float(), t(es).float()[:, None], t(vs)[:, None]


def placement_loss(log_e: torch.Tensor, energy: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """1 - Pearson(exp(log_e), energy) + 0.1 scale-invariant log error, both over valid pixels, per picture."""
    m = valid.float()
    n = m.sum((1, 2, 3)).clamp_min(1)
    mean = lambda z: (z * m).sum((1, 2, 3)) / n
    p = torch.exp(log_e - log_e.amax((1, 2, 3), keepdim=True))
    pc = p - mean(p)[:, None, None, None]
    ec = energy - mean(energy)[:, None, None, None]
    r = mean(pc * ec) / torch.sqrt(mean(pc * pc) * mean(ec * ec) + 1e-12)
    eps = 0.05 * mean(energy)[:, None, None, None] + 1e-6
    d = log_e - torch.log(energy + eps)
    si = mean(d * d) - mean(d) ** 2
    return (1 - r).mean() + 0.1 * si.mean()


@torch.no_grad()
def score(net: PlacementNet, sets: list[dict]) -> list[float]:
    """Mean correlation of the placement map with the true energy per set (at the samples' size)."""
    from backend.eval.metrics import correlation
    net.eval()
    out = []
    for s in sets:
        cs = [correlation(net.placement_map(img, (e.shape[1], e.shape[0])), e, v)
              for img, e, v in zip(s["images"], s["energy"], s["valid"])]
        out.append(float(np.mean(cs)))
    net.train()
    return out


def run(args: argparse.Namespace) -> int:
    common.set_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = np.asarray(args.weights if args.weights else [1.0] * len(args.data), np.float64)
    if len(weights) != len(args.data) or (weights <= 0).any():
        raise ValueError("--weights: one positive weight per --data folder")
    log = lambda m: print(m, flush=True)
    sets = load_energy_set(args.data, args.max_samples, out / "energy_cache.npz", log)
    val = load_energy_set(args.val, args.max_samples, out / "energy_cache_val.npz", log) if args.val else []
    cfg = PlacementConfig(strength=args.strength, texture_anchor=not args.no_texture_anchor).validate()
    net = PlacementNet(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    log(f"placement: {sum(p.numel() for p in net.parameters())} parameters, {args.steps} steps of {args.batch}")
    best, t0 = -2.0, time.perf_counter()
    for step in range(1, args.steps + 1):
        for g in opt.param_groups:
            g["lr"] = common.lr_at(step, args.lr, args.steps, 100)
        x, e, v = batch(sets, weights / weights.sum(), args.batch, cfg.size, rng)
        loss = placement_loss(net(x), e, v)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        last = step == args.steps or (args.time_limit and time.perf_counter() - t0 > args.time_limit * 60)
        if step % args.eval_every == 0 or last:
            record = {"step": step, "loss": round(loss.item(), 4), "s": round(time.perf_counter() - t0, 1)}
            if val:
                record["val_corr"] = score(net, val)
                if np.mean(record["val_corr"]) > best:
                    best = float(np.mean(record["val_corr"]))
                    _save(out / "best", net, cfg)
            common.append_log(out / "log.jsonl", record)
            log(f"placement: {record}")
        if last:
            break
    _save(out / "placement", net, cfg)
    log(f"placement: wrote {out / 'placement'}")
    return 0


def _save(folder: Path, net: PlacementNet, cfg: PlacementConfig) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    cfg.save(folder / "config.json")
    if cfg.source == "net":
        common.save_module(folder / "model.safetensors", net)
