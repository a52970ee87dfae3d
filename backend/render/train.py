"""Train the IBR renderer on (I0, I_t, flow I0 -> I_t) pairs (SPEC section 4).

    python -m backend.render.train --out runs/render_tiny --steps 4000        # or: gid train render ...
    python -m backend.render.train --out runs/render_tiny --resume            # continue where it stopped
    python -m backend.render.train --out runs/render_tiny --ship backend/weights/default/render --steps 0

Data: `backend.data.dataset.FramePairDataset` over full samples (synthetic scenes with exact motion and real
disocclusions; real-photo loops with extracted flow when present). The first `--val-count` samples of the
first folder are held out for validation PSNR (fixed frames, full size); the file list is re-read every
`--refresh-every` steps so samples still being generated join in. Each item is randomly cropped to `--crop`.
Loss: L1 + w_ssim (1 - SSIM) + w_grad |grad pred - grad target| (valid pixels only).
Checkpoint (resumable, no pickle): OUT/checkpoint/{model.safetensors, optimizer.safetensors, state.json}
with model config, train config, step, best validation PSNR, RNG state; OUT/best/ holds the best weights in
the shipped layout (config.json + model.safetensors). LR: warm-up then cosine, a function of the step only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..jobs import NULL_CONTEXT, JobContext
from .ibr import IBRConfig, IBRNet
from .metrics import psnr, ssim_map
from .preview import push_pull_fill, splat_metric
from .softsplat import softsplat

DEFAULT_DATA = ["runs/data/synth_render", "runs/data/loops/train"]
VAL_TIMES = (15, 75, 135)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", default=DEFAULT_DATA,
                        help="sample folders with full samples (missing ones are skipped with a note)")
    parser.add_argument("--out", default="runs/render_tiny", help="run folder (checkpoints, best weights, log)")
    parser.add_argument("--preset", default="tiny", choices=["tiny", "full"])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", default="128x96", help="training crop WxH")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--w-ssim", type=float, default=0.2)
    parser.add_argument("--w-grad", type=float, default=0.5)
    parser.add_argument("--val-count", type=int, default=12, help="held-out samples of the first folder")
    parser.add_argument("--val-every", type=int, default=200)
    parser.add_argument("--refresh-every", type=int, default=200, help="re-list sample files every N steps")
    parser.add_argument("--max-minutes", type=float, default=0.0, help="stop (with a checkpoint) after this")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    parser.add_argument("--ship", default=None, help="after training copy OUT/best to this weights folder")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the machine is shared)")
    parser.add_argument("--seed", type=int, default=0)


def lr_at(step: int, base: float, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine from base to base / 10 at `total`."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * p)))


def render_loss(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, w_ssim: float,
                w_grad: float) -> tuple[torch.Tensor, dict]:
    """L1 + w_ssim (1 - SSIM) + w_grad gradient L1 over valid pixels; pred/target (B, 3, H, W), valid (B, 1, H, W)."""
    v = valid.to(pred.dtype)
    denom = v.sum().clamp(min=1.0) * pred.shape[1]
    l1 = ((pred - target).abs() * v).sum() / denom
    vs = F.avg_pool2d(v, 11, 1) > 0.999                       # SSIM where its whole window is valid
    s = ssim_map(pred, target)
    l_ssim = 1.0 - (s * vs).sum() / (vs.sum().clamp(min=1.0) * pred.shape[1])

    def grads(x):
        return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]

    (px, py), (tx, ty) = grads(pred), grads(target)
    vx, vy = v[..., :, 1:] * v[..., :, :-1], v[..., 1:, :] * v[..., :-1, :]
    l_grad = (((px - tx).abs() * vx).sum() + ((py - ty).abs() * vy).sum()) / (2 * denom)
    total = l1 + w_ssim * l_ssim + w_grad * l_grad
    return total, {"l1": float(l1.detach()), "ssim": float(1 - l_ssim.detach()), "grad": float(l_grad.detach())}


# --------------------------------------------------------------------------------------------------------
# data


def _existing(folders: list[str]) -> list[str]:
    out = []
    for f in folders:
        if Path(f).is_dir() and any(Path(f).glob("sample_*.npz")):
            out.append(f)
        else:
            print(f"train render: skipping {f} (no samples)")
    return out


def make_train_set(folders: list[str], held_out: set[str]):
    from backend.data.dataset import FramePairDataset
    usable = []
    for f in _existing(folders):
        try:
            FramePairDataset([f], augment=True)
            usable.append(f)
        except ValueError as exc:                      # a folder of lite samples only
            print(f"train render: skipping {f}: {exc}")
    if not usable:
        raise ValueError(f"no full samples to train on in {folders}")
    ds = FramePairDataset(usable, augment=True)
    ds.paths = [p for p in ds.paths if str(p) not in held_out]
    if not ds.paths:
        raise ValueError("every sample is held out for validation; lower --val-count")
    return ds


def val_pairs(folder: str, count: int) -> tuple[list[dict], set[str]]:
    """Fixed validation pairs from the first `count` full samples of `folder` at full size."""
    from backend.data.samples import list_samples, load_sample
    paths = list_samples([folder])[:count]
    pairs = []
    for p in paths:
        s = load_sample(p, keys=("frames", "motion", "valid"))
        if "frames" not in s:
            continue
        motion = np.asarray(s["motion"], np.float32)
        rel = motion - motion[0]
        W_mean = np.sqrt((rel ** 2).sum(axis=1)).mean(axis=0)
        for t in VAL_TIMES:
            if t < len(motion):
                pairs.append({
                    "image0": torch.from_numpy(np.array(s["frames"][0])).permute(2, 0, 1).float() / 255,
                    "image_t": torch.from_numpy(np.array(s["frames"][t])).permute(2, 0, 1).float() / 255,
                    "flow": torch.from_numpy(rel[t].copy()),
                    "metric": torch.from_numpy(W_mean[None].astype(np.float32)),
                })
    return pairs, {str(p) for p in paths}


def random_crop(item: dict, crop: tuple[int, int], rng: np.random.Generator) -> dict:
    """Crop image0, image_t, flow, metric (already Z), valid to crop = (W, H) (or keep when smaller)."""
    H, W = item["image0"].shape[-2:]
    cw, ch = min(crop[0], W), min(crop[1], H)
    x0 = int(rng.integers(0, W - cw + 1))
    y0 = int(rng.integers(0, H - ch + 1))
    return {k: item[k][..., y0:y0 + ch, x0:x0 + cw] for k in ("image0", "image_t", "flow", "z", "valid")}


def make_batch(ds, batch: int, crop: tuple[int, int], rng: np.random.Generator, device) -> dict:
    items = []
    for i in rng.integers(0, len(ds), size=batch):
        it = ds[int(i)]
        H, W = it["image0"].shape[-2:]
        it["z"] = splat_metric(it["metric"][None], (W, H))[0]      # scale-free Z of the full sample
        it["valid"] = it["valid"][None]
        items.append(random_crop(it, crop, rng))
    return {k: torch.stack([it[k] for it in items]).to(device) for k in items[0]}


# --------------------------------------------------------------------------------------------------------
# checkpoints (safetensors + json, atomic)


def _atomic_json(path: Path, obj: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=2)
    os.replace(tmp, path)


def save_checkpoint(out: Path, model: IBRNet, opt: torch.optim.Optimizer, state: dict) -> None:
    from safetensors.torch import save_file
    d = out / "checkpoint"
    d.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(d)
    sd = opt.state_dict()
    tensors = {"rng.torch": torch.get_rng_state()}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            tensors[f"state.{idx}.{k}"] = v.detach().cpu().contiguous() if torch.is_tensor(v) else torch.tensor(v)
    fd, tmp = tempfile.mkstemp(dir=d, suffix=".tmp")
    os.close(fd)
    save_file(tensors, tmp)
    os.replace(tmp, d / "optimizer.safetensors")
    _atomic_json(d / "state.json", dict(state, param_groups=sd["param_groups"]))


def load_checkpoint(out: Path, device) -> tuple[IBRNet, dict, dict]:
    from safetensors.torch import load_file
    d = out / "checkpoint"
    model = IBRNet.from_pretrained(d).to(device)
    state = json.loads((d / "state.json").read_text())
    tensors = load_file(str(d / "optimizer.safetensors"))
    opt_state: dict = {}
    for name, v in tensors.items():
        if name.startswith("state."):
            _, idx, k = name.split(".", 2)
            opt_state.setdefault(int(idx), {})[k] = v.to(device) if k != "step" else v
    torch.set_rng_state(tensors["rng.torch"])
    return model, state, {"state": opt_state, "param_groups": state["param_groups"]}


# --------------------------------------------------------------------------------------------------------


@torch.no_grad()
def validate(model: IBRNet, pairs: list[dict], device) -> dict:
    model.eval()
    p_net, p_prev = [], []
    for pr in pairs:
        img = pr["image0"][None].to(device)
        flow = pr["flow"][None].to(device)
        H, W = img.shape[-2:]
        z = splat_metric(pr["metric"][None].to(device), (W, H))
        target = pr["image_t"][None].to(device)
        pred = model(img, flow, z).clamp(0, 1)
        res = softsplat(img, flow, z)
        prev = push_pull_fill(res.output, res.coverage.clamp(max=1.0)).clamp(0, 1)
        p_net.append(float(psnr(pred, target)[0]))
        p_prev.append(float(psnr(prev, target)[0]))
    model.train()
    return {"psnr": float(np.mean(p_net)), "psnr_preview": float(np.mean(p_prev))}


def run(args: argparse.Namespace, ctx: JobContext | None = None) -> int:
    from tqdm import tqdm

    from ..device import pick_device
    ctx = ctx or NULL_CONTEXT
    device = pick_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    crop = tuple(int(v) for v in args.crop.lower().split("x"))
    if len(crop) != 2 or min(crop) < 16:
        raise ValueError(f"--crop must be WxH with sides >= 16, got {args.crop!r}")

    if args.resume and (out / "checkpoint" / "state.json").exists():
        model, state, opt_sd = load_checkpoint(out, device)   # architecture comes from the checkpoint
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        opt.load_state_dict(opt_sd)
        step, best = int(state["step"]), float(state["best_psnr"])
        rng = np.random.default_rng(args.seed + step)
        print(f"train render: resumed at step {step} (best val PSNR {best:.2f} dB)")
    else:
        model = IBRNet(IBRConfig.preset_config(args.preset)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
        step, best = 0, -float("inf")
    print(f"train render: {model.info()} on {device}")

    folders = _existing(args.data)
    if not folders:
        raise ValueError(f"no sample folders with data among {args.data}")
    pairs, held_out = val_pairs(folders[0], args.val_count)
    if not pairs:
        raise ValueError(f"no full samples for validation in {folders[0]}")
    ds = make_train_set(args.data, held_out) if args.steps > step else None
    train_config = {k: v for k, v in vars(args).items() if k != "func"}

    def checkpoint(val: dict | None):
        save_checkpoint(out, model, opt, {"step": step, "best_psnr": best, "model_config": asdict(model.config),
                                          "train_config": train_config, "last_val": val})

    t_start = time.time()
    bar = tqdm(total=args.steps, initial=step, desc="train render", dynamic_ncols=True, mininterval=10)
    model.train()
    while step < args.steps:
        if step and step % args.refresh_every == 0:
            # append samples that appeared since (indices of known ones stay, so the per-sample metric
            # cache of the dataset stays valid)
            known = set(map(str, ds.paths))
            ds.paths.extend(p for p in make_train_set(args.data, held_out).paths if str(p) not in known)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lr, args.warmup, args.steps)
        b = make_batch(ds, args.batch, crop, rng, device)
        pred = model(b["image0"], b["flow"], b["z"])
        loss, parts = render_loss(pred, b["image_t"], b["valid"], args.w_ssim, args.w_grad)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{float(loss.detach()):.4f}", l1=f"{parts['l1']:.4f}", n=len(ds))
        ctx.step("train", step / args.steps)
        timed_out = args.max_minutes > 0 and (time.time() - t_start) > 60 * args.max_minutes
        if step % args.val_every == 0 or step == args.steps or timed_out:
            val = validate(model, pairs, device)
            improved = val["psnr"] > best
            if improved:
                best = val["psnr"]
                model.save_pretrained(out / "best")
            print(f"\nstep {step}: val PSNR {val['psnr']:.3f} dB (preview {val['psnr_preview']:.3f}) "
                  f"loss {float(loss.detach()):.4f} {'*' if improved else ''} samples {len(ds)} "
                  f"{(time.time() - t_start) / 60:.1f} min", flush=True)
            checkpoint(val)
        if timed_out:
            print(f"train render: --max-minutes {args.max_minutes} reached at step {step}")
            break
    bar.close()
    if args.ship:
        src = out / "best"
        if not (src / "model.safetensors").exists():
            raise FileNotFoundError(f"no best weights in {src} to ship")
        IBRNet.from_pretrained(src).save_pretrained(args.ship)
        print(f"train render: shipped {src} -> {args.ship}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend.render.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
