"""Renderer: spectral volume + image -> frames. The one entry point the service, the CLI and scripts use.

    r = Renderer.load()                      # shipped default weights (IBR); "splat" works without them
    frames = r.render(image, spectral, fps, T, times=range(30), mode="ibr")   # uint8 (n, H, W, 3)

Displacements come from `shared.spectral.displacement_for_frames` at the spectral grid (the same function
the add-on's live displacement uses, so both move identically), are resized to a working grid (the image up
to `sharp.FLOW_LONG_SIDE`), and rendered relative to frame 0 (so frame 0 is I0 exactly: frames whose
displacement is exactly zero are returned as I0 without touching the network). The picture itself is
backward-warped at full resolution with a sharp kernel, tile by tile (`render.sharp`); the splat preview or
the IBR network only fills disocclusions, at low resolution.
The splat metric comes from the displacement over one period of the clip (`preview.splat_metric`).
Callers with their own per-frame fields (the add-on's pokes and animated controls) pass `displacement`, which
replaces the spectral evaluation frame by frame; the metric still comes from the ambient period.
"""
from __future__ import annotations

import contextlib
import hashlib
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from shared.spectral import displacement_for_frames, resize_field, resize_planes

from ..device import describe, pick_device
from ..jobs import NULL_CONTEXT, JobContext
from .preview import mean_motion, splat_metric, splat_preview
from .sharp import DEFAULT_KERNEL, KERNELS, SharpFrame, gain_table, invert_flow, source_bounds, work_size
from .sharp_device import KERNELS as DEVICE_KERNELS
from .sharp_device import DeviceSharpPicture

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "default" / "render"
MODES = ("ibr", "splat")
METRIC_SAMPLES = 32          # time samples over one period for W(p) = mean_t ||F_t(p)||
FRAMES_PER_BATCH = 4         # frames splatted together (amortises per-call overhead) ...
FLUID_LOG_RANGE = 30.0       # mixed scenes: fluid's splat metric at most this below the largest spectral Z
PIXELS_PER_BATCH = 1_200_000  # ... but no more pixels than this at once (bounds memory for 2K+ images)


def _check_image(image) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3) RGB, got {img.dtype} {img.shape}")
    if img.shape[0] < 2 or img.shape[1] < 2:
        raise ValueError(f"image must be at least 2x2 pixels, got {img.shape[1]}x{img.shape[0]}")
    return img


