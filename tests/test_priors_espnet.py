"""ESPNet (backend/priors/espnet.py) on real gid_loops frames, its conversion, and the semantic-prior baseline."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from backend.priors.espnet import WEIGHTS_DIR, ESPNet, ESPNetConfig, SemanticPrior
from backend.priors.semantic_amount import FIT_FILE, SemanticAmountPrior, accumulate, energy_map, fit
from shared.spectral import from_complex

FRAMES = Path(__file__).parent / "data" / "gid_loops_frames"     # CC0 gid_loops first frames at 256x160
SHARED_ESPNET = Path("/work/shared/weights/espnet")


def _frame(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(FRAMES / f"{name}_frame0.png")), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def prior() -> SemanticPrior:
    torch.set_num_threads(1)
    return SemanticPrior.load()


def _fractions(prior: SemanticPrior, image: np.ndarray) -> dict[str, float]:
    arg = prior.probabilities(image).argmax(0)
    return {name: float((arg == i).mean()) for i, name in enumerate(prior.cfg.class_names)}


def test_probabilities_shape_sum_and_determinism(prior):
    image = _frame("tree_0_loop")
    a = prior.probabilities(image)
    b = prior.probabilities(image)
    assert a.shape == (20, 160, 256) and a.dtype == np.float32
    np.testing.assert_allclose(a.sum(0), 1.0, atol=1e-4)
    assert np.array_equal(a, b)


def test_vegetation_found_on_a_tree_clip_and_not_on_candles(prior):
    tree = _fractions(prior, _frame("tree_0_loop"))
    candles = _fractions(prior, _frame("candle_0"))
    # tree_0: a tree crown fills most of the frame, a strip of cloudy sky at the top left
    assert tree["vegetation"] >= 0.5, tree
    assert 0.0 < tree["sky"] < 0.2, tree
    # candle_0: thin candles before a black background: neither vegetation nor sky
    assert candles["vegetation"] < 0.05 and candles["sky"] < 0.05, candles
    # the sky the net finds in tree_0 is in the upper part of the frame
    arg = prior.probabilities(_frame("tree_0_loop")).argmax(0)
    rows = np.nonzero(arg == prior.class_index("sky"))[0]
    assert rows.mean() < 0.4 * arg.shape[0]


def test_bad_inputs_fail_clearly(prior):
    with pytest.raises(ValueError, match="multiples of 8"):
        ESPNetConfig(input_size=(500, 256))
    with pytest.raises(ValueError, match="uint8"):
        prior.probabilities(np.zeros((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="multiple of 8"):
        ESPNet()(torch.zeros(1, 3, 60, 64))
    with pytest.raises(FileNotFoundError, match="convert_espnet"):
        SemanticPrior.load(folder=Path("/nonexistent"))


@pytest.mark.skipif(not SHARED_ESPNET.is_dir(), reason="the released checkpoints are not on this machine")
def test_conversion_reproduces_the_shipped_safetensors(tmp_path):
    import subprocess
    import sys
    from safetensors.torch import load_file
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, str(root / "scripts" / "convert_espnet.py"), "--src", str(SHARED_ESPNET),
                    "--out", str(tmp_path)], check=True, capture_output=True)
    for name in ("cityscapes", "camvid"):
        got, shipped = load_file(str(tmp_path / f"{name}.safetensors")), load_file(str(WEIGHTS_DIR / f"{name}.safetensors"))
        assert got.keys() == shipped.keys()
        assert all(torch.equal(got[k], shipped[k]) for k in got)
        raw = torch.load(SHARED_ESPNET / f"espnet_p_2_q_8_{name}.pth", map_location="cpu", weights_only=True)
        assert all(torch.equal(raw[k], shipped[k]) for k in raw)
    assert (tmp_path / "LICENSE").read_bytes() == (WEIGHTS_DIR / "LICENSE").read_bytes()


def _sample(image: np.ndarray, swing_px: float, T: int = 30, K: int = 8) -> dict:
    """A spectral volume whose every pixel swings by swing_px at term 1 along x."""
    h, w = image.shape[:2]
    c = np.zeros((K, 2, h, w), np.complex128)
    c[1, 0] = swing_px * T / 2
    return {"image": image, "spectral": from_complex(c), "T": T, "valid": np.ones((h, w), bool)}


def test_fit_of_uniform_motion_gives_that_amount_to_every_class(prior):
    image = _frame("tree_0_loop")
    s = _sample(image, 0.8)
    e = float(energy_map(s["spectral"], s["T"]).mean())
    acc = accumulate([s, s], prior)
    data = fit({"real": acc, "synthetic": acc}, {"real": 0.5, "synthetic": 0.5}, prior)
    # every class with mass gets the (uniform) energy; classes without mass fall back to the overall mean
    np.testing.assert_allclose(data["amount_px"], e, rtol=1e-3)   # float32 probabilities
    baseline = SemanticAmountPrior(data, prior)
    spec = baseline.spectral(image, 30, 8)
    np.testing.assert_allclose(energy_map(spec, 30), e, rtol=1e-3)


@pytest.mark.skipif(not FIT_FILE.is_file(), reason="no fitted semantic prior shipped")
def test_shipped_semantic_prior_moves_the_tree_more_than_the_candles():
    baseline = SemanticAmountPrior.load()
    tree, candles = _frame("tree_0_loop"), _frame("candle_0")
    spec = baseline.spectral(tree, 150, 16)
    assert spec.shape == (16, 4, 160, 256)
    # its energy map is the class-amount map, exactly
    np.testing.assert_allclose(energy_map(spec, 150), baseline.energy(tree), rtol=1e-3, atol=1e-6)
    assert baseline.energy(tree).mean() > baseline.energy(candles).mean()
