"""`gid train fluid`: the image -> flow-axis network on synthetic fluid scenes (backend.data.fluid_synth).

Scenes are generated once (seeds 0..scenes-1; validation seeds from 10**6), augmented by flips (the field's
component along a flipped axis changes sign). Target: the doubled-angle field of V (see fluid_velocity.py);
loss: its mean endpoint error inside the mask (the zero field's is the mean speed). Saves the weights
(config.json + model.safetensors) and `train_log.json` (loss per step, validation EPE) into --out.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

VAL_SEED = 10 ** 6


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="weights folder (e.g. backend/weights/default/fluid)")
    p.add_argument("--scenes", type=int, default=1500)
    p.add_argument("--val-scenes", type=int, default=48)
    p.add_argument("--size", default="96x64", help="W x H of the training scenes")
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--minutes", type=float, default=0.0, help="stop after this long (0 = no limit)")


def make_set(n: int, size: tuple[int, int], first_seed: int):
    from backend.data.fluid_synth import random_fluid_sample

    from .fluid_velocity import network_input

    xs, vs = [], []
    for i in range(n):
        img, mask, v, _ = random_fluid_sample(size, first_seed + i)
        xs.append(network_input(img, mask)[0])
        vs.append(torch.from_numpy(v))
    return torch.stack(xs), torch.stack(vs)


def epe(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    e = (pred - truth).norm(dim=1)
    return (e * mask).sum() / mask.sum().clamp(min=1.0)


def run(args: argparse.Namespace) -> int:
    from backend.device import pick_device

    from .fluid_velocity import FluidNetConfig, FluidVelocityNet, doubled_angle

    w, h = (int(v) for v in args.size.lower().split("x"))
    torch.manual_seed(args.seed)
    dev = pick_device("auto")
    t0 = time.perf_counter()
    x, v = make_set(args.scenes, (w, h), 0)
    xv, vv = make_set(args.val_scenes, (w, h), VAL_SEED)
    print(f"data: {args.scenes} + {args.val_scenes} scenes {w}x{h} in {time.perf_counter() - t0:.0f} s", flush=True)
    net = FluidVelocityNet(FluidNetConfig(work_long_side=max(w, h))).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    # constant, then a linear decay over the last fifth (also when --minutes ends it early: by step count)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, 5.0 * (1.0 - k / args.steps)))
    g = torch.Generator().manual_seed(args.seed)
    log = {"loss": [], "config": vars(args) | {"func": None}}
    t1 = time.perf_counter()
    step = 0
    for step in range(args.steps):
        idx = torch.randint(len(x), (args.batch,), generator=g)
        xb, vb = x[idx].clone(), v[idx].clone()
        # mirrors: the flipped axis' velocity component changes sign, and so does the structure tensor's
        # second (2 xy) channel
        if torch.rand(1, generator=g) < 0.5:          # left-right
            xb, vb = xb.flip(-1), vb.flip(-1)
            vb[:, 0] = -vb[:, 0]
            xb[:, 5] = -xb[:, 5]
        if torch.rand(1, generator=g) < 0.5:          # up-down
            xb, vb = xb.flip(-2), vb.flip(-2)
            vb[:, 1] = -vb[:, 1]
            xb[:, 5] = -xb[:, 5]
        xb, vb = xb.to(dev), vb.to(dev)
        loss = epe(net(xb), doubled_angle(vb), xb[:, 3])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        log["loss"].append(round(float(loss.detach()), 4))
        if step % 100 == 0:
            print(f"step {step} loss {float(loss.detach()):.3f} ({time.perf_counter() - t1:.0f} s)", flush=True)
        if args.minutes and time.perf_counter() - t1 > 60 * args.minutes:
            break
    net.eval()
    with torch.no_grad():
        val = float(epe(net(xv.to(dev)), doubled_angle(vv.to(dev)), xv[:, 3].to(dev)))
    log.update(steps_done=step + 1, val_epe=val, train_seconds=time.perf_counter() - t1)
    out = Path(args.out)
    net.cpu().save_pretrained(out)
    (out / "train_log.json").write_text(json.dumps(log))
    print(f"validation EPE {val:.3f} px/frame after {step + 1} steps; saved {out}", flush=True)
    return 0
