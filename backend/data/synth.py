"""Synthetic training samples: procedural scenes (scenes.py) with exact per-pixel motion -> npz files.

One sample = one scene from seed S + i: simulate the wind-driven oscillators, scale the scene's motion to a
target mean displacement, compute the exact motion of every pixel of frame 0 (rig.py), its spectral volume
(shared.spectral.motion_to_spectral) and, in full mode, draw all T frames. Layout: see dataset.py.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.spectral import K_DEFAULT, motion_to_spectral

from .samples import sample_path, write_npz_atomic
from .scenes import build_scene, check_kind
from .wind import Wind

# Target of the per-scene wind gain: mean over moving pixels of mean_t |F_t| (pixels at 256x160). It follows
# what the picture shows (the kind of scene: grass in the open moves more than a candle flame indoors), with a
# small hidden spread, so the amount of motion is a property of the picture, as the method assumes; the
# paper's own loops measure 0.16-1.55 px (SPEC section 7).
# Mean swing (px at REFERENCE_HEIGHT) of the moving pixels by scene kind, calibrated in session 11 to the real
# gid_loops training clips by kind (issue 20: real trees moved 3.2x, flowers 4.5x, cloth and lanterns 3x the
# synthetic ones; grass and candles matched). Until session 11: tree 0.9, garden 0.75, porch 0.6.
# Session 13, made only on request (scenes.EXTRA_KINDS): "closeup" moves as garden flowers do; "field", a field of
# grain in a strong wind, a little more than a meadow's grass.
KIND_MOTION_PX = {"meadow": 1.1, "garden": 3.0, "tree": 2.9, "porch": 1.8, "candles": 0.4, "closeup": 3.0,
                  "field": 1.6}
HIDDEN_SPREAD = 0.15          # the amount is KIND_MOTION_PX * exp(U(-s, s))
REFERENCE_HEIGHT = 160.0


@dataclass(frozen=True)
class SynthConfig:
    size: tuple[int, int] = (256, 160)     # (W, H)
    frames: int = 150
    fps: float = 30.0
    K: int = K_DEFAULT
    lite: bool = False
    # Real photo texture (photo_texture.py): a bank of real patches (.npz, `build_bank`) and the share of scenes
    # that get it (drawn per seed). Lite samples only: full ones draw every frame, the texture would not move.
    photo_texture: str = ""
    photo_texture_share: float = 0.0

    def __post_init__(self):
        w, h = self.size
        if not 0.0 <= self.photo_texture_share <= 1.0:
            raise ValueError(f"photo_texture_share must be in [0, 1], got {self.photo_texture_share}")
        if self.photo_texture_share > 0 and not self.photo_texture:
            raise ValueError("photo_texture_share > 0 needs a photo_texture bank")
        if self.photo_texture and not self.lite:
            raise ValueError("photo texture is for lite samples only (full samples draw every frame)")
        if w < 16 or h < 16:
            raise ValueError(f"size must be at least 16x16, got {w}x{h}")
        if self.frames < 2 * self.K:
            raise ValueError(f"frames={self.frames} too few for K={self.K} terms (need >= {2 * self.K})")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")


def prepare(seed: int, cfg: SynthConfig, kind: str | None = None, wind_seed: int | None = None,
            freq_jitter: float = 0.0):
    """Scene of seed with its motion applied and calibrated: (scene, owner (H, W), idx (N,), motion (T, 2, N)).

    owner: front-most primitive at each pixel of frame 0 (-1 = static background); idx: flat indices of the
    owned pixels; motion: their exact displacement at every frame (float64, pixels).

    wind_seed: re-run the SAME scene (same picture, same objects and physics) under an independent draw of the
    wind, the own-noise drives and the motion amount (`resimulate`); None = the sample as generated.
    freq_jitter (with wind_seed): also multiply every oscillator's natural frequency by exp(U(-j, j)). Most
    frequencies are drawn from ranges that do not show in the picture (a branch's 0.9-2.2 Hz, a leaf's flutter),
    so an image-only model cannot know them; j = 0.4 is about the spread of those ranges.
    """
    rng = np.random.default_rng(seed)
    T = cfg.frames
    sc = build_scene(rng, cfg.size, T, cfg.fps, kind)
    if wind_seed is not None:
        rng = np.random.default_rng([int(wind_seed), int(seed)])
        sc.wind = Wind(rng, float(cfg.size[0]), period_s=sc.wind.period_s, strength=sc.wind.strength)
        if freq_jitter > 0:
            jitter = np.random.default_rng([int(wind_seed), int(seed), 1])
            sc.bank.freq = [f * float(np.exp(jitter.uniform(-freq_jitter, freq_jitter))) for f in sc.bank.freq]
    q = sc.bank.simulate(sc.wind, rng, T, cfg.fps)
    sc.apply_states(q)
    rig = sc.rig
    owner = rig.owner_map(cfg.size)
    # Calibrate the wind gain on every 5th frame (cheap), then compute the exact motion once.
    idx, coarse = rig.pixel_motion(owner, np.arange(0, T, 5))
    amount = KIND_MOTION_PX[sc.kind] * np.exp(rng.uniform(-HIDDEN_SPREAD, HIDDEN_SPREAD))
    target = amount * cfg.size[1] / REFERENCE_HEIGHT
    if idx.size:
        mean_px = float(np.linalg.norm(coarse, axis=1).mean())
        if mean_px > 1e-9:
            rig.scale_motion(target / mean_px)
    idx, motion = rig.pixel_motion(owner)
    return sc, owner, idx, motion


def _spectral_of(idx: np.ndarray, motion: np.ndarray, cfg: SynthConfig) -> np.ndarray:
    w, h = cfg.size
    spectral = np.zeros((cfg.K, 4, h * w), np.float32)
    if idx.size:
        spectral[:, :, idx] = motion_to_spectral(motion[:, :, None, :], cfg.K)[:, :, 0, :]
    return spectral.reshape(cfg.K, 4, h, w)


def resimulate(seed: int, cfg: SynthConfig, wind_seed: int, freq_jitter: float = 0.0,
               kind: str | None = None) -> np.ndarray:
    """Spectral volume (K, 4, H, W) of sample `seed`'s scene under an independent wind (see `prepare`).

    What a perfect motion model could output: the same picture, the true physics, another plausible wind (and
    motion amount). Eval scores it as the ceiling of any sampler (`backend.eval.evaluate`); with freq_jitter the
    natural frequencies are redrawn too (see `prepare`): what a perfect IMAGE-ONLY sampler could output.
    kind: the sample's stored "kind" when it was made with one (`generate(kind=...)`), else None.
    """
    _, _, idx, motion = prepare(seed, cfg, kind, wind_seed=wind_seed, freq_jitter=freq_jitter)
    return _spectral_of(idx, motion, cfg)


def generate(seed: int, cfg: SynthConfig, kind: str | None = None) -> dict:
    """One sample as a dict of arrays (the npz keys), deterministic in seed."""
    w, h = cfg.size
    T = cfg.frames
    sc, owner, idx, motion = prepare(seed, cfg, kind)
    rig = sc.rig
    out = {
        "image": rig.draw(sc.canvas, 0),
        "spectral": _spectral_of(idx, motion, cfg),
        "seed": np.int64(seed),            # lets eval re-run the scene (`resimulate`)
        "valid": np.ones((h, w), bool),
        "fps": np.float32(cfg.fps),
        "T": np.int32(T),
    }
    if cfg.photo_texture and cfg.photo_texture_share > 0:
        # its own generator: the scene, its wind and motion stay those of the same seed without texture
        tex_rng = np.random.default_rng([int(seed), 0x7E7])
        if tex_rng.random() < cfg.photo_texture_share:
            from .photo_texture import STILL_PX, apply_photo_texture, load_bank
            moving = np.zeros(h * w, bool)
            if idx.size:
                moving[idx] = np.linalg.norm(motion, axis=1).mean(axis=0) >= STILL_PX
            out["image"] = apply_photo_texture(out["image"], moving.reshape(h, w), load_bank(cfg.photo_texture),
                                               tex_rng)
            out["photo_texture"] = np.bool_(True)
    if kind is not None:      # asked for by name: re-running the scene from its seed needs it (`resimulate`)
        out["kind"] = np.str_(kind)
    if not cfg.lite:
        full = np.zeros((T, 2, h * w), np.float32)
        full[:, :, idx] = motion
        out["motion"] = full.reshape(T, 2, h, w)
        frames = np.empty((T, h, w, 3), np.uint8)
        frames[0] = out["image"]
        for t in range(1, T):
            frames[t] = rig.draw(sc.canvas, t)
        out["frames"] = frames
    return out


def _work(args) -> tuple[int, float]:
    index, seed, cfg, folder, kind = args
    path = sample_path(folder, index)
    if path.exists():
        return index, 0.0
    t0 = time.perf_counter()
    write_npz_atomic(path, generate(seed, cfg, kind))
    return index, time.perf_counter() - t0


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        import torch  # noqa: F401  (only to keep torch, if imported by someone, to one thread)
        torch.set_num_threads(1)
    except Exception:
        pass


def run(out: str | Path, count: int, seed: int, cfg: SynthConfig, workers: int = 2, min_free_gb: float = 5.0,
        log=print, kind: str | None = None) -> dict:
    """Write out/sample_%06d.npz for i in 0..count-1 (scene seed = seed + i), skipping existing files.

    kind: every scene of that kind (scenes.SCENE_KINDS + EXTRA_KINDS); None = each seed's own draw.

    Stops early (with a message) when the disk has less than min_free_gb left. Returns a summary dict.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    if kind is not None:
        check_kind(kind)                             # before any worker starts
    todo = [(i, seed + i, cfg, folder, kind) for i in range(count) if not sample_path(folder, i).exists()]
    log(f"synth: {count - len(todo)} of {count} exist in {folder}, {len(todo)} to make "
        f"({'lite' if cfg.lite else 'full'}, {cfg.size[0]}x{cfg.size[1]}, T={cfg.frames} @ {cfg.fps} fps)")
    t_start = time.perf_counter()
    made = 0
    stopped = None
    if todo:
        pool = mp.get_context("fork").Pool(workers, initializer=_init_worker) if workers > 1 else None
        it = pool.imap_unordered(_work, todo) if pool else map(_work, todo)
        try:
            for index, secs in it:
                made += 1
                if made % 10 == 0 or made == len(todo):
                    el = time.perf_counter() - t_start
                    log(f"synth: {made}/{len(todo)} done, {made / el * 60:.1f} samples/min")
                if made % 20 == 0:
                    free = _free_gb(folder)
                    if free < min_free_gb:
                        stopped = f"stopped: only {free:.1f} GB free on disk (< {min_free_gb} GB)"
                        log("synth: " + stopped)
                        break
        finally:
            if pool:
                pool.terminate() if stopped else pool.close()
                pool.join()
    elapsed = time.perf_counter() - t_start
    from .contact import write_contact_sheet
    write_contact_sheet(folder)
    rate = made / elapsed * 60 if made and elapsed > 0 else 0.0
    log(f"synth: made {made} in {elapsed:.1f} s ({rate:.1f} samples/min); contact sheet {folder / 'contact.png'}")
    return {"made": made, "seconds": elapsed, "samples_per_min": rate, "stopped": stopped}


def _free_gb(folder: Path) -> float:
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize / 1e9

