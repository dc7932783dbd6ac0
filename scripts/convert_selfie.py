"""Convert MediaPipe's selfie segmentation models (selfie_segmentation.tflite, 256x256, and
selfie_segmentation_landscape.tflite, 144x256) into the torch state dicts that vidmoji ships as
vidmoji/face/weights/selfie_segmentation.pt and selfie_segmentation_landscape.pt.

Run once, offline (a developer tool, not a runtime dependency):

    pip install ai-edge-litert==2.3.0
    python scripts/convert_selfie.py [--mediapipe-wheel WHL]

The models come from the mediapipe==0.10.21 wheel, by default where convert_mediapipe.py looks for it
(mediapipe/modules/selfie_segmentation/, read in place).

Their last layer is MediaPipe's custom op Convolution2DTransposeBias, which the stock TFLite interpreter
(ai-edge-litert) does not know: it refuses to allocate the model. `builtin_transpose_conv` rewrites a copy
of the flatbuffer with that op replaced by the builtin TRANSPOSE_CONV, which takes the same OHWI kernel
and, from its version 3, the same per-channel bias, with the op's own padding and strides. The converter
reads every other weight through the interpreter from that copy exactly as convert_mediapipe.py does for
the face models (its helpers are reused), and the transposed convolution's kernel and bias from the
flatbuffer itself. tests/test_segment.py runs the interpreter on the same copy for its parity test, and
checks the substitution against a numpy rendering of the custom op.

Their paragraph of the weights' NOTICE is appended when missing (convert_mediapipe.py rewrites NOTICE: run
this script after it).
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from convert_mediapipe import MEDIAPIPE_WHEEL, OUT_DIR, fill, read_model, tflite_weights  # noqa: E402

from vidmoji.face.segment import MODELS, SelfieSegmentationNet  # noqa: E402

MEMBERS = {
    "general": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    "landscape": "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
}
CUSTOM_OP = b"Convolution2DTransposeBias"
# TfLitePadding, as the custom op's options spell it (kTfLitePaddingSame = 1).
TFLITE_PADDING_SAME = 1

NOTICE_PARAGRAPH = """
selfie_segmentation.pt and selfie_segmentation_landscape.pt are float32 PyTorch state dicts converted by
scripts/convert_selfie.py from mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite and
selfie_segmentation_landscape.tflite in the same mediapipe==0.10.21 wheel (MediaPipe's selfie
segmentation models: a person probability per pixel of a 256x256, or 144x256, frame; fp16 constants
widened to float32), under the same copyright and licence. The conversion only changes the storage
layout and precision of the weights; the network is re-implemented in vidmoji/face/segment.py. Model
card: https://mediapipe.page.link/selfiesegmentation-mc (MediaPipe Selfie Segmentation).
"""


def _transpose_conv_op(model):
    """The custom op of a ModelT: (subgraph, operator); raises when it is not there exactly once."""
    graph = model.subgraphs[0]
    codes = [i for i, c in enumerate(model.operatorCodes) if c.customCode == CUSTOM_OP]
    ops = [op for op in graph.operators if op.opcodeIndex in codes]
    if len(ops) != 1:
        raise ValueError(f"expected one {CUSTOM_OP.decode()} op, found {len(ops)}")
    return graph, ops[0]


def custom_op_params(model: bytes) -> tuple[int, int, int]:
    """The custom op's TfLiteTransposeConvParams: (padding, stride_w, stride_h)."""
    from ai_edge_litert.tools import flatbuffer_utils

    _, op = _transpose_conv_op(flatbuffer_utils.convert_bytearray_to_object(bytearray(model)))
    return struct.unpack("<3i", bytes(op.customOptions))


