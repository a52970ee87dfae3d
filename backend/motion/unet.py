"""Denoising U-Net over spectral-slice latents, with frequency embedding and attention across frequencies.

SPEC section 3. Stage 1: every frequency slice is denoised independently, a learned embedding of k is added to
the diffusion-timestep embedding; spatial layers see (B*K, C, h, w). Stage 2 (`enable_freq_attention`): the
trained spatial layers are frozen and attention across the K frequencies is inserted after the spatial blocks of
the chosen levels (features viewed as (B, K, C, h, w); diffusers' TransformerTemporalModel, the temporal
attention of latent video diffusion, attends along K). Its output projection starts at zero, so inserting it
leaves the stage-1 model unchanged.

Condition (classifier-free guidance): the image (3, H, W) in [0, 1] at the working size, area-downsampled to the
latent grid and concatenated with features of a small conv encoder (and, with `semantic_classes`, a frozen
ESPNet's probabilities of those classes, and with `depth_condition`, a frozen mobilePyDNet's inverse depth, pooled
to the latent grid); dropped (zeroed) with probability cfg_dropout in training.
"""
from __future__ import annotations

import collections
import hashlib
import math

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

from .config import MotionConfig


class ImageEncoder(torch.nn.Module):
    """(B, 3, H, W) image -> (B, 3 + cond_channels, H/f, W/f): downsampled image + learned features."""

    def __init__(self, config: MotionConfig):
        super().__init__()
        self.factor = config.vae_factor
        layers: list[torch.nn.Module] = []
        c_in = 3
        n_down = int(math.log2(self.factor))
        chans = list(config.image_encoder_channels)
        for i in range(max(n_down, 1)):
            c_out = chans[min(i, len(chans) - 1)]
            stride = 2 if i < n_down else 1
            layers += [torch.nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), torch.nn.SiLU()]
            c_in = c_out
        layers += [torch.nn.Conv2d(c_in, config.cond_channels, 3, padding=1)]
        self.net = torch.nn.Sequential(*layers)
        self.semantic_classes = tuple(config.semantic_classes)
        self.semantic_input = tuple(config.semantic_input)
        self._semantic: list = []         # the frozen ESPNet, held in a list so it stays out of the state dict
        # Pooled class maps by picture: training shows the same few thousand pictures (and their mirror images)
        # thousands of times, and ESPNet costs more than a U-Net step on a CPU; the maps are a few KB each.
        self._semantic_memo: collections.OrderedDict[bytes, torch.Tensor] = collections.OrderedDict()
        self.depth_condition = bool(config.depth_condition)
        # Pooled depth maps by picture, like the class maps (mobilePyDNet costs ~0.12 s a picture on one core).
        self._depth_memo: collections.OrderedDict[bytes, torch.Tensor] = collections.OrderedDict()
        self.out_channels = 3 + config.cond_channels + len(self.semantic_classes) + int(self.depth_condition)

    MEMO_SIZE = 16384            # pictures per memo (about 8 KB each at 128x80: 130 MB at most)

    def _remembered(self, memo: collections.OrderedDict, image: torch.Tensor, compute,
                    mirror_equivariant: bool = False) -> torch.Tensor:
        """compute(image) per picture, looked up in `memo` by a hash of its pixels (least recently used dropped
        beyond MEMO_SIZE); where the map of a mirrored picture is the mirrored map, the mirror image (half of what
        training shows) is remembered with it."""
        def keys_of(batch: torch.Tensor) -> list[bytes]:
            # one copy off the device for the batch, and the pixels in 8 bits: the pictures are 8-bit (4x fewer
            # bytes to hash: a GPU step of 256 pictures hashed 31 MB of float32)
            pixels = (batch.detach() * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
            return [hashlib.blake2b(p.tobytes(), digest_size=16).digest() for p in pixels]

        keys = keys_of(image)
        missing = [i for i, k in enumerate(keys) if k not in memo]
        if missing:
            mirrored = keys_of(image[missing].flip(-1)) if mirror_equivariant else []
            for j, (i, m) in enumerate(zip(missing, compute(image[missing]))):
                memo[keys[i]] = m = m.detach().cpu()
                if mirror_equivariant:
                    memo.setdefault(mirrored[j], m.flip(-1))
            while len(memo) > self.MEMO_SIZE:
                memo.popitem(last=False)
        for k in keys:
            memo.move_to_end(k)
        return torch.stack([memo[k] for k in keys]).to(image.device, image.dtype)

    def semantic_maps(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, len(semantic_classes), H/f, W/f) ESPNet class probabilities,
        remembered per picture for the next call."""
        return self._remembered(self._semantic_memo, image, self._semantic_maps_uncached)

    def _semantic_maps_uncached(self, image: torch.Tensor) -> torch.Tensor:
        """`semantic_maps` without the memo: ESPNet run on every picture of the batch."""
        if not self._semantic:
            from backend.priors.espnet import SemanticPrior
            prior = SemanticPrior.load()
            for p in prior.net.parameters():
                p.requires_grad_(False)
            self._semantic.append(prior)
        prior = self._semantic[0]
        net, cfg = prior.net.to(image.device), prior.cfg
        # the released transform (see SemanticPrior.preprocess) on a tensor: BGR, mean/std in 0..255 units, / 255
        bgr = image.flip(1) * 255.0
        mean = torch.tensor(cfg.mean_bgr, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
        std = torch.tensor(cfg.std_bgr, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
        x = F.interpolate((bgr - mean) / std, size=self.semantic_input[::-1], mode="bilinear",
                          align_corners=False) / 255.0
        with torch.no_grad():
            prob = torch.softmax(net.eval()(x).float(), 1)
        idx = [cfg.class_names.index(c) for c in self.semantic_classes]
        h, w = image.shape[-2] // self.factor, image.shape[-1] // self.factor
        return F.adaptive_avg_pool2d(prob[:, idx], (h, w)).to(image.dtype)

    def depth_maps(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H/f, W/f) inverse depth in [0, 1] (1 = nearest), remembered per
        picture with its mirror image (condition_inverse_depth is mirror-equivariant)."""
        from backend.priors.depth import condition_inverse_depth
        h, w = image.shape[-2] // self.factor, image.shape[-1] // self.factor
        return self._remembered(self._depth_memo, image,
                                lambda x: F.adaptive_avg_pool2d(condition_inverse_depth(x), (h, w)),
                                mirror_equivariant=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        small = F.avg_pool2d(image, self.factor) * 2 - 1
        parts = [small, self.net(image * 2 - 1)]
        if self.semantic_classes:
            parts.append(self.semantic_maps(image) * 2 - 1)
        if self.depth_condition:
            parts.append(self.depth_maps(image) * 2 - 1)
        return torch.cat(parts, dim=1)


class FrequencyAttention(torch.nn.Module):
    """Attention across the K frequency slices at every latent pixel: (B*K, C, h, w) -> same shape."""

    def __init__(self, channels: int, heads: int, K: int, groups: int):
        super().__init__()
        self.K = K
        self.block = TransformerTemporalModel(
            num_attention_heads=heads, attention_head_dim=channels // heads, in_channels=channels,
            norm_num_groups=groups, positional_embeddings="sinusoidal", num_positional_embeddings=K)
        # Zero output projection: the inserted layer starts as the identity (residual), as in AnimateDiff.
        torch.nn.init.zeros_(self.block.proj_out.weight)
        torch.nn.init.zeros_(self.block.proj_out.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if h.shape[0] % self.K:
            raise ValueError(f"frequency attention needs batches of whole volumes (B*{self.K}), got {h.shape[0]}")
        return self.block(h, num_frames=self.K).sample


class FrequencyUNet(torch.nn.Module):
    """eps/v prediction for latent slices.

    forward(z (N, C, h, w), t (N,), k (N,) frequency index, cond (N, 3+cond_channels, h, w)) -> (N, C, h, w).
    With frequency attention enabled, N must be B*K with the K slices of a volume consecutive, k = 0..K-1.
    """

    def __init__(self, config: MotionConfig):
        super().__init__()
        self.config = config
        ch = list(config.unet_channels)
        g = config.unet_groups
        temb_dim = ch[0] * 4
        self.image_encoder = ImageEncoder(config)
        self.time_proj = Timesteps(ch[0], flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(ch[0], temb_dim)
        self.freq_embedding = torch.nn.Embedding(config.K, temb_dim)
        self.conv_in = torch.nn.Conv2d(config.latent_channels + self.image_encoder.out_channels, ch[0], 3, padding=1)

        def res(cin: int, cout: int) -> ResnetBlock2D:
            return ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=temb_dim, groups=g)

        self.down_res = torch.nn.ModuleList()
        self.downsamplers = torch.nn.ModuleList()
        skip_ch = [ch[0]]
        c = ch[0]
        for i, co in enumerate(ch):
            blocks = torch.nn.ModuleList()
            for _ in range(config.unet_layers_per_block):
                blocks.append(res(c, co))
                c = co
                skip_ch.append(c)
            self.down_res.append(blocks)
            if i < len(ch) - 1:
                self.downsamplers.append(Downsample2D(c, use_conv=True, out_channels=c, padding=1))
                skip_ch.append(c)
        self.mid = torch.nn.ModuleList([res(c, c), res(c, c)])
        self.up_res = torch.nn.ModuleList()
        self.upsamplers = torch.nn.ModuleList()
        for i, co in reversed(list(enumerate(ch))):
            blocks = torch.nn.ModuleList()
            for _ in range(config.unet_layers_per_block + 1):
                blocks.append(res(c + skip_ch.pop(), co))
                c = co
            self.up_res.append(blocks)
            if i > 0:
                self.upsamplers.append(Upsample2D(c, use_conv=True, out_channels=c))
        self.norm_out = torch.nn.GroupNorm(g, c)
        self.conv_out = torch.nn.Conv2d(c, config.latent_channels, 3, padding=1)
        self.freq_attn_down = torch.nn.ModuleDict()
        self.freq_attn_up = torch.nn.ModuleDict()

    # ------------------------------------------------------------------ stage 2
    @property
    def has_freq_attention(self) -> bool:
        return len(self.freq_attn_down) > 0

    def enable_freq_attention(self) -> None:
        """Insert attention across K after the spatial blocks of config.freq_attention_levels (identity at init)."""
        cfg = self.config
        for lv in cfg.freq_attention_levels:
            c = cfg.unet_channels[lv]
            self.freq_attn_down[str(lv)] = FrequencyAttention(c, cfg.freq_attention_heads, cfg.K, cfg.unet_groups)
            self.freq_attn_up[str(lv)] = FrequencyAttention(c, cfg.freq_attention_heads, cfg.K, cfg.unet_groups)

    def freq_attention_parameters(self):
        return list(self.freq_attn_down.parameters()) + list(self.freq_attn_up.parameters())

    # ------------------------------------------------------------------ forward
    def encode_condition(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) [0, 1] -> (B, 3 + cond_channels, h, w). Zero images/features = unconditional."""
        return self.image_encoder(image)

    def forward(self, z: torch.Tensor, t: torch.Tensor, k: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        n = z.shape[0]
        t = t.expand(n) if t.ndim == 0 else t
        temb = self.time_embedding(self.time_proj(t).to(z.dtype)) + self.freq_embedding(k)
        h = self.conv_in(torch.cat([z, cond], dim=1))
        skips = [h]
        for i, blocks in enumerate(self.down_res):
            for block in blocks:
                h = block(h, temb)
                skips.append(h)
            if str(i) in self.freq_attn_down:
                h = self.freq_attn_down[str(i)](h)
                skips[-1] = h
            if i < len(self.downsamplers):
                h = self.downsamplers[i](h)
                skips.append(h)
        for block in self.mid:
            h = block(h, temb)
        n_levels = len(self.up_res)
        for j, blocks in enumerate(self.up_res):
            i = n_levels - 1 - j
            for block in blocks:
                h = block(torch.cat([h, skips.pop()], dim=1), temb)
            if str(i) in self.freq_attn_up:
                h = self.freq_attn_up[str(i)](h)
            if i > 0:
                h = self.upsamplers[j](h)
        return self.conv_out(F.silu(self.norm_out(h)))
