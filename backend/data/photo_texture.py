"""Real photo texture in synthetic scenes (issue 20): the generator's flat-shaded primitives made to look more
like the photographs the model will be given, without touching their exact motion.

A bank of 32x32 patches is cut from real training pictures (the gid_loops training windows, CC0) and split by
the motion that flow extracted from their clips: *moving* patches (foliage, petals, flames, lantern paper: what
moves in real footage) and *still* ones (walls, sky, ground, table tops). A lite synthetic sample (frame 0 only;
full samples draw every frame and would need the texture to move with each primitive, so they are refused)
then gets a texture layer quilted from the bank: from moving patches over its moving pixels, from still patches
over the rest. The layer adds the real patches' fine structure (their high-pass) to the synthetic colours and,
in part, their colours. No pixel changes place, so the motion target stays exact; what changes is that a
texture or segmentation cue now sees real foliage where things move and real surfaces where they do not, and
that "textured" stops meaning "synthetic and moving".
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from backend.eval.metrics import STILL_PX, energy_map   # STILL_PX: still/moving as the real-photo figures define it

PATCH = 32                     # patch side (px at 256x160, the training pictures' size)
MIN_COVER = 0.85               # a patch is cut where at least this share of it is moving (or still) and valid


def _patches_where(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, limit: int) -> list:
    """Up to `limit` PATCH x PATCH crops of image whose pixels are mostly (MIN_COVER) inside mask."""
    h, w = mask.shape
    if h < PATCH or w < PATCH:
        return []
    cover = cv2.boxFilter(mask.astype(np.float32), -1, (PATCH, PATCH), normalize=True,
                          borderType=cv2.BORDER_CONSTANT)
    half = PATCH // 2
    ys, xs = np.nonzero(cover[half:h - half + 1, half:w - half + 1] >= MIN_COVER)
    if len(ys) == 0:
        return []
    pick = rng.choice(len(ys), size=min(limit, len(ys)), replace=False)
    return [image[y:y + PATCH, x:x + PATCH] for y, x in zip(ys[pick], xs[pick])]


def build_bank(folders, per_picture: int = 24, seed: int = 0) -> dict:
    """Real samples (image, spectral, valid, T) -> {"moving": (N, 32, 32, 3), "still": (M, 32, 32, 3)} uint8.

    Moving: truth energy at least 30 % of the picture's 90th percentile and above 0.1 px; still: below STILL_PX.
    """
    from .samples import list_samples, load_sample
    rng = np.random.default_rng(seed)
    moving, still = [], []
    for path in list_samples([Path(f) for f in folders]):
        s = load_sample(path)
        image = np.asarray(s["image"], np.uint8)
        valid = np.asarray(s.get("valid", np.ones(image.shape[:2], bool)), bool)
        e = energy_map(np.asarray(s["spectral"], np.float32), int(s["T"]))
        if not valid.any():
            continue
        high = max(0.1, 0.3 * float(np.percentile(e[valid], 90)))
        moving += _patches_where(image, valid & (e >= high), rng, per_picture)
        still += _patches_where(image, valid & (e < STILL_PX), rng, per_picture)
    if not moving or not still:
        raise ValueError(f"no {'moving' if not moving else 'still'} patches in {list(map(str, folders))}: "
                         "the bank needs real samples with both")
    return {"moving": np.stack(moving), "still": np.stack(still)}


def save_bank(bank: dict, path: str | Path) -> None:
    from .samples import write_npz_atomic
    write_npz_atomic(Path(path), {"moving": bank["moving"], "still": bank["still"]})


@lru_cache(maxsize=2)
def load_bank(path: str) -> dict:
    with np.load(path, allow_pickle=False) as z:
        bank = {k: np.asarray(z[k], np.uint8) for k in ("moving", "still")}
    for k, v in bank.items():
        if v.ndim != 4 or v.shape[1:] != (PATCH, PATCH, 3) or len(v) == 0:
            raise ValueError(f"{path}: '{k}' must be (N > 0, {PATCH}, {PATCH}, 3), got {v.shape}")
    return bank


def quilt(patches: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(W, H) float32 RGB texture: random patches (flipped and turned at random) overlap-added at half-patch
    steps with a raised-cosine weight, so no seam shows."""
    w, h = size
    step = PATCH // 2
    win = np.hanning(PATCH + 2)[1:-1].astype(np.float32)
    weight = np.outer(win, win)[..., None]
    H, W = h + PATCH, w + PATCH
    acc = np.zeros((H, W, 3), np.float32)
    norm = np.zeros((H, W, 1), np.float32)
    for y in range(0, H - PATCH + 1, step):
        for x in range(0, W - PATCH + 1, step):
            p = patches[rng.integers(len(patches))]
            p = np.rot90(p, int(rng.integers(4)))
            if rng.random() < 0.5:
                p = p[:, ::-1]
            acc[y:y + PATCH, x:x + PATCH] += weight * p
            norm[y:y + PATCH, x:x + PATCH] += weight
    out = acc / np.maximum(norm, 1e-6)
    o = step // 2
    return out[o:o + h, o:o + w]


def apply_photo_texture(image: np.ndarray, moving: np.ndarray, bank: dict, rng: np.random.Generator) -> np.ndarray:
    """uint8 (H, W, 3) frame 0 and its moving pixels (H, W) bool -> the same picture with real texture.

    Per scene, drawn: the strength of the real fine structure (high-pass, 0.6-1.2x its own contrast) and how much
    of the real colours comes with it (moving pixels 0-60 %, still ones 0-40 %: a synthetic sky or wall keeps
    most of its colour), separately for moving and still pixels.
    """
    h, w = image.shape[:2]
    if moving.shape != (h, w):
        raise ValueError(f"moving mask {moving.shape} does not match the picture {image.shape[:2]}")
    out = image.astype(np.float32)
    for kind, where, most_colour in (("moving", moving, 0.6), ("still", ~moving, 0.4)):
        if not where.any():
            continue
        tex = quilt(bank[kind], (w, h), rng)
        low = cv2.GaussianBlur(tex, (0, 0), 3.0)
        detail, colour = rng.uniform(0.6, 1.2), rng.uniform(0.0, most_colour)
        base = out[where]
        layered = base + detail * (tex[where] - low[where])
        out[where] = (1 - colour) * layered + colour * tex[where]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
