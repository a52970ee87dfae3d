"""The image -> flow-axis network: the shipped weights read the axis and speed on held-out synthetic scenes,
with strokes it beats strokes alone, `gid train fluid` trains and saves, `gid animate --flow-net` uses it."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from backend.cli import main
from backend.data.fluid_synth import random_fluid_sample
from backend.motion.fluid_velocity import DEFAULT_WEIGHTS, FluidVelocityNet, predict_axis

pytestmark = pytest.mark.timeout(300)


def test_shipped_network_reads_the_axis_and_helps_one_stroke():
    from backend.eval.fluid import network_vs_hints

    net = FluidVelocityNet.from_pretrained()
    image, mask, v, _ = random_fluid_sample((192, 128), 7)
    axis = predict_axis(net, image, mask)                         # any size: run at 96, resized back
    assert axis.shape == (2, 128, 192) and axis.dtype == np.float32 and np.all(axis[:, ~mask] == 0)
    r = network_vs_hints(net, scenes=12)
    assert r["scenes"] >= 8
    assert r["network_signed_by_truth"] < 0.8 * r["zero"], r
    assert r["network_plus_1"] < r["hints_1"], r


def test_train_fluid_smoke(tmp_path):
    rc = main(["train", "fluid", "--out", str(tmp_path / "w"), "--scenes", "8", "--val-scenes", "2",
               "--steps", "3", "--batch", "2", "--size", "48x32"])
    assert rc == 0
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["config.json", "model.safetensors",
                                                                  "train_log.json"]
    log = json.loads((tmp_path / "w" / "train_log.json").read_text())
    assert log["steps_done"] == 3 and np.isfinite(log["val_epe"])
    net = FluidVelocityNet.from_pretrained(tmp_path / "w")
    assert net.config.work_long_side == 48


def test_animate_flow_net_with_a_correcting_stroke(tmp_path):
    image, mask, v, _ = random_fluid_sample((96, 64), 11)
    Image.fromarray(image).save(tmp_path / "in.png")
    Image.fromarray((mask * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    ys, xs = np.nonzero(mask)
    y, x = int(np.median(ys)), int(np.median(xs))
    # a one-point-long stroke would be refused: find 2 mask pixels 3 px apart in a row
    row = np.nonzero(mask[y])[0]
    (tmp_path / "h.json").write_text(json.dumps({"strokes": [{"points": [[float(row[0]), y],
                                                                          [float(row[0]) + 3, y]],
                                                              "speed": 1.0}]}))
    assert mask[y, row[0] + 3]
    rc = main(["animate", str(tmp_path / "in.png"), "-o", str(tmp_path / "f"), "--loop", "--seconds", "0.5",
               "--fps", "8", "--fluid-mask", str(tmp_path / "mask.png"), "--flow-net", "--no-oscillation",
               "--mode", "splat", "--flow-hints", str(tmp_path / "h.json")])
    assert rc == 0 and len(list((tmp_path / "f").iterdir())) == 4
    assert DEFAULT_WEIGHTS.is_dir()
    rc = main(["animate", str(tmp_path / "in.png"), "-o", str(tmp_path / "g"), "--loop", "--seconds", "0.5",
               "--fps", "8", "--fluid-mask", str(tmp_path / "mask.png"), "--flow-net", "--no-oscillation"])
    assert rc == 1 and not (tmp_path / "g").exists()
