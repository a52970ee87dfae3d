"""mobilePyDNet inverse depth as an extra denoiser condition (config `depth_condition`: off in the `tiny` preset, on in
the shipped weights since session 19)."""
from __future__ import annotations

import pytest
import torch

from backend.motion.config import get_preset
from backend.motion.train_ldm import init_unet
from backend.motion.unet import FrequencyUNet
from backend.priors.depth import condition_inverse_depth
from tests.test_motion_semantic_cond import SMALL, _image


def test_default_has_no_depth_condition():
    cfg = get_preset("tiny")
    assert cfg.depth_condition is False
    assert FrequencyUNet(cfg).image_encoder.out_channels == 3 + cfg.cond_channels


def test_condition_depth_is_relative_per_picture_and_mirror_equivariant():
    img = _image()
    pair = torch.cat([img, torch.rand_like(img)])
    d = condition_inverse_depth(pair)
    assert d.shape == (2, 1, 40, 64)
    assert float(d.min()) >= 0.0 and float(d.max()) <= 1.0
    assert float(d[0].amax()) > 0.9 and float(d[0].amin()) < 0.1          # each picture spans [0, 1]
    torch.testing.assert_close(condition_inverse_depth(img.flip(-1)).flip(-1), d[:1], atol=1e-4, rtol=0)
    # a picture's answer does not depend on the batch it came in
    torch.testing.assert_close(condition_inverse_depth(img), d[:1], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="depth condition"):
        condition_inverse_depth(img[:, :2])


def test_depth_channel_conditions_the_unet_and_a_plain_model_initialises_it_exactly(tmp_path):
    torch.manual_seed(0)
    cfg = get_preset("tiny").replace(**SMALL, semantic_classes=("vegetation",), depth_condition=True)
    unet = FrequencyUNet(cfg)
    cond = unet.encode_condition(_image())
    assert cond.shape == (1, 3 + 8 + 1 + 1, 20, 32)
    depth = (cond[0, -1].detach() + 1) / 2
    pooled = torch.nn.functional.adaptive_avg_pool2d(condition_inverse_depth(_image()), (20, 32))[0, 0]
    torch.testing.assert_close(depth, pooled, atol=1e-5, rtol=0)
    assert not any("pydnet" in k or "decoder.L" in k for k in unet.state_dict())   # frozen, outside the weights
    from safetensors.torch import save_file
    plain = FrequencyUNet(get_preset("tiny").replace(**SMALL))
    save_file({k: v.clone().contiguous() for k, v in plain.state_dict().items()}, str(tmp_path / "model.safetensors"))
    init_unet(unet, tmp_path / "model.safetensors", stage=1)      # 2 new inputs: class map + depth, zero weights
    z = torch.randn(2, cfg.latent_channels, 20, 32)
    with torch.no_grad():
        a = plain(z, torch.tensor([10, 10]), torch.tensor([1, 2]), plain.encode_condition(_image()).expand(2, -1, -1, -1))
        b = unet(z, torch.tensor([10, 10]), torch.tensor([1, 2]), unet.encode_condition(_image()).expand(2, -1, -1, -1))
    torch.testing.assert_close(a, b)


def test_depth_maps_are_remembered_with_their_mirror_image():
    enc = FrequencyUNet(get_preset("tiny").replace(**SMALL, depth_condition=True)).image_encoder
    img = _image()
    first = enc.depth_maps(img)
    import backend.priors.depth as depth
    calls = []
    real = depth.condition_inverse_depth
    depth.condition_inverse_depth = lambda x, *a: calls.append(len(x)) or real(x, *a)
    try:
        again = enc.depth_maps(torch.cat([img.flip(-1), img]))
        assert calls == []                                    # the mirror image came with the first call
        torch.testing.assert_close(again, torch.stack([first[0].flip(-1), first[0]]))
        changed = img.clone()
        changed[..., 0, 0] += 0.01
        enc.depth_maps(changed)
        assert calls == [1]
    finally:
        depth.condition_inverse_depth = real


def test_train_and_predict_with_depth_condition_through_the_cli(tmp_path):
    """gid train vae --set depth_condition=true then ldm: the condition flows through training and predict."""
    from tests.test_motion_semantic_cond import predict_frame, train_conditioned_checkpoint
    model = train_conditioned_checkpoint(tmp_path, "depth_condition=true")
    assert model.pipeline.unet.config.depth_condition is True
    assert model.pipeline.unet.conv_in.in_channels == model.config.latent_channels + 3 + model.config.cond_channels + 1
    predict_frame(model)


def test_shipped_weights_are_conditioned_on_depth():
    """The shipped default (session 19) was trained with the depth input: it loads with it (strictly) and uses it."""
    from pathlib import Path

    from backend.motion.predictor import MotionPredictor
    model = MotionPredictor.load(Path(__file__).resolve().parents[1] / "backend/weights/default", device="cpu")
    unet = model.pipeline.unet
    assert unet.config.depth_condition is True
    assert unet.conv_in.in_channels == model.config.latent_channels + 3 + model.config.cond_channels + 1
    # the depth input's weights were learned (they start at zero: an unused input would still be zero)
    assert float(unet.conv_in.weight[:, -1].abs().max()) > 1e-4
