"""`MotionPredictor`: image -> spectral volume(s), the public API of the motion model (common brief).

Any image size/aspect: the image is letterboxed (resized to fit, edge-padded) into the working size, sampled,
and the motion of the image's own region is returned: spectral (N, K, 4, h, w) with h/w the image's aspect, in
pixels of that (h, w) grid (use `shared.spectral.resample_spectral(s, (W, H))` for the full image).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from backend.jobs import JobContext
from shared.spectral import NormStats, denormalize, normalize, resample_spectral

from .config import MotionConfig
from .pipeline import MotionPipeline
from .placement import PlacementNet, apply_placement, load_placement
from .spread import apply_spread
from .refine import MotionRefiner
from .unet import FrequencyUNet
from .vae import SpectralVAE

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "weights" / "default"
MIN_SIDE = 8
MAX_PIXELS = 16_000_000


@dataclass
class Prediction:
    spectral: np.ndarray            # (N, K, 4, h, w) float32, pixels of the (w, h) grid
    fps: float
    T: int
    size: tuple[int, int]           # (W, H) of the input image
    seed: int = 0
    steps: int = 0
    timings: dict = field(default_factory=dict)


def as_rgb(image) -> np.ndarray:
    """Validate and convert uint8 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) to (H, W, 3)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] in (1, 3, 4):
        h, w = image.shape[:2]
    elif image.ndim == 2:
        h, w = image.shape
    else:
        raise ValueError(f"image must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got shape {image.shape}")
    if h < MIN_SIDE or w < MIN_SIDE:
        raise ValueError(f"image is {w}x{h}; each side must be at least {MIN_SIDE} pixels")
    if h * w > MAX_PIXELS:
        raise ValueError(f"image is {w}x{h} = {h * w / 1e6:.1f} megapixels; the limit is {MAX_PIXELS / 1e6:.0f}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])     # RGBA: colour only (alpha does not move pixels)


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Fit (H, W, 3) into size (w, h) keeping the aspect; edge padding. -> (canvas, (x0, y0, w', h'))."""
    W, H = size
    h, w = image.shape[:2]
    s = min(W / w, H / h)
    nw, nh = max(1, min(W, round(w * s))), max(1, min(H, round(h * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    x0, y0 = (W - nw) // 2, (H - nh) // 2
    canvas = cv2.copyMakeBorder(resized, y0, H - nh - y0, x0, W - nw - x0, cv2.BORDER_REPLICATE)
    return canvas, (x0, y0, nw, nh)


def _require_part_files(folder: Path, what: str) -> None:
    """A model part (vae/, ldm/, refine/) is config.json + model.safetensors + norm_stats.json: fail clearly."""
    for name in ("config.json", "model.safetensors", "norm_stats.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{what} incomplete: {folder / name} is missing")


def _load_vae(folder: Path, device: torch.device) -> tuple[SpectralVAE, NormStats, MotionConfig]:
    """folder/{config.json, model.safetensors, norm_stats.json} -> the frozen VAE on device, its stats and config."""
    from backend.train.common import load_module
    cfg = MotionConfig.load(folder / "config.json")
    vae = SpectralVAE(cfg)
    load_module(vae, folder / "model.safetensors")
    stats = NormStats.from_dict(json.loads((folder / "norm_stats.json").read_text()))
    return vae.to(device).eval().requires_grad_(False), stats, cfg


class MotionPredictor:
    def __init__(self, pipeline: MotionPipeline, config: MotionConfig, device: torch.device, checkpoint: Path,
                 placement: PlacementNet | None = None):
        self.pipeline, self.config, self.device, self.checkpoint = pipeline, config, device, checkpoint
        self.placement = placement

    @classmethod
    def load(cls, checkpoint_dir: str | Path | None = None, device: str = "auto") -> "MotionPredictor":
        """checkpoint_dir holds vae/ and ldm/ (config.json, model.safetensors, norm_stats.json each) and optionally
        refine/ (the image-guided refiner, same files) and placement/ (the placement stage: config.json, and
        model.safetensors for a learned net); None = the shipped default in backend/weights/default."""
        from backend.device import pick_device
        from backend.train.common import load_module, safetensors_keys
        root = Path(checkpoint_dir) if checkpoint_dir is not None else DEFAULT_CHECKPOINT
        parts = ("vae", "ldm", "refine") if (root / "refine").exists() else ("vae", "ldm")
        for part in parts:
            _require_part_files(root / part, "motion checkpoint")
        dev = pick_device(device)
        cfg = MotionConfig.load(root / "ldm" / "config.json")
        vae, stats, _ = _load_vae(root / "vae", dev)
        unet = FrequencyUNet(cfg)
        if any(k.startswith("freq_attn_") for k in safetensors_keys(root / "ldm" / "model.safetensors")):
            unet.enable_freq_attention()
        load_module(unet, root / "ldm" / "model.safetensors")
        unet.to(dev).eval().requires_grad_(False)
        refiner = None
        if "refine" in parts:
            refiner = MotionRefiner(MotionConfig.load(root / "refine" / "config.json"))
            load_module(refiner, root / "refine" / "model.safetensors")
            refiner.to(dev).eval().requires_grad_(False)
        placement = load_placement(root / "placement", dev) if (root / "placement").exists() else None
        return cls(MotionPipeline(vae, unet, stats, cfg, refiner), cfg, dev, root, placement)

    @classmethod
    def load_autoencoder(cls, vae_dir: str | Path, device: str = "auto") -> "MotionPredictor":
        """The VAE of a run alone (a VAE/ folder whose denoiser is not trained yet): `autoencode` works, `predict`
        does not. For measuring what a VAE allows (scripts/bar_b_ceilings.py) before training a denoiser on it."""
        from backend.device import pick_device
        root = Path(vae_dir)
        _require_part_files(root, "VAE folder")
        dev = pick_device(device)
        vae, stats, cfg = _load_vae(root, dev)
        return cls(MotionPipeline(vae, None, stats, cfg), cfg, dev, root)

    @property
    def output_size(self) -> tuple[int, int]:
        """(W, H) of the grid predictions are made on: the refiner's when there is one, else the working size."""
        f = self.pipeline.refiner.factor if self.pipeline.refiner is not None else 1
        return self.config.work_size[0] * f, self.config.work_size[1] * f

    def _canvases(self, rgb: np.ndarray, refine: bool):
        """-> (working-size canvas, fine canvas or None, crop (x0, y0, w, h) on the output grid). With the
        refiner the picture is letterboxed on the fine grid and shrunk from there, so both grids align exactly."""
        if not (refine and self.pipeline.refiner is not None):
            canvas, box = letterbox(rgb, self.config.work_size)
            return canvas, None, box
        fine, box = letterbox(rgb, self.output_size)
        return cv2.resize(fine, tuple(self.config.work_size), interpolation=cv2.INTER_AREA), fine, box

    def predict(self, image, seed: int = 0, samples: int = 1, steps: int | None = None, loop: bool = False,
                guidance: float | None = None, ctx: JobContext | None = None, sampler: str | None = None,
                refine: bool = True, place: bool = True, placement: float | None = None) -> Prediction:
        """uint8 image (H, W[, 1|3|4]) -> Prediction with `samples` spectral volumes at the image's aspect.

        refine=False skips the image-guided refiner (motion on the working grid, as the VAE decodes it);
        place=False skips the placement stage (the denoiser's own energy map; placement.py); placement overrides
        its strength (0..1; None = the checkpoint's)."""
        if self.pipeline.unet is None:
            raise RuntimeError(f"{self.checkpoint} is a VAE alone (load_autoencoder): it cannot predict")
        rgb = as_rgb(image)
        if not 1 <= int(samples) <= 64:
            raise ValueError(f"samples must be 1..64, got {samples}")
        t0 = time.perf_counter()
        canvas, fine, (x0, y0, w, h) = self._canvases(rgb, refine)
        tensor = torch.from_numpy(canvas).permute(2, 0, 1).float().div(255)
        fine_t = None if fine is None else torch.from_numpy(fine).permute(2, 0, 1).float().div(255)
        steps = int(steps or self.config.sample_steps)
        result = self.pipeline(tensor, samples=int(samples), steps=steps, seed=int(seed), guidance=guidance,
                               sampler=sampler, loop=bool(loop), ctx=ctx, fine_image=fine_t)
        spectral = np.ascontiguousarray(result.spectral[..., y0:y0 + h, x0:x0 + w])
        if place:
            spectral = self.place(rgb, spectral, placement)
        return Prediction(spectral, float(self.config.fps), int(self.config.T), (rgb.shape[1], rgb.shape[0]),
                          int(seed), steps, {"predict_s": time.perf_counter() - t0})

    def place(self, image: np.ndarray, spectral: np.ndarray, strength: float | None = None) -> np.ndarray:
        """Volumes (N, K, 4, h, w) that `predict(image, place=False)` returned -> moved by the placement stage
        (placement.py) at `strength` (None = the checkpoint's), then spread over the picture's colour regions when
        its config asks (spread.py); unchanged when the checkpoint has no placement or strength is 0."""
        if strength is not None and not 0.0 <= float(strength) <= 1.0:
            raise ValueError(f"placement strength must be in [0, 1], got {strength}")
        if self.placement is None:
            return spectral
        strength = self.placement.config.strength if strength is None else float(strength)
        if strength == 0.0:
            return spectral
        rgb = as_rgb(image)
        # The picture letterboxed as the denoiser saw it, on the grid of the volumes, cropped like them.
        canvas, (x0, y0, w, h) = letterbox(rgb, self.output_size)
        if spectral.shape[-2:] != (h, w):
            raise ValueError(f"volumes of {spectral.shape[-1]}x{spectral.shape[-2]} are not this picture's "
                             f"{w}x{h} prediction grid")
        where = self.placement.placement_map(canvas, self.output_size)[y0:y0 + h, x0:x0 + w]
        cfg = self.placement.config
        placed = [apply_placement(one, where, self.config.T, strength, cfg.smooth_px) for one in spectral]
        radius = int(round(cfg.spread * self.output_size[0]))
        if radius > 0:
            guide = canvas[y0:y0 + h, x0:x0 + w].astype(np.float64) / 255.0
            placed = [apply_spread(one, guide, self.config.T, radius, cfg.spread_eps) for one in placed]
        return np.stack(placed)

    def autoencode(self, spectral: np.ndarray, vae: bool = True, image: np.ndarray | None = None) -> np.ndarray:
        """A motion volume (K', 4, H, W) in pixels of its grid, taken the way `predict` returns motion: onto the
        letterboxed working grid and (vae=True) through the VAE, cropped back -> (K, 4, h, w) like a prediction.
        With `image` (the picture, uint8) and a refiner, also through the refiner: (K, 4, h, w) on its grid.

        The best any sample of this model can be: eval scores it as the ceiling set by the working size, the
        VAE and the refiner (a sampler that found the truth's latents exactly would output this).
        """
        K = self.config.K
        if spectral.ndim != 4 or spectral.shape[0] < K or spectral.shape[1] != 4:
            raise ValueError(f"spectral must be (>= {K}, 4, H, W), got {spectral.shape}")
        H, W = spectral.shape[2:]
        refine = vae and image is not None and self.pipeline.refiner is not None
        _, fine, (x0, y0, w, h) = self._canvases(as_rgb(image) if refine else np.zeros((H, W, 3), np.uint8), refine)
        grid = self.output_size if refine else self.config.work_size
        canvas = np.zeros((K, 4) + tuple(grid[::-1]), np.float32)
        canvas[..., y0:y0 + h, x0:x0 + w] = resample_spectral(np.asarray(spectral[:K], np.float32), (w, h))
        if vae:
            stats, model = self.pipeline.stats, self.pipeline.vae
            work = resample_spectral(canvas, self.config.work_size) if refine else canvas
            with torch.no_grad():
                decoded = model.decode(model.encode(torch.from_numpy(normalize(work, stats)).to(self.device)))
                if refine:
                    fine_t = torch.from_numpy(fine).permute(2, 0, 1).float().div(255)
                    decoded = self.pipeline.refine(decoded, fine_t, torch.arange(K, device=self.device))
            canvas = denormalize(decoded.float().cpu().numpy(), stats)
        return np.ascontiguousarray(canvas[..., y0:y0 + h, x0:x0 + w])

    def info(self) -> dict:
        from backend.device import describe
        n_params = sum(p.numel() for p in self.pipeline.unet.parameters())
        n_vae = sum(p.numel() for p in self.pipeline.vae.parameters())
        return {"model": "gid-motion", "preset": self.config.preset, "checkpoint": str(self.checkpoint),
                "device": describe(self.device), "work_size": list(self.config.work_size), "K": self.config.K,
                "fps": self.config.fps, "T": self.config.T, "sampler": self.config.sampler,
                "default_steps": self.config.sample_steps, "guidance": self.config.guidance,
                "freq_attention": self.pipeline.unet.has_freq_attention,
                "refiner": self.pipeline.refiner is not None,
                "placement": None if self.placement is None else self.placement.config.strength,
                "placement_spread": None if self.placement is None else self.placement.config.spread,
                "output_size": list(self.output_size),
                "unet_parameters": n_params, "vae_parameters": n_vae}
