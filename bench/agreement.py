"""How well the chosen parts agree with the per-frame labels, per embedder, style and part.

    python bench/agreement.py [--embedders ae,pca] [--device auto]

For each labelled clip in ../shared/media (liveportrait d0, d14, d18, d19) it runs pass 1 of the pipeline
once, then for every embedder and style prints the agreement of the nearest part (before smoothing) and of
the smoothed choice (what `vidmoji render --timeline` writes) with the labels, as accuracy and balanced
accuracy over the frames the labels are sure of (eyes and mouth open/closed, each brow raised or not, the
mouth smiling or not), and the part switches per second on still stretches.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidmoji.avatar.index import load_indexes  # noqa: E402
from vidmoji.avatar.templates import list_styles, load_style  # noqa: E402
from vidmoji.device import choose_device  # noqa: E402
from vidmoji.embed.registry import load_embedder  # noqa: E402
from vidmoji.evaluate import SCORED, agreement, binary_state, smiling, still_stretches  # noqa: E402

# Eyes and mouth (open/closed), each brow (raised or not) against the labels' `brows`, and the mouth's
# smile (a smile part or not) against the labels' `smile`.
COLUMNS = SCORED + (("brow_left", "brows"), ("brow_right", "brows"), ("mouth", "smile"))


def state(slot: str, key: str, tags) -> str | bool:
    """A part's tags in the vocabulary of the labels' `key`."""
    return smiling(tags) if key == "smile" else binary_state(slot, tags)
from vidmoji.pipeline import choose_parts, track_faces  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
CLIPS = ("liveportrait__d0", "liveportrait__d14", "liveportrait__d18", "liveportrait__d19")


def still_rate(rows: dict[str, np.ndarray], pts: np.ndarray, lab: dict) -> float:
    """Switches per slot and second on still stretches (1 s or more, 0.2 s trimmed at each end)."""
    trim = int(round(0.2 * lab["fps"]))
    spans = [(a + trim, b - trim) for a, b in still_stretches(lab, int(lab["fps"]) + 2 * trim)]
    switches = sum(int((r[a + 1:b + 1] != r[a:b]).sum()) for a, b in spans for r in rows.values())
    seconds = sum((pts[b] - pts[a]) * len(rows) for a, b in spans)
    return switches / seconds if seconds else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedders", default="ae,pca")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = choose_device(args.device)
    tracks = {c: track_faces(MEDIA / "video" / f"{c}.mp4", device) for c in CLIPS}
    print("| embedder | style | clip | " + " | ".join(f"{k if k == 'smile' else s} nearest | "
                                                    f"{k if k == 'smile' else s} smoothed" for s, k in COLUMNS)
          + " | still switches/s |")
    print("|" + "---|" * (4 + 2 * len(COLUMNS)))
    for name in args.embedders.split(","):
        embedder = load_embedder(name, device)
        for style_name in list_styles():
            indexes = load_indexes(load_style(style_name), embedder, device, log=lambda m: None)
            for clip, track in tracks.items():
                lab = json.loads((MEDIA / "labels" / f"{clip}.json").read_text())
                choices = choose_parts(track, embedder, indexes, "viterbi", device)
                present = np.flatnonzero(track.has_face)
                cells = []
                for slot, key in COLUMNS:
                    for rows in (choices.matches[slot].rows[:, 0], choices.rows[slot][present]):
                        predicted = [None] * len(track.pts)
                        for i, r in zip(present, rows):
                            predicted[i] = state(slot, key, indexes[slot].tags[int(r)])
                        a = agreement(lab, key, predicted)
                        cells.append(f"{a.accuracy:.3f} ({a.balanced:.2f})")
                print(f"| {name} | {style_name} | {clip.split('__')[1]} | " + " | ".join(cells)
                      + f" | {still_rate(choices.rows, track.pts, lab):.2f} |")


if __name__ == "__main__":
    main()
