"""Motion prediction (SPEC sections 2-3): spectral VAE + frequency-coordinated latent diffusion U-Net.

Modules: config (presets), vae, unet (with frequency attention), pipeline (sampling loop), predictor (public API),
datacache (training data at the working size), metrics (phase-invariant figures), train_vae / train_ldm.
"""
