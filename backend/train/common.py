"""What every trainer shares: atomic writes, resumable checkpoints, LR schedule, progress bar, DDP, AMP.

Checkpoint layout of a run folder RUN/<stage>/:
  config.json, norm_stats.json          what the weights need to be used
  model.safetensors                     latest weights (inference)
  state.pt                              model + optimizer + step + RNG (torch.load(weights_only=True))
  log.jsonl, samples/step_%06d.png      losses and sample grids
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


# ------------------------------------------------------------------ atomic writes
def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)       # mkstemp makes 0600; results are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    def w(tmp):
        Path(tmp).write_text(text)
    _atomic(path, w)


def save_module(path: Path, module: torch.nn.Module, metadata: dict | None = None) -> None:
    """Weights of a module as safetensors (aliased parameters, e.g. diffusers' Downsample2D, stored once)."""
    from safetensors.torch import save_model
    _atomic(path, lambda tmp: save_model(module, tmp, metadata=metadata))


def load_module(module: torch.nn.Module, path: Path) -> None:
    """Strict load of safetensors weights into a module; FileNotFoundError names the missing file."""
    from safetensors.torch import load_model
    if not Path(path).is_file():
        raise FileNotFoundError(f"no weights at {path}")
    missing, unexpected = load_model(module, str(path), strict=False)
    # Aliased parameters (saved once under one name) are reported as missing under the other: ignore those.
    aliases = _aliased_names(module)
    missing = [m for m in missing if m not in aliases]
    if missing or unexpected:
        raise ValueError(f"{path} does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")


def _aliased_names(module: torch.nn.Module) -> set[str]:
    seen: dict[int, str] = {}
    aliases: set[str] = set()
    for name, t in module.state_dict(keep_vars=True).items():
        ptr = t.data_ptr()
        if ptr in seen:
            aliases.update({name, seen[ptr]})
        else:
            seen[ptr] = name
    return aliases


def safetensors_keys(path: Path) -> list[str]:
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        return list(f.keys())


def save_state(path: Path, state: dict) -> None:
    _atomic(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict | None:
    path = Path(path)
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def resume(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, ema: torch.nn.Module | None = None,
           what: str = "training") -> int:
    """Load model, optimizer (and EMA) from a `save_state` checkpoint if there is one; returns the step (0 if not)."""
    state = load_state(path)
    if state is None:
        return 0
    model.load_state_dict(state["model"])
    if ema is not None:
        ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["optimizer"])
    step = int(state["step"])
    print(f"resumed {what} at step {step}", flush=True)
    return step


def append_log(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


# ------------------------------------------------------------------ LR schedule
def lr_at(step: int, base_lr: float, total: int, warmup: int, floor: float = 0.1,
          progress: float | None = None) -> float:
    """Linear warm-up then cosine decay to floor * base_lr over `total` steps (depends only on the step), or
    over `progress` in [0, 1] when a wall-clock budget drives the run (see TrainClock)."""
    if step < warmup:
        return base_lr * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    if progress is not None:
        p = min(1.0, max(p, progress))
    return base_lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


class TrainClock:
    """Progress of a run that ends at `steps` or after `minutes` of wall time, whichever comes first.

    With a time budget the LR schedule follows the larger of the two fractions, so the cosine decay completes
    when the budget does (needed on shared 2-core machines where the step rate is unknown in advance).
    """

    def __init__(self, steps: int, start_step: int, minutes: float | None):
        import time
        self.steps, self.start_step, self.minutes = steps, start_step, minutes
        self.t0 = time.time()

    def fraction(self, step: int) -> float | None:
        import time
        if not self.minutes:
            return None
        return (time.time() - self.t0) / (60 * self.minutes)

    def done(self, step: int) -> bool:
        f = self.fraction(step)
        return step >= self.steps or (f is not None and f >= 1.0)


# ------------------------------------------------------------------ distributed / device
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_name: str) -> tuple[Dist, torch.device]:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is a plain single-process run."""
    from backend.device import pick_device
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), pick_device(device_name)
    import torch.distributed as dist
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and device_name != "cpu":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        dist.init_process_group("nccl")
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return Dist(rank, world, local), device


def wrap_ddp(model: torch.nn.Module, dist_info: Dist, device: torch.device) -> torch.nn.Module:
    if dist_info.world <= 1:
        return model
    from torch.nn.parallel import DistributedDataParallel
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if hasattr(model, "module") else model


def autocast(device: torch.device):
    from backend.device import autocast_dtype
    dtype = autocast_dtype(device)
    if dtype is None:
        return torch.autocast("cpu", enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def make_scaler(device: torch.device):
    from backend.device import autocast_dtype
    enabled = device.type == "cuda" and autocast_dtype(device) == torch.float16
    return torch.amp.GradScaler("cuda", enabled=enabled)


def optimizer_step(opt: torch.optim.Optimizer, scaler, loss: torch.Tensor, params, max_norm: float = 1.0) -> None:
    """One AMP-aware update: backward through the scaler, unscale, clip the gradient norm, step."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    scaler.step(opt)
    scaler.update()


def set_threads(n: int | None) -> None:
    if n:
        torch.set_num_threads(int(n))


def progress(total: int, initial: int, desc: str, enabled: bool = True):
    """tqdm bar (loss in the postfix, ETA built in); sparse updates when not on a terminal (logs)."""
    from tqdm import tqdm
    import sys
    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True,
                mininterval=1.0 if sys.stderr.isatty() else 30.0)


# ------------------------------------------------------------------ energy-map grid PNG
def energy_grid_png(path: Path, pairs: list[tuple[np.ndarray, np.ndarray]], images: list[np.ndarray] | None = None
                    ) -> None:
    """Rows of [image | true energy | predicted energy], energies on a shared per-row scale; written atomically."""
    import cv2
    rows = []
    for i, (true, pred) in enumerate(pairs):
        scale = max(float(true.max()), float(pred.max()), 1e-6)
        cells = []
        if images is not None:
            cells.append(cv2.cvtColor(images[i], cv2.COLOR_RGB2BGR))
        for e in (true, pred):
            u8 = np.clip(e / scale * 255, 0, 255).astype(np.uint8)
            cells.append(cv2.applyColorMap(u8, cv2.COLORMAP_INFERNO))
        h = cells[0].shape[0]
        cells = [c if c.shape[0] == h else cv2.resize(c, (int(c.shape[1] * h / c.shape[0]), h)) for c in cells]
        rows.append(np.concatenate(cells, axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    grid = np.concatenate(rows, axis=0)

    def w(tmp):
        ok, buf = cv2.imencode(".png", grid)
        if not ok:
            raise RuntimeError("PNG encoding failed")
        Path(tmp).write_bytes(buf.tobytes())
    _atomic(Path(path), w)
