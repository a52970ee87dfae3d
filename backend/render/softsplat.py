"""Softmax splatting: forward warping of (B, C, H, W) tensors by a flow, in pure PyTorch (SPEC section 4).

Our own implementation from the paper's description (Niklaus & Liu, CVPR 2020); sniklaus/softmax-splatting
was read as a reference only. Every source pixel p sends its value to the 4 integer neighbours of p + F(p)
with bilinear weights b; in "soft" mode the value is x * exp(Z) and the normaliser exp(Z):

    out(q) = sum_p b(p, q) exp(Z_p) x_p / sum_p b(p, q) exp(Z_p)

Numerics (explicit, no epsilon anywhere):
- Z is shifted by its per-item maximum before exp (exact: the shift cancels in the ratio; no overflow) and
  clamped at `-max_log_range` below it so that a pixel reached only by low-metric sources never underflows
  to "empty" (weights below e^-80 relative to the front-most surface would not matter anyway).
- targets that receive no weight stay empty: their output is 0 and `coverage` is 0; nothing is added to
  the normaliser, so tiny weights are never swamped.
- sources with a non-finite flow (NaN, inf) are ignored; neighbours outside the image are dropped.

Speed: all channels [x*e, e, 1] travel as rows of one channels-last (B*H*W, C+2) matrix, so one row index
per corner serves every channel (no per-channel index math) and the "1" column gives the bilinear coverage
in the same pass; the four corners are weighted and row-scattered in cache-sized chunks (no (4, N, C)
temporary, no fresh pages per call). `scripts/bench_splat.py` measures it against the usual
per-corner `index_add_` fallback.

Gradients: w.r.t. input, flow (through the bilinear weights) and metric, via autograd; the scatter itself is
a custom autograd Function (`_SplatRows`) whose backward is a gather (deterministic on every device).
`deterministic=True` accumulates in 64-bit fixed point (integer adds are associative), so the result is
bit-identical run to run on CUDA as well, where float atomics are not.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch

MODES = ("soft", "avg", "linear", "sum")


class SplatResult(NamedTuple):
    """output (B, C, H, W): the normalised splat (the plain sum in "sum" mode), 0 where nothing landed;
    normalizer (B, 1, H, W): sum of b * weight (b * exp(Z - max Z) in "soft" mode, b * Z in "linear", b else);
    coverage (B, 1, H, W): sum of the bilinear weights b alone (~1 where one surface lands, 0 = hole)."""

    output: torch.Tensor
    normalizer: torch.Tensor
    coverage: torch.Tensor


def _chunk_rows(n_channels: int) -> int:
    """Source rows per chunk: keeps the (4, rows, C) weighted temporary near 4 MB (cache-sized, and small
    enough that the allocator reuses it instead of mapping fresh pages each call)."""
    return max(4096, (1 << 20) // (4 * n_channels))


class _SplatRows(torch.autograd.Function):
    """out[idx[k, p]] += w[k, p] * rows[p] for the 4 corners k; rows (N, C), idx/w (4, N), out (n_out, C).

    Forward and backward run in chunks of source rows so that no (4, N, C) temporary is ever made.
    backward: grad_rows[p] = sum_k w[k,p] g[idx[k,p]], grad_w[k,p] = <rows[p], g[idx[k,p]]> (gathers only,
    so the backward is deterministic on every device).
    """

    @staticmethod
    def forward(ctx, rows: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, n_out: int, deterministic: bool):
        ctx.save_for_backward(rows, idx, w)
        n, c = rows.shape
        step = _chunk_rows(c)
        if deterministic:
            return _splat_rows_fixed_point(rows, idx, w, n_out, step)
        out = rows.new_zeros((n_out, c))
        for a in range(0, n, step):
            b = min(n, a + step)
            vals = (w[:, a:b, None] * rows[None, a:b]).reshape(-1, c)
            out.index_add_(0, idx[:, a:b].reshape(-1), vals)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        rows, idx, w = ctx.saved_tensors
        n, c = rows.shape
        grad_rows = grad_w = None
        need_rows, _, need_w = ctx.needs_input_grad[:3]
        if need_rows:
            grad_rows = torch.empty_like(rows)
        if need_w:
            grad_w = torch.empty_like(w)
        step = _chunk_rows(c)
        grad_out = grad_out.contiguous()
        for a in range(0, n, step):
            b = min(n, a + step)
            g = grad_out.index_select(0, idx[:, a:b].reshape(-1)).view(4, b - a, c)
            if need_rows:
                grad_rows[a:b] = (w[:, a:b, None] * g).sum(0)
            if need_w:
                grad_w[:, a:b] = (g * rows[None, a:b]).sum(-1)
        return grad_rows, None, grad_w, None, None


def _splat_rows_fixed_point(rows: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, n_out: int,
                            step: int) -> torch.Tensor:
    """Deterministic splat: quantise each term to int64 fixed point with headroom for all 4N terms, add
    (integer addition is associative, so atomics cannot reorder the result), convert back.

    The scale is a power of two chosen per call from max|rows| (bilinear weights are <= 1) so that no partial
    sum can overflow; the quantisation step is about max|rows| * 4N / 2^62 (~1e-13 relative at 512x288).
    """
    n, c = rows.shape
    peak = float(rows.detach().abs().max()) if rows.numel() else 0.0
    if peak == 0.0 or n == 0:
        return rows.new_zeros((n_out, c))
    exponent = 62 - math.ceil(math.log2(peak * 4 * n))
    scale = 2.0 ** exponent
    acc = torch.zeros((n_out, c), dtype=torch.int64, device=rows.device)
    for a in range(0, n, step):
        b = min(n, a + step)
        vals = (w[:, a:b, None].double() * rows[None, a:b].double()).reshape(-1, c)
        acc.index_add_(0, idx[:, a:b].reshape(-1), torch.round(vals * scale).to(torch.int64))
    return (acc.double() / scale).to(rows.dtype)


def _bilinear_targets(flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices (4, B*H*W) into the (B*H*W) target table and bilinear weights (4, B*H*W) of the corners
    NW, NE, SW, SE of p + F(p). A neighbour outside the image (or any neighbour of a non-finite target) gets
    weight 0 and a clamped, in-range index, so it adds exactly nothing and needs no masking or compaction."""
    B, _, H, W = flow.shape
    dev = flow.device
    tx = flow[:, 0] + torch.arange(W, device=dev, dtype=flow.dtype).view(1, 1, W)
    ty = flow[:, 1] + torch.arange(H, device=dev, dtype=flow.dtype).view(1, H, 1)
    finite = torch.isfinite(tx) & torch.isfinite(ty)
    # Non-finite targets go outside the image, where all four neighbours get weight 0.
    tx = torch.where(finite, tx, -4.0)
    ty = torch.where(finite, ty, -4.0)
    x0f = torch.floor(tx)
    y0f = torch.floor(ty)
    ax = tx - x0f                      # carries the gradient w.r.t. the flow
    ay = ty - y0f
    # weights of the two columns / rows, zeroed where that column / row is outside the image
    wx0 = (1.0 - ax) * ((x0f >= 0) & (x0f <= W - 1))
    wx1 = ax * ((x0f >= -1) & (x0f <= W - 2))
    wy0 = (1.0 - ay) * ((y0f >= 0) & (y0f <= H - 1))
    wy1 = ay * ((y0f >= -1) & (y0f <= H - 2))
    xi = x0f.clamp(-1, W).to(torch.int64)
    yi = y0f.clamp(-1, H).to(torch.int64)
    x0 = xi.clamp(0, W - 1)
    x1 = (xi + 1).clamp_(0, W - 1)
    base = torch.arange(B, device=dev).view(B, 1, 1) * (H * W)
    r0 = yi.clamp(0, H - 1) * W + base
    r1 = (yi + 1).clamp_(0, H - 1) * W + base
    idx = torch.stack([r0 + x0, r0 + x1, r1 + x0, r1 + x1]).view(4, -1)
    wts = torch.stack([wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1]).view(4, -1)
    return idx, wts


