"""All hyper-parameters of the motion model, one frozen dataclass per size preset, saved as config.json.

Presets: `tiny` (2 CPU cores, ~1 hour of training for all three stages), `base` (one GPU), `paper` (the paper's
scale: 256x160, 250 DDIM steps). Architecture fields are read back from the checkpoint on resume/load, so a
model always runs with the config it was trained with.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

SAMPLERS = ("ddim", "dpm++", "unipc")               # built by pipeline.sampling_scheduler


@dataclass(frozen=True)
class MotionConfig:
    preset: str = "tiny"
    # ---- representation (SPEC section 1)
    K: int = 16
    fps: float = 30.0
    T: int = 150
    work_size: tuple[int, int] = (128, 80)          # (W, H) the model works at; inputs are letterboxed to it
    # ---- spectral VAE (one 4-channel slice -> latent_channels at work_size / 2**(len(vae_channels)-1))
    vae_channels: tuple[int, ...] = (16, 32, 64)
    vae_layers_per_block: int = 1
    vae_mid_attention: bool = False
    vae_shortcut: bool = True                        # pooled/upsampled identity paths (see vae.py)
    latent_channels: int = 4
    vae_loss_weights: tuple[float, float, float] = (1.0, 0.2, 1e-6)   # L1, multi-scale gradient, KL (SPEC 3)
    vae_gradient_scales: int = 3
    vae_crop: tuple[int, int] = (64, 40)             # (W, H) random crops for VAE training (fully convolutional)
    # ---- denoising U-Net (operates on latents; conditioned on the image)
    unet_channels: tuple[int, ...] = (32, 64, 96)
    unet_layers_per_block: int = 1
    unet_groups: int = 16
    image_encoder_channels: tuple[int, ...] = (16, 32)   # image (3, H, W) -> cond features at latent size
    cond_channels: int = 32
    # ESPNet (Cityscapes) class probabilities of these classes as extra condition channels (issue 20), e.g.
    # ("vegetation", "terrain", "sky"); () = off (the shipped model). The frozen segmentation net runs on the
    # picture resized to semantic_input (W, H) and is not part of the U-Net's weights (backend/weights/priors).
    semantic_classes: tuple[str, ...] = ()
    semantic_input: tuple[int, int] = (256, 160)
    # mobilePyDNet inverse depth (per picture in [0, 1], backend/priors/depth.condition_inverse_depth) as one more
    # condition channel after the semantic ones (issue 20); off in this preset, on in the shipped weights (session
    # 19). Frozen, not trained.
    depth_condition: bool = False
    freq_attention_heads: int = 4
    freq_attention_levels: tuple[int, ...] = (0, 1, 2)   # U-Net levels that get attention across K in stage 2
    cfg_dropout: float = 0.1
    guidance: float = 1.25                          # chosen on held-out training scenes (MODEL_CARD)
    # ---- diffusion
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "v_prediction"
    sampler: str = "dpm++"                          # one of SAMPLERS
    sample_steps: int = 25
    # ---- loop self-guidance (SPEC section 3, Eq. 5)
    loop_guidance_scale: float = 200.0
    loop_period: int = 90                           # clip frames the loop should close over (3 s at 30 fps)
    loop_recurrence: int = 2
    # ---- training
    vae_steps: int = 1500
    vae_batch: int = 32                              # slices
    vae_lr: float = 1e-3
    ldm_steps: int = 3000
    ldm_batch: int = 32                              # (sample, k) slices in stage 1
    ldm_lr: float = 5e-4
    freq_steps: int = 500
    freq_batch: int = 2                              # samples of K slices in stage 2
    freq_lr: float = 5e-4
    # ---- image-guided refiner (refine.py): decoded slices -> refine_factor x the working grid
    refine_factor: int = 2
    refine_channels: int = 32
    refine_blocks: int = 4
    refine_steps: int = 2000
    refine_batch: int = 12                           # slices
    refine_lr: float = 1e-3
    refine_crop: tuple[int, int] = (128, 96)         # (W, H) crops of the fine grid
    refine_latent_noise: float = 0.5                 # max std of noise added to latents in training (sampler error)
    refine_keep_amount: bool = False                 # rescale refined slices to the plain upsampling's total |S|
    warmup_steps: int = 100
    ema_decay: float = 0.995                        # shipped U-Net weights are the EMA
    weight_decay: float = 0.0
    eval_every: int = 250
    checkpoint_every: int = 100
    max_train_samples: int = 4000

    # ------------------------------------------------------------------ derived
    @property
    def vae_factor(self) -> int:
        return 2 ** (len(self.vae_channels) - 1)

    @property
    def latent_size(self) -> tuple[int, int]:
        """(w, h) of the latent grid."""
        return self.work_size[0] // self.vae_factor, self.work_size[1] // self.vae_factor

    def validate(self) -> "MotionConfig":
        w, h = self.work_size
        f = self.vae_factor * 2 ** (len(self.unet_channels) - 1)
        if w % f or h % f:
            raise ValueError(f"work_size {self.work_size} must be divisible by {f} (VAE factor {self.vae_factor} x "
                             f"U-Net factor {2 ** (len(self.unet_channels) - 1)})")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {self.sampler!r}")
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ValueError(f"prediction_type must be 'epsilon' or 'v_prediction', not {self.prediction_type!r}")
        if self.semantic_classes:
            from backend.priors.espnet import CITYSCAPES_CLASSES
            bad = [c for c in self.semantic_classes if c not in CITYSCAPES_CLASSES]
            if bad or len(set(self.semantic_classes)) != len(self.semantic_classes):
                raise ValueError(f"semantic_classes {self.semantic_classes}: each once, from {CITYSCAPES_CLASSES}")
            w, h = self.semantic_input
            if w % 8 or h % 8 or w < 16 or h < 16:
                raise ValueError(f"semantic_input must be multiples of 8, >= 16, got {self.semantic_input}")
        if any(lv >= len(self.unet_channels) for lv in self.freq_attention_levels):
            raise ValueError(f"freq_attention_levels {self.freq_attention_levels} exceed the "
                             f"{len(self.unet_channels)} U-Net levels")
        for c in self.unet_channels:
            if c % self.unet_groups or c % self.freq_attention_heads:
                raise ValueError(f"unet channel {c} must be divisible by unet_groups {self.unet_groups} and "
                                 f"freq_attention_heads {self.freq_attention_heads}")
        return self

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MotionConfig":
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown motion config keys: {sorted(unknown)}")
        kwargs = {}
        for k, v in d.items():
            kwargs[k] = tuple(v) if isinstance(v, list) else v
        return cls(**kwargs).validate()

    def save(self, path: str | Path) -> None:
        from backend.train.common import atomic_write_text
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> "MotionConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self, **changes) -> "MotionConfig":
        return dataclasses.replace(self, **changes).validate()


PRESETS: dict[str, MotionConfig] = {
    "tiny": MotionConfig(),
    "base": MotionConfig(
        preset="base", work_size=(256, 160), vae_channels=(64, 128, 128, 128), vae_layers_per_block=2,
        vae_mid_attention=True, unet_channels=(128, 256, 256), unet_layers_per_block=2, unet_groups=32,
        image_encoder_channels=(32, 64, 64), cond_channels=64, freq_attention_heads=8,
        sample_steps=50, vae_steps=40_000, vae_batch=64, vae_lr=4e-4, ldm_steps=200_000, ldm_batch=128,
        ldm_lr=2e-4, freq_steps=50_000, freq_batch=8, freq_lr=1e-4, warmup_steps=1000, eval_every=2000,
        checkpoint_every=1000, max_train_samples=1_000_000),
    "paper": MotionConfig(
        preset="paper", work_size=(256, 160), vae_channels=(128, 256, 512, 512), vae_layers_per_block=2,
        vae_mid_attention=True, unet_channels=(256, 512, 768), unet_layers_per_block=2, unet_groups=32,
        image_encoder_channels=(64, 128, 128), cond_channels=128, freq_attention_heads=8,
        sampler="ddim", sample_steps=250, vae_steps=200_000, vae_batch=128,
        vae_lr=1e-4, ldm_steps=500_000, ldm_batch=256, ldm_lr=1e-4, freq_steps=100_000, freq_batch=16,
        freq_lr=5e-5, warmup_steps=5000, eval_every=5000, checkpoint_every=2000, max_train_samples=10_000_000),
}


def get_preset(name: str) -> MotionConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].validate()
