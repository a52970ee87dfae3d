"""`gid bake SHOT.blend --object NAME --frames A-B`: bake one object's frames headless, as Bake Sequence would.

For render farms: each chunk of a shot is one `gid bake` (Flamenco: farm/flamenco/gid_bake.js). The .blend is
opened with bpy, the add-on runs from a throw-away user folder (`headless.sandboxed_addon`), and the add-on's
own BakeTask renders scene frames A..B of the object's bake plan (its loop, or the scene range when controls
are animated or pokes are baked) into `<blend>_dynamics/<object>/bake/` under the same file names a whole bake
writes. A range's frames are moved into place one atomic rename each once all of them are rendered; frames of
other chunks are kept. The .blend itself is not saved (chunks run in parallel on one file); once every chunk
is done, `gid bake SHOT.blend --object NAME --link` shows the baked sequence on the plane and saves the .blend.

Without --backend a local `gid serve` is started on a free loopback port and stopped at the end; with
--backend ADDRESS (e.g. a shared GPU backend) its token is read from the environment variable --token-env
(default GID_SERVE_TOKEN). Every failure (missing file or object, no motion, frames outside the plan,
unreachable backend, a failed render) ends with one line `gid bake: error: ...` and exit code 1, and leaves no
frame of the range behind.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import time
from pathlib import Path

ENV_TOKEN = "GID_SERVE_TOKEN"
RUN = re.compile(r"^\s*(-?\d+)\s*(?:(?:-|\.\.)\s*(-?\d+)\s*)?$")
BACKEND_START_SECONDS = 300.0          # a cold local backend imports torch and loads weights


def register(subparsers) -> None:
    p = subparsers.add_parser("bake", help="bake an object's frames A-B of a .blend headless (render farms)",
                              description="Open SHOT.blend with bpy and bake OBJECT's frames A..B into its bake "
                                          "folder exactly as Bake Sequence would; one `gid bake` per farm chunk.")
    p.add_argument("blend", help="the shot's .blend file")
    p.add_argument("--object", required=True, help="name of the image plane with motion")
    p.add_argument("--frames", default=None,
                   help="scene frames A-B (or A, or runs like 1-12,20-24 as farm managers chunk them) inside "
                        "the object's bake: its loop, or the scene range when controls are animated or pokes "
                        "are baked")
    p.add_argument("--link", action="store_true",
                   help="render nothing: when every frame of the object's bake is in its folder, show the baked "
                        "sequence on the plane and save the .blend (once, after all chunks: a farm's last task)")
    p.add_argument("--mode", choices=("ibr", "splat"), default=None,
                   help="renderer (default: the object's Renderer setting)")
    p.add_argument("--backend", default=None,
                   help="address of a running `gid serve`, e.g. tcp://gpu-box:5555 (default: start a local one)")
    p.add_argument("--token-env", default=None,
                   help=f"environment variable holding the backend's token (default: ${ENV_TOKEN} if set)")
    p.add_argument("--serve-args", default="",
                   help="options of the local backend, e.g. '--device cuda --checkpoint DIR'")
    p.add_argument("--connect-timeout", type=float, default=30.0,
                   help="seconds to wait for the backend's first answer (default %(default)s)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="fail when the backend says nothing for this long during the bake (default %(default)s)")
    p.set_defaults(func=run)


def parse_frames(text: str) -> list[tuple[int, int]]:
    """"1-24" -> [(1, 24)]; "5" -> [(5, 5)]; "1-3,7,9..10" -> [(1, 3), (7, 7), (9, 10)] (A..B as Blender writes)."""
    runs = []
    for part in text.split(","):
        m = RUN.match(part)
        if m is None:
            raise ValueError(f"bad frame range {text!r}: expected A-B (e.g. 1-24), one frame, or runs like 1-3,7")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if a > b:
            raise ValueError(f"bad frame range {text!r}: {a} is after {b}")
        runs.append((a, b))
    if len(runs) > 1000:
        raise ValueError(f"bad frame range: {len(runs)} runs; give at most 1000")
    return runs


def resolve_token(token_env: str | None) -> str:
    if token_env is None:
        return os.environ.get(ENV_TOKEN, "")
    value = os.environ.get(token_env)
    if not value:
        raise ValueError(f"--token-env {token_env}: that environment variable is not set")
    return value


def run(args: argparse.Namespace) -> int:
    if (args.frames is None) == (not args.link):
        raise ValueError("give --frames A-B to bake, or --link (without --frames) to show a finished bake")
    frames = parse_frames(args.frames) if args.frames is not None else []
    blend = Path(args.blend).resolve()
    if not blend.is_file():
        raise FileNotFoundError(f"no such .blend file: {blend}")
    if args.connect_timeout <= 0 or args.timeout <= 0:
        raise ValueError("--connect-timeout and --timeout must be > 0")
    token = resolve_token(args.token_env) if args.backend else ""
    # A farm manager stops a task with SIGTERM: unwind like Ctrl-C, so the finally blocks below remove the
    # range's temporary folder and stop the local backend.
    signal.signal(signal.SIGTERM, _interrupt)
    from .headless import sandboxed_addon

    try:
        with sandboxed_addon() as (bpy, _module):
            return _bake(bpy, blend, args, frames, token)
    except (ValueError, RuntimeError, OSError) as exc:   # one line for the farm's task log
        raise RuntimeError(_first_line(exc)) from None


def _interrupt(signum, _frame):
    raise KeyboardInterrupt


def _bake(bpy, blend: Path, args: argparse.Namespace, runs: list[tuple[int, int]], token: str) -> int:
    from .headless import ROOT, addon_module

    t0 = time.perf_counter()
    try:
        bpy.ops.wm.open_mainfile(filepath=str(blend), load_ui=False)
    except RuntimeError as exc:
        raise RuntimeError(f"cannot open {blend}: {_first_line(exc)}") from None
    obj = bpy.data.objects.get(args.object)
    if obj is None:
        with_motion = sorted(o.name for o in bpy.data.objects if o.gid.has_motion)
        raise ValueError(f"no object named {args.object!r} in {blend.name} (objects with motion: "
                         f"{', '.join(with_motion) or 'none'})")
    if not obj.gid.has_motion:
        raise ValueError(f"{obj.name} in {blend.name} has no motion: predict or load motion in Blender first")
    scene = bpy.context.scene if obj.name in bpy.context.scene.objects else next(
        (s for s in bpy.data.scenes if obj.name in s.objects), bpy.context.scene)
    bake, connection = addon_module("bake"), addon_module("connection")
    if args.link:
        return _link(bpy, bake.BakeTask(obj, scene), blend)
    # one task per run, all checked against the plan before anything starts
    tasks = [bake.BakeTask(obj, scene, mode=args.mode, frame_range=run) for run in runs]

    prefs = connection.prefs()
    prefs.timeout = float(args.timeout)
    prefs.auto_start = False
    try:
        if args.backend:
            prefs.address, prefs.token = args.backend, token
            if not addon_module("client").is_loopback(args.backend):
                # asked for on the command line: this process may reach another machine
                bpy.context.preferences.system.use_online_access = True
        else:
            prefs.address, prefs.token = addon_module("backend_process").free_tcp_address(), ""
            prefs.python_path, prefs.working_dir, prefs.serve_args = sys.executable, str(ROOT), args.serve_args
            connection.start_backend(wait=True, timeout=BACKEND_START_SECONDS)
        ping = connection.run_blocking(connection.PingTask(wait_seconds=args.connect_timeout),
                                       timeout=args.connect_timeout + 5.0)
        if not ping.ok:
            raise RuntimeError(f"cannot reach the backend at {prefs.address}: {ping.message}")
        for task, (a, b) in zip(tasks, runs):
            connection.run_blocking(task, timeout=float("inf"))
            if not task.ok:
                raise RuntimeError(f"bake of {obj.name} frames {a}-{b} failed: {task.message}")
            print(f"gid bake: {obj.name}: {task.message}", flush=True)
    finally:
        for task in tasks:
            if task.job is not None and not task.finished:
                task.cancel()          # removes the range's temporary folder
        connection.stop_backend()
    print(f"gid bake: done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


def _first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0] if lines else type(exc).__name__


def _link(bpy, whole, blend: Path) -> int:
    """Show a finished farm bake on the plane and save the .blend (Blender writes a temp file, then renames)."""
    missing = whole.missing()
    if missing:
        raise ValueError(f"{len(missing)} of {len(whole.frames)} frames are not baked yet (first: "
                         f"{Path(missing[0]).name} in {whole.final_dir}); bake them before --link")
    whole.show_whole_bake()
    bpy.ops.wm.save_mainfile()
    print(f"gid bake: {whole.obj_name}: showing the {len(whole.frames)} baked frames; saved {blend}", flush=True)
    return 0
