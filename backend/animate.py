"""`gid animate IMAGE -o OUT`: the service's pipeline in-process (predict -> render) with a progress bar.

OUT ending in .mp4 -> an H.264 video (imageio-ffmpeg; written to a temporary file, then renamed into place);
anything else -> a folder of frame_00000.png ... (each written atomically). With --samples N > 1 each sample gets
its own output (OUT stem + _sample<i>). --spectral NPZ skips prediction and animates a given spectral volume
(keys `spectral` (K,4,h,w) or (N,K,4,h,w), `fps`, `T`; e.g. a data-set sample or one saved by --save-spectral).

Fluids (Eulerian motion, with --loop): --fluid-mask MASK.png (white = fluid) plus --flow-hints HINTS.json
(strokes densified into a velocity field) or --velocity NPZ (e.g. from `gid data from-video --eulerian`)
or --flow-net with --flow-hints (the fluid network reads the flow's axis and speed from the picture, the
strokes give its direction and correct it near themselves).
Inside the mask the field flows as a seamless loop; outside, the spectral motion (mixed scene), or nothing at
all with --no-oscillation (then no motion model is needed and still pixels are the input exactly). All
inputs are validated before anything is written.
Frames come one at a time from `Renderer.frames` and a writer thread encodes each while the next one renders,
so memory stays flat with the picture size (8K included).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

WRITE_QUEUE = 3     # frames waiting for the writer thread: bounds memory while writing overlaps rendering
CHUNK_FRAMES = 16   # fluid frames rendered per call: bounds memory for long or large videos


def register(subparsers) -> None:
    p = subparsers.add_parser("animate", help="animate a still image into a video or PNG frames (no Blender)",
                              description="Predict motion for IMAGE and render it (same pipeline as the service).")
    p.add_argument("image", help="input image (any format Pillow reads; RGBA/grey are converted to RGB)")
    p.add_argument("-o", "--output", required=True, help="OUT.mp4, or a folder for PNG frames")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--fps", type=float, default=24.0, help="frame rate of the output")
    p.add_argument("--loop", action="store_true", help="an exact loop of the whole duration")
    p.add_argument("--magnitude", type=float, default=1.0)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", type=int, default=1, help="motion samples; one output each")
    p.add_argument("--steps", type=int, default=None, help="diffusion steps (default: the model's)")
    p.add_argument("--guidance", type=float, default=None, help="classifier-free guidance (default: the model's)")
    p.add_argument("--placement", type=float, default=None,
                   help="0..1: how far motion moves towards the picture's texture (default: the model's; 0 = off)")
    p.add_argument("--mode", choices=("ibr", "splat"), default="ibr")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--checkpoint", default=None, help="weights root like backend/weights/default")
    p.add_argument("--spectral", default=None, help="animate this spectral volume (.npz) instead of predicting")
    p.add_argument("--save-spectral", default=None, help="also save the predicted spectral volume(s) (.npz)")
    p.add_argument("--fluid-mask", default=None, help="image, white where fluid flows (Eulerian motion; --loop)")
    p.add_argument("--flow-hints", default=None,
                   help='HINTS.json {"strokes": [{"points": [[x, y], ...], "speed": px_per_frame}]}')
    p.add_argument("--velocity", default=None, help="a velocity field .npz instead of --flow-hints")
    p.add_argument("--flow-net", action="store_true",
                   help="the fluid network reads the flow's axis and speed from the picture; --flow-hints give "
                        "its direction and correct it")
    p.add_argument("--no-oscillation", action="store_true",
                   help="with --fluid-mask: leave everything outside the mask untouched (no motion model)")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------------------------------------
# inputs


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Any Pillow-readable image -> uint8 (H, W, 3) RGB."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read image {path}: {exc}") from None


def read_spectral(path: str | os.PathLike) -> tuple[np.ndarray, float, int]:
    """.npz with spectral (K,4,h,w) or (N,K,4,h,w), fps, T -> (spectral (N,K,4,h,w) float32, fps, T)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spectral volume {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in ("spectral", "fps", "T") if k in z.files}
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"cannot read {path} as .npz: {exc}") from None
    missing = {"spectral", "fps", "T"} - set(arrays)
    if missing:
        raise ValueError(f"{path} lacks {sorted(missing)} (needs spectral, fps, T)")
    s = arrays["spectral"].astype(np.float32)
    fps, T = float(arrays["fps"]), int(arrays["T"])
    if s.ndim == 4:
        s = s[None]
    if s.ndim != 5 or s.shape[2] != 4 or not np.isfinite(s).all():
        raise ValueError(f"{path}: spectral must be finite (K,4,h,w) or (N,K,4,h,w), got {s.shape}")
    if fps <= 0 or T < 2:
        raise ValueError(f"{path}: needs fps > 0 and T >= 2, got fps={fps}, T={T}")
    return s, fps, T


# --------------------------------------------------------------------------------------------------------
# outputs (atomic)


