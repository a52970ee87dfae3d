"""Baking frames with the backend's renderer into an image sequence on the plane, atomically.

Frames arrive in chunks (one `render` request per chunk); they are written into a temporary sibling folder and
swapped in place of `<object dir>/bake/` only when every frame is there. A cancelled or failed bake (backend
gone, error) deletes the temporary folder: the previous frames and the material stay as they were.
A frame range (`frame_range`, what `gid bake --frames A-B` and farm chunks use) bakes only those frames of the
same plan, under the same file names, and moves each finished file into `bake/` with its own atomic rename
once the whole range is rendered: other frames already there (other chunks) are kept, and a failed range
leaves nothing. Every frame is rendered from its own time alone, so chunks baked apart equal one whole bake.
With baked pokes (or animated direction / bias), each request also carries the live path's displacement fields
for its frames (`fields.controlled` at the spectral grid), so the baked frames move exactly like the live ones.
"""
from __future__ import annotations

import os
import shutil

import bpy
import numpy as np

from . import connection, displacement, fields, storage
from .vendor import spectral as sp

BAKE_DIR = "bake"
MASK_GRID_WIDTH = 512


def write_png(path: str, rgb8: np.ndarray, scratch) -> None:
    """uint8 (H, W, 3) or (H, W, 4), row 0 at top -> 8-bit PNG, bytes exactly as given (Image.save writes the
    buffer as is)."""
    h, w, c = rgb8.shape
    rgba = np.ones((h, w, 4), np.float32)
    rgba[..., :c] = rgb8 / 255.0
    scratch.pixels.foreach_set(rgba[::-1].ravel())
    scratch.filepath_raw = path
    scratch.file_format = "PNG"
    scratch.save()


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


