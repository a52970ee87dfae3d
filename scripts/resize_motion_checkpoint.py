"""Copy a trained motion checkpoint part (vae/ or ldm/) to another working size, weights unchanged.

    python scripts/resize_motion_checkpoint.py SRC_PART DST_PART --work-size W H

The VAE and the denoiser are fully convolutional, so the same weights run at any working size the VAE's factor
divides. What must change with the size is the motion's unit: motion is measured in pixels of the working grid, so
on a grid twice as wide every displacement is twice as many pixels. The per-frequency normalisation scales are
multiplied by the same factor, so the normalised slices (and the VAE's latents, which the denoiser was trained on)
keep their distribution. Then `gid train ldm --init-from` fine-tunes the denoiser at the new size (MODEL_CARD).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.motion.config import MotionConfig  # noqa: E402
from shared.spectral import NormStats  # noqa: E402


def resize_part(src: Path, dst: Path, work_size: tuple[int, int]) -> float:
    """Write dst = src at work_size; returns the factor the normalisation scales were multiplied by."""
    config = MotionConfig.load(src / "config.json")
    old_w, old_h = config.work_size
    new_w, new_h = work_size
    if abs(new_w / old_w - new_h / old_h) > 1e-9:
        raise ValueError(f"{work_size} changes the aspect of {config.work_size}: motion would scale differently "
                         "in x and y")
    factor = new_w / old_w
    resized = config.replace(work_size=(new_w, new_h))       # validates divisibility by the VAE factor
    stats = NormStats.from_dict(json.loads((src / "norm_stats.json").read_text()))
    if dst.exists():
        raise FileExistsError(f"{dst} exists: refusing to overwrite a checkpoint")
    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    resized.save(tmp / "config.json")
    scaled = NormStats(stats.scales * factor, stats.percentile)
    (tmp / "norm_stats.json").write_text(json.dumps(scaled.to_dict(), indent=2))
    tmp.rename(dst)
    return factor


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="a checkpoint part: config.json, model.safetensors, norm_stats.json")
    parser.add_argument("dst", type=Path, help="new folder (must not exist)")
    parser.add_argument("--work-size", nargs=2, type=int, required=True, metavar=("W", "H"))
    args = parser.parse_args()
    factor = resize_part(args.src, args.dst, tuple(args.work_size))
    print(f"{args.dst}: work_size {args.work_size[0]}x{args.work_size[1]}, normalisation scales x{factor:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
