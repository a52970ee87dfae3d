"""Batched rendering for a GPU: many frames per network call, mixed precision, compile.

    br = BatchRenderer(Renderer.load(device="cuda"), GpuOptions.for_device(torch.device("cuda")))
    for start, frames in br.stream(image, spectral, fps, T, times, mode="ibr"):   # uint8 (b, H, W, 3) batches
        write(start, frames)

The same frames as `Renderer.render` (its sharp path, render/sharp.py: the same motion evaluation, metric,
inversion, fill and full-resolution warp), with the device's share of the work configured for a GPU:
- `batch` frames per low-resolution call (motion inversion, splat or network fill; bounded by
  `max_batch_pixels` at the working size), instead of the CPU's 4;
- `amp`: the network under `torch.autocast` (bf16 where supported, else fp16; splats accumulate in float32,
  see softsplat); off on the CPU by default (CPU autocast is slower than float32 there);
- `compile`: `torch.compile` of the IBR network with this backend ("inductor" on a GPU; "eager" checks the
  wiring without a compiler).
Only low-resolution fields cross the bus, and finished uint8 frames back; the full-resolution warp runs on the device
(render/sharp_device.py) on CUDA, on the host (OpenCV) elsewhere or with `device_warp=False`.
The CPU runs exactly this code path too (tests use device="cpu").
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from ..device import autocast_dtype
from ..jobs import NULL_CONTEXT, JobContext
from .api import Renderer, _check_image
from .sharp import DEFAULT_KERNEL, work_size

CUDA_BATCH_PIXELS = 8_000_000       # working-size pixels per call (the working size is <= 1024 px long)


@dataclass(frozen=True)
class GpuOptions:
    batch: int = 8                          # frames per low-resolution call (at most)
    amp: torch.dtype | None = None          # autocast dtype for the network; None = float32
    compile: str | None = None              # torch.compile backend for the IBR network, None = off
    max_batch_pixels: int = CUDA_BATCH_PIXELS
    device_warp: bool | None = None         # full-resolution warp on the device (None: on CUDA; render/sharp_device)

    @classmethod
    def for_device(cls, device: torch.device, batch: int = 8, compile: str | None = None) -> "GpuOptions":
        """What pays on this device: on CUDA autocast and large batches; on the CPU plain float32."""
        cuda = device.type == "cuda"
        return cls(batch=batch, amp=autocast_dtype(device), compile=compile,
                   max_batch_pixels=CUDA_BATCH_PIXELS if cuda else 1_200_000)


class BatchRenderer:
    def __init__(self, renderer: Renderer, options: GpuOptions | None = None):
        self.renderer = renderer
        self.device = renderer.device
        self.options = options or GpuOptions.for_device(renderer.device)
        if self.options.batch < 1 or self.options.max_batch_pixels < 1:
            raise ValueError(f"batch and max_batch_pixels must be >= 1, got {self.options}")
        self.model = renderer.model
        if self.model is not None and self.options.compile:
            self.model = torch.compile(renderer.model, backend=self.options.compile, dynamic=False)

    def render(self, image, spectral, fps: float, T: int, times: Sequence[float], scene_fps: float | None = None,
               speed: float = 1.0, magnitude: float = 1.0, loop_frames: int = 0, mode: str = "ibr",
               ctx: JobContext | None = None, displacement=None) -> np.ndarray:
        """All frames at once: uint8 (n, H, W, 3), as `Renderer.render` returns them (same arguments)."""
        img = _check_image(image)
        out = np.empty((len(np.atleast_1d(times)),) + img.shape, np.uint8)
        for start, frames in self.stream(img, spectral, fps, T, times, scene_fps, speed, magnitude, loop_frames,
                                         mode, ctx, displacement):
            out[start:start + len(frames)] = frames
        return out

    def stream(self, image, spectral, fps: float, T: int, times: Sequence[float], scene_fps: float | None = None,
               speed: float = 1.0, magnitude: float = 1.0, loop_frames: int = 0, mode: str = "ibr",
               ctx: JobContext | None = None, displacement=None) -> Iterator[tuple[int, np.ndarray]]:
        """Yields (index of the first frame, uint8 (b, H, W, 3)) per batch, in order.
        ctx: cancellation is checked before each batch; progress is reported per frame."""
        ctx = ctx or NULL_CONTEXT
        img, disp_all, z_grid = self.renderer.prepare(image, spectral, fps, T, times, scene_fps, speed, magnitude,
                                                      loop_frames, mode, displacement)
        if len(disp_all) == 0:
            return
        h, w = work_size(*img.shape[:2])
        per_batch = max(1, min(self.options.batch, self.options.max_batch_pixels // (h * w)))
        frames = self.renderer._frames(img, disp_all, z_grid, mode, DEFAULT_KERNEL, True, ctx, per_batch=per_batch,
                                       model=self.model, autocast=self._autocast,
                                       device_warp=self.options.device_warp)
        start, batch = 0, []
        for frame in frames:
            batch.append(frame)
            if len(batch) == per_batch:
                yield start, np.stack(batch)
                start, batch = start + per_batch, []
        if batch:
            yield start, np.stack(batch)

    def _autocast(self):
        if self.options.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.options.amp)
