"""Pick the torch device once, the same way everywhere (serve, animate, train, bench)."""
from __future__ import annotations

import os

import torch


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU with all cores (or GID_THREADS); 'cuda' fails clearly without one."""
    if name not in ("auto", "cuda", "cpu"):
        raise ValueError(f"device must be auto, cuda or cpu, not {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but torch sees no CUDA device")
    if name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(cpu_threads())
    return torch.device("cpu")


def cpu_threads() -> int:
    """All cores, unless GID_THREADS says otherwise (a machine shared with a training job or a render farm)."""
    raw = os.environ.get("GID_THREADS", "").strip()
    if not raw:
        return max(1, os.cpu_count() or 1)
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"GID_THREADS must be a positive integer, got {raw!r}")
    return int(raw)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()} threads"


def autocast_dtype(device: torch.device):
    """Mixed precision on CUDA (bf16 where supported, else fp16); full fp32 on the CPU. GID_AUTOCAST=bf16 asks for
    bf16 on the CPU too (how the GPU's mixed-precision path is tested on a machine without one); GID_AUTOCAST=off
    turns it off on CUDA (a fallback should a model misbehave in reduced precision)."""
    forced = os.environ.get("GID_AUTOCAST", "")
    if forced == "off":
        return None
    if device.type != "cuda":
        return torch.bfloat16 if forced == "bf16" else None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device):
    """Mixed precision for inference on this device (`autocast_dtype`), a no-op context on the CPU."""
    import contextlib

    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
