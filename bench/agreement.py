"""How well the chosen parts agree with the per-frame labels, per embedder, style and part.

    python bench/agreement.py [--embedders ae,pca] [--device auto] [--only-expressions] [--face-px 60,90]

For each labelled clip in ../shared/media (liveportrait d0, d14, d18, d19) it runs pass 1 of the pipeline
once, then for every embedder and style prints the agreement of the nearest part (before smoothing) and of
the smoothed choice (what `vidmoji render --timeline` writes) with the labels, as accuracy and balanced
accuracy over the frames the labels are sure of (eyes and mouth open/closed, each brow raised or not, the
mouth smiling or not), and the part switches per second on still stretches.
Prints a Markdown table. A second table scores every clip that has labels (d0, d3, d9, d14, d18, d19, s32)
per style: balanced agreement with the hand-labelled frames of hand_expressions.json (eyes, mouth,
horizontal gaze, smile, brows; `unsure` left out), part switches per second on still stretches, the share
of no-wink frames drawn with one eye shut and the other open (phantom winks), and the labels' certain
winks shown.
With --face-px, the same tables again for every clip scaled down (area-averaged, as a smaller camera would see
it: bench/identity.py's `_scaled_copy`) so that its face is that many pixels wide across the cheeks (the median
over the clip of the distance between parts.FACE_SIDES), once per width: low-resolution talk footage.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from identity import _scaled_copy  # noqa: E402
from vidmoji import parts  # noqa: E402

from vidmoji.avatar.index import load_indexes  # noqa: E402
from vidmoji.avatar.templates import list_styles, load_style  # noqa: E402
from vidmoji.device import choose_device  # noqa: E402
from vidmoji.embed.registry import load_embedder  # noqa: E402
from vidmoji.evaluate import (HAND_KEYS, SCORED, agreement, binary_state, frame_states, hand_agreement,  # noqa: E402
                              phantom_wink_share, smiling, still_stretches, winks_shown)

# Eyes and mouth (open/closed), each brow (raised or not) against the labels' `brows`, and the mouth's
# smile (a smile part or not) against the labels' `smile`.
COLUMNS = SCORED + (("brow_left", "brows"), ("brow_right", "brows"), ("mouth", "smile"))


def state(slot: str, key: str, tags) -> str | bool:
    """A part's tags in the vocabulary of the labels' `key`."""
    return smiling(tags) if key == "smile" else binary_state(slot, tags)
from vidmoji.pipeline import choose_parts, track_faces  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
CLIPS = ("liveportrait__d0", "liveportrait__d14", "liveportrait__d18", "liveportrait__d19")
ALL_LABELLED = ("liveportrait__d0", "liveportrait__d3", "liveportrait__d9", "liveportrait__d14", "liveportrait__d18",
                "liveportrait__d19", "liveportrait__s32")


def expression_table(tracks: dict, embedder, indexes_of, device) -> None:
    """The second table (see the module docstring), for one embedder and every style."""
    hand = json.loads((MEDIA / "labels" / "hand_expressions.json").read_text())["frames"]
    print("\n| style | clip | " + " | ".join(HAND_KEYS) + " | still switches/s | phantom winks | winks shown |")
    print("|" + "---|" * (5 + len(HAND_KEYS)))
    for style_name, indexes in indexes_of.items():
        pooled = {}
        for clip, track in tracks.items():
            lab = json.loads((MEDIA / "labels" / f"{clip}.json").read_text())
            choices = choose_parts(track, embedder, indexes, "viterbi", device)
            eyes = {s: [None] * len(track.pts) for s in ("eye_left", "eye_right")}
            predicted = {}
            for i in range(len(track.pts)):
                if choices.rows["mouth"][i] < 0:
                    continue
                tags = {s: indexes[s].tags[int(choices.rows[s][i])] for s in choices.rows}
                st = frame_states(tags, {"eye_right": choices.gaze[i, 0], "eye_left": choices.gaze[i, 1]})
                predicted[(clip, i)] = st
                for s in eyes:
                    eyes[s][i] = st[s]
            pooled.update(predicted)
            h = hand_agreement([f for f in hand if f["clip"] == clip], predicted)
            cells = [f"{a.balanced:.2f}" if a.frames else "" for a in h.values()]
            shown, total = winks_shown(lab, eyes)
            print(f"| {style_name} | {clip.split('__')[1]} | " + " | ".join(cells)
                  + f" | {still_rate(choices.rows, track.pts, lab):.2f} | {phantom_wink_share(lab, eyes):.2%} | "
                  + (f"{shown}/{total}" if total else "") + " |")
        h = hand_agreement(hand, pooled)
        print(f"| {style_name} | **all hand-labelled** | " + " | ".join(f"**{a.balanced:.3f}**" for a in h.values())
              + " | | | |")


def still_rate(rows: dict[str, np.ndarray], pts: np.ndarray, lab: dict) -> float:
    """Switches per slot and second on still stretches (1 s or more, 0.2 s trimmed at each end)."""
    trim = int(round(0.2 * lab["fps"]))
    spans = [(a + trim, b - trim) for a, b in still_stretches(lab, int(lab["fps"]) + 2 * trim)]
    switches = sum(int((r[a + 1:b + 1] != r[a:b]).sum()) for a, b in spans for r in rows.values())
    seconds = sum((pts[b] - pts[a]) * len(rows) for a, b in spans)
    return switches / seconds if seconds else float("nan")


def face_width_px(track) -> float:
    """The main face's median width in pixels across the cheeks (parts.FACE_SIDES) over the clip."""
    mesh = track.mesh[track.has_face][:, list(parts.FACE_SIDES), :2]
    return float(np.median(np.linalg.norm(mesh[:, 1] - mesh[:, 0], axis=-1)))


