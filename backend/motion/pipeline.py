"""The denoising loop: latents of K frequency slices per volume, classifier-free guidance, optional loop guidance.

SPEC section 3. Schedulers are diffusers' (DDPM for training, DDIM / DPM-Solver++ for sampling); this module
only composes them with the U-Net and the VAE. Shapes: N volumes x K slices are one batch of N*K latents
(C, h, w), the K slices of a volume consecutive (what frequency attention needs).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

from backend.jobs import NULL_CONTEXT, JobContext
from shared.spectral import NormStats

from .config import SAMPLERS, MotionConfig
from .refine import MotionRefiner
from .unet import FrequencyUNet
from .vae import SpectralVAE


def _scheduler_kwargs(config: MotionConfig) -> dict:
    return dict(num_train_timesteps=config.train_timesteps, beta_schedule=config.beta_schedule,
                prediction_type=config.prediction_type)


def training_scheduler(config: MotionConfig) -> DDPMScheduler:
    return DDPMScheduler(**_scheduler_kwargs(config), clip_sample=False)


LAMBDA_MIN = -5.0          # log(alpha / sigma) where the dpm++ grid starts


def sampling_scheduler(config: MotionConfig, sampler: str, steps: int, device=None):
    """A fresh diffusers scheduler for `sampler` with `steps` timesteps set; all integrate the same
    probability-flow ODE.

    dpm++ is third order on a grid uniform in log-SNR. With the cosine schedule, trailing timestep spacing ends
    in one step from t = 39 to 0 while the latents' small-scale components are still under noise: at 25 steps it
    came out with 24% less motion than the converged ODE. diffusers' own log-SNR grid (`use_lu_lambdas`) spends
    its first steps at t ~ 998, where the log-SNR runs down to -10 and nothing forms, and at 10 steps overshot
    (1.7x the motion); so the grid runs evenly in lambda = log(alpha / sigma) from LAMBDA_MIN (diffusers' advice
    for this schedule) to the cleanest step, fewer steps if two round to the same timestep.
    """
    kwargs = _scheduler_kwargs(config)
    if sampler == "ddim":
        scheduler = DDIMScheduler(**kwargs, clip_sample=False, set_alpha_to_one=True, timestep_spacing="trailing")
    elif sampler == "unipc":
        scheduler = UniPCMultistepScheduler(**kwargs, timestep_spacing="trailing")
    elif sampler == "dpm++":
        scheduler = DPMSolverMultistepScheduler(**kwargs, algorithm_type="dpmsolver++", solver_order=3)
        acp = scheduler.alphas_cumprod.double()
        lam = (0.5 * torch.log(acp / (1 - acp))).numpy()            # decreasing in t
        targets = np.linspace(max(LAMBDA_MIN, lam.min()), lam.max(), int(steps))
        ts = np.abs(lam[None, :] - targets[:, None]).argmin(axis=1)   # nearest training timestep to each target
        scheduler.set_timesteps(timesteps=sorted({int(t) for t in ts}, reverse=True), device=device)
        return scheduler
    else:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    scheduler.set_timesteps(int(steps), device=device)
    return scheduler


def training_target(config: MotionConfig, scheduler: DDPMScheduler, z0: torch.Tensor, noise: torch.Tensor,
                    t: torch.Tensor) -> torch.Tensor:
    if config.prediction_type == "v_prediction":
        return scheduler.get_velocity(z0, noise, t)
    return noise


def denormalize_torch(normalized: torch.Tensor, stats: NormStats) -> torch.Tensor:
    """(..., K, 4, H, W) normalised -> raw pixels, differentiable (S = sign(S') S'^2 s_k)."""
    scale = torch.as_tensor(stats.scales, dtype=normalized.dtype, device=normalized.device).view(-1, 1, 1, 1)
    return normalized * normalized.abs() * scale


def loop_loss(spectral: torch.Tensor, T: int, period: int) -> torch.Tensor:
    """SPEC Eq. 5's L_g: |F(period) - F(0)|_1 + |F'(period) - F'(0)|_1 (positions and velocities at the ends).

    spectral (N, K, 4, H, W) raw pixels; F(t) = Re sum_k a_k exp(2 pi i k t / T), evaluated in closed form.
    """
    K = spectral.shape[1]
    amp = torch.full((K,), 2.0 / T, dtype=spectral.dtype, device=spectral.device)
    amp[0] = 1.0 / T
    re, im = spectral[:, :, 0::2] * amp.view(1, K, 1, 1, 1), spectral[:, :, 1::2] * amp.view(1, K, 1, 1, 1)
    w = 2 * np.pi * torch.arange(K, dtype=spectral.dtype, device=spectral.device) / T
    c, s = torch.cos(w * period).view(1, K, 1, 1, 1), torch.sin(w * period).view(1, K, 1, 1, 1)
    # F(P) - F(0) = sum Re(a (e^{iwP} - 1));  F'(P) - F'(0) = sum Re(a i w (e^{iwP} - 1)).
    dpos = (re * (c - 1) - im * s).sum(1)
    wv = w.view(1, K, 1, 1, 1)
    dvel = (-(re * s + im * (c - 1)) * wv).sum(1)
    return dpos.abs().mean() + dvel.abs().mean()


@dataclass
class SampleResult:
    normalized: np.ndarray      # (N, K, 4, H, W) model space
    spectral: np.ndarray        # (N, K, 4, H, W) raw pixels of the working grid


class MotionPipeline:
    def __init__(self, vae: SpectralVAE, unet: FrequencyUNet, stats: NormStats, config: MotionConfig,
                 refiner: MotionRefiner | None = None):
        self.vae, self.unet, self.stats, self.config, self.refiner = vae, unet, stats, config, refiner

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def _model_output(self, z, t, k, cond, uncond, guidance):
        if guidance == 1.0:
            return self.unet(z, t, k, cond)
        out = self.unet(torch.cat([z, z]), t, torch.cat([k, k]), torch.cat([cond, uncond]))
        c, u = out.chunk(2)
        return u + guidance * (c - u)      # = (1 + w') c - w' u with w' = guidance - 1

    def __call__(self, image: torch.Tensor, samples: int = 1, steps: int | None = None, seed: int = 0,
                 guidance: float | None = None, sampler: str | None = None, loop: bool = False,
                 ctx: JobContext | None = None, fine_image: torch.Tensor | None = None) -> SampleResult:
        """image (3, H, W) in [0, 1] at the working size -> `samples` spectral volumes.

        fine_image (3, f*H, f*W): the same picture at the refiner's grid; given (and the pipeline has a refiner),
        the volumes come back on that grid, refined (refine.py); otherwise on the working grid."""
        cfg = self.config
        ctx = ctx or NULL_CONTEXT
        steps = int(steps or cfg.sample_steps)
        guidance = cfg.guidance if guidance is None else float(guidance)
        sampler = sampler or cfg.sampler
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        dev = self.device
        K, C = cfg.K, cfg.latent_channels
        w, h = cfg.latent_size
        n = samples * K
        scheduler = sampling_scheduler(cfg, sampler, steps, device=dev)
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn((n, C, h, w), generator=gen).to(dev) * scheduler.init_noise_sigma
        k = torch.arange(K, device=dev).repeat(samples)
        with torch.no_grad():
            cond1 = self.unet.encode_condition(image[None].to(dev))
        cond = cond1.expand(n, -1, -1, -1)
        uncond = torch.zeros_like(cond)
        timesteps = scheduler.timesteps
        for i, t in enumerate(timesteps):
            repeats = cfg.loop_recurrence if loop else 1
            for r in range(repeats):
                with torch.no_grad():
                    out = self._model_output(z, t, k, cond, uncond, guidance)
                if loop:
                    out = out + self._loop_guidance(z, t, k, cond, scheduler)
                if loop and r < repeats - 1:
                    # A trial step on a copy: multistep solvers keep a history and a step index, which only
                    # the final pass at this noise level may advance.
                    z_prev = copy.deepcopy(scheduler).step(out, t, z).prev_sample
                    z = self._renoise(z_prev, t, timesteps, i, scheduler, gen)
                else:
                    z = scheduler.step(out, t, z).prev_sample
            ctx.step("diffusion", (i + 1) / len(timesteps))
        with torch.no_grad():
            decoded = self.vae.decode(z)
            if fine_image is not None and self.refiner is not None:
                decoded = self.refine(decoded, fine_image, k)
        normalized = decoded.float().cpu().numpy().reshape(samples, K, 4, *decoded.shape[-2:])
        from shared.spectral import denormalize
        return SampleResult(normalized, denormalize(normalized, self.stats))

    @torch.no_grad()
    def refine(self, decoded: torch.Tensor, fine_image: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Normalised slices (n, 4, h, w) of frequencies k -> the refiner's grid, one volume of K slices at a time
        (bounds memory: a 256x160 slice of 32 features is 5 MB)."""
        image = fine_image[None].to(decoded.device)
        chunks = []
        for i in range(0, len(decoded), self.config.K):
            part = decoded[i:i + self.config.K]
            chunks.append(self.refiner(part, image.expand(len(part), -1, -1, -1), k[i:i + self.config.K]))
        return torch.cat(chunks)

    # ------------------------------------------------------------------ loop self-guidance (Eq. 5)
    def _loop_guidance(self, z, t, k, cond, scheduler) -> torch.Tensor:
        """u * sigma_t * grad_z L_g, expressed in the model's output space (eps or v)."""
        cfg = self.config
        a = scheduler.alphas_cumprod[int(t)].to(z.device, z.dtype)
        sa, s1 = a.sqrt(), (1 - a).sqrt()
        with torch.enable_grad():
            zg = z.detach().requires_grad_(True)
            out = self.unet(zg, t, k, cond)
            x0 = sa * zg - s1 * out if cfg.prediction_type == "v_prediction" else (zg - s1 * out) / sa
            norm = self.vae.decode(x0).view(-1, cfg.K, 4, *cfg.work_size[::-1])
            loss = loop_loss(denormalize_torch(norm, self.stats), cfg.T, cfg.loop_period)
            grad = torch.autograd.grad(loss, zg)[0]
        d_eps = cfg.loop_guidance_scale * s1 * grad
        # eps-space shift -> output space: v = sa * eps - s1 * x0 with x0 = (z - s1 eps) / sa, so dv = d_eps / sa.
        return d_eps / sa if cfg.prediction_type == "v_prediction" else d_eps

    @staticmethod
    def _renoise(z_prev, t, timesteps, i, scheduler, gen) -> torch.Tensor:
        """Self-recurrence: take z_{t-1} back to noise level t with fresh noise."""
        a_t = scheduler.alphas_cumprod[int(t)]
        a_prev = scheduler.alphas_cumprod[int(timesteps[i + 1])] if i + 1 < len(timesteps) else torch.tensor(1.0)
        ratio = (a_t / a_prev).to(z_prev.dtype)
        noise = torch.randn(z_prev.shape, generator=gen).to(z_prev.device)
        return ratio.sqrt() * z_prev + (1 - ratio).sqrt() * noise