class Mp4Writer:
    """Streams frames into `<dir>/.<name>.tmp-<pid>.mp4`, renamed to `path` on `close(ok=True)`."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float):
        import imageio_ffmpeg

        self.path = path
        self.size = (size[0] + size[0] % 2, size[1] + size[1] % 2)   # H.264 yuv420p needs even sizes
        self.tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.mp4")
        self._gen = imageio_ffmpeg.write_frames(str(self.tmp), self.size, fps=fps, codec="libx264",
                                                pix_fmt_out="yuv420p", quality=8, macro_block_size=1,
                                                ffmpeg_log_level="error")
        self._gen.send(None)

    def write(self, frame: np.ndarray) -> None:
        h, w = frame.shape[:2]
        if (w, h) != self.size:
            frame = np.pad(frame, ((0, self.size[1] - h), (0, self.size[0] - w), (0, 0)), mode="edge")
        self._gen.send(np.ascontiguousarray(frame))

    def close(self, ok: bool) -> None:
        try:
            self._gen.close()
        finally:
            if ok:
                os.replace(self.tmp, self.path)
            else:
                self.tmp.unlink(missing_ok=True)


class PngWriter:
    """Writes frame_%05d.png into a folder, each through a temporary file + os.replace."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.count = 0

    def write(self, frame: np.ndarray) -> None:
        from PIL import Image

        final = self.folder / f"frame_{self.count:05d}.png"
        tmp = self.folder / f".frame_{self.count:05d}.tmp.png"
        Image.fromarray(frame).save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, final)
        self.count += 1

    def close(self, ok: bool) -> None:
        pass


class ThreadedWriter:
    """Runs a writer's `write` on a background thread (PNG/H.264 encoding releases the GIL), so the next frame
    renders while this one is written. At most WRITE_QUEUE frames wait; the first write error is raised by
    the next `write` or by `close`, and `close(ok=False)` still discards the output."""

    def __init__(self, writer, depth: int = WRITE_QUEUE):
        import queue
        import threading

        self.writer = writer
        self.error: BaseException | None = None
        self._queue: "queue.Queue" = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._work, name="gid-frame-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            frame = self._queue.get()
            if frame is None:
                return
            if self.error is None:
                try:
                    self.writer.write(frame)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    self.error = exc

    def write(self, frame: np.ndarray) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put(frame)

    def close(self, ok: bool) -> None:
        self._queue.put(None)
        self._thread.join()
        self.writer.close(ok and self.error is None)
        if ok and self.error is not None:      # (when not ok, the caller's own exception is on its way)
            raise self.error


def open_writer(path: Path, size: tuple[int, int], fps: float):
    if path.suffix.lower() == ".mp4":
        if not path.parent.is_dir():
            raise FileNotFoundError(f"output folder {path.parent} does not exist")
        return Mp4Writer(path, size, fps)
    if path.suffix:
        raise ValueError(f"output must end in .mp4 or be a folder for PNG frames, got {path}")
    if path.exists() and not path.is_dir():
        raise ValueError(f"output {path} exists and is not a folder")
    return PngWriter(path)


def output_paths(out: Path, n: int) -> list[Path]:
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}_sample{i}{out.suffix}") for i in range(n)]


def save_spectral(path: Path, spectral: np.ndarray, fps: float, T: int) -> None:
    if path.suffix != ".npz":
        raise ValueError(f"--save-spectral must end in .npz, got {path}")
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    try:
        np.savez(tmp, spectral=spectral.astype(np.float32), fps=np.float32(fps), T=np.int32(T))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------------------
# the pipeline


def fluid_frames(renderer, image, fluid, spectral, fps, T, n_frames: int, args: argparse.Namespace):
    """The fluid (or mixed) loop's frames, rendered CHUNK_FRAMES at a time."""
    for start in range(0, n_frames, CHUNK_FRAMES):
        times = np.arange(start, min(n_frames, start + CHUNK_FRAMES), dtype=np.float64)
        yield from renderer.render_fluid(image, fluid, times, spectral=spectral, fps=fps, T=T, scene_fps=args.fps,
                                         speed=args.speed, magnitude=args.magnitude, mode=args.mode)