def builtin_transpose_conv(model: bytes) -> bytes:
    """A copy of the .tflite `model` whose Convolution2DTransposeBias op is the builtin TRANSPOSE_CONV with
    the same kernel, bias, padding and strides (inputs: output shape, kernel, input, bias)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    padding, stride_w, stride_h = custom_op_params(model)
    m = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    graph, op = _transpose_conv_op(m)
    if padding != TFLITE_PADDING_SAME:
        raise ValueError(f"{CUSTOM_OP.decode()}: padding {padding}, expected SAME")

    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.TRANSPOSE_CONV
    code.version = 3                    # the version that takes a bias
    m.operatorCodes.append(code)
    shape = np.asarray(graph.tensors[op.outputs[0]].shape, np.int32)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(shape.tobytes(), np.uint8)
    m.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.shape, tensor.type = np.array([4], np.int32), schema.TensorType.INT32
    tensor.buffer, tensor.name = len(m.buffers) - 1, b"transpose_conv/output_shape"
    graph.tensors.append(tensor)

    x, kernel, bias = op.inputs
    op.opcodeIndex = len(m.operatorCodes) - 1
    op.inputs = np.array([len(graph.tensors) - 1, kernel, x, bias], np.int32)
    op.builtinOptionsType = schema.BuiltinOptions.TransposeConvOptions
    op.builtinOptions = schema.TransposeConvOptionsT(padding=schema.Padding.SAME, strideW=stride_w,
                                                      strideH=stride_h)
    op.customOptions = None
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


def transpose_conv_weights(model: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The custom op's kernel (O,H,W,I) and bias (O,) as float32, read from the flatbuffer (stored
    as fp16 constants behind DEQUANTIZE ops, or as float32)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.convert_bytearray_to_object(bytearray(model))
    graph, op = _transpose_conv_op(m)
    producers = {int(o.outputs[0]): o for o in graph.operators}
    dtypes = {schema.TensorType.FLOAT16: np.float16, schema.TensorType.FLOAT32: np.float32}
    arrays = []
    for index in op.inputs[1:]:
        index = int(index)
        if index in producers:                                   # a DEQUANTIZE of an fp16 constant
            index = int(producers[index].inputs[0])
        tensor = graph.tensors[index]
        data = np.asarray(m.buffers[tensor.buffer].data, np.uint8).tobytes()
        arrays.append(np.frombuffer(data, dtypes[tensor.type]).astype(np.float32).reshape(tensor.shape))
    return arrays[0], arrays[1]


def convert(model: bytes) -> dict[str, torch.Tensor]:
    """The float32 state dict of SelfieSegmentationNet filled from a selfie segmentation .tflite."""
    net = SelfieSegmentationNet()
    fill(net, tflite_weights(builtin_transpose_conv(model)))
    kernel, bias = transpose_conv_weights(model)
    weight = torch.from_numpy(kernel).permute(3, 0, 1, 2)        # OHWI -> torch's (in, out, H, W)
    if weight.shape != net.out.weight.shape or bias.shape != tuple(net.out.bias.shape):
        raise ValueError(f"transposed convolution: torch {tuple(net.out.weight.shape)} "
                         f"vs tflite {tuple(weight.shape)}")
    with torch.no_grad():
        net.out.weight.copy_(weight)
        net.out.bias.copy_(torch.from_numpy(bias))
    return {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}


def append_notice(out_dir: Path) -> None:
    """Add the selfie segmentation paragraph to out_dir/NOTICE unless it is there already."""
    path = out_dir / "NOTICE"
    text = path.read_text() if path.exists() else ""
    if "selfie_segmentation.pt" not in text:
        path.write_text(text.rstrip("\n") + "\n" + NOTICE_PARAGRAPH)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mediapipe-wheel", type=Path, default=MEDIAPIPE_WHEEL)
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    for name, member in MEMBERS.items():
        filename = MODELS[name][1]
        state = convert(read_model(args.mediapipe_wheel, member))
        torch.save(state, args.out / filename)
        print(f"{filename}: {sum(v.numel() for v in state.values())} parameters from {args.mediapipe_wheel}")
    append_notice(args.out)


if __name__ == "__main__":
    main()
