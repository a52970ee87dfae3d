"""The add-on against bad input and a dying backend, in real bpy with the built extension installed.

- Load Motion of malformed .npz files (zip bomb, pickled object arrays, NaN/inf fps, T = 1e12, missing keys,
  truncated, damaged, not a zip, ...): one clear error, no traceback, nothing decompressed before the headers
  are checked (peak memory), and nothing changed: object settings, datablocks, files on disk.
- A valid motion whose applying fails: the previous motion file and settings are put back.
- Import Image of non-images (text, random bytes, empty, truncated PNG): one clear error, no datablock left.
- The backend the add-on starts gets its token through the environment, never on its command line, and
  requires it; when it dies it is restarted at the next request if "start automatically" is on.

Scenarios run in their own Python process (one Blender per process; see test_addon_workflow.py) and print
one JSON line; the pytest functions assert per case.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bad_inputs import BAD_MOTION, good_motion, make_bad_images, make_bad_motion
from test_addon_workflow import MODULE, PY, ROOT, _scene_setup, addon_zip  # noqa: F401  (fixture)

IMAGE_CASES = ("text", "random", "empty", "truncated_png", "text_txt")
TOKEN = "hardening-secret-7f3a9c"


def run(name: str, workdir: Path, zip_path: Path, timeout: float = 400.0) -> tuple[dict, str]:
    (workdir / "tmp").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TMPDIR=str(workdir / "tmp"))
    env.pop("GID_SERVE_TOKEN", None)
    proc = subprocess.run([PY, __file__, name, str(workdir), str(zip_path)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=str(ROOT))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"scenario {name} failed (rc={proc.returncode}):\n{proc.stdout[-4000:]}\n"
                             f"{proc.stderr[-4000:]}")
    return json.loads(lines[-1][len("RESULT "):]), proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def bad_inputs(addon_zip, tmp_path_factory):
    return run("bad_inputs", tmp_path_factory.mktemp("bad_inputs"), addon_zip)


def _assert_refused(case: dict, *phrases: str) -> None:
    message = case["message"]
    assert message is not None, f"accepted: {case}"
    lines = [ln for ln in message.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), message      # one report, no traceback
    assert "Traceback" not in message and "Python:" not in message, message
    assert any(p in message for p in phrases), message
    assert case["settings_unchanged"] and case["datablocks_unchanged"] and case["files_unchanged"], case


# what each bad motion file must be refused for (any of the phrases)
MOTION_REASONS = {
    "zip_bomb": ("more than",), "lying_header": ("declares",), "object_spectral": ("Python objects",),
    "object_fps": ("Python objects",), "nan_fps": ("fps=nan",), "inf_fps": ("fps=inf",),
    "negative_fps": ("fps=-30",), "huge_T_float": ("T=1e+12",), "huge_T_int": ("T=1e+12",),
    "fractional_T": ("T=150.5",), "nan_T": ("T=nan",), "nan_spectral": ("non-finite",),
    "float64_overflow": ("non-finite",), "complex_spectral": ("complex64",), "int_spectral": ("int32",),
    "wrong_rank": ("must be (K, 4, h, w)",), "wrong_channels": ("must be (K, 4, h, w)",),
    "too_many_terms": ("do not fit",), "fps_array": ("one number",), "bad_size": ("size [0, 10]",),
    "missing_keys": ("lacks ['fps', 'T']",), "missing_spectral": ("lacks ['spectral']",),
    "truncated": ("not an .npz archive",), "corrupt_deflate": ("not a readable .npz", "CRC"),
    "non_zip": ("not an .npz archive",), "empty": ("not an .npz archive",),
    "single_npy": ("not an .npz archive",),
}


@pytest.mark.slow
def test_no_traceback_anywhere(bad_inputs):
    _, output = bad_inputs
    assert "Traceback" not in output, output[-4000:]


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_MOTION))
def test_bad_motion_file_is_refused_and_changes_nothing(bad_inputs, case):
    result, _ = bad_inputs
    for target in ("with_motion", "fresh"):       # a plane with motion, and one without any yet
        r = result["motion"][target][case]
        _assert_refused(r, *MOTION_REASONS[case])
        assert r["seconds"] < 2.0, r
        # headers are checked before decompressing: Blender's peak memory does not move
        assert r["peak_growth_mb"] < 100, r


@pytest.mark.slow
def test_failed_apply_restores_the_previous_motion(bad_inputs):
    result, _ = bad_inputs
    r = result["motion"]["apply_fails"]
    _assert_refused(r, "no vertex group")
    assert r["fps_T"] == [30.0, 150]                   # the earlier motion, not the rejected one's 24 fps
    fresh = result["motion"]["apply_fails_fresh"]
    _assert_refused(fresh, "no vertex group")
    assert not fresh["has_motion"] and not fresh["folder_exists"]
    # after all the refusals the operator still works, and then it does replace the motion
    assert result["motion"]["good_after"] == [24.0, 120]


@pytest.mark.slow
@pytest.mark.parametrize("case", IMAGE_CASES)
def test_non_image_is_refused_and_leaves_nothing(bad_inputs, case):
    result, _ = bad_inputs
    _assert_refused(result["images"][case], "not an image", "is empty")
    assert result["images"]["good_after"] == "FINISHED"


@pytest.fixture(scope="module")
def backend_run(addon_zip, tmp_path_factory):
    return run("backend", tmp_path_factory.mktemp("backend"), addon_zip, timeout=500.0)[0]


@pytest.mark.slow
def test_started_backend_gets_the_token_through_its_environment(backend_run):
    r = backend_run
    # not on the command line of the process the add-on started (any local user can read it), only in its
    # environment (its owner only) ...
    assert r["cmdline"].startswith(PY) and TOKEN not in r["cmdline"]
    assert r["token_in_environ"]
    # ... and the server requires it
    assert r["no_token"] == "unauthorized" and r["wrong_token"] == "unauthorized" and r["with_token"] == "ok"
    # refused in the connection handshake: Connect says so at once, in its report and in the status line
    assert "refused the connection: is the token right?" in r["connect_wrong"], r
    assert r["connect_wrong_seconds"] < 5, r
    assert r["status_wrong"].startswith("not connected: ") and "is the token right?" in r["status_wrong"], r


@pytest.mark.slow
def test_dead_backend_is_restarted_at_the_next_request(backend_run):
    r = backend_run
    # killed, the backend is started again by the next operation (auto-start on), which succeeds
    assert r["killed_exit"] == -9
    assert r["bake_after_kill"] == "FINISHED", r
    assert r["restarted_pid"] != r["first_pid"] and r["restarted_running"]
    assert TOKEN not in r["restarted_cmdline"] and r["baked_files"] == 6
    # without auto-start a dead backend is not restarted: the next operation fails at once, saying so
    assert "exited" in r["no_auto_message"] and not r["no_auto_restarted"] and r["no_auto_seconds"] < 5


# --------------------------------------------------------------------------------------------------------
# scenarios (run inside a fresh bpy process)


_COLLECTIONS = ("objects", "meshes", "materials", "images", "textures", "node_groups")


def _datablocks(bpy) -> dict:
    return {c: sorted(b.name for b in getattr(bpy.data, c)) for c in _COLLECTIONS}


def _settings(ob) -> dict:
    s = ob.gid
    values = {p.identifier: repr(getattr(s, p.identifier)) for p in s.bl_rna.properties
              if p.identifier != "rna_type"}
    values["modifiers"] = [m.name for m in ob.modifiers]
    values["nodes"] = sorted(n.name for slot in ob.material_slots if slot.material
                             for n in slot.material.node_tree.nodes)
    return values


def _tree(root: Path, skip: str = "user") -> dict:
    """Every file and folder under root (but the add-on's install folder) with the sha256 of its bytes."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == str(root) and skip in dirnames:
            dirnames.remove(skip)
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = ""
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
    return out


def _peak_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _call(bpy, op, **kwargs):
    """(message, seconds, peak growth): the operator's error message (None when it finished)."""
    import time

    peak, t0 = _peak_mb(), time.perf_counter()
    try:
        result = op(**kwargs)
        message = None if "FINISHED" in result else f"returned {result}"
    except RuntimeError as exc:    # bpy.ops raises with the operator's ERROR report (or its traceback)
        message = str(exc)
    return message, time.perf_counter() - t0, _peak_mb() - peak


def _refusal(bpy, root: Path, objects: list, op, **kwargs) -> dict:
    before = ([_settings(o) for o in objects], _datablocks(bpy), _tree(root))
    message, seconds, growth = _call(bpy, op, **kwargs)
    after = ([_settings(o) for o in objects], _datablocks(bpy), _tree(root))
    return {"message": message, "seconds": seconds, "peak_growth_mb": growth,
            "settings_unchanged": before[0] == after[0], "datablocks_unchanged": before[1] == after[1],
            "files_unchanged": before[2] == after[2]}


def scenario_bad_inputs(workdir: Path, zip_path: str) -> dict:
    from importlib import import_module

    bpy, ob, img, spec = _scene_setup(workdir, zip_path)
    bpy.ops.wm.save_as_mainfile(filepath=str(workdir / "scene.blend"))
    assert "FINISHED" in bpy.ops.gid.load_motion(filepath=str(workdir / "motion.npz"))
    assert "FINISHED" in bpy.ops.gid.import_image(filepath=str(workdir / "still.png"))
    fresh = bpy.context.active_object
    assert fresh != ob and not fresh.gid.has_motion
    bpy.ops.wm.save_mainfile()
    root = workdir                     # the .blend, its _dynamics folder, the inputs, the temp folder
    files = make_bad_motion(workdir / "bad_motion")
    out = {"motion": {"with_motion": {}, "fresh": {}}, "images": {}}
    for target_name, target in (("with_motion", ob), ("fresh", fresh)):
        for case, path in files.items():
            bpy.context.view_layer.objects.active = target
            out["motion"][target_name][case] = _refusal(bpy, root, [ob, fresh], bpy.ops.gid.load_motion,
                                                        filepath=str(path))
    # a valid file whose applying fails (the mask's vertex group does not exist): everything is put back
    other = good_motion(workdir / "other.npz", fps=24.0, T=120)
    for name, target in (("apply_fails", ob), ("apply_fails_fresh", fresh)):
        target.gid.mask_vertex_group = "no such group"
        bpy.context.view_layer.objects.active = target
        out["motion"][name] = _refusal(bpy, root, [ob, fresh], bpy.ops.gid.load_motion, filepath=str(other))
        target.gid.mask_vertex_group = ""
    out["motion"]["apply_fails"]["fps_T"] = [ob.gid.fps, ob.gid.T]
    storage = import_module(MODULE + ".storage")
    out["motion"]["apply_fails_fresh"]["has_motion"] = fresh.gid.has_motion
    out["motion"]["apply_fails_fresh"]["folder_exists"] = os.path.isdir(
        os.path.join(storage.dynamics_root(), storage.sanitize(fresh.name)))
    bpy.context.view_layer.objects.active = ob
    assert "FINISHED" in bpy.ops.gid.load_motion(filepath=str(other))
    out["motion"]["good_after"] = [ob.gid.fps, ob.gid.T]

    images = make_bad_images(workdir / "bad_images", workdir / "still.png")
    for case, path in images.items():
        out["images"][case] = _refusal(bpy, root, [ob, fresh], bpy.ops.gid.import_image, filepath=str(path))
    message, _, _ = _call(bpy, bpy.ops.gid.import_image, filepath=str(workdir / "still.png"))
    out["images"]["good_after"] = message or "FINISHED"
    return out


def _proc_file(pid: int, name: str) -> bytes:
    """/proc/PID/<name> (cmdline: what every local user can read), or b"" once the process is gone."""
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except FileNotFoundError:
        return b""


def scenario_backend(workdir: Path, zip_path: str) -> dict:
    import time
    from importlib import import_module

    bpy, ob, img, spec = _scene_setup(workdir, zip_path)
    connection = import_module(MODULE + ".connection")
    client_mod = import_module(MODULE + ".client")
    from blender_addon.backend_process import free_tcp_address

    prefs = bpy.context.preferences.addons[MODULE].preferences
    prefs.address, prefs.python_path, prefs.working_dir = free_tcp_address(), PY, str(ROOT)
    prefs.timeout, prefs.token, prefs.auto_start = 120.0, TOKEN, True
    out = {}
    assert "FINISHED" in bpy.ops.gid.start_backend(timeout=180)     # starts it, then pings with the token
    proc = connection.process()
    out["first_pid"] = proc.pid
    out["cmdline"] = _proc_file(proc.pid, "cmdline").replace(b"\0", b" ").decode()
    out["token_in_environ"] = f"GID_SERVE_TOKEN={TOKEN}".encode() in _proc_file(proc.pid, "environ")

    def ping(token: str) -> str:
        cl = client_mod.BackendClient(prefs.address, token, idle_timeout=30)
        try:
            cl.call("ping", {}, timeout=30)
            return "ok"
        except client_mod.BackendError as exc:
            return exc.code
        finally:
            cl.close()

    out["no_token"], out["wrong_token"], out["with_token"] = ping(""), ping("not-the-token-123"), ping(TOKEN)
    # Connect with a wrong token: refused in the handshake, reported at once in the operator and the status line
    prefs.token = "not-the-token-123"
    out["connect_wrong"], out["connect_wrong_seconds"], _ = _call(bpy, bpy.ops.gid.connect, wait_seconds=30)
    out["status_wrong"] = bpy.context.window_manager.gid_job.status
    prefs.token = TOKEN

    assert "FINISHED" in bpy.ops.gid.load_motion(filepath=str(workdir / "motion.npz"))
    s = ob.gid
    s.loop_frames, s.bake_mode, s.bake_chunk = 6, "splat", 6
    proc.proc.kill()
    out["killed_exit"] = proc.proc.wait(30)
    message, _, _ = _call(bpy, bpy.ops.gid.bake_sequence, blocking=True, timeout=300)
    out["bake_after_kill"] = message or "FINISHED"
    new = connection.process()
    out["restarted_pid"], out["restarted_running"] = new.pid, new.running()
    out["restarted_cmdline"] = _proc_file(new.pid, "cmdline").replace(b"\0", b" ").decode()
    storage = import_module(MODULE + ".storage")
    out["baked_files"] = len(list((Path(storage.object_dir(ob)) / "bake").glob("frame_*.png")))

    prefs.auto_start = False
    new.proc.kill()
    new.proc.wait(30)
    t0 = time.monotonic()
    message, _, _ = _call(bpy, bpy.ops.gid.bake_sequence, blocking=True, timeout=60)
    out["no_auto_message"] = message or "FINISHED"
    out["no_auto_seconds"] = time.monotonic() - t0
    out["no_auto_restarted"] = connection.process() is not new or new.running()
    bpy.ops.gid.stop_backend()
    return out


if __name__ == "__main__":
    scenario, workdir, zip_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    sys.path.insert(0, str(ROOT))
    result = globals()[f"scenario_{scenario}"](workdir, zip_path)
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()
    os._exit(0)   # skip bpy's atexit teardown (slow, and it may print)
