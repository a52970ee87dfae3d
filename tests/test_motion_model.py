"""Motion model parts on random tensors: configs, VAE, U-Net (frequency embedding/attention), sampling, metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.motion.config import PRESETS, MotionConfig, get_preset
from backend.motion.metrics import amplitude_error, correlation, endpoint_error, energy_map, mean_amplitude
from backend.motion.pipeline import MotionPipeline, loop_loss
from backend.motion.refine import MotionRefiner
from backend.motion.unet import FrequencyUNet
from backend.motion.vae import SpectralVAE, gradient_loss, vae_loss
from shared.spectral import NormStats, displacement_at, motion_to_spectral

SMALL = dict(work_size=(32, 16), vae_channels=(8, 8), unet_channels=(16, 32), unet_groups=8,
             image_encoder_channels=(8,), cond_channels=8, freq_attention_heads=2, freq_attention_levels=(0, 1))


def small_config(**kw) -> MotionConfig:
    return get_preset("tiny").replace(**{**SMALL, **kw})


def test_presets_validate_and_round_trip(tmp_path):
    for name in PRESETS:
        cfg = get_preset(name)
        cfg.save(tmp_path / f"{name}.json")
        assert MotionConfig.load(tmp_path / f"{name}.json") == cfg
    assert get_preset("paper").work_size == (256, 160) and get_preset("paper").sample_steps == 250


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="divisible"):
        get_preset("tiny").replace(work_size=(100, 80))
    with pytest.raises(ValueError, match="sampler"):
        get_preset("tiny").replace(sampler="euler")
    with pytest.raises(ValueError, match="unknown preset"):
        get_preset("huge")
    with pytest.raises(ValueError, match="unknown motion config"):
        MotionConfig.from_dict({"nope": 1})


def test_tiny_unet_size_is_in_budget():
    n = sum(p.numel() for p in FrequencyUNet(get_preset("tiny")).parameters())
    assert 1e6 <= n <= 3e6


def test_vae_shapes_and_losses():
    torch.manual_seed(0)
    cfg = small_config()
    vae = SpectralVAE(cfg)
    x = torch.randn(3, 4, 16, 32)
    z = vae.encode(x)
    assert z.shape == (3, 4, 8, 16)
    assert vae.decode(z).shape == x.shape
    loss, parts = vae_loss(vae, x)
    assert loss.item() > 0 and set(parts) == {"l1", "grad", "kl"}
    assert gradient_loss(x, x, 3).item() == 0.0
    assert gradient_loss(x, x + 1.0, 3).item() == pytest.approx(0.0, abs=1e-6)   # gradients ignore offsets
    assert gradient_loss(x, 2 * x, 3).item() > 0


def test_vae_learns_a_batch():
    torch.manual_seed(0)
    vae = SpectralVAE(small_config())
    x = torch.nn.functional.interpolate(torch.randn(4, 4, 4, 8), size=(16, 32), mode="bilinear")  # smooth fields
    opt = torch.optim.Adam(vae.parameters(), 3e-3)
    first = None
    for _ in range(60):
        loss, _ = vae_loss(vae, x)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_refiner_keep_amount_moves_motion_without_changing_its_total():
    """refine_keep_amount: each refined slice channel keeps the plain upsampling's total |S| (sum of squares of the
    normalised values) while the refiner is still free to move motion between pixels."""
    cfg = MotionConfig(K=4, refine_channels=8, refine_blocks=2, refine_keep_amount=True)
    torch.manual_seed(0)
    model = MotionRefiner(cfg)
    torch.nn.init.normal_(model.conv_out.weight, std=0.3)          # a trained-looking, non-identity residual
    coarse, image, k = torch.randn(4, 4, 6, 8), torch.rand(4, 3, 12, 16), torch.arange(4)
    with torch.no_grad():
        out, plain = model(coarse, image, k), model.upsample(coarse)
        free = MotionRefiner(MotionConfig(K=4, refine_channels=8, refine_blocks=2))
        free.load_state_dict(model.state_dict())
        unkept = free(coarse, image, k)
    torch.testing.assert_close(out.square().sum(dim=(-2, -1)), plain.square().sum(dim=(-2, -1)), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(unkept.square().sum(dim=(-2, -1)), plain.square().sum(dim=(-2, -1)), rtol=1e-2)
    assert not torch.allclose(out / out.norm(), plain / plain.norm(), atol=1e-3)   # motion was moved, not kept as is


def test_refiner_starts_as_plain_upsampling_and_learns_edges_from_the_image():
    """Fresh: exactly the bilinear upsampling (scaled by sqrt(factor), the normalisation's grid rule). Trained on
    batches where the coarse motion is spread over the whole frame and the truth moves only the object the
    picture shows, it confines held-out motion to the object, far better than when the picture is blank (the
    image carries the boundary the coarse motion lost)."""
    torch.manual_seed(0)
    cfg = small_config(refine_channels=16, refine_blocks=2)
    refiner = MotionRefiner(cfg)
    coarse = torch.randn(3, 4, 8, 16)
    image = torch.rand(3, 3, 16, 32)
    k = torch.tensor([0, 5, 15])
    plain = torch.nn.functional.interpolate(coarse, scale_factor=2, mode="bilinear") * 2 ** 0.5
    torch.testing.assert_close(refiner(coarse, image, k), plain)
    with pytest.raises(ValueError, match="image"):
        refiner(coarse, image[..., :8, :], k)

    def batch(n):
        """Coarse motion spread evenly over the frame (a blurred decode); the truth moves only the part of the
        frame the picture shows as an object, left of a random edge."""
        edges = torch.randint(6, 26, (n,))
        cols = torch.arange(32).view(1, 1, 1, 32)
        step = (cols < edges.view(n, 1, 1, 1)).float().expand(n, 1, 16, 32)
        amount = torch.rand(n, 4, 1, 1) * 2 - 1
        target = step * amount
        picture = step.expand(n, 3, 16, 32) * 0.8 + 0.1
        coarse = (amount * edges.view(n, 1, 1, 1) / 32 / 2 ** 0.5).expand(n, 4, 8, 16)
        return coarse, picture, target

    k = torch.zeros(8, dtype=torch.long)
    start = {name: value.clone() for name, value in refiner.state_dict().items()}
    held_out = batch(8)

    def fit(blank: bool) -> float:
        """Train on fresh batches, return the L1 on held-out edges."""
        torch.manual_seed(1)
        refiner.load_state_dict(start)
        opt = torch.optim.Adam(refiner.parameters(), 3e-3)
        for _ in range(300):
            coarse, picture, target = batch(8)
            loss = (refiner(coarse, torch.full_like(picture, 0.5) if blank else picture, k) - target).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        coarse, picture, target = held_out
        with torch.no_grad():
            return (refiner(coarse, torch.full_like(picture, 0.5) if blank else picture, k) - target).abs().mean().item()

    first = (refiner(held_out[0], held_out[1], k) - held_out[2]).abs().mean().item()
    with_image, blank = fit(False), fit(True)
    assert with_image < 0.5 * first and with_image < 0.7 * blank, (first, with_image, blank)   # 0.217 0.080 0.143


def _inputs(cfg, B=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    K = cfg.K
    w, h = cfg.latent_size
    z = torch.randn(B * K, cfg.latent_channels, h, w, generator=g)
    k = torch.arange(K).repeat(B)
    t = torch.full((B * K,), 500)
    return z, k, t


def test_stage1_slices_are_independent_and_use_frequency_embedding():
    torch.manual_seed(0)
    cfg = small_config()
    unet = FrequencyUNet(cfg).eval()
    z, k, t = _inputs(cfg)
    cond = unet.encode_condition(torch.rand(1, 3, 16, 32)).expand(len(z), -1, -1, -1)
    with torch.no_grad():
        out = unet(z, t, k, cond)
        z2 = z.clone()
        z2[3] += 1.0
        out2 = unet(z2, t, k, cond)
        torch.testing.assert_close(out2[:3], out[:3])            # no mixing across slices without attention
        assert not torch.allclose(out2[3], out[3])
        torch.nn.init.normal_(unet.freq_embedding.weight)
        out3 = unet(z, t, (k + 1) % cfg.K, cond)
        assert not torch.allclose(out3, out)


def test_frequency_attention_starts_as_identity_then_mixes_frequencies():
    torch.manual_seed(0)
    cfg = small_config()
    unet = FrequencyUNet(cfg).eval()
    z, k, t = _inputs(cfg)
    cond = unet.encode_condition(torch.rand(2, 3, 16, 32)).repeat_interleave(cfg.K, 0)
    with torch.no_grad():
        before = unet(z, t, k, cond)
        unet.enable_freq_attention()
        torch.testing.assert_close(unet(z, t, k, cond), before)   # zero-initialised output projection
        for p in unet.freq_attention_parameters():
            p.add_(0.05 * torch.randn_like(p))
        out = unet(z, t, k, cond)
        z2 = z.clone()
        z2[3] += 1.0                                             # perturb slice 3 of volume 0
        out2 = unet(z2, t, k, cond)
        assert not torch.allclose(out2[0], out[0])               # ... now moves other slices of volume 0
        torch.testing.assert_close(out2[cfg.K:], out[cfg.K:])     # ... but never another volume
    with pytest.raises(ValueError, match="whole volumes"):
        unet(z[:5], t[:5], k[:5], cond[:5])


def _pipeline(cfg, attention=True):
    torch.manual_seed(0)
    vae, unet = SpectralVAE(cfg).eval(), FrequencyUNet(cfg).eval()
    if attention:
        unet.enable_freq_attention()
    return MotionPipeline(vae, unet, NormStats(np.ones(cfg.K, np.float32)), cfg)


@pytest.mark.parametrize("sampler", ["ddim", "dpm++", "unipc"])
def test_sampling_shapes_seeds_and_batches(sampler):
    cfg = small_config()
    pipe = _pipeline(cfg)
    image = torch.rand(3, 16, 32)
    a = pipe(image, samples=2, steps=3, seed=5, sampler=sampler)
    b = pipe(image, samples=2, steps=3, seed=5, sampler=sampler)
    c = pipe(image, samples=2, steps=3, seed=6, sampler=sampler)
    assert a.spectral.shape == (2, cfg.K, 4, 16, 32) and a.spectral.dtype == np.float32
    np.testing.assert_array_equal(a.spectral, b.spectral)
    assert not np.allclose(a.spectral, c.spectral)
    assert not np.allclose(a.spectral[0], a.spectral[1])          # N samples differ
    assert np.isfinite(a.spectral).all()


def _solve_gaussian_ode(sampler: str, steps: int, data_std: torch.Tensor) -> torch.Tensor:
    """Run `sampler` with the exact v-prediction of zero-mean Gaussian data (std per dimension), from fixed
    noise; return |result| / |exact probability-flow ODE solution| per dimension (1 = converged)."""
    from backend.motion.pipeline import sampling_scheduler
    scheduler = sampling_scheduler(MotionConfig(), sampler, steps)
    acp = scheduler.alphas_cumprod.double()
    noise = torch.randn(512, data_std.numel(), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        a, s = acp[int(t)].sqrt(), (1 - acp[int(t)]).sqrt()
        x0 = a * data_std ** 2 / (a ** 2 * data_std ** 2 + s ** 2) * z       # E[x0 | z_t], Gaussian data
        v = a * (z - a * x0) / s - s * x0
        z = scheduler.step(v.float(), t, z.float()).prev_sample.double()
    a, s = acp[int(scheduler.timesteps[0])].sqrt(), (1 - acp[int(scheduler.timesteps[0])]).sqrt()
    exact = noise * data_std / torch.sqrt(a ** 2 * data_std ** 2 + s ** 2)  # the ODE keeps z / std(z_t) fixed
    return z.abs().mean(0) / exact.abs().mean(0)


def test_default_sampler_converges_in_its_default_steps():
    """The shipped 25-step sampler must land on the probability-flow ODE's solution (issue 5: within 5% of
    250-step DDIM). Gaussian data over 2.5 decades of scale has an exact solution; small-scale components
    (static pixels' fine detail) are what a coarse last step shrinks."""
    cfg = MotionConfig()
    data_std = torch.logspace(-1.5, 0.5, 32, dtype=torch.float64)
    ratio = _solve_gaussian_ode(cfg.sampler, cfg.sample_steps, data_std)
    assert 0.97 < float(ratio.mean()) < 1.03 and float(ratio.min()) > 0.85, ratio
    # the test can fail: 25 DDIM steps (the old trailing-spacing samplers behaved the same) lose the small scales
    ddim = _solve_gaussian_ode("ddim", cfg.sample_steps, data_std)
    assert float(ddim.min()) < 0.6 and float(ddim.mean()) < 0.9


def test_sampling_reports_progress_and_can_be_cancelled():
    from backend.jobs import Cancelled, JobContext
    pipe = _pipeline(small_config())
    seen = []
    ctx = JobContext(on_progress=lambda stage, done: seen.append((stage, done)))
    pipe(torch.rand(3, 16, 32), steps=4, ctx=ctx)
    assert [d for _, d in seen] == [0.25, 0.5, 0.75, 1.0] and seen[0][0] == "diffusion"
    ctx = JobContext(on_progress=lambda stage, done: ctx.cancel_event.set())
    with pytest.raises(Cancelled):
        pipe(torch.rand(3, 16, 32), steps=4, ctx=ctx)


def test_loop_loss_is_zero_for_motion_periodic_in_the_period_and_guidance_runs():
    T, period, K = 150, 50, 16
    t = np.arange(T)[:, None, None, None]
    periodic = np.sin(2 * np.pi * 3 * t / T) * np.ones((T, 2, 4, 4))      # 3 cycles per T: 1 per 50 frames
    other = np.sin(2 * np.pi * 2 * t / T) * np.ones((T, 2, 4, 4))         # 2 cycles per T: not 50-periodic
    lp = loop_loss(torch.from_numpy(motion_to_spectral(periodic, K))[None], T, period)
    lo = loop_loss(torch.from_numpy(motion_to_spectral(other, K))[None], T, period)
    assert lp.item() < 1e-4 and lo.item() > 0.1
    # matches finite differences of the closed form
    s = motion_to_spectral(other, K)
    d = displacement_at(s, T, [0.0, float(period)], relative=False)
    assert lo.item() >= float(np.abs(d[1] - d[0]).mean()) - 1e-4
    cfg = small_config(loop_period=50)
    res = _pipeline(cfg)(torch.rand(3, 16, 32), steps=2, loop=True)
    assert np.isfinite(res.spectral).all()


@pytest.mark.parametrize("sampler", ["ddim", "dpm++", "unipc"])
def test_loop_mode_self_recurrence_works_with_every_sampler(sampler):
    """Loop mode uses the model's sampler (a multistep solver keeps a history and a step index: the trial
    steps of the self-recurrence must not advance it); one recurrence without guidance is the plain sampler."""
    image = torch.rand(3, 16, 32)
    plain_cfg = small_config(loop_period=50, loop_recurrence=1, loop_guidance_scale=0.0)
    pipe = _pipeline(plain_cfg)
    plain = pipe(image, steps=6, seed=3, sampler=sampler).spectral
    np.testing.assert_allclose(pipe(image, steps=6, seed=3, sampler=sampler, loop=True).spectral, plain,
                               rtol=1e-4, atol=1e-5)
    pipe.config = small_config(loop_period=50, loop_recurrence=2)
    looped = pipe(image, steps=6, seed=3, sampler=sampler, loop=True).spectral
    assert np.isfinite(looped).all() and not np.allclose(looped, plain)


def test_metrics_on_known_cases():
    T, K = 150, 16
    rng = np.random.default_rng(0)
    motion = np.zeros((T, 2, 8, 8), np.float32)
    motion[:, 0, 2:5, 2:5] = 2 * np.sin(2 * np.pi * 5 * np.arange(T) / T)[:, None, None]
    s = motion_to_spectral(motion, K)
    e = energy_map(s, T)
    assert e[3, 3] > 1.0 and e[0, 0] == pytest.approx(0, abs=1e-6)
    assert correlation(e, e) == pytest.approx(1.0)
    assert correlation(e, np.ones_like(e)) == 0.0
    assert amplitude_error(s, s) == 0.0
    assert amplitude_error(np.zeros_like(s), s) == pytest.approx(mean_amplitude(s))
    # phase shift: same amplitudes (amplitude error 0) but endpoint error > 0
    shifted = motion_to_spectral(np.roll(motion, 7, axis=0), K)
    assert amplitude_error(shifted, s) == pytest.approx(0, abs=1e-4)
    assert endpoint_error(shifted, s, T) > 0.1
    assert endpoint_error(s, s, T) == pytest.approx(0, abs=1e-6)
    mask = np.zeros((8, 8), bool)
    mask[:2] = True
    assert amplitude_error(rng.normal(size=s.shape).astype(np.float32) * 0, s, mask) == pytest.approx(0, abs=1e-6)
