"""The monocular depth prior: mobilePyDNet's converted weights load into the torch graph, `gid depth` writes an
EXR of the picture's size, bad arguments give one clear error, the guided upsampling follows picture edges."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def test_weights_load_strictly_and_output_shape():
    from backend.priors import pydnet

    net = pydnet.load()
    n = sum(p.numel() for p in net.parameters())
    assert n == 1_971_843                       # every tensor of the flatbuffer, nothing else
    x = torch.rand(1, 3, 448, 640)
    out = pydnet.predict(x, net)
    assert out.shape == (1, 1, 448, 640) and torch.isfinite(out).all()


def test_guided_upsampling_snaps_to_edges():
    from backend.priors.depth import guided_upsample

    H, W = 256, 256
    guide = np.zeros((H, W), np.float32)
    guide[:, W // 2 + 3:] = 1.0                  # a picture edge 3 px right of the low-res step
    low_guide = guide[::4, ::4].copy()
    low = low_guide.copy()                       # depth follows the picture at low resolution
    out = guided_upsample(guide, low_guide, low)
    assert abs(out[H // 2, W // 2 + 1] - 0.0) < 0.1 and abs(out[H // 2, W // 2 + 5] - 1.0) < 0.1


def test_gid_depth_cli(tmp_path, capsys):
    from PIL import Image

    from backend.cli import main

    img = (np.random.default_rng(0).random((90, 150, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    assert main(["depth", str(tmp_path / "in.png"), "-o", str(tmp_path / "d.exr")]) == 0
    import OpenEXR

    with OpenEXR.File(str(tmp_path / "d.exr")) as f:
        d = f.channels()["RGB"].pixels[..., 0]
    assert d.shape == (90, 150) and np.isfinite(d).all() and 0.0 <= d.min() and d.max() <= 1.0
    assert main(["depth", str(tmp_path / "in.png"), "-o", str(tmp_path / "d.png")]) == 1
    assert main(["depth", str(tmp_path / "missing.png"), "-o", str(tmp_path / "e.exr")]) == 1
    err = capsys.readouterr().err
    assert "must end in .exr" in err and "does not exist" in err
    assert not (tmp_path / "e.exr").exists()


def test_network_sizes_stay_at_or_below_the_trained_area():
    from backend.priors import pydnet
    from backend.priors.depth import network_sizes

    trained = network_sizes(640, 448)
    assert trained[-1] == (pydnet.NET_WIDTH, pydnet.NET_HEIGHT) and len(trained) == 4
    assert network_sizes(1920, 1080) == network_sizes(1080, 1920) == trained      # stretched by default
    for w, h in [(640, 448), (1920, 1080), (1080, 1920), (3000, 3000), (8000, 500)]:
        sizes = network_sizes(w, h, keep_aspect=True)
        assert len(sizes) >= 3 and sizes == sorted(sizes, key=lambda s: s[0] * s[1])
        for sw, sh in sizes:
            assert sw % 64 == 0 and sh % 64 == 0
            assert sw * sh <= 1.15 * pydnet.NET_WIDTH * pydnet.NET_HEIGHT
        sw, sh = sizes[-1]
        aspect = min(max(w / h, 1 / 3), 3)
        assert abs(sw / sh - aspect) / aspect < 0.2      # not stretched (beyond 3:1 it has to be)
