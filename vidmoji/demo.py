"""Make a short moving clip from a still photo, for `make demo` and the benchmarks: the photo turns and
zooms slowly, so the avatar's head can be seen following roll, position and scale.

Usage: python -m vidmoji.demo PHOTO OUT.mp4 [SECONDS] [SIZE]
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from vidmoji.video import FrameReader, VideoWriter


def moving_clip(photo: Path, out: Path, seconds: float = 3.0, size: int = 512, fps: float = 25.0) -> Path:
    """Write `out`: `seconds` of `photo` (resized to size x size) rocking by up to 10 degrees and zooming
    by up to 8%, at `fps`. Returns the path written."""
    image = next(iter(FrameReader(photo, batch_size=1))).frames[0]
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    n = int(round(seconds * fps))
    with VideoWriter(out, size, size, fps) as writer:
        for i in range(n):
            phase = 2 * np.pi * i / n
            m = cv2.getRotationMatrix2D((size / 2, size / 2), 10 * np.sin(phase), 1 + 0.08 * np.sin(2 * phase))
            writer.write(cv2.warpAffine(image, m, (size, size), borderMode=cv2.BORDER_REFLECT), i / fps)
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__)
    path = moving_clip(Path(args[0]), Path(args[1]), *(float(a) for a in args[2:3]), *(int(a) for a in args[3:4]))
    print(f"wrote {path}")
