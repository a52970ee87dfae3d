"""`python build.py demo [IMAGE]`: an image in, an animated Blender scene and a video out.

Everything a user would do, headless: build the add-on zip and install it into a sandboxed Blender user folder
(`out/demo/blender_user`), start `gid serve` from the add-on (free loopback port), import the image as a plane,
predict motion, apply live displacement, bake a seamless loop with the backend's renderer, save
`out/demo/demo.blend` (its `demo_dynamics/` folder next to it), and render an MP4 preview with Cycles on the
CPU (small, few samples). Stops with a clear message when the shipped motion weights are missing (unless
`--motion FILE` gives the motion, e.g. extracted from a video clip).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = Path(__file__).resolve().parent / "weights" / "default"
SAMPLE = Path(__file__).resolve().parent / "assets" / "sample.jpg"
MODULE = "bl_ext.user_default.gid_dynamics"
MARKER = ".gid-demo"


def missing_weights() -> list[str]:
    """Motion parts that must exist for predict (vae, ldm): config.json + model.safetensors each."""
    return [f"{part}/ ({WEIGHTS / part})" for part in ("vae", "ldm")
            if not ((WEIGHTS / part / "config.json").is_file() and (WEIGHTS / part / "model.safetensors").is_file())]


def render_weights_present() -> bool:
    return (WEIGHTS / "render" / "model.safetensors").is_file()


def build_zip(out: Path) -> Path:
    from . import addon_build

    try:
        zips = addon_build.build(out / "dist", offline=True)
    except FileNotFoundError:
        print("demo: fetching the pyzmq/msgpack wheels for the add-on once (pip download)")
        zips = addon_build.build(out / "dist", offline=False)
    plat = {"linux": "linux_x64", "win32": "windows_x64"}.get(sys.platform)
    if plat is None:
        import platform

        plat = "macos_arm64" if platform.machine() == "arm64" else "macos_x64"
    return next(z for z in zips if z.name.endswith(f"-{plat}.zip"))


def encode_mp4(frames_dir: Path, fps: float, path: Path) -> None:
    import imageio.v2 as imageio

    files = sorted(frames_dir.glob("*.png"))
    tmp = path.with_name(path.stem + ".tmp.mp4")
    with imageio.get_writer(str(tmp), fps=fps, codec="libx264", quality=8, macro_block_size=8) as w:
        for f in files:
            w.append_data(imageio.imread(str(f))[..., :3])
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="build.py demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("image", nargs="?", default=str(SAMPLE), help="still image (default: the shipped sample)")
    parser.add_argument("--out", default=str(ROOT / "out" / "demo"), help="output folder (default out/demo)")
    parser.add_argument("--motion", default=None,
                        help="use this motion (.npz with spectral, fps, T; e.g. extracted from a clip) instead "
                             "of predicting it; no motion weights needed")
    parser.add_argument("--steps", type=int, default=0, help="diffusion steps (0 = the model's default)")
    parser.add_argument("--seconds", type=float, default=2.0, help="loop length in seconds")
    parser.add_argument("--samples", type=int, default=4, help="Cycles samples of the preview")
    parser.add_argument("--scale", type=int, default=50, help="preview size in percent of the image")
    args = parser.parse_args(argv)

    image = Path(args.image).resolve()
    if not image.is_file():
        print(f"demo: no such image: {image}", file=sys.stderr)
        return 1
    missing = missing_weights() if args.motion is None else []
    if missing:
        print("demo: cannot run: the shipped default motion model is missing: " + ", ".join(missing)
              + ". It is being trained and lands in backend/weights/default/ (vae/, ldm/: config.json + "
              "model.safetensors + norm_stats.json).", file=sys.stderr)
        return 1
    out = Path(args.out).resolve()
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():   # never wipe a folder this demo did not make
            print(f"demo: {out} exists and is not a demo output folder; choose another --out", file=sys.stderr)
            return 1
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `python build.py demo`; replaced by the next run\n")
    t_start = time.perf_counter()
    zip_path = build_zip(out)

    os.environ["BLENDER_USER_RESOURCES"] = str(out / "blender_user")   # before bpy: a sandboxed user folder
    import bpy

    from blender_addon.backend_process import free_tcp_address

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=True)
    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.address = free_tcp_address()
    prefs.python_path = sys.executable
    prefs.working_dir = str(ROOT)
    prefs.timeout = 1800.0
    connection = sys.modules[MODULE + ".connection"]

    def step(name: str, result: set) -> None:
        if "FINISHED" not in result:
            raise RuntimeError(f"{name} failed (see the messages above)")
        print(f"demo: {name} done ({time.perf_counter() - t_start:.1f} s)", flush=True)

    try:
        step("start backend", bpy.ops.gid.start_backend())
        sc = bpy.context.scene
        sc.render.fps, sc.render.fps_base = 30, 1.0
        step("import image", bpy.ops.gid.import_image(filepath=str(image)))
        ob = bpy.context.active_object
        if args.motion is None:
            step("predict motion (+ live displacement)",
                 bpy.ops.gid.predict_motion(blocking=True, steps=args.steps))
        else:
            step(f"load motion {args.motion}", bpy.ops.gid.load_motion(filepath=str(Path(args.motion).resolve())))
        s = ob.gid
        s.loop_frames = max(2, int(round(args.seconds * 30)))
        s.start_frame = 1
        step("apply displacement", bpy.ops.gid.apply_displacement())
        s.bake_mode = "ibr" if render_weights_present() else "splat"
        if s.bake_mode == "splat":
            print("demo: backend/weights/default/render/ is missing: baking with the splat preview renderer")
        step(f"bake loop ({s.bake_mode})", bpy.ops.gid.bake_sequence(blocking=True))
        sc.frame_start, sc.frame_end = 1, s.loop_frames
        setup_preview(bpy, sc, ob, args.samples, args.scale)
        blend = out / "demo.blend"
        bpy.ops.wm.save_as_mainfile(filepath=str(blend))
        print(f"demo: saved {blend} ({time.perf_counter() - t_start:.1f} s)", flush=True)
        frames_dir = out / "preview_frames"
        sc.render.filepath = str(frames_dir) + os.sep + "frame_"
        sc.render.image_settings.file_format = "PNG"
        bpy.ops.render.render(animation=True)
        mp4 = out / "demo.mp4"
        encode_mp4(frames_dir, 30.0, mp4)
    except (RuntimeError, ValueError) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    finally:
        connection.stop_backend()
    print(f"demo: finished in {time.perf_counter() - t_start:.1f} s\n"
          f"  scene:    {out / 'demo.blend'}\n"
          f"  dynamics: {out / 'demo_dynamics' / ob.gid.key} (spectral.npz, live/, bake/)\n"
          f"  video:    {mp4}\n"
          f"  backend log: {connection.log_path()}")
    return 0


def setup_preview(bpy, sc, ob, samples: int, scale: int) -> None:
    """Orthographic camera framing the plane; Cycles CPU, few samples, Standard view (colours as in the file)."""
    cam_data = bpy.data.cameras.new("Preview camera")
    cam_data.type = "ORTHO"
    w, h = ob.dimensions[0], ob.dimensions[1]
    img_w, img_h = ob.gid.source_image.size
    cam_data.ortho_scale = max(w, h)
    cam = bpy.data.objects.new("Preview camera", cam_data)
    sc.collection.objects.link(cam)
    cam.location = (ob.location.x, ob.location.y, ob.location.z + 5.0)
    sc.camera = cam
    sc.render.engine = "CYCLES"
    sc.cycles.device = "CPU"
    sc.cycles.samples = samples
    sc.cycles.use_denoising = False
    sc.render.resolution_x, sc.render.resolution_y = img_w, img_h
    sc.render.resolution_percentage = scale
    sc.view_settings.view_transform = "Standard"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
