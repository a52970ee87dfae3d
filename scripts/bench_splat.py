"""Benchmark our softmax splatting against the usual pure-torch fallback, side by side in one run.

The reference below is the plain four-neighbour `index_add_` splat that pure-PyTorch projects use when the
CuPy kernel is unavailable (re-implemented here from its description: flatten, one index over every
(b, c, y, x) element, one `index_add_` per corner for the values and a separate one per corner for the
weights, then divide where the weight is non-zero). Both are checked to agree to 1e-5 before timing.

    python scripts/bench_splat.py [--size 512x288] [--channels 3 64] [--repeats 10] [--threads N]

Prints ms per call (CPU: process CPU time, best of N; use --threads 1 on a shared machine) and the speed ratio reference/ours (> 1 = ours faster) for the forward pass, and
forward+backward; frames/s on CUDA when a GPU is present.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.render.softsplat import softsplat  # noqa: E402


def reference_softsplat(x: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor) -> torch.Tensor:
    """The plain fallback: per-corner index_add_ on flat (B*C*H*W) values plus per-corner weight sums."""
    B, C, H, W = x.shape
    e = torch.exp(metric - metric.amax(dim=(1, 2, 3), keepdim=True))
    values = (x * e).reshape(-1)
    weights = e.reshape(-1)
    gx = torch.arange(W, device=x.device, dtype=x.dtype).view(1, 1, W).expand(B, H, W)
    gy = torch.arange(H, device=x.device, dtype=x.dtype).view(1, H, 1).expand(B, H, W)
    tx = gx + flow[:, 0]
    ty = gy + flow[:, 1]
    x0 = torch.floor(tx)
    y0 = torch.floor(ty)
    out = torch.zeros(B * C * H * W, dtype=x.dtype, device=x.device)
    norm = torch.zeros(B * H * W, dtype=x.dtype, device=x.device)
    b_idx = torch.arange(B, device=x.device).view(B, 1, 1).expand(B, H, W)
    for cx, cy in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
        w = (1 - (tx - cx).abs()) * (1 - (ty - cy).abs())
        ok = torch.isfinite(w) & (cx >= 0) & (cx < W) & (cy >= 0) & (cy < H)
        ix = cx.long()
        iy = cy.long()
        pix = (b_idx * H * W + iy * W + ix)                          # (B,H,W) flat pixel index
        chan = torch.arange(C, device=x.device).view(1, C, 1, 1)
        full = (b_idx[:, None] * C * H * W + chan * H * W + iy[:, None] * W + ix[:, None])  # (B,C,H,W)
        okc = ok[:, None].expand(B, C, H, W)
        out.index_add_(0, full[okc], (values.view(B, C, H, W) * w[:, None])[okc])
        norm.index_add_(0, pix[ok], (weights.view(B, H, W) * w)[ok])
    out = out.view(B, C, H, W)
    norm = norm.view(B, 1, H, W)
    return torch.where(norm > 0, out / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.zeros_like(out))


def make_inputs(B: int, C: int, H: int, W: int, device: torch.device, seed: int = 0):
    """Smooth oscillation-like flow of a few pixels with a moving foreground blob (real occlusions)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, C, H, W, generator=g)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, H), torch.linspace(-1, 1, W), indexing="ij")
    blob = torch.exp(-((xx / 0.4) ** 2 + (yy / 0.5) ** 2))
    flow = torch.stack([6.0 * blob + 0.5 * torch.sin(3 * yy), 3.0 * blob * torch.cos(2 * xx)])
    flow = flow[None].repeat(B, 1, 1, 1) + 0.3 * torch.randn(B, 2, H, W, generator=g)
    metric = 4.0 * flow.norm(dim=1, keepdim=True)
    return x.to(device), flow.to(device), metric.to(device)


def timeit(fn, repeats: int, device: torch.device) -> float:
    """Best of `repeats` in ms. On the CPU this is the process's own CPU time per call (with one thread: what
    the call costs on a core it has to itself; wall time on a shared, oversubscribed machine mostly measures
    the other jobs); on CUDA it is wall time after synchronising."""
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    best = float("inf")
    for _ in range(repeats):
        t0 = clock()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, clock() - t0)
    return best * 1000.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="512x288", help="WxH")
    ap.add_argument("--channels", type=int, nargs="+", default=[3, 64])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=10, help="timed calls; the best is reported")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args(argv)
    W, H = (int(v) for v in args.size.lower().split("x"))
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"softmax splat {W}x{H}, batch {args.batch}, CPU threads {torch.get_num_threads()}, "
          f"best of {args.repeats}")
    print(f"{'device':6} {'C':>3} {'pass':9} {'reference ms':>13} {'ours ms':>9} {'ratio ref/ours':>15} "
          f"{'ours frames/s':>14} {'max |diff|':>11}")
    for device in devices:
        for C in args.channels:
            x, flow, metric = make_inputs(args.batch, C, H, W, device)
            with torch.no_grad():
                ref = reference_softsplat(x, flow, metric)
                ours = softsplat(x, flow, metric, mode="soft").output
            diff = float((ref - ours).abs().max())
            if diff > 1e-5:
                print(f"MISMATCH on {device} C={C}: max |diff| = {diff:.3g} > 1e-5")
                return 1
            with torch.no_grad():
                t_ref = timeit(lambda: reference_softsplat(x, flow, metric), args.repeats, device)
                t_our = timeit(lambda: softsplat(x, flow, metric), args.repeats, device)
            print(f"{device.type:6} {C:3d} {'forward':9} {t_ref:13.2f} {t_our:9.2f} {t_ref / t_our:15.2f} "
                  f"{1000.0 * args.batch / t_our:14.1f} {diff:11.2e}")

            def fb(fn):
                xr = x.clone().requires_grad_(True)
                fr = flow.clone().requires_grad_(True)
                fn(xr, fr).sum().backward()

            t_ref = timeit(lambda: fb(lambda a, f: reference_softsplat(a, f, metric)), max(3, args.repeats // 2),
                           device)
            t_our = timeit(lambda: fb(lambda a, f: softsplat(a, f, metric).output), max(3, args.repeats // 2),
                           device)
            print(f"{device.type:6} {C:3d} {'fwd+bwd':9} {t_ref:13.2f} {t_our:9.2f} {t_ref / t_our:15.2f} "
                  f"{1000.0 * args.batch / t_our:14.1f}")
            if device.type == "cuda":
                with torch.no_grad():
                    t_det = timeit(lambda: softsplat(x, flow, metric, deterministic=True), args.repeats, device)
                print(f"{device.type:6} {C:3d} {'determ.':9} {'':13} {t_det:9.2f} {'':15} "
                      f"{1000.0 * args.batch / t_det:14.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