def softsplat(x: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None = None, mode: str = "soft",
              deterministic: bool = False, max_log_range: float = 80.0) -> SplatResult:
    """Forward-warp x (B, C, H, W) by flow (B, 2, H, W) (pixels; channel 0 = x right, 1 = y down).

    mode: "soft" (needs metric Z (B, 1, H, W): weight exp(Z)), "linear" (weight Z >= 0), "avg" (weight 1),
    "sum" (no normalisation: output is the plain bilinear sum). Returns SplatResult(output, normalizer,
    coverage); see its docstring. Output is 0 where the normaliser is 0 (holes).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if x.dim() != 4 or flow.dim() != 4 or flow.shape[1] != 2:
        raise ValueError(f"x must be (B,C,H,W) and flow (B,2,H,W); got {tuple(x.shape)} and {tuple(flow.shape)}")
    B, C, H, W = x.shape
    if flow.shape[0] != B or flow.shape[2:] != x.shape[2:]:
        raise ValueError(f"flow {tuple(flow.shape)} does not match x {tuple(x.shape)}")
    needs_metric = mode in ("soft", "linear")
    if needs_metric != (metric is not None):
        raise ValueError(f"mode {mode!r} {'needs' if needs_metric else 'takes no'} metric")
    if metric is not None and (metric.shape[0] != B or metric.shape[1] != 1 or metric.shape[2:] != x.shape[2:]):
        raise ValueError(f"metric must be (B,1,H,W) = ({B},1,{H},{W}), got {tuple(metric.shape)}")
    if x.dtype in (torch.float16, torch.bfloat16):
        # accumulate in float32 (half sums of many tiny weights lose everything), hand back the input's dtype
        res = softsplat(x.float(), flow.float(), None if metric is None else metric.float(), mode, deterministic,
                        max_log_range)
        return SplatResult(*(t.to(x.dtype) for t in res))
    flow = flow.to(x.dtype)

    if mode == "soft":
        z = metric.to(x.dtype)
        z = z - z.detach().amax(dim=(1, 2, 3), keepdim=True)      # exact shift, no overflow
        weight = torch.exp(z.clamp(min=-max_log_range))
    elif mode == "linear":
        weight = metric.to(x.dtype)
        if bool((weight.detach() < 0).any()):
            raise ValueError("linear mode needs a non-negative metric")
    else:
        weight = None

    # Channels-last rows [x * weight, weight, 1], written once into one (B*H*W, C') matrix ("weight" is
    # omitted for avg/sum, where it is 1). Autograd tracks the writes.
    parts = [x * weight, weight] if weight is not None else [x]
    parts.append(torch.ones_like(x[:, :1]))
    rows = torch.cat([p.permute(0, 2, 3, 1) for p in parts], dim=3).reshape(B * H * W, -1)

    idx, wts = _bilinear_targets(flow)                          # (4, BHW), (4, BHW)
    acc = _SplatRows.apply(rows, idx, wts, B * H * W, deterministic)
    acc = acc.view(B, H, W, -1).permute(0, 3, 1, 2)            # channels-last memory, no copy

    coverage = acc[:, -1:]
    if weight is not None:
        total, normalizer = acc[:, :C], acc[:, C:C + 1]
    else:
        total, normalizer = acc[:, :C], coverage
    if mode == "sum":
        return SplatResult(total, normalizer, coverage)
    # Divide only where something landed; the where() keeps the gradient finite at holes.
    filled = normalizer > 0
    safe = torch.where(filled, normalizer, torch.ones_like(normalizer))
    output = torch.where(filled, total / safe, torch.zeros_like(total))
    return SplatResult(output, normalizer, coverage)
