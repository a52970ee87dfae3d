"""`gid data synth|from-video|tile|stats`: argument parsing only; the work is in synth.py, video.py, tiles.py, stats.py."""
from __future__ import annotations

import argparse

import numpy as np


def parse_size(text: str) -> tuple[int, int]:
    """'256x160' -> (256, 160) as (W, H)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 256x160 (W x H), got {text!r}") from None
    if w < 16 or h < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, got {text!r}")
    return w, h


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="make training data: synthetic scenes, real video, statistics")
    sub = data.add_subparsers(dest="data_command", required=True)

    p = sub.add_parser("synth", help="procedural oscillating scenes with exact motion -> sample_%%06d.npz")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--count", type=int, required=True, help="number of samples (indices 0..count-1)")
    p.add_argument("--size", type=parse_size, default=(256, 160), help="W x H (default 256x160)")
    p.add_argument("--frames", type=int, default=150, help="T, frames per clip (default 150)")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=0, help="scene i uses seed + i")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--lite", action="store_true", help="only image + spectral (no frames/motion): fast")
    p.add_argument("--min-free-gb", type=float, default=5.0, help="stop when the disk has less free space")
    p.add_argument("--kind", default=None,
                   help="every scene of this kind (meadow, garden, tree, porch, candles; or closeup: large flower "
                        "heads before an out-of-focus background, field: grain filling the frame); default: each "
                        "seed draws one of the first five")
    p.add_argument("--photo-texture", default=None, metavar="FOLDER",
                   help="real samples (e.g. runs/data/loops/train) to cut real photo texture from; the bank is "
                        "saved as OUT/photo_texture_bank.npz (lite samples only)")
    p.add_argument("--photo-texture-share", type=float, default=0.5,
                   help="with --photo-texture: the share of scenes that get it (default 0.5)")
    p.set_defaults(func=_synth)

    p = sub.add_parser("from-video", help="real video -> windows -> dense flow -> spectral volumes")
    p.add_argument("videos", nargs="+", help="video files")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=parse_size, default=(256, 160))
    p.add_argument("--window", type=int, default=150, help="frames per window (T)")
    p.add_argument("--stride", type=int, default=10, help="a window starts every STRIDE frames")
    p.add_argument("--fps", type=float, default=30.0, help="resample videos to this frame rate")
    p.add_argument("--full", action="store_true", help="also store frames and motion")
    p.add_argument("--workers", type=int, default=1, help="videos extracted at once (one process each)")
    p.add_argument("--wrap", action="store_true",
                   help="the videos are seamless loops: windows start over the whole clip and wrap around")
    p.add_argument("--eulerian", action="store_true",
                   help="one video -> its mean frame-to-frame flow as a steady velocity field: --out V.npz")
    p.set_defaults(func=_from_video)

    p = sub.add_parser("tile", help="cut the samples of a folder made at a larger size into close-up tiles")
    p.add_argument("src", help="sample folder (e.g. from-video --size 512x320)")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=parse_size, default=(256, 160), help="tile W x H (default 256x160)")
    p.set_defaults(func=_tile)

    p = sub.add_parser("stats", help="per-frequency normalisation statistics (+ power spectrum plot)")
    p.add_argument("folders", nargs="+")
    p.add_argument("--out", required=True, help="stats.json")
    p.add_argument("--plot", help="power spectrum PNG")
    p.add_argument("--max-samples", type=int, default=2000, help="use at most this many samples (random)")
    p.add_argument("--by-kind", action="store_true",
                   help="also per kind of scene (real clips: from the video name; synthetic: the generator's "
                        "kind): power spectrum slope, peak term, tail share, motion amount (all samples)")
    p.set_defaults(func=_stats)


def _synth(args) -> int:
    from .synth import SynthConfig, run

    bank_path = ""
    if args.photo_texture:
        from pathlib import Path

        from .photo_texture import build_bank, save_bank
        if not args.lite:
            raise ValueError("--photo-texture needs --lite (full samples draw every frame; the texture would not move)")
        bank_path = str(Path(args.out) / "photo_texture_bank.npz")
        if not Path(bank_path).exists():
            Path(args.out).mkdir(parents=True, exist_ok=True)
            bank = build_bank([args.photo_texture])
            save_bank(bank, bank_path)
            print(f"photo texture: {len(bank['moving'])} moving and {len(bank['still'])} still patches from "
                  f"{args.photo_texture} -> {bank_path}", flush=True)
    cfg = SynthConfig(size=args.size, frames=args.frames, fps=args.fps, lite=args.lite, photo_texture=bank_path,
                      photo_texture_share=args.photo_texture_share if bank_path else 0.0)
    summary = run(args.out, args.count, args.seed, cfg, workers=args.workers, min_free_gb=args.min_free_gb,
                  log=lambda m: print(m, flush=True), kind=args.kind)
    return 2 if summary["stopped"] else 0


def _from_video(args) -> int:
    from .video import run_from_video

    if args.eulerian:
        return _eulerian_from_video(args)
    run_from_video(args.videos, args.out, size=args.size, window=args.window, stride=args.stride, fps=args.fps,
                   full=args.full, wrap=args.wrap, log=lambda m: print(m, flush=True), workers=args.workers)
    return 0


def _eulerian_from_video(args) -> int:
    from pathlib import Path

    from ..fluid_io import save_velocity
    from .eulerian_flow import average_velocity
    from .video import read_video

    if len(args.videos) != 1:
        raise ValueError(f"--eulerian takes exactly one video, got {len(args.videos)}")
    out = Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"--eulerian writes a velocity field: --out must end in .npz, got {out}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder {out.parent} does not exist")
    frames, _ = read_video(args.videos[0], args.size)
    if len(frames) < 2:
        raise ValueError(f"{args.videos[0]}: needs at least 2 frames, got {len(frames)}")
    velocity, mask = average_velocity(frames)
    save_velocity(out, velocity, mask)
    speed = np.sqrt((velocity ** 2).sum(0))
    print(f"wrote {out}: {velocity.shape[2]}x{velocity.shape[1]}, {len(frames)} frames, "
          f"{mask.mean():.0%} flowing, median speed {np.median(speed[mask]) if mask.any() else 0.0:.3f} px/frame")
    return 0


def _tile(args) -> int:
    from .tiles import tile_folder

    tile_folder(args.src, args.out, args.size, log=lambda m: print(m, flush=True))
    return 0


def _stats(args) -> int:
    from .stats import run_stats

    run_stats(args.folders, args.out, plot=args.plot, max_samples=args.max_samples, log=lambda m: print(m, flush=True),
              by_kind=args.by_kind)
    return 0
