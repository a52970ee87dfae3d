"""Sample files and torch datasets: memory-mapped loading, augmentation that keeps motion consistent."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from backend.data.dataset import FramePairDataset, SpectralDataset
from backend.data.samples import load_sample, write_npz_atomic
from backend.data.stats import run_stats
from backend.data.synth import SynthConfig, run
from shared.spectral import NormStats, resample_spectral

CFG = SynthConfig(size=(64, 40), frames=32, fps=30.0)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    run(root / "full", 2, 0, CFG, workers=1, log=lambda m: None)
    run(root / "lite", 2, 100, SynthConfig(size=(64, 40), frames=32, lite=True), workers=1, log=lambda m: None)
    return root


def test_load_sample_memory_maps_and_checks_keys(folders, tmp_path):
    s = load_sample(folders / "full" / "sample_000000.npz")
    assert isinstance(s["motion"], np.memmap) and s["motion"].shape == (32, 2, 40, 64)
    with np.load(folders / "full" / "sample_000000.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(np.asarray(s["spectral"]), z["spectral"])
    bad = tmp_path / "sample_000000.npz"
    write_npz_atomic(bad, {"image": np.zeros((4, 4, 3), np.uint8)})
    with pytest.raises(ValueError, match="missing keys"):
        load_sample(bad)


def test_spectral_dataset_items(folders):
    ds = SpectralDataset([folders / "full", folders / "lite"], augment=False)
    assert len(ds) == 4
    item = ds[0]
    assert item["image"].shape == (3, 40, 64) and item["image"].dtype == torch.float32
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert item["spectral"].shape == (16, 4, 40, 64) and item["valid"].dtype == torch.bool
    ref = load_sample(folders / "full" / "sample_000000.npz")
    np.testing.assert_array_equal(item["spectral"].numpy(), np.asarray(ref["spectral"]))
    small = SpectralDataset([folders / "lite"], augment=False, size=(32, 20))[1]
    ref = load_sample(folders / "lite" / "sample_000001.npz")
    np.testing.assert_allclose(small["spectral"].numpy(), resample_spectral(np.asarray(ref["spectral"]), (32, 20)),
                               atol=1e-5)
    batch = next(iter(torch.utils.data.DataLoader(SpectralDataset([folders / "lite"]), batch_size=2)))
    assert batch["spectral"].shape == (2, 16, 4, 40, 64)


def test_flip_negates_x_and_mirrors(folders, monkeypatch):
    """With the crop fixed to the whole image, a flipped item is the mirror image with x motion negated."""
    import backend.data.dataset as dsmod

    monkeypatch.setattr(dsmod, "CROP_SCALE", (1.0, 1.0))
    ds = SpectralDataset([folders / "full"], augment=True)
    plain = SpectralDataset([folders / "full"], augment=False)[0]
    seen = set()
    for seed in range(6):
        torch.manual_seed(seed)
        item = ds[0]
        if torch.equal(item["image"], plain["image"]):
            seen.add("plain")
            continue
        seen.add("flipped")
        assert torch.equal(item["image"], plain["image"].flip(-1))
        torch.testing.assert_close(item["spectral"][:, 0:2], -plain["spectral"][:, 0:2].flip(-1))
        torch.testing.assert_close(item["spectral"][:, 2:4], plain["spectral"][:, 2:4].flip(-1))
    assert seen == {"plain", "flipped"}


def test_crop_rescales_vectors(folders):
    """A crop resized back to full size stretches the picture, so displacements grow by the same factor."""
    ds = SpectralDataset([folders / "full"], augment=True)
    plain = SpectralDataset([folders / "full"], augment=False)[0]
    ratios = []
    for seed in range(6):
        torch.manual_seed(seed)
        item = ds[0]
        ratios.append(float(item["spectral"].abs().sum() / plain["spectral"].abs().sum()))
    assert item["spectral"].shape == plain["spectral"].shape
    assert max(ratios) > 1.0  # vectors scaled up by up to 1 / 0.8 (the crop keeps most of the moving area)


def test_frame_pair_dataset(folders):
    with pytest.raises(ValueError, match="no full samples"):
        FramePairDataset([folders / "lite"])
    ds = FramePairDataset([folders / "full", folders / "lite"], augment=False)
    assert len(ds) == 2
    item = ds[1]
    t = int(item["t"])
    assert 1 <= t <= 31
    ref = load_sample(folders / "full" / "sample_000001.npz")
    np.testing.assert_array_equal(item["flow"].numpy(), np.asarray(ref["motion"][t]) - np.asarray(ref["motion"][0]))
    np.testing.assert_allclose(item["image_t"].numpy(), np.asarray(ref["frames"][t]).transpose(2, 0, 1) / 255.0,
                               atol=1e-6)
    m = np.asarray(ref["motion"])
    np.testing.assert_allclose(item["metric"][0].numpy(), np.linalg.norm(m - m[:1], axis=1).mean(0), atol=1e-5)
    aug = FramePairDataset([folders / "full"], augment=True, size=(32, 20))[0]
    assert aug["image0"].shape == (3, 20, 32) and aug["flow"].shape == (2, 20, 32) and aug["metric"].shape == (1, 20, 32)


def test_stats_json_and_plot(folders, tmp_path):
    out = tmp_path / "stats.json"
    res = run_stats([folders / "full", folders / "lite"], out, plot=tmp_path / "power.png", log=lambda m: None)
    loaded = NormStats.from_dict(json.loads(out.read_text()))
    assert loaded.scales.shape == (16,) and res["count"] == 4
    assert (tmp_path / "power.png").stat().st_size > 1000
    # the 95th percentile of |coefficient| per frequency, over the volumes actually stored
    vols = [np.asarray(load_sample(p)["spectral"]) for p in sorted((folders / "full").glob("sample_*.npz"))
            + sorted((folders / "lite").glob("sample_*.npz"))]
    k = 3
    direct = np.percentile(np.abs(np.concatenate([v[k].ravel() for v in vols])), 95)
    assert abs(loaded.scales[k] - direct) <= 0.05 * direct + 1e-6
