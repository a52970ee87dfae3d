"""Rendering that scales (issue 24): frames streamed to a writer thread, the 4K/8K bench section at a small
size (the real sizes run in `gid bench --sections 4k 8k`, minutes on 2 cores)."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from backend.animate import ThreadedWriter
from backend.eval import bench

pytestmark = pytest.mark.timeout(240)


class _Recorder:
    def __init__(self, fail_at: int | None = None):
        self.frames, self.closed, self.threads = [], None, set()
        self.fail_at = fail_at

    def write(self, frame):
        self.threads.add(threading.current_thread().name)
        if self.fail_at is not None and len(self.frames) == self.fail_at:
            raise OSError("disk full")
        self.frames.append(frame)

    def close(self, ok):
        self.closed = ok


def test_threaded_writer_keeps_order_and_writes_off_the_caller_thread():
    rec = _Recorder()
    w = ThreadedWriter(rec, depth=2)
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(7)]
    for f in frames:
        w.write(f)
    w.close(True)
    assert rec.closed is True and [int(f[0, 0, 0]) for f in rec.frames] == list(range(7))
    assert rec.threads == {"gid-frame-writer"}


def test_threaded_writer_error_reaches_the_caller_and_discards_the_output():
    rec = _Recorder(fail_at=2)
    w = ThreadedWriter(rec, depth=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(50):
            w.write(np.zeros((2, 2, 3), np.uint8))
        w.close(True)
    if rec.closed is None:                  # raised by a write: the caller's finally closes with ok=False
        w.close(False)
    assert rec.closed is False and len(rec.frames) == 2


def test_scale_section_small_size_gives_ratio_and_memory():
    res = bench.bench_scale("4k", "cpu", quick=False, frames=3, size=(96, 64))
    assert res["status"] == "ok", res
    d = res["data"]
    assert d["ratio"] > 0 and d["ours_peak_rss_mb"] > 0 and d["floor_peak_rss_mb"] > 0
    assert any("floor" in r["figure"] for r in res["rows"])
    assert bench.bench_scale("8k", "cpu", quick=True)["status"] == "missing"     # --quick skips it