def _check_spectral(spectral) -> np.ndarray:
    s = np.asarray(spectral, dtype=np.float32)
    if s.ndim == 5 and s.shape[0] == 1:
        s = s[0]
    if s.ndim != 4 or s.shape[1] != 4:
        raise ValueError(f"spectral must be (K, 4, h, w) (or (1, K, 4, h, w)), got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("spectral volume contains non-finite values")
    return s


def _check_displacement(displacement, n: int) -> np.ndarray:
    d = np.asarray(displacement, dtype=np.float32)
    if d.ndim != 4 or d.shape[0] != n or d.shape[1] != 2 or d.shape[2] < 1 or d.shape[3] < 1:
        raise ValueError(f"displacement must be (n, 2, h, w) with n = len(times) = {n}, got {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError("displacement contains non-finite values")
    return np.ascontiguousarray(d)


def resize_field_fast(field: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """`shared.spectral.resize_field` for (n, 2, h, w) tensors, to (W, H) = size. Enlarging is plain bilinear
    interpolation with pixel centres aligned and clamped edges, which is exactly what resize_field computes,
    so torch does it (~100x cheaper than its two dense matmuls); shrinking goes through resize_field itself."""
    h, w = field.shape[-2:]
    W, H = size
    if (h, w) == (H, W):
        return field
    if H < h or W < w:
        return torch.from_numpy(resize_field(field.cpu().numpy(), size)).to(field.device)
    out = torch.nn.functional.interpolate(field, size=(H, W), mode="bilinear", align_corners=False)
    return out * torch.tensor([W / w, H / h], dtype=out.dtype, device=out.device).view(1, 2, 1, 1)


class Renderer:
    """Holds the (optional) IBR network on one device; `render` turns motion into frames."""

    def __init__(self, device: torch.device, model=None, checkpoint_dir: Path | None = None,
                 load_error: str | None = None):
        self.device = device
        self.model = model
        self.checkpoint_dir = checkpoint_dir
        self.load_error = load_error
        self._gains: tuple[bytes, np.ndarray] | None = None    # gain table of the last picture (per chunk reuse)

    @classmethod
    def load(cls, checkpoint_dir: str | Path | None = None, device: str = "auto") -> "Renderer":
        """checkpoint_dir None = the shipped default weights. Missing weights are not an error here: the
        "splat" mode needs none, and "ibr" raises a clear error when asked for."""
        dev = pick_device(device)
        ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else DEFAULT_WEIGHTS
        if checkpoint_dir is not None and not ckpt.exists():
            raise FileNotFoundError(f"render checkpoint directory {ckpt} does not exist")
        model, err = None, None
        if (ckpt / "model.safetensors").exists() and (ckpt / "config.json").exists():
            from .ibr import IBRNet
            model = IBRNet.from_pretrained(ckpt).to(dev).eval()
        else:
            err = f"no IBR weights in {ckpt} (config.json + model.safetensors)"
        return cls(dev, model, ckpt, err)

    def info(self) -> dict:
        return {
            "device": describe(self.device),
            "modes": list(MODES) if self.model is not None else ["splat"],
            "checkpoint": str(self.checkpoint_dir) if self.checkpoint_dir else None,
            "ibr": self.model.info() if self.model is not None else None,
            "ibr_error": self.load_error,
        }

    # ------------------------------------------------------------------------------------------------------

    def render(self, image, spectral, fps: float, T: int, times: Sequence[float], scene_fps: float | None = None,
               speed: float = 1.0, magnitude: float = 1.0, loop_frames: int = 0, mode: str = "ibr",
               ctx: JobContext | None = None, displacement=None, kernel: str = DEFAULT_KERNEL,
               gain: bool = True) -> np.ndarray:
        """Frames at scene frame numbers `times` (counted from the animation start, at `scene_fps`, default
        `fps`): uint8 (n, H, W, 3) at the image's full size. Same arguments as `frames`."""
        img = _check_image(image)
        n = len(np.atleast_1d(times))
        out = np.empty((n, *img.shape), np.uint8)
        for i, frame in enumerate(self.frames(img, spectral, fps, T, times, scene_fps, speed, magnitude,
                                              loop_frames, mode, ctx, displacement, kernel, gain)):
            out[i] = frame
        return out

    def frames(self, image, spectral, fps: float, T: int, times: Sequence[float], scene_fps: float | None = None,
               speed: float = 1.0, magnitude: float = 1.0, loop_frames: int = 0, mode: str = "ibr",
               ctx: JobContext | None = None, displacement=None, kernel: str = DEFAULT_KERNEL, gain: bool = True):
        """The frames of `render` one at a time (an iterator of uint8 (H, W, 3)): memory stays at one frame
        plus low-resolution fields whatever the picture size. Arguments are checked before it returns.
        kernel: the full-resolution resampling kernel (render.sharp.KERNELS; "cubic" unless measuring);
        gain: restore the detail energy the kernel loses at sub-pixel offsets (render.sharp.gain_table).

        displacement: optional float (n, 2, h, w), one field per entry of `times`, in pixels of its own (h, w)
        grid relative to frame 0 (e.g. the add-on's poke responses and per-frame controls), rendered instead
        of evaluating `spectral` at `times`. The splat metric still comes from the ambient motion over one
        period: from `spectral` (with `magnitude`) when given, else from the mean norm of these fields."""
        ctx = ctx or NULL_CONTEXT
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)}, not {kernel!r}")
        img, disp_all, z_grid = self.prepare(image, spectral, fps, T, times, scene_fps, speed, magnitude,
                                             loop_frames, mode, displacement)
        if len(disp_all) == 0:
            return iter(())
        return self._frames(img, disp_all, z_grid, mode, kernel, gain, ctx)

    def prepare(self, image, spectral, fps: float, T: int, times: Sequence[float], scene_fps: float | None,
                speed: float, magnitude: float, loop_frames: int, mode: str, displacement=None):
        """Check `frames`' arguments and evaluate the motion: (image uint8 (H, W, 3), every frame's displacement
        (n, 2, h, w) at its grid, the splat metric Z (1, 1, h, w) at the grid)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if mode == "ibr" and self.model is None:
            raise RuntimeError(f"IBR rendering needs trained weights: {self.load_error}. "
                               "Use mode='splat' or train them with `gid train render`.")
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
            return img, np.zeros((0, 2, 1, 1), np.float32), None

        # W(p) over one period of the clip (speed only re-times it; magnitude scales it).
        if spec is not None:
            period = displacement_for_frames(spec, int(T), fps,
                                             np.linspace(0.0, int(T), METRIC_SAMPLES, endpoint=False),
                                             None, 1.0, magnitude, 0)
        else:   # no volume: the given fields stand in for the period
            period = disp_given
        w_grid = np.sqrt(period[:, 0] ** 2 + period[:, 1] ** 2).mean(axis=0)[None, None]   # (1, 1, h, w) px
        # Z is scale-free (W in pixels at a 256-pixel long side), so take it at the grid, then resize the plane.
        z_grid = splat_metric(torch.from_numpy(w_grid))
        # All displacements at their grid in one evaluation (n x 2 x h x w floats, small).
        if disp_given is not None:
            disp_all = disp_given
        else:
            disp_all = displacement_for_frames(spec, int(T), fps, times, scene_fps, speed, magnitude, loop_frames)
        return img, disp_all, z_grid

    def _frames(self, img: np.ndarray, disp_all: np.ndarray, z_grid: torch.Tensor, mode: str, kernel: str,
                gain: bool, ctx: JobContext, per_batch: int | None = None, model=None,
                autocast=contextlib.nullcontext, device_warp: bool | None = None):
        """The sharp full-resolution path (render.sharp): motion inverted and the fill (splat preview or IBR
        network) made at low resolution, `per_batch` frames per call (default: what bounds memory on a CPU),
        the network (`model`, default this renderer's) under `autocast()`; the picture backward-warped row tile
        by row tile on the host, or with `device_warp` on the device (render.sharp_device; default: on CUDA,
        where the host warp was the whole frame time at 4K)."""
        dev = self.device
        n = len(disp_all)
        (h, w), metric, small_t, bounds, gains, net = self._sharp_setup(img, z_grid.numpy(), mode, kernel, gain,
                                                                        model)
        on_device = self._device_picture(img, bounds, gains, kernel, device_warp)
        per_batch = per_batch or max(1, min(FRAMES_PER_BATCH, PIXELS_PER_BATCH // (h * w)))
        done = 0
        for start in range(0, n, per_batch):
            ctx.check()
            disp = torch.from_numpy(disp_all[start:start + per_batch]).to(dev)
            still = disp.flatten(1).abs().amax(dim=1) == 0              # exact I0 for zero displacement
            moving = (~still).nonzero().flatten()
            backward = confidence = fill = None
            if len(moving):
                flow = resize_field_fast(disp[moving], (w, h))
                with torch.no_grad():
                    backward, confidence = invert_flow(flow, metric)
                    if mode == "splat":
                        fill = splat_preview(small_t, flow, metric)
                    else:
                        with autocast():
                            fill = net(flow)
                if on_device is None:
                    backward, confidence, fill = (t.float().cpu().numpy() for t in (backward, confidence, fill))
            k = 0
            for i in range(len(disp)):
                if bool(still[i]):
                    yield img
                elif on_device is not None:
                    yield on_device.frame(backward[k], confidence[k, 0], fill[k])
                    k += 1
                else:
                    yield SharpFrame(img, bounds, backward[k], confidence[k, 0], fill[k], kernel, gains).render()
                    k += 1
                done += 1
                ctx.step("render", done / n)

    def _sharp_setup(self, img: np.ndarray, metric: np.ndarray, mode: str, kernel: str, gain: bool, model=None):
        """What every frame of the sharp path shares: the working size (h, w), the splat metric and the picture
        at it, the picture's 2x2 bounds and detail gains, the network fill (IBR) or None (splat)."""
        H, W = img.shape[:2]
        h, w = work_size(H, W)
        metric_s = torch.from_numpy(resize_planes(metric, (w, h))).to(self.device)      # (1, 1, h, w)
        small = img if (h, w) == (H, W) else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        small_t = torch.tensor(small, device=self.device).permute(2, 0, 1)[None].float() / 255.0
        gains = self._gain_table(img, kernel) if gain else None
        net = None
        if mode == "ibr":
            net = _NetworkFill(self.model if model is None else model, small_t, metric_s)
        return (h, w), metric_s, small_t, source_bounds(img), gains, net

    def _device_picture(self, img: np.ndarray, bounds, gains, kernel: str,
                        device_warp: bool | None) -> DeviceSharpPicture | None:
        """The picture set up for the full-resolution warp on the device (render.sharp_device), or None for the
        host's: `device_warp` None means on CUDA (where the host warp was the whole 4K frame time) with a kernel
        the device has."""
        if device_warp is None:
            device_warp = self.device.type == "cuda" and kernel in DEVICE_KERNELS
        return DeviceSharpPicture(img, bounds, gains, kernel, self.device) if device_warp else None

    def _gain_table(self, img: np.ndarray, kernel: str) -> np.ndarray:
        """render.sharp.gain_table, kept for the last picture: callers render one picture chunk by chunk."""
        key = hashlib.blake2b(img.tobytes(), digest_size=16, person=kernel.encode()[:16]).digest()
        if self._gains is None or self._gains[0] != key:
            self._gains = (key, gain_table(img, kernel))
        return self._gains[1]


    def render_fluid(self, image, fluid, times: Sequence[float], spectral=None, fps: float = 30.0, T: int = 150,
                     scene_fps: float | None = None, speed: float = 1.0, magnitude: float = 1.0,
                     mode: str = "splat", ctx: JobContext | None = None, sharp: bool = True,
                     kernel: str = DEFAULT_KERNEL, gain: bool = True, device_warp: bool | None = None) -> np.ndarray:
        """Frames of an Eulerian loop (`fluid`: a `render.fluid.FluidMotion` at this image's size, N =
        fluid.loop_frames scene frames) at scene frame numbers `times`: uint8 (n, H, W, 3).

        Without `spectral` (fluid only) every pixel outside the fluid mask is I0 exactly. With `spectral` (a
        mixed scene) the spectral motion, looped over the same N frames, moves everything outside the mask
        and is zero inside; both splats of a frame carry it, so it renders once outside the mask.
        sharp (default): I0 backward-warped per term with `kernel` and the detail `gain` (render.fluid.sharp_pair),
        the splat / network only filling what neither term covers; False: the two softmax splats themselves
        (the path before issue 25, kept to measure against). device_warp: the sharp path's full-resolution step on
        the device (render.sharp_device; default: on CUDA)."""
        from .fluid import symmetric_splat

        ctx = ctx or NULL_CONTEXT
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if mode == "ibr" and self.model is None:
            raise RuntimeError(f"IBR rendering needs trained weights: {self.load_error}. Use mode='splat'.")
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {sorted(KERNELS)}, not {kernel!r}")
        img = _check_image(image)
        H, W = img.shape[:2]
        if fluid.mask.shape != (H, W):
            raise ValueError(f"fluid mask is {fluid.mask.shape[1]}x{fluid.mask.shape[0]}, image is {W}x{H}")
        times = np.atleast_1d(np.asarray(times, dtype=np.float64))
        if times.ndim != 1 or not np.isfinite(times).all():
            raise ValueError("times must be a 1-D sequence of finite frame numbers")
        n = len(times)
        out = np.empty((n, H, W, 3), np.uint8)
        if n == 0:
            return out
        dev = self.device
        outside = torch.from_numpy((~fluid.mask).astype(np.float32)).to(dev)[None, None]   # (1, 1, H, W)
        spec = None if spectral is None else _check_spectral(spectral)
        if spec is not None:
            if fps <= 0 or int(T) < 2:
                raise ValueError(f"fps must be > 0 and T >= 2, got fps={fps}, T={T}")
            period = displacement_for_frames(spec, int(T), fps,
                                             np.linspace(0.0, int(T), METRIC_SAMPLES, endpoint=False),
                                             None, 1.0, magnitude, 0)
            w_grid = np.sqrt(period[:, 0] ** 2 + period[:, 1] ** 2).mean(axis=0)[None, None]
            z_grid = splat_metric(torch.from_numpy(w_grid))
            metric = torch.from_numpy(resize_planes(z_grid.numpy(), (W, H))).to(dev) * outside
            # Fluid sits behind what sways, but within FLUID_LOG_RANGE of the front-most surface: softsplat
            # clamps weights at e^-80 below it, so a fluid Z of 0 under large sway would underflow to holes.
            z_fluid = max(0.0, float(metric.max()) - FLUID_LOG_RANGE)
            metric = metric + (1.0 - outside) * z_fluid
            disp_all = displacement_for_frames(spec, int(T), fps, times, scene_fps, speed, magnitude,
                                               fluid.loop_frames)
        else:
            metric = torch.zeros((1, 1, H, W), device=dev)
            disp_all = None
        image_t = torch.from_numpy(img).to(dev).permute(2, 0, 1)[None].float() / 255.0
        keep = torch.from_numpy(fluid.mask).to(dev)[None, None] if spec is None else None

        if sharp:
            self._fluid_sharp(img, fluid, times, disp_all, metric, outside, mode, kernel, gain, out, ctx, device_warp)
            return out
        per_batch = max(1, min(FRAMES_PER_BATCH, PIXELS_PER_BATCH // (H * W)))
        done = 0
        for start in range(0, n, per_batch):
            ctx.check()
            chunk = times[start:start + per_batch]
            fwd, bwd, wf = fluid.flows(chunk, (W, H))
            fwd, bwd = fwd.to(dev), bwd.to(dev)
            if disp_all is not None:
                d = resize_field_fast(torch.from_numpy(disp_all[start:start + per_batch]).to(dev), (W, H)) * outside
                fwd, bwd = fwd + d, bwd + d
            with torch.no_grad():
                if mode == "splat":
                    frames = symmetric_splat(image_t, fwd, bwd, wf.to(dev), metric)
                else:
                    from .ibr import render_full_size
                    a = render_full_size(self.model, image_t, fwd, metric)
                    b = render_full_size(self.model, image_t, bwd, metric)
                    w = wf.to(dev).view(-1, 1, 1, 1)
                    frames = w * a + (1.0 - w) * b
                if keep is not None:                        # fluid only: still pixels exactly still
                    frames = torch.where(keep, frames, image_t)
            rgb = (frames.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            for i in range(len(chunk)):
                still = float(wf[i]) == 1.0 and bool(fwd[i].abs().amax() == 0)   # frame 0 (= frame N) is I0
                out[start + i] = img if bool(still) else rgb[i]
                done += 1
                ctx.step("render", done / n)
        return out

    def _fluid_sharp(self, img: np.ndarray, fluid, times: np.ndarray, disp_all, metric: torch.Tensor,
                     outside: torch.Tensor, mode: str, kernel: str, gain: bool, out: np.ndarray, ctx: JobContext,
                     device_warp: bool | None = None):
        """render_fluid's sharp path into `out`: both terms' fields inverted and the fill made at the working
        grid (render.sharp.work_size), the picture warped at full resolution (render.fluid.sharp_pair, or
        DeviceSharpPicture.fluid_frame with `device_warp`: by default on CUDA)."""
        from .fluid import sharp_pair, symmetric_splat

        dev = self.device
        n = len(times)
        (h, w), metric_s, small_t, bounds, gains, net = self._sharp_setup(img, metric.cpu().numpy(), mode, kernel,
                                                                          gain)
        outside_s = torch.from_numpy(resize_planes(outside.cpu().numpy(), (w, h))).to(dev)
        keep = fluid.mask if disp_all is None else None
        on_device = self._device_picture(img, bounds, gains, kernel, device_warp)
        per_batch = max(1, min(FRAMES_PER_BATCH, PIXELS_PER_BATCH // (h * w)))
        done = 0
        for start in range(0, n, per_batch):
            ctx.check()
            chunk = times[start:start + per_batch]
            fwd, bwd, wf = fluid.flows(chunk, (w, h))
            fwd, bwd = fwd.to(dev), bwd.to(dev)
            if disp_all is not None:
                d = resize_field_fast(torch.from_numpy(disp_all[start:start + per_batch]).to(dev), (w, h))
                fwd, bwd = fwd + d * outside_s, bwd + d * outside_s
            b = len(chunk)
            with torch.no_grad():
                backward, confidence = invert_flow(torch.cat([fwd, bwd]), metric_s)
                if net is None:
                    fill = symmetric_splat(small_t, fwd, bwd, wf.to(dev), metric_s)
                else:
                    wv = wf.to(dev).view(-1, 1, 1, 1)
                    fill = wv * net(fwd) + (1.0 - wv) * net(bwd)
            backward, confidence = backward.float().reshape(2, b, 2, h, w), confidence.float().reshape(2, b, h, w)
            if on_device is None:
                backward, confidence, fill = (t.float().cpu().numpy() for t in (backward, confidence, fill))
            for i in range(b):
                if float(wf[i]) == 1.0 and bool(fwd[i].abs().amax() == 0):    # frame 0 (= frame N) is I0
                    out[start + i] = img
                else:
                    if on_device is not None:
                        frame = on_device.fluid_frame(backward[:, i], confidence[:, i], float(wf[i]), fill[i])
                    else:
                        frame = sharp_pair(img, bounds, backward[:, i], confidence[:, i], float(wf[i]), fill[i],
                                           kernel, gains)
                    if keep is not None:                            # fluid only: still pixels exactly still
                        frame[~keep] = img[~keep]
                    out[start + i] = frame
                done += 1
                ctx.step("render", done / n)


class _NetworkFill:
    """The IBR network at its working size (<= work_long_side), encoder features of I0 computed once: what
    the sharp path blends in where the picture is disoccluded."""

    def __init__(self, model, image: torch.Tensor, metric: torch.Tensor):
        from .ibr import resize_plane
        self.model = model
        h, w = image.shape[-2:]
        work = model.config.work_long_side
        s = min(1.0, work / max(h, w))
        self.size = (max(2, round(h * s)), max(2, round(w * s)))
        self.image = resize_plane(image, self.size)
        self.metric = resize_plane(metric, self.size)
        with torch.no_grad():
            self.features = model.encoder(self.image)

    @torch.no_grad()
    def __call__(self, flow: torch.Tensor) -> torch.Tensor:
        from .ibr import resize_flow
        return self.model(self.image, resize_flow(flow, self.size), self.metric, self.features).clamp(0.0, 1.0)


def throughput(renderer: Renderer, image: np.ndarray, spectral: np.ndarray, fps: float, T: int, mode: str,
               n: int = 30) -> tuple[float, float]:
    """(wall-clock, CPU-time) frames per second of `render` for n consecutive frames, everything included
    (motion, resize, splat / network). CPU time = this process's own: on a shared, oversubscribed machine it
    is what the work costs on cores it has to itself (with one thread: the single-core frames/s)."""
    renderer.render(image, spectral, fps, T, [1], mode=mode)   # warm-up
    c0, t0 = time.process_time(), time.perf_counter()
    renderer.render(image, spectral, fps, T, np.arange(1, n + 1), mode=mode)
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)
