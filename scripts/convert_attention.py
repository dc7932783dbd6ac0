"""Convert MediaPipe's face mesh with attention (face_landmark_with_attention.tflite, in the mediapipe 0.10.21
wheel that `make install` downloads) into the graph that vidmoji.face.attention runs:
vidmoji/face/weights/face_landmark_attention.pt.

Run once, offline (a developer tool, not a runtime dependency; needs ai-edge-litert for the TFLite schema):

    python scripts/convert_attention.py [--mediapipe-wheel WHL]

The graph is written as TFLite has it: each operator with its input and output tensor numbers and options,
the float16 weights (DEQUANTIZE's inputs) as float16 tensors in torch's layouts (convolutions OIHW, depthwise
(C, 1, H, W), PReLU slopes (1, C, 1, 1)), and the mesh points each refined head replaces.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from convert_mediapipe import MEDIAPIPE_WHEEL, OUT_DIR  # noqa: E402

MEMBER = "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite"
OUTPUTS = {"mesh": "output_mesh_identity", "lips": "output_lips", "eye_a": "output_left_eye",
           "iris_a": "output_left_iris", "eye_b": "output_right_eye", "iris_b": "output_right_iris",
           "presence": "conv_faceflag"}
# The crop of each refined head, by its rotation points (Landmarks2TransformMatrix's left_rotation_idx).
HEADS = {61: "lips", 33: "eye_a", 362: "eye_b"}


def _array(model, graph, index: int) -> np.ndarray:
    tensor = graph.tensors[index]
    from ai_edge_litert import schema_py_generated as S
    dtype = {S.TensorType.FLOAT16: np.float16, S.TensorType.FLOAT32: np.float32,
             S.TensorType.INT32: np.int32}[tensor.type]
    data = model.buffers[tensor.buffer].data
    return np.frombuffer(bytes(data), dtype=dtype).reshape(list(tensor.shape))


def convert(model_bytes: bytes) -> dict:
    from ai_edge_litert import schema_py_generated as S
    from flatbuffers import flexbuffers

    model = S.ModelT.InitFromPackedBuf(model_bytes, 0)
    graph = model.subgraphs[0]
    builtin = {v: k for k, v in S.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    consts: dict[int, np.ndarray] = {}
    ops, refine = [], {}
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = code.customCode.decode() if code.customCode else builtin[max(code.builtinCode,
                                                                            code.deprecatedBuiltinCode)]
        ins, outs = [int(i) for i in op.inputs], [int(i) for i in op.outputs]
        o = op.builtinOptions
        if kind == "DEQUANTIZE":
            consts[outs[0]] = _array(model, graph, ins[0]).astype(np.float32)
            continue
        opts: dict = {}
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            assert o.strideW == o.strideH and o.dilationWFactor == 1 and o.dilationHFactor == 1
            opts = {"stride": int(o.strideW), "same": o.padding == S.Padding.SAME,
                    "act": int(o.fusedActivationFunction)}
            w = consts[ins[1]]
            consts[ins[1]] = w.transpose(0, 3, 1, 2) if kind == "CONV_2D" else w.transpose(3, 0, 1, 2)
        elif kind == "PRELU":
            consts[ins[1]] = consts[ins[1]].reshape(1, -1, 1, 1)
        elif kind in ("ADD", "MUL"):
            opts = {"act": int(o.fusedActivationFunction)}
        elif kind == "MAX_POOL_2D":
            assert o.padding == S.Padding.VALID and o.filterWidth == o.filterHeight
            opts = {"filter": int(o.filterWidth), "stride": int(o.strideW)}
        elif kind == "PAD":
            p = _array(model, graph, ins[1])                       # NHWC rows of (before, after)
            opts = {"pad": [int(v) for v in (*p[2], *p[1], *p[3])]}
            ins = ins[:1]
        elif kind == "RESHAPE":
            shape = [int(v) for v in graph.tensors[outs[0]].shape][1:]
            opts = {"shape": [shape[-1], 1, 1] if len(shape) == 3 and shape[:2] == [1, 1] else shape}
            ins = ins[:1]
        elif kind == "STRIDED_SLICE":
            ins = ins[:1]
        elif kind in ("Landmarks2TransformMatrix", "TransformTensorBilinear", "TransformLandmarks"):
            opts = dict(flexbuffers.Loads(bytes(op.customOptions))) if op.customOptions is not None else {}
            assert code.version == 2, (kind, code.version)
            if kind == "Landmarks2TransformMatrix":
                refine[HEADS[opts["left_rotation_idx"]]] = [int(i) for i in opts["subset_idxs"]]
                opts["subset_idxs"] = [int(i) for i in opts["subset_idxs"]]
        else:
            raise SystemExit(f"unsupported operator {kind}")
        ops.append((kind, ins, outs, opts))
    names = {graph.tensors[i].name.decode(): i for i in range(len(graph.tensors))}
    used = {i for _, ins, _, _ in ops for i in ins}
    return {"ops": ops, "input": int(graph.inputs[0]),
            "outputs": {k: names[v] for k, v in OUTPUTS.items()},
            "consts": {str(i): torch.from_numpy(a.copy()).half() for i, a in consts.items() if i in used},
            "refine": refine}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mediapipe-wheel", type=Path, default=MEDIAPIPE_WHEEL)
    args = parser.parse_args(argv)
    with zipfile.ZipFile(args.mediapipe_wheel) as wheel:
        spec = convert(wheel.read(MEMBER))
    out = OUT_DIR / "face_landmark_attention.pt"
    torch.save(spec, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, {len(spec['ops'])} operators)")


if __name__ == "__main__":
    main()
