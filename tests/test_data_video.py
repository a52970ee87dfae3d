"""Real-video path: DIS flow from the first frame, validity, drop filters, windows, npz output."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from backend.data.flow import window_motion
from backend.data.samples import list_samples, load_sample
from backend.data.synth import SynthConfig, generate
from backend.data.video import VideoConfig, check_window, process_window, run_from_video, window_starts
from shared.spectral import spectral_to_motion


def _texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (h // 4 + 2, w // 4 + 2, 3)).astype(np.uint8)
    return cv2.resize(small, (w + 8, h + 8), interpolation=cv2.INTER_CUBIC)


def _shifted(tex, dx, dy, h, w):
    m = np.float32([[1, 0, dx - 4], [0, 1, dy - 4]])   # frame content moves by (dx, dy)
    return cv2.warpAffine(tex, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def test_flow_recovers_known_translation():
    h, w = 40, 64
    tex = _texture(h, w)
    shifts = [(0, 0), (0.5, 0.2), (1.5, -0.7), (-1.0, 1.0)]
    frames = np.stack([_shifted(tex, dx, dy, h, w) for dx, dy in shifts])
    motion, valid = window_motion(frames)
    assert np.all(motion[0] == 0)
    inner = (slice(6, -6), slice(6, -6))
    for t, (dx, dy) in enumerate(shifts):
        assert abs(np.median(motion[t, 0][inner]) - dx) < 0.1
        assert abs(np.median(motion[t, 1][inner]) - dy) < 0.1
    assert valid[inner].mean() > 0.9


def test_extracted_spectral_matches_exact_synthetic():
    cfg = SynthConfig(size=(128, 80), frames=40)
    s = generate(900003, cfg)
    out, reason, stats = process_window(s["frames"], 30.0, VideoConfig(size=(128, 80), window=40, full=True))
    assert reason is None and out is not None
    rec = spectral_to_motion(out["spectral"], 40)
    ref = spectral_to_motion(s["spectral"], 40)
    err = np.sqrt((((rec - rec[:1]) - (ref - ref[:1])) ** 2).sum(axis=1))[1:]
    assert np.median(err[:, out["valid"]]) <= 0.3 * 128 / 256 + 0.05
    assert out["T"] == 40 and out["frames"].shape == (40, 80, 128, 3)


def test_filters_drop_camera_motion_and_noise():
    h, w = 40, 64
    tex = _texture(h, w, 1)
    pan = np.stack([_shifted(tex, 0.2 * t, 0.0, h, w) for t in range(12)])
    motion, valid = window_motion(pan)
    assert "camera motion" in check_window(motion, valid, VideoConfig(size=(w, h)))
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 255, (8, h, w, 3)).astype(np.uint8)
    motion, valid = window_motion(noise)
    assert "too few valid" in check_window(motion, valid, VideoConfig(size=(w, h)))
    with pytest.raises(ValueError, match="uint8"):
        window_motion(noise.astype(np.float32))


def test_window_starts():
    assert window_starts(145, 145, 10, wrap=False) == [0]
    assert window_starts(300, 150, 50, wrap=False) == [0, 50, 100, 150]
    assert window_starts(145, 145, 30, wrap=True) == [0, 30, 60, 90, 120]
    assert window_starts(100, 150, 10, wrap=False) == [0]
    with pytest.raises(ValueError):
        window_starts(100, 150, 0, wrap=False)


def test_run_from_video_29fps_loop(tmp_path):
    """A 29 fps loop of 2 s: windows of 58 frames, stored as T = 60 at 30 fps (spectrum scaled by 60/58)."""
    cfg = SynthConfig(size=(64, 40), frames=58)   # 2 s at 29 fps
    frames = generate(900010, cfg)["frames"]
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 29.0, (64, 40))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    out = tmp_path / "out"
    res = run_from_video([video], out, size=(64, 40), window=60, stride=29, wrap=True, log=lambda m: None)
    files = list_samples(out)
    assert res["made"] + res["dropped"] == 2 and len(files) == res["made"] >= 1
    s = load_sample(files[0])
    assert float(s["fps"]) == 30.0 and int(s["T"]) == 60
    assert s["spectral"].shape == (16, 4, 40, 64) and s["valid"].dtype == bool and "frames" not in s
    record = json.loads((out / "windows.json").read_text())
    assert {e["frames"] for e in record.values()} == {58}
    assert {e["start"] for e in record.values()} == {0, 29}
    again = run_from_video([video], out, size=(64, 40), window=60, stride=29, wrap=True, log=lambda m: None)
    assert again["made"] == 0 and again["dropped"] == 0   # resumable
    with pytest.raises(FileNotFoundError):
        run_from_video([tmp_path / "missing.mp4"], out, size=(64, 40), log=lambda m: None)


def test_run_from_video_workers_make_the_same_samples(tmp_path):
    """`workers=2` extracts two videos in two processes: the same files, numbers and windows.json as one."""
    videos = []
    for seed in (900011, 900012):
        frames = generate(seed, SynthConfig(size=(64, 40), frames=60))["frames"]
        video = tmp_path / f"clip_{seed}.mp4"
        writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (64, 40))
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        writer.release()
        videos.append(video)
    kw = dict(size=(64, 40), window=60, stride=30, wrap=True, log=lambda m: None)
    one = run_from_video(videos, tmp_path / "one", **kw)
    two = run_from_video(videos, tmp_path / "two", workers=2, **kw)
    assert one["made"] == two["made"] >= 2 and one["dropped"] == two["dropped"]
    names = [p.name for p in list_samples(tmp_path / "one")]
    assert names == [p.name for p in list_samples(tmp_path / "two")]
    assert any(n.startswith("sample_01") for n in names)          # the second video's numbers
    for a, b in zip(list_samples(tmp_path / "one"), list_samples(tmp_path / "two")):
        np.testing.assert_array_equal(load_sample(a)["spectral"], load_sample(b)["spectral"])
    drop = lambda p: {k: {f: v for f, v in e.items() if f != "seconds"}
                      for k, e in json.loads((p / "windows.json").read_text()).items()}
    assert drop(tmp_path / "one") == drop(tmp_path / "two")
