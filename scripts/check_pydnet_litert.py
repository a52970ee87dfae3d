"""One-off check: the torch rebuild (backend/priors/pydnet.py) against the authors' TFLite graph run by the
LiteRT interpreter (`pip install ai-edge-litert` into a scratch folder; never a project dependency).

    PYTHONPATH=$PWD:/tmp/tfldeps python scripts/check_pydnet_litert.py [SRC.tflite] [IMAGE ...]

Prints, per input, the max |difference| relative to the output range and the Pearson correlation.
"""
from __future__ import annotations

import sys

import numpy as np
import torch


def main(argv: list[str]) -> int:
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    from backend.priors import pydnet

    src = argv[0] if argv else "/work/shared/weights/pydnet/optimized_pydnet++.tflite"
    interp = Interpreter(model_path=src)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    rng = np.random.default_rng(0)
    inputs = {"noise": rng.random((448, 640, 3), dtype=np.float32)}
    for path in argv[1:]:
        im = Image.open(path).convert("RGB").resize((640, 448), Image.BILINEAR)
        inputs[path] = np.asarray(im, np.float32) / 255.0
    worst = 0.0
    for name, x in inputs.items():
        interp.set_tensor(inp["index"], x[None])
        interp.invoke()
        ref = interp.get_tensor(out["index"])[0, :, :, 0]
        got = pydnet.predict(torch.from_numpy(x).permute(2, 0, 1)[None])[0, 0].numpy()
        rel = float(np.abs(got - ref).max() / (ref.max() - ref.min() + 1e-12))
        corr = float(np.corrcoef(got.ravel(), ref.ravel())[0, 1])
        worst = max(worst, rel)
        print(f"{name}: range {ref.min():.4f}..{ref.max():.4f}  max|torch-tflite|/range {rel:.4f}  pearson {corr:.5f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
