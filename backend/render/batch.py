"""Batched rendering for a GPU: many frames per network call, mixed precision, pinned host buffers, compile.

    br = BatchRenderer(Renderer.load(device="cuda"), GpuOptions.for_device(torch.device("cuda")))
    for start, frames in br.stream(image, spectral, fps, T, times, mode="ibr"):   # uint8 (b, H, W, 3) batches
        write(start, frames)

The same frames as `Renderer.render` (same motion evaluation, metric, splat and network, exact I0 where the
displacement is zero), computed differently where a GPU wants it:
- `batch` frames per network call (bounded by `max_batch_pixels`), instead of the CPU's 4;
- `amp`: the network under `torch.autocast` (bf16 where supported, else fp16; splats accumulate in float32,
  see softsplat); off on the CPU by default (CPU autocast is slower than float32 there);
- `pinned`: frames leave the GPU as uint8 into two page-locked host buffers with non-blocking copies, so the
  copy of batch i and the caller's work on batch i-1 (PNG writing) overlap the rendering of batch i+1;
- `compile`: `torch.compile` of the IBR network with this backend ("inductor" on a GPU; "eager" checks the
  wiring without a compiler); the last batch is padded to the batch size so shapes never change.
The CPU runs exactly this code path too (tests use device="cpu"); only the buffers are not pinned there.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch

from shared.spectral import displacement_for_frames, resize_planes

from ..device import autocast_dtype
from ..jobs import NULL_CONTEXT, JobContext
from .api import MODES, METRIC_SAMPLES, Renderer, _check_displacement, _check_image, _check_spectral, resize_field_fast
from .preview import splat_metric, splat_preview

CUDA_BATCH_PIXELS = 34_000_000      # 4 frames of 3840x2160 (16 of 1080p) per call: ~10-15 GB of activations


@dataclass(frozen=True)
class GpuOptions:
    batch: int = 8                          # frames per network call (at most)
    amp: torch.dtype | None = None          # autocast dtype for the network; None = float32
    pinned: bool = False                    # page-locked host buffers + non-blocking copies (CUDA only)
    compile: str | None = None              # torch.compile backend for the IBR network, None = off
    max_batch_pixels: int = CUDA_BATCH_PIXELS

    @classmethod
    def for_device(cls, device: torch.device, batch: int = 8, compile: str | None = None) -> "GpuOptions":
        """What pays on this device: on CUDA autocast + pinned buffers; on the CPU plain float32."""
        cuda = device.type == "cuda"
        return cls(batch=batch, amp=autocast_dtype(device), pinned=cuda, compile=compile,
                   max_batch_pixels=CUDA_BATCH_PIXELS if cuda else 1_200_000)


class BatchRenderer:
    def __init__(self, renderer: Renderer, options: GpuOptions | None = None):
        self.renderer = renderer
        self.device = renderer.device
        self.options = options or GpuOptions.for_device(renderer.device)
        if self.options.batch < 1 or self.options.max_batch_pixels < 1:
            raise ValueError(f"batch and max_batch_pixels must be >= 1, got {self.options}")
        if self.options.pinned and self.device.type != "cuda":
            raise ValueError("pinned host buffers need a CUDA device")
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
        """Yields (index of the first frame, uint8 (b, H, W, 3)) per batch, in order. With pinned buffers a
        yielded array is a view of a buffer reused two batches later: copy it (or write it) before then.
        ctx: cancellation is checked before each batch; progress is reported per finished batch."""
        ctx = ctx or NULL_CONTEXT
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if mode == "ibr" and self.model is None:
            raise RuntimeError(f"IBR rendering needs trained weights: {self.renderer.load_error}")
        img = _check_image(image)
        if spectral is None and displacement is None:
            raise ValueError("render needs a spectral volume, or per-frame displacement fields")
        spec = None if spectral is None else _check_spectral(spectral)
        if fps <= 0 or int(T) < 2:
            raise ValueError(f"fps must be > 0 and T >= 2, got fps={fps}, T={T}")
        times = np.atleast_1d(np.asarray(times, dtype=np.float64))
        if times.ndim != 1 or not np.isfinite(times).all():
            raise ValueError("times must be a 1-D sequence of finite frame numbers")
        n = len(times)
        disp_given = None if displacement is None else _check_displacement(displacement, n)
        if n == 0:
            return
        H, W = img.shape[:2]
        dev = self.device
        # The splat metric and every frame's displacement at the grid: as Renderer.render computes them.
        if spec is not None:
            period = displacement_for_frames(spec, int(T), fps,
                                             np.linspace(0.0, int(T), METRIC_SAMPLES, endpoint=False),
                                             None, 1.0, magnitude, 0)
        else:
            period = disp_given
        w_grid = np.sqrt(period[:, 0] ** 2 + period[:, 1] ** 2).mean(axis=0)[None, None]
        z_grid = splat_metric(torch.from_numpy(np.ascontiguousarray(w_grid)))
        metric = torch.from_numpy(resize_planes(z_grid.numpy(), (W, H))).to(dev)
        disp_all = disp_given if disp_given is not None else displacement_for_frames(
            spec, int(T), fps, times, scene_fps, speed, magnitude, loop_frames)
        image_t = torch.from_numpy(np.ascontiguousarray(img)).to(dev).permute(2, 0, 1)[None].float() / 255.0

        per_batch = max(1, min(self.options.batch, self.options.max_batch_pixels // (H * W)))
        buffers = self._host_buffers(per_batch, H, W)
        pending = None                      # (start, count, buffer index, copy-done event) of the last batch
        for k, start in enumerate(range(0, n, per_batch)):
            ctx.check()
            count = min(per_batch, n - start)
            rgb = self._render_batch(image_t, disp_all[start:start + count], metric, mode, per_batch, (W, H))
            slot = k % 2
            if buffers is not None:
                # this slot last held batch k-2, already yielded and handled by the caller
                buffers[slot][:count].copy_(rgb, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                current = (start, count, slot, event)
            else:
                current = (start, count, slot, rgb.cpu().numpy())
            if pending is not None:
                yield self._finish(pending, buffers, img, disp_all)
                ctx.step("render", start / n)
            pending = current
        yield self._finish(pending, buffers, img, disp_all)
        ctx.step("render", 1.0)

    # ------------------------------------------------------------------------------------------------------

    def _host_buffers(self, per_batch: int, H: int, W: int):
        if not self.options.pinned:
            return None
        return [torch.empty((per_batch, H, W, 3), dtype=torch.uint8, pin_memory=True) for _ in range(2)]

    def _finish(self, pending, buffers, img: np.ndarray, disp_all: np.ndarray) -> tuple[int, np.ndarray]:
        start, count, slot, done = pending
        if buffers is not None:
            done.synchronize()
            frames = buffers[slot][:count].numpy()
        else:
            frames = done
        # frames whose displacement is exactly zero are the still itself (as Renderer.render returns them)
        still = np.abs(disp_all[start:start + count]).reshape(count, -1).max(axis=1) == 0
        if still.any():
            frames = frames.copy() if buffers is not None else frames
            frames[still] = img
        return start, frames

    def _render_batch(self, image_t: torch.Tensor, disp: np.ndarray, metric: torch.Tensor, mode: str,
                      per_batch: int, size: tuple[int, int]) -> torch.Tensor:
        """uint8 (b, H, W, 3) on the device for b = len(disp) frames."""
        count = len(disp)
        if self.options.compile and count < per_batch:       # static shapes for the compiled network
            disp = np.concatenate([disp, np.repeat(disp[-1:], per_batch - count, axis=0)])
        flow = resize_field_fast(torch.from_numpy(np.ascontiguousarray(disp)).to(self.device, non_blocking=True),
                                 size)
        with torch.no_grad():
            if mode == "splat":
                frames = splat_preview(image_t, flow, metric)
            else:
                from .ibr import render_full_size

                with self._autocast():
                    frames = render_full_size(self.model, image_t, flow, metric)
        frames = frames[:count].float()
        # channels-last and contiguous on the device, so the copy to the host is one DMA
        return (frames.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def _autocast(self):
        if self.options.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.options.amp)
