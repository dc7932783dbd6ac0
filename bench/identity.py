"""Identity: agreement with ../shared/media/labels/identity.json per style, and its cost inside a render.

    python bench/identity.py [--device auto|cpu|cuda] [--runs 3] [--styles flat,line,cute] [--face-px 64,96]

1. For the 16 labelled public subjects (clips and photos) it measures each identity once, draws it in every
   style (the hair part is the style's own match) and prints per style how many subjects each timeline field
   gets right, and the mean signed skin error in palette steps (positive: too dark), then the misses.
   With --face-px, the same again with every subject scaled down so that its face is that many pixels wide
   (across the cheeks; as in low-resolution talk footage), once per width.
2. On the 1280x720 clip (liveportrait__s32) it renders `runs` times and prints the I/O floor (decode + encode
   at the output size with PyAV), the render's time, and the identity stage (sampling views in pass 1 plus
   measuring them) as a share of the render: the issue's budget is 10%. Medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import torch  # noqa: E402

from vidmoji.avatar.index import load_indexes  # noqa: E402
from vidmoji.avatar.templates import load_style  # noqa: E402
from vidmoji.device import choose_device  # noqa: E402
from vidmoji.embed.registry import load_embedder  # noqa: E402
from vidmoji.evaluate import IDENTITY_FIELDS, identity_agreement  # noqa: E402
from vidmoji.identity import choose_hair, identity_timeline, measure_identity  # noqa: E402
from vidmoji.pipeline import RenderOptions, render_media, track_faces  # noqa: E402
from vidmoji.video import io_floor, scaled_video  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
CLIP = MEDIA / "video" / "liveportrait__s32.mp4"


def _scaled_copy(source: Path, scale: float, folder: Path) -> Path:
    """The photo or clip at `scale` of its size (area-averaged, as a smaller camera would see it)."""
    out = folder / f"{source.parent.name}_{source.stem}_{scale:.3f}{'.png' if source.suffix != '.mp4' else '.mp4'}"
    if source.suffix != ".mp4":
        cv2.imwrite(str(out), cv2.resize(cv2.imread(str(source)), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
        return out
    return scaled_video(source, scale, out)


def agreement(styles: list[str], device: torch.device, face_px: list[float]) -> None:
    subjects = json.loads((MEDIA / "labels" / "identity.json").read_text())["subjects"]
    sources = {}
    for key in subjects:
        folder, stem = key.split("/")
        sources[key] = next((MEDIA / folder).glob(stem + ".*"))
    measured = {key: measure_identity(track_faces(src, device).heads, device) for key, src in sources.items()}
    _table(measured, subjects, styles, device, "")
    with tempfile.TemporaryDirectory() as tmp:
        for px in face_px:
            small = {}
            for key, src in sources.items():
                scale = px / measured[key].measured["face_width_px"]
                small_src = _scaled_copy(src, scale, Path(tmp)) if scale < 1 else src
                small[key] = measure_identity(track_faces(small_src, device).heads, device)
            _table(small, subjects, styles, device, f" scaled to faces {px:.0f} px wide")


def _table(measured: dict, subjects: dict, styles: list[str], device: torch.device, what: str) -> None:
    embedder = load_embedder("ae", device, None)
    n = len(subjects)
    print(f"\nidentity against identity.json ({n} subjects{what}), right of {n}:")
    print(f"{'style':6s} " + " ".join(f"{f:>15s}" for f in IDENTITY_FIELDS) + f" {'skin bias':>10s}")
    misses = set()
    for name in styles:
        style = load_style(name)
        indexes = load_indexes(style, embedder, device)
        shown = {k: identity_timeline(i, choose_hair(i, style, indexes.get("hair"), embedder, device))
                 for k, i in measured.items()}
        score = identity_agreement(shown, subjects)
        print(f"{name:6s} " + " ".join(f"{score.right[f]:>15d}" for f in IDENTITY_FIELDS)
              + f" {score.skin_bias:>+10.2f}")
        misses.update(m for m in score.misses if "hair_length" not in m or name == styles[0])
    for m in sorted(misses):
        print(f"  miss: {m}")


def cost(runs: int, device_name: str) -> None:
    floors, walls, ident = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            floors.append(io_floor(CLIP, Path(tmp) / "floor.mp4", 512, 512))
            start = time.perf_counter()
            result = render_media(CLIP, RenderOptions(output=Path(tmp) / "out.mp4", device=device_name,
                                                      show_progress=False))
            walls.append(time.perf_counter() - start)
            ident.append(result.stages["identity"])
    floor, wall, identity = (statistics.median(v) for v in (floors, walls, ident))
    print(f"\n{CLIP.name} (1280x720, {result.frames} frames, {runs} runs, medians): I/O floor {floor:.2f} s, "
          f"render {wall:.2f} s (ratio {wall / floor:.2f}), identity {identity:.2f} s = "
          f"{100 * identity / wall:.1f}% of the render [{result.device}]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--styles", default="flat,line,cute")
    ap.add_argument("--face-px", default="", help="face widths in pixels to measure again at, e.g. 64,96")
    args = ap.parse_args()
    if not MEDIA.is_dir():
        sys.exit(f"benchmark media not found: {MEDIA}")
    warnings.simplefilter("ignore")
    agreement(args.styles.split(","), choose_device(args.device), [float(v) for v in args.face_px.split(",") if v])
    if args.runs > 0:
        cost(args.runs, args.device)


if __name__ == "__main__":
    main()
