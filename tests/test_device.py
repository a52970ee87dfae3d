"""Device choice: CPU threads follow GID_THREADS (shared machines), bad values are a clear error."""
from __future__ import annotations

import os

import pytest
import torch

from backend.device import cpu_threads, describe, pick_device


def test_gid_threads_sets_cpu_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("GID_THREADS", "1")
        assert cpu_threads() == 1
        assert describe(pick_device("cpu")) == "cpu:1 threads"
        monkeypatch.delenv("GID_THREADS")
        assert cpu_threads() == max(1, os.cpu_count() or 1)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_bad_gid_threads_is_a_clear_error(monkeypatch, bad):
    monkeypatch.setenv("GID_THREADS", bad)
    with pytest.raises(ValueError, match="GID_THREADS"):
        pick_device("cpu")