class BakeTask(connection.Task):
    label = "Baking frames"

    def __init__(self, obj, scene, mode: str | None = None, fmt: str | None = None, chunk: int | None = None,
                 max_width: int = 0, frame_range: tuple[int, int] | None = None):
        super().__init__()
        s = obj.gid
        plane = displacement.PlaneInfo(obj)
        motion = storage.load_motion(obj)
        self.obj_name = obj.name
        self.scene_name = scene.name
        size = plane.size
        if max_width and size[0] > max_width:
            size = (max_width, max(1, round(size[1] * max_width / size[0])))
        self.set_picture(plane, size)
        # Mask and direction bias are linear per pixel, so they are applied to the spectral volume itself;
        # speed, magnitude and the loop travel as render arguments. Without a mask the volume goes at its own
        # grid (the renderer resamples it; sending it at image size only costs time); with a mask, at the
        # image's size (at most MASK_GRID_WIDTH wide) so frozen regions keep crisp edges.
        raw = motion.variation(s.variation)
        mask_size = size if size[0] <= MASK_GRID_WIDTH else (
            MASK_GRID_WIDTH, max(1, round(size[1] * MASK_GRID_WIDTH / size[0])))
        mask = displacement.build_mask(obj, mask_size)
        spec = raw if mask is None else sp.resample_spectral(raw, mask_size) * mask[None, None]
        spec = fields.apply_direction_spectral(spec, s.direction, s.direction_bias)
        self.spectral = spec.astype(np.float32)
        self.fps, self.T = motion.fps, motion.T
        self.scene_fps = scene.render.fps / scene.render.fps_base
        # The same frames and control values as the live path (loop, or the scene range when a control is
        # animated or pokes are baked). Animated magnitude: one request per run of equal values; animated
        # speed: the integrated time (tau) is sent with speed 1, exactly as the live path evaluates it.
        grid = (spec.shape[-1], spec.shape[-2])
        pokes = displacement.load_pokes(obj, motion, grid)
        plan = displacement.make_plan(obj, scene, None if pokes is None else (pokes.first, pokes.last_frame))
        # Pokes and per-frame direction / bias (and the Ambient / Pokes weights that come with pokes) are not
        # a function of the volume: then every request carries the live path's own fields
        # (`fields.controlled`) at the grid, and the volume only sets the renderer's splat metric.
        self.plan, self.mask, self.pokes = plan, mask, pokes
        self.ambient = None
        if pokes is not None or np.ptp(plan.direction) > 0 or np.ptp(plan.bias) > 0:
            self.ambient = fields.Ambient(raw, motion.T, motion.fps, self.scene_fps, plan, grid)
        self.frames, self.cyclic, self.start_frame = plan.frames, plan.cyclic, plan.start
        self.loop_frames = plan.loop_frames
        self.times = (plan.tau if plan.speed_animated else (plan.frames - plan.start)).astype(np.float32)
        self.speed = 1.0 if plan.speed_animated else float(plan.speed)
        self.magnitudes = plan.magnitude.astype(np.float64)
        self.set_output(obj, mode, fmt, chunk)
        if frame_range is not None:
            self.first, last = plan_index_range(plan, frame_range)
            self.partial = True
            part = slice(self.first, last + 1)
            self.frames, self.times, self.magnitudes = self.frames[part], self.times[part], self.magnitudes[part]

    def set_output(self, obj, mode: str | None, fmt: str | None, chunk: int | None) -> None:
        """Where and how frames are written (the object's settings unless given); a whole bake until a frame
        range says otherwise."""
        s = obj.gid
        # plan index of the first frame baked: file numbers and live fields stay those of the whole plan
        self.first, self.partial = 0, False
        self.mode = mode or s.bake_mode
        self.fmt = fmt or s.bake_format
        self.chunk = int(chunk or s.bake_chunk)
        self.final_dir = os.path.join(storage.object_dir(obj), BAKE_DIR)
        self.tmp_dir = None
        self.next_index = 0

    def set_picture(self, plane, size: tuple[int, int]) -> None:
        """The plane's picture at `size` as the backend renders it: RGB, and its alpha when it has one.

        A picture with transparency (a depth layer, a cut-out) keeps it: the backend renders RGB only, so each
        chunk is rendered a second time with the alpha as a grey picture. The warp and occlusion depend on the
        motion alone, so the alpha moves exactly with the colour."""
        pixels = np.clip(np.rint(displacement.image_pixels(plane.image, size) * 255), 0, 255).astype(np.uint8)
        self.image = np.ascontiguousarray(pixels[..., :3])
        self.alpha = None
        if pixels[..., 3].min() < 255:
            self.alpha = np.ascontiguousarray(np.repeat(pixels[..., 3:], 3, axis=-1))
        self.colour_frames = None         # a chunk's RGB frames while its alpha is being rendered

    def set_stage(self, a: int, b: int) -> None:
        self.stage = f"frames {a + 1}-{b} of {len(self.frames)}"
        if self.colour_frames is not None:
            self.stage += " (alpha)"

    def request_picture(self) -> np.ndarray:
        """What the next request renders: the colour, or (after a chunk's colour came back) its alpha."""
        return self.image if self.colour_frames is None else self.alpha

    @property
    def ext(self) -> str:
        return "exr" if self.fmt == "OPEN_EXR" else "png"

    def start(self, cl) -> None:
        self.tmp_dir = storage.new_temp_dir(self.final_dir)
        self.client = cl
        self._request_next()

    def _chunk_end(self) -> int:
        """End of the next request: at most `chunk` frames, all with the same magnitude."""
        a = self.next_index
        b = min(a + self.chunk, len(self.frames))
        same = np.nonzero(self.magnitudes[a:b] != self.magnitudes[a])[0]
        return a + int(same[0]) if len(same) else b

    def _request_next(self) -> None:
        a, b = self.next_index, self._chunk_end()
        self.set_stage(a, b)
        args = {
            "image": self.request_picture(), "spectral": self.spectral.astype(np.float16), "fps": float(self.fps),
            "T": int(self.T), "times": self.times[a:b], "scene_fps": float(self.scene_fps), "speed": self.speed,
            "magnitude": float(self.magnitudes[a]), "loop_frames": self.loop_frames, "mode": self.mode}
        if self.ambient is not None:
            args["displacement"] = self.live_fields(slice(self.first + a, self.first + b)).astype(np.float16)
        self.submit(self.client, "render", args)

    def live_fields(self, index: slice) -> np.ndarray:
        """(n, 2, h, w) float32 displacement of plan frames [index] at the grid: the live path's fields."""
        plan = self.plan
        poke_fields = self.pokes(plan.frames[index]) if self.pokes is not None else None
        return fields.controlled(self.ambient, self.T, self.fps, self.scene_fps, plan, index, self.mask,
                                 poke_fields)

    def overall(self, done: float) -> float:
        n = len(self.frames)
        if self.alpha is not None:                  # two requests per chunk: colour, then alpha
            done = 0.5 * done + (0.5 if self.colour_frames is not None else 0.0)
        return (self.next_index + done * (self._chunk_end() - self.next_index)) / n

    def on_job_done(self, job) -> None:
        frames = np.asarray(job.result["frames"])
        expected = (self._chunk_end() - self.next_index,) + self.image.shape
        if frames.shape != expected or frames.dtype != np.uint8:
            raise ValueError(f"the backend sent frames {frames.dtype} {frames.shape}, expected uint8 {expected}")
        if self.alpha is not None:
            if self.colour_frames is None:          # this chunk's colour: now the same frames of its alpha
                self.colour_frames = frames
                self._request_next()
                return
            frames = np.concatenate([self.colour_frames, frames[..., :1]], axis=-1)
            self.colour_frames = None
        self._write(frames)
        self.next_index += len(frames)
        self.progress = self.next_index / len(self.frames)
        connection.report_progress(self)
        if self.next_index < len(self.frames):
            self._request_next()
            return
        obj = bpy.data.objects[self.obj_name]
        if self.partial:
            storage.move_files_into(self.tmp_dir, self.final_dir)
            self.tmp_dir = None
            if not self.missing():
                self.show_whole_bake()
            self.succeed(f"baked frames {int(self.frames[0])}-{int(self.frames[-1])} ({len(self.frames)}) "
                         f"into {self.final_dir}")
            return
        storage.swap_dir(self.tmp_dir, self.final_dir)
        self.tmp_dir = None
        show_baked(obj, len(self.frames), int(self.frames[0]), self.cyclic, self.ext)
        self.succeed(f"baked {len(self.frames)} frames into {self.final_dir}")

    def missing(self) -> list[str]:
        """Files of the whole plan not (yet) in the bake folder (chunks still to come)."""
        paths = (self._path(self.final_dir, i) for i in range(len(self.plan.frames)))
        return [p for p in paths if not os.path.isfile(p)]

    def show_whole_bake(self) -> None:
        """Show the bake folder's sequence (every frame of the plan) on the plane."""
        show_baked(bpy.data.objects[self.obj_name], len(self.plan.frames), int(self.plan.frames[0]), self.cyclic,
                   self.ext)

    def _path(self, folder: str, plan_index: int) -> str:
        """File of plan frame `plan_index` (numbered from 1 at the plan's first frame, as the timeline shows)."""
        return os.path.join(folder, f"frame_{plan_index + 1:04d}.{self.ext}")

    def _write(self, frames: np.ndarray) -> None:
        h, w = self.image.shape[:2]
        if self.fmt == "OPEN_EXR":
            scene = bpy.data.scenes[self.scene_name]
            with displacement.ExrWriter(scene, (w, h), alpha=frames.shape[-1] == 4) as writer:
                for i, f in enumerate(frames):
                    linear = srgb_to_linear(f / 255.0)
                    if f.shape[-1] == 4:
                        linear[..., 3] = f[..., 3] / 255.0      # alpha is not a colour: no transfer curve
                    writer.write(self._path(self.tmp_dir, self.first + self.next_index + i), linear)
            return
        scratch = bpy.data.images.new("GID scratch PNG", w, h, alpha=True, float_buffer=False)
        try:
            for i, f in enumerate(frames):
                write_png(self._path(self.tmp_dir, self.first + self.next_index + i), f, scratch)
        finally:
            bpy.data.images.remove(scratch)

    def cleanup(self) -> None:
        if self.tmp_dir and os.path.isdir(self.tmp_dir):
            shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir = None


