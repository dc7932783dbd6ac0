"""docs/identity.jpg: public photos beside their avatars in each style (identity measured, nothing set by hand).

    python scripts/identity_gallery.py [--out docs/identity.jpg]

Photos are shown only where they are in the public domain (the NASA astronaut, the US government portraits);
for the LivePortrait examples (MIT repository, footage provenance not stated) only the avatars are shown.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidmoji.pipeline import RenderOptions, render_media  # noqa: E402
from vidmoji.video import write_image_atomic  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media" / "image"
PHOTOS = (("scikit-image__astronaut.png", True), ("face_recognition__obama.jpg", True),
          ("face_recognition__biden.jpg", True), ("liveportrait__d8.jpg", False), ("liveportrait__d9.jpg", False))
STYLES = ("flat", "line", "cute")
CELL = 240


def _photo_cell(path: Path, show: bool) -> np.ndarray:
    cell = np.full((CELL, CELL, 3), 235, np.uint8)
    if not show:
        cv2.putText(cell, "photo not shown", (34, CELL // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (90, 90, 90), 1,
                    cv2.LINE_AA)
        return cell
    img = cv2.imread(str(path))[..., ::-1]
    h, w = img.shape[:2]
    side = min(h, w)
    top = 0 if h > w else (h - side) // 2                  # portraits: keep the head, not the middle
    crop = img[top:top + side, (w - side) // 2:(w - side) // 2 + side]
    return cv2.resize(crop, (CELL, CELL), interpolation=cv2.INTER_AREA)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "identity.jpg")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, show in PHOTOS:
            cells = [_photo_cell(MEDIA / name, show)]
            for style in STYLES:
                out = Path(tmp) / f"{style}.png"
                render_media(MEDIA / name, RenderOptions(output=out, style=style, show_progress=False))
                rgba = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
                alpha = rgba[..., 3:].astype(np.float32) / 255 if rgba.shape[2] == 4 else 1.0
                avatar = (rgba[..., 2::-1] * alpha + 255 * (1 - alpha)).astype(np.uint8)
                cells.append(cv2.resize(avatar, (CELL, CELL), interpolation=cv2.INTER_AREA))
            rows.append(np.concatenate(cells, 1))
    header = np.full((28, CELL * (1 + len(STYLES)), 3), 255, np.uint8)
    for i, title in enumerate(("photo", *STYLES)):
        cv2.putText(header, title, (i * CELL + 10, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (40, 40, 40), 1, cv2.LINE_AA)
    write_image_atomic(args.out, np.concatenate([header, *rows], 0))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
