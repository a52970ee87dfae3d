"""Convert mobilePyDNet's TFLite flatbuffer into backend/weights/priors/pydnet/pydnet.safetensors (a dev tool).

Reads the flatbuffer with the `tflite` schema package (pure Python, `pip install tflite==2.18.0`; not a runtime
dependency of the project, nor is tensorflow). Besides copying the tensors it checks every graph fact that
backend/priors/pydnet.py hard-codes (op order, strides, SAME padding, leaky-ReLU slope 0.2, legacy bilinear
resize), so a different flatbuffer fails here instead of giving wrong depth later.

Layouts: TFLite CONV_2D weights are (O, kh, kw, I) -> torch (O, I, kh, kw); TRANSPOSE_CONV weights are
(O, kh, kw, I) -> torch ConvTranspose2d (I, O, kh, kw).

    python scripts/convert_pydnet_tflite.py [SRC.tflite] [-o OUT.safetensors]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

import numpy as np

SRC_DEFAULT = "/work/shared/weights/pydnet/optimized_pydnet++.tflite"
OUT_DEFAULT = Path(__file__).resolve().parents[1] / "backend/weights/priors/pydnet/pydnet.safetensors"
SHA256 = "ba97991edb4a516096557aedf56e61bf4aa4c30e34d6a38f061ef449ecf16bc7"
LEAKY_SLOPE = 0.2
ENCODER = ["conv1a", "conv1b", "conv2a", "conv2b", "conv3a", "conv3b",
           "conv4a", "conv4b", "conv5a", "conv5b", "conv6a", "conv6b"]


def tensor_value(model, graph, index: int) -> np.ndarray:
    import tflite

    t = graph.Tensors(index)
    dtypes = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.INT32: np.int32,
              tflite.TensorType.INT8: np.int8}
    if t.Type() not in dtypes:
        raise ValueError(f"tensor {t.Name().decode()} has type {t.Type()}, expected float32/int32/int8")
    raw = model.Buffers(t.Buffer()).DataAsNumpy()
    if isinstance(raw, int):
        raise ValueError(f"tensor {t.Name().decode()} has no constant data")
    shape = [int(s) for s in t.ShapeAsNumpy()] if t.ShapeLength() else []
    value = np.frombuffer(raw.tobytes(), dtypes[t.Type()]).reshape(shape).copy()
    if t.Type() != tflite.TensorType.INT8:
        return value
    # Dynamic-range quantised weights: w = (q - zero_point) * scale, one scale per slice of quantized_dimension.
    q = t.Quantization()
    scale, zero = q.ScaleAsNumpy().astype(np.float32), q.ZeroPointAsNumpy().astype(np.float32)
    bshape = [1] * value.ndim
    bshape[q.QuantizedDimension()] = -1
    if scale.size == 1:
        bshape = [1] * value.ndim
    return ((value.astype(np.float32) - zero.reshape(bshape)) * scale.reshape(bshape)).astype(np.float32)


def torch_name(tf_name: str) -> str:
    """'PSD/encoder/conv1a/weights' -> 'encoder.conv1a.weight'; decoder/L3/estimator/disp-4 -> decoder.L3.disp4 ..."""
    parts = tf_name.split("/")[1:]
    leaf = parts.pop()
    kind = {"weights": "weight", "weights_transposed": "weight", "Conv2D_bias": "bias", "biases": "bias"}[leaf]
    parts = [p.replace("disp-", "disp") for p in parts if p != "estimator"]
    if parts[-1] == "upsampler":
        parts[-1] = "up"
    elif parts[0] == "decoder" and not parts[-1].startswith("disp"):
        parts.append("head")       # the 1-channel estimator conv at L1..L3
    return ".".join(parts + [kind])


def convert(src: Path) -> dict[str, np.ndarray]:
    import tflite

    data = src.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        print(f"warning: {src} sha256 {digest} differs from the documented {SHA256}", file=sys.stderr)
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    out: dict[str, np.ndarray] = {}
    convs: list[str] = []
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        opcode = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        opts = op.BuiltinOptions()
        inputs = [int(i) for i in op.InputsAsNumpy()]
        name = lambda i: graph.Tensors(i).Name().decode()   # noqa: E731
        if opcode == tflite.BuiltinOperator.CONV_2D:
            o = tflite.Conv2DOptions()
            o.Init(opts.Bytes, opts.Pos)
            if o.Padding() != tflite.Padding.SAME or o.FusedActivationFunction() != 0 or o.DilationHFactor() != 1:
                raise ValueError(f"op {k}: unexpected conv options")
            w, b = tensor_value(model, graph, inputs[1]), tensor_value(model, graph, inputs[2])
            key = torch_name(name(inputs[1]))
            stride = o.StrideH()
            layer = key.split(".")[1]
            if stride != (2 if key.startswith("encoder") and layer.endswith("a") else 1):
                raise ValueError(f"op {k}: {key} has stride {stride}")
            out[key] = w.transpose(0, 3, 1, 2).copy()
            out[torch_name(name(inputs[2]))] = b
            convs.append(key)
        elif opcode == tflite.BuiltinOperator.TRANSPOSE_CONV:
            o = tflite.TransposeConvOptions()
            o.Init(opts.Bytes, opts.Pos)
            if (o.StrideH(), o.StrideW(), o.Padding()) != (2, 2, tflite.Padding.SAME):
                raise ValueError(f"op {k}: unexpected transpose-conv options")
            w = tensor_value(model, graph, inputs[1])
            out[torch_name(name(inputs[1]))] = w.transpose(3, 0, 1, 2).copy()
        elif opcode == tflite.BuiltinOperator.ADD:       # the transposed conv's bias
            out[torch_name(name(inputs[1]))] = tensor_value(model, graph, inputs[1])
        elif opcode == tflite.BuiltinOperator.MUL:       # leaky ReLU: max(x, 0.2 x)
            slope = float(tensor_value(model, graph, inputs[0]).reshape(-1)[0])
            if abs(slope - LEAKY_SLOPE) > 1e-7:
                raise ValueError(f"op {k}: leaky slope {slope}, expected {LEAKY_SLOPE}")
        elif opcode == tflite.BuiltinOperator.RESIZE_BILINEAR:
            o = tflite.ResizeBilinearOptions()
            o.Init(opts.Bytes, opts.Pos)
            if o.AlignCorners() or o.HalfPixelCenters():
                raise ValueError(f"op {k}: resize is not TF's legacy bilinear")
        elif opcode not in (tflite.BuiltinOperator.MAXIMUM, tflite.BuiltinOperator.CONCATENATION,
                            tflite.BuiltinOperator.STRIDED_SLICE):
            raise ValueError(f"op {k}: unexpected operator {opcode}")
    expected = [f"encoder.{n}.weight" for n in ENCODER]
    if convs[:12] != expected:
        raise ValueError(f"encoder order differs: {convs[:12]}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", nargs="?", default=SRC_DEFAULT)
    p.add_argument("-o", "--output", default=str(OUT_DEFAULT))
    args = p.parse_args(argv)
    from safetensors.numpy import save_file

    tensors = convert(Path(args.src))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"source": "FilippoAleotti/mobilePydnet@0fc3030 optimized_pydnet++.tflite",
                                            "source_sha256": SHA256, "leaky_slope": str(LEAKY_SLOPE)})
    os.replace(tmp, out)
    n = sum(v.size for v in tensors.values())
    print(f"wrote {out}: {len(tensors)} tensors, {n} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