def plan_index_range(plan, frame_range: tuple[int, int]) -> tuple[int, int]:
    """Plan indices of scene frames a..b; ValueError unless a <= b and both are frames the object bakes."""
    a, b = (int(v) for v in frame_range)
    first, last = int(plan.frames[0]), int(plan.frames[-1])
    what = (f"a loop of {plan.loop_frames} frames from frame {plan.start}" if plan.cyclic
            else "the scene's frame range")
    if a > b:
        raise ValueError(f"bad frame range {a}-{b}: the first frame is after the last")
    if a < first or b > last:
        raise ValueError(f"frames {a}-{b} are outside the frames this object bakes: {first}-{last} ({what})")
    return a - first, b - first


def show_baked(obj, count: int, start: int, cyclic: bool, ext: str) -> None:
    """Switch the plane's texture to the baked sequence (undisplaced: the frames already move)."""
    plane = displacement.PlaneInfo(obj)
    s = obj.gid
    if s.source_image is None:
        s.source_image = plane.node.image
    img = displacement.sequence_image(obj, f"{BAKE_DIR}/frame_0001.{ext}", "bake")
    img.colorspace_settings.name = "sRGB" if ext == "png" else "Linear Rec.709"
    displacement.unwire_shader(plane)
    displacement.unwire_geometry(obj)
    plane.node.image = img
    displacement.set_sequence_user(plane.node.image_user, count, start, cyclic)
    s.display = "BAKED"