def prepare_fluid(args: argparse.Namespace, image: np.ndarray, n_frames: int):
    """The fluid loop from --fluid-mask + --flow-hints/--velocity (validated), or None without a mask."""
    from .fluid_io import read_fluid_mask, read_hints, read_velocity

    if args.fluid_mask is None:
        if args.flow_hints or args.velocity or args.no_oscillation or args.flow_net:
            raise ValueError("--flow-hints, --velocity, --flow-net and --no-oscillation need --fluid-mask")
        return None
    if not args.loop:
        raise ValueError("--fluid-mask needs --loop (fluid motion is rendered as a seamless loop)")
    if args.flow_net and args.velocity is not None:
        raise ValueError("--flow-net predicts the field: it takes --flow-hints (corrections), not --velocity")
    if not args.flow_net and (args.flow_hints is None) == (args.velocity is None):
        raise ValueError("--fluid-mask needs exactly one of --flow-hints HINTS.json or --velocity NPZ "
                         "(or --flow-net)")
    if n_frames < 2:
        raise ValueError("a fluid loop needs at least 2 frames (--seconds x --fps)")
    from shared.eulerian import densify

    from .render.fluid import FluidMotion

    H, W = image.shape[:2]
    mask = read_fluid_mask(args.fluid_mask, (W, H))
    strokes = read_hints(args.flow_hints, (W, H), mask) if args.flow_hints else None
    if args.flow_net:
        from .motion.fluid_velocity import FluidVelocityNet, predict_velocity

        if strokes is None:
            raise ValueError("--flow-net gives the flow's axis and speed; --flow-hints must give its direction "
                             "(at least one stroke)")
        velocity = predict_velocity(FluidVelocityNet.from_pretrained(), image, mask, strokes)
    elif strokes is not None:
        velocity = densify(strokes, mask)
    else:
        velocity, _ = read_velocity(args.velocity)
    return FluidMotion.prepare(velocity, mask, n_frames)



def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .jobs import JobContext

    if not (args.seconds > 0 and args.fps > 0 and args.speed > 0 and np.isfinite(args.magnitude)):
        raise ValueError("--seconds, --fps and --speed must be > 0 and --magnitude finite")
    if not 1 <= args.samples <= 16:
        raise ValueError(f"--samples must be in 1..16, got {args.samples}")
    if args.steps is not None and not 1 <= args.steps <= 1000:
        raise ValueError(f"--steps must be in 1..1000, got {args.steps}")
    if args.placement is not None and not 0.0 <= args.placement <= 1.0:
        raise ValueError(f"--placement must be in 0..1, got {args.placement}")
    n_frames = max(1, int(round(args.seconds * args.fps)))
    out = Path(args.output)
    image = read_image(args.image)
    H, W = image.shape[:2]
    if out.suffix and out.suffix.lower() != ".mp4":
        raise ValueError(f"output must end in .mp4 or be a folder for PNG frames, got {out}")

    fluid = prepare_fluid(args, image, n_frames)
    if fluid is not None and args.no_oscillation:
        spectral, fps, T = [None], 0.0, 0          # one output: samples would be identical
    elif args.spectral:
        spectral, fps, T = read_spectral(args.spectral)
    else:
        try:
            from .motion.predictor import MotionPredictor
            predictor = MotionPredictor.load(checkpoint_dir=args.checkpoint, device=args.device)
        except (ImportError, FileNotFoundError) as exc:
            raise RuntimeError(f"no motion model available ({type(exc).__name__}: {exc}); "
                               "train one (gid train) or pass --spectral NPZ") from None
        with tqdm(total=100, desc="predict", unit="%", leave=False) as bar:
            def on_progress(stage: str, done: float) -> None:
                bar.update(int(done * 100) - bar.n)
            pred = predictor.predict(image, seed=args.seed, samples=args.samples, steps=args.steps,
                                     loop=args.loop, guidance=args.guidance, ctx=JobContext(on_progress),
                                     placement=args.placement)
        spectral, fps, T = np.asarray(pred.spectral, np.float32), float(pred.fps), int(pred.T)
        if args.save_spectral:
            save_spectral(Path(args.save_spectral), spectral, fps, T)

    from .render.api import Renderer

    renderer = Renderer.load(checkpoint_dir=None if args.checkpoint is None else Path(args.checkpoint) / "render",
                             device=args.device)
    modes = renderer.info().get("modes", [])
    if args.mode not in modes:
        raise RuntimeError(f"--mode {args.mode} is not available ({renderer.info().get('ibr_error')}); "
                           f"available: {modes}")
    loop_frames = n_frames if args.loop else 0
    for sample, path in enumerate(output_paths(out, len(spectral))):
        writer = ThreadedWriter(open_writer(path, (W, H), args.fps))
        ok = False
        try:
            # one frame at a time (memory stays flat with the picture size), written while the next renders
            if fluid is not None:
                frames = fluid_frames(renderer, image, fluid, spectral[sample], fps, T, n_frames, args)
            else:
                frames = renderer.frames(image, spectral[sample], fps, T, np.arange(n_frames, dtype=np.float64),
                                         scene_fps=args.fps, speed=args.speed, magnitude=args.magnitude,
                                         loop_frames=loop_frames, mode=args.mode)
            with tqdm(total=n_frames, desc=f"render {path.name}", unit="frame") as bar:
                for frame in frames:
                    writer.write(frame)
                    bar.update(1)
            ok = True
        finally:
            writer.close(ok)
        print(f"wrote {path} ({n_frames} frames, {W}x{H}, {args.fps:g} fps)")
    return 0