def tables(tracks: dict, embedders: list[str], device, only_expressions: bool) -> None:
    """Both tables (or the second alone) for the tracked clips."""
    if only_expressions:
        for name in embedders:
            embedder = load_embedder(name, device)
            print(f"\nembedder {name}")
            expression_table(tracks, embedder, {s: load_indexes(load_style(s), embedder, device, log=lambda m: None)
                                                    for s in list_styles()}, device)
        return
    print("| embedder | style | clip | " + " | ".join(f"{k if k == 'smile' else s} nearest | "
                                                    f"{k if k == 'smile' else s} smoothed" for s, k in COLUMNS)
          + " | still switches/s |")
    print("|" + "---|" * (4 + 2 * len(COLUMNS)))
    for name in embedders:
        embedder = load_embedder(name, device)
        for style_name in list_styles():
            indexes = load_indexes(load_style(style_name), embedder, device, log=lambda m: None)
            for clip in CLIPS:
                track = tracks[clip]
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
        print(f"\nembedder {name}")
        expression_table(tracks, embedder, {s: load_indexes(load_style(s), embedder, device, log=lambda m: None)
                                            for s in list_styles()}, device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedders", default="ae,pca")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--only-expressions", action="store_true", help="print only the second table")
    ap.add_argument("--face-px", default="", help="face widths in pixels to score again at, e.g. 60,90")
    args = ap.parse_args()
    try:
        widths = [float(v) for v in args.face_px.split(",") if v.strip()]
    except ValueError:
        sys.exit(f"--face-px: expected widths in pixels such as 60,90, got {args.face_px!r}")
    if any(w < 8 for w in widths):
        sys.exit(f"--face-px: widths must be at least 8 pixels, got {args.face_px!r}")
    if not MEDIA.is_dir():
        sys.exit(f"labelled clips not found: {MEDIA}")
    device = choose_device(args.device)
    embedders = args.embedders.split(",")
    tracks = {c: track_faces(MEDIA / "video" / f"{c}.mp4", device) for c in ALL_LABELLED}
    tables(tracks, embedders, device, args.only_expressions)
    with tempfile.TemporaryDirectory() as tmp:
        for px in widths:
            small = {}
            for clip, track in tracks.items():
                width = face_width_px(track)
                scale = px / width
                print(f"{clip}: face {width:.0f} px wide, scaled by {min(scale, 1.0):.3f}", file=sys.stderr)
                src = MEDIA / "video" / f"{clip}.mp4"
                small[clip] = track_faces(_scaled_copy(src, scale, Path(tmp)) if scale < 1 else src, device)
            print(f"\n## Faces scaled to {px:.0f} px wide")
            tables(small, embedders, device, args.only_expressions)


if __name__ == "__main__":
    main()
