"""ESPNet class probabilities as extra denoiser condition (config `semantic_classes`; off in the shipped model)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from backend.motion.config import get_preset
from backend.motion.train_ldm import init_unet
from backend.motion.unet import FrequencyUNet

FRAME = Path(__file__).parent / "data" / "gid_loops_frames" / "tree_0_loop_frame0.png"
SMALL = dict(work_size=(64, 40), vae_channels=(8, 8), unet_channels=(16, 32), unet_groups=8,
             image_encoder_channels=(8,), cond_channels=8, freq_attention_heads=2, freq_attention_levels=(0, 1))


def _image() -> torch.Tensor:
    rgb = cv2.cvtColor(cv2.resize(cv2.imread(str(FRAME)), (64, 40), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


def test_default_has_no_semantic_condition():
    cfg = get_preset("tiny")
    assert cfg.semantic_classes == ()
    assert FrequencyUNet(cfg).image_encoder.out_channels == 3 + cfg.cond_channels


def test_semantic_channels_condition_the_unet_without_joining_its_weights(tmp_path):
    torch.manual_seed(0)
    cfg = get_preset("tiny").replace(**SMALL, semantic_classes=("vegetation", "sky"))
    unet = FrequencyUNet(cfg)
    cond = unet.encode_condition(_image())
    assert cond.shape == (1, 3 + 8 + 2, 20, 32)
    veg, sky = (cond[0, -2].detach() + 1) / 2, (cond[0, -1].detach() + 1) / 2   # back to probabilities
    assert 0 <= float(veg.min()) and float(veg.max()) <= 1
    # a tree crown and a little sky, seen through the 64x40 working picture (soft probabilities, blurrier)
    assert float(veg.mean()) > 0.25 and float(veg.mean()) > 2 * float(sky.mean())
    assert float(sky[:10, :16].mean()) > 3 * float(sky[10:].mean())     # the sky is at the top left
    assert not any("level1" in k or "espnet" in k for k in unet.state_dict())
    z = torch.randn(2, cfg.latent_channels, 20, 32)
    out = unet(z, torch.tensor([10, 10]), torch.tensor([1, 2]), cond.expand(2, -1, -1, -1))
    assert out.shape == z.shape and torch.isfinite(out).all()
    # a model without the semantic inputs initialises this one exactly (zero weights on the new inputs)
    from safetensors.torch import save_file
    plain = FrequencyUNet(get_preset("tiny").replace(**SMALL))
    save_file({k: v.clone().contiguous() for k, v in plain.state_dict().items()}, str(tmp_path / "model.safetensors"))
    init_unet(unet, tmp_path / "model.safetensors", stage=1)
    plain_cond = plain.encode_condition(_image())
    with torch.no_grad():
        a = plain(z, torch.tensor([10, 10]), torch.tensor([1, 2]), plain_cond.expand(2, -1, -1, -1))
        b = unet(z, torch.tensor([10, 10]), torch.tensor([1, 2]), unet.encode_condition(_image()).expand(2, -1, -1, -1))
    torch.testing.assert_close(a, b)


def test_semantic_maps_are_remembered_per_picture_and_equal_a_fresh_run():
    """Training shows the same pictures many times: ESPNet runs once per picture, the maps do not change."""
    cfg = get_preset("tiny").replace(**SMALL, semantic_classes=("vegetation", "sky"))
    enc = FrequencyUNet(cfg).image_encoder
    img = _image()
    pair = torch.cat([img, img.flip(-1)])
    first = enc.semantic_maps(pair)
    calls = []
    uncached = enc._semantic_maps_uncached
    enc._semantic_maps_uncached = lambda x: calls.append(len(x)) or uncached(x)
    again = enc.semantic_maps(torch.cat([img.flip(-1), img, img.flip(-1)]))
    assert calls == []                                     # all three remembered
    torch.testing.assert_close(again, torch.stack([first[1], first[0], first[1]]))
    torch.testing.assert_close(first, uncached(pair))      # remembered == computed now
    assert not torch.equal(first[0], first[1])             # a mirrored picture is another picture
    changed = img.clone()
    changed[..., 0, 0] += 0.01
    enc.semantic_maps(changed)
    assert calls == [1]                                    # one changed pixel: computed again


def test_unknown_semantic_class_is_rejected():
    with pytest.raises(ValueError, match="semantic_classes"):
        get_preset("tiny").replace(semantic_classes=("palm tree",))


def train_conditioned_checkpoint(tmp_path, setting: str):
    """gid train vae --set SETTING then ldm, one step each on a tiny dataset -> the checkpoint, loaded."""
    import shutil
    from backend.cli import main
    from backend.motion.predictor import MotionPredictor
    from tests.motion_fixtures import write_dataset
    from tests.test_motion_train import SET
    data = write_dataset(tmp_path / "data", 8, size=(64, 32))
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--threads", "1", "--min-samples", "4", "--holdout-every", "4"]
    assert main(["train", "vae", *common, "--steps", "1", "--batch", "4", "--eval-every", "1", "--set", *SET,
                 setting]) == 0
    assert main(["train", "ldm", *common, "--steps", "1", "--batch", "4", "--eval-every", "1",
                 "--sample-steps", "1"]) == 0
    ckpt = tmp_path / "ckpt"
    shutil.copytree(run / "vae", ckpt / "vae")
    shutil.copytree(run / "ldm", ckpt / "ldm")
    return MotionPredictor.load(ckpt, device="cpu")


def predict_frame(model) -> None:
    """One 1-step predict of the test frame: finite motion."""
    img = cv2.cvtColor(cv2.imread(str(FRAME)), cv2.COLOR_BGR2RGB)
    assert np.isfinite(model.predict(img, steps=1).spectral).all()


def test_train_and_predict_with_semantic_condition_through_the_cli(tmp_path):
    """gid train vae --set semantic_classes=... then ldm: the condition flows through training and predict."""
    model = train_conditioned_checkpoint(tmp_path, 'semantic_classes=["vegetation","sky"]')
    assert model.pipeline.unet.config.semantic_classes == ("vegetation", "sky")
    predict_frame(model)
