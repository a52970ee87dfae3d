"""Spectral VAE over one normalised 4-channel frequency slice (SPEC section 3).

diffusers' AutoencoderKL blocks; losses L1 + multi-scale gradient consistency + KL with weights (1, 0.2, 1e-6).
Shapes: slices (N, 4, H, W) -> latents (N, latent_channels, H / f, W / f), f = config.vae_factor.

Non-parametric shortcuts (config.vae_shortcut, as in DC-AE's space-to-channel shortcuts): the latent mean is
avg_pool(x) + learned residual, the decoder output is upsample(z) + learned residual, and both learned
residuals start at zero. Why: the slices are sparse (static background = 0) and signed; with L1 a plain
autoencoder first sits in the "predict 0" minimum, which on 2 CPU cores it did not leave within the time
budget. With the shortcuts it starts as a low-pass reconstruction and learns the detail.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

from .config import MotionConfig


class SpectralVAE(torch.nn.Module):
    def __init__(self, config: MotionConfig):
        super().__init__()
        self.config = config
        n = len(config.vae_channels)
        self.ae = AutoencoderKL(
            in_channels=4, out_channels=4, latent_channels=config.latent_channels,
            down_block_types=("DownEncoderBlock2D",) * n, up_block_types=("UpDecoderBlock2D",) * n,
            block_out_channels=tuple(config.vae_channels), layers_per_block=config.vae_layers_per_block,
            norm_num_groups=min(16, config.vae_channels[0]), mid_block_add_attention=config.vae_mid_attention)
        # Latents are divided by this before diffusion so they have unit std (set from data after training).
        self.register_buffer("latent_scale", torch.ones(()))
        self.shortcut = config.vae_shortcut
        if self.shortcut:
            if config.latent_channels != 4:
                raise ValueError(f"vae_shortcut needs latent_channels == 4 (the slice's channels), "
                                 f"got {config.latent_channels}")
            c = config.latent_channels
            with torch.no_grad():
                self.ae.quant_conv.weight.zero_()
                self.ae.quant_conv.bias.zero_()
                self.ae.quant_conv.bias[c:] = -8.0          # small initial posterior std
                self.ae.decoder.conv_out.weight.zero_()
                self.ae.decoder.conv_out.bias.zero_()

    def posterior(self, x: torch.Tensor) -> DiagonalGaussianDistribution:
        moments = self.ae.quant_conv(self.ae.encoder(x))
        if self.shortcut:
            c = moments.shape[1] // 2
            moments = torch.cat([moments[:, :c] + F.avg_pool2d(x, self.config.vae_factor), moments[:, c:]], 1)
        return DiagonalGaussianDistribution(moments)

    def _decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        out = self.ae.decode(z).sample
        if self.shortcut:
            out = out + F.interpolate(z, scale_factor=self.config.vae_factor, mode="bilinear",
                                      align_corners=False)
        return out

    def encode(self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
               ) -> torch.Tensor:
        """(N, 4, H, W) normalised slices -> (N, C, h, w) latents divided by latent_scale."""
        dist = self.posterior(x)
        z = dist.sample(generator) if sample else dist.mean
        return z / self.latent_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) scaled latents -> (N, 4, H, W) normalised slices."""
        return self._decode_raw(z * self.latent_scale)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        dist = self.posterior(x)
        return self._decode_raw(dist.sample(generator)), dist


def gradient_loss(pred: torch.Tensor, target: torch.Tensor, scales: int) -> torch.Tensor:
    """Multi-scale gradient consistency: L1 between finite differences of pred and target at 1, 1/2, 1/4 ..."""
    total = pred.new_zeros(())
    for s in range(scales):
        if s:
            pred, target = F.avg_pool2d(pred, 2), F.avg_pool2d(target, 2)
        if min(pred.shape[-2:]) < 2:
            break
        dx = (pred[..., :, 1:] - pred[..., :, :-1]) - (target[..., :, 1:] - target[..., :, :-1])
        dy = (pred[..., 1:, :] - pred[..., :-1, :]) - (target[..., 1:, :] - target[..., :-1, :])
        total = total + dx.abs().mean() + dy.abs().mean()
    return total / scales


def vae_loss(model: SpectralVAE, x: torch.Tensor, weight: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted L1 + 0.2 gradient + 1e-6 KL on a batch of slices (N, 4, H, W). Returns (loss, parts)."""
    w_l1, w_grad, w_kl = model.config.vae_loss_weights
    recon, dist = model(x)
    l1 = (recon - x).abs().mean()
    grad = gradient_loss(recon, x, model.config.vae_gradient_scales)
    kl = dist.kl().mean() / x[0].numel()
    loss = w_l1 * l1 + w_grad * grad + w_kl * kl
    return loss, {"l1": l1.item(), "grad": grad.item(), "kl": kl.item()}
