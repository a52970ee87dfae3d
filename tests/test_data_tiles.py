"""`gid data tile`: close-up tiles of larger samples keep the image, motion (in pixels) and validity exactly."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from backend.data.samples import list_samples, load_sample
from backend.data.tiles import tile_folder, tile_origins
from tests.motion_fixtures import write_dataset

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_origins_cover_the_length_flush_with_both_ends():
    assert tile_origins(512, 256) == [0, 256]
    assert tile_origins(300, 160) == [0, 140]
    assert tile_origins(160, 160) == [0]
    assert tile_origins(100, 160) == []


def test_tiles_are_exact_crops(tmp_path):
    src = write_dataset(tmp_path / "big", 2, seed=3, size=(128, 80))
    assert tile_folder(src, tmp_path / "tiles", (64, 40), log=lambda m: None) == 8
    tiles = list_samples(tmp_path / "tiles")
    assert [p.name for p in tiles[:4]] == [f"sample_{j:06d}.npz" for j in range(4)]
    big = load_sample(list_samples(src)[0], mmap=False)
    t = load_sample(tiles[3], mmap=False)                 # bottom right of sample 0
    np.testing.assert_array_equal(t["image"], big["image"][40:, 64:])
    np.testing.assert_array_equal(t["spectral"], big["spectral"][..., 40:, 64:])
    np.testing.assert_array_equal(t["valid"], big["valid"][40:, 64:])
    assert int(t["T"]) == int(big["T"]) and float(t["fps"]) == float(big["fps"])


def test_cli_and_a_too_small_source(tmp_path):
    src = write_dataset(tmp_path / "small", 1, size=(32, 20))
    r = subprocess.run([sys.executable, "-m", "backend.cli", "data", "tile", str(src), "--out", str(tmp_path / "o"),
                        "--size", "64x40"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode != 0 and "smaller than the tile size" in r.stderr
    with pytest.raises(ValueError, match="smaller"):
        tile_folder(src, tmp_path / "o2", (64, 40))
