"""Convert the released ESPNet checkpoints (PyTorch pickles) to safetensors + config JSON for backend/priors.

    python scripts/convert_espnet.py --src /work/shared/weights/espnet --out backend/weights/priors/espnet

Reads each .pth with torch.load(weights_only=True) (tensors only, no code runs), checks its sha256 against the
provenance table, loads it strictly into `backend.priors.espnet.ESPNet` (every name and shape must match) and
writes {name}.safetensors and {name}.json atomically. The LICENSE is copied beside them.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backend.priors.espnet import CAMVID_CLASSES, CITYSCAPES_CLASSES, ESPNet, ESPNetConfig, config_json  # noqa: E402

CHECKPOINTS = {   # name -> (file, sha256, config)
    "cityscapes": ("espnet_p_2_q_8_cityscapes.pth",
                   "343b0e77e8545d36113c4f3efbf1ee349256f25c97c9f9d5ddefe45f2f49763e",
                   ESPNetConfig(classes=20, class_names=CITYSCAPES_CLASSES)),
    "camvid": ("espnet_p_2_q_8_camvid.pth",
               "7d354a257170322086dcd4c1e89a482454cf2c9d30b085e70883878dd59301af",
               ESPNetConfig(classes=12, class_names=CAMVID_CLASSES, input_size=(480, 360 // 8 * 8),
                            decoder_skip="level1_cat")),
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, (fname, digest, cfg) in CHECKPOINTS.items():
        path = src / fname
        got = sha256(path)
        if got != digest:
            raise SystemExit(f"{path}: sha256 {got} differs from the provenance table's {digest}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = ESPNet(cfg)
        net.load_state_dict(state, strict=True)            # every name and shape must match the architecture
        tensors = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
        for target, write in ((out / f"{name}.safetensors", lambda p: save_file(tensors, str(p))),
                              (out / f"{name}.json", lambda p: p.write_text(config_json(cfg)))):
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            write(tmp)
            os.replace(tmp, target)
        n = sum(v.numel() for k, v in tensors.items() if "running" not in k and "num_batches" not in k)
        print(f"{fname} -> {name}.safetensors ({n} parameters)")
    shutil.copyfile(src / "LICENSE", out / "LICENSE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=Path("/work/shared/weights/espnet"))
    ap.add_argument("--out", type=Path, default=Path("backend/weights/priors/espnet"))
    args = ap.parse_args()
    convert(args.src, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
