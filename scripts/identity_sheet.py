"""Contact sheet of the identity parts: every hair, glasses and facial-hair part of every style, on a face.

    python scripts/identity_sheet.py [--out docs/identity_parts.jpg] [--size 150]

One block per style: its hair parts in a row (each in another colour of the hair palette), then its glasses,
its facial hair and a few whole looks. Built with `AvatarComposer`, the path that renders videos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing the package
from vidmoji import parts  # noqa: E402
from vidmoji.avatar.compose import BACKGROUND, AvatarComposer  # noqa: E402
from vidmoji.avatar.templates import Look, list_styles, load_style  # noqa: E402
from vidmoji.video import write_image_atomic  # noqa: E402

NEUTRAL = {"face": "oval", "eye_left": "open", "eye_right": "open", "brow_left": "neutral",
           "brow_right": "neutral", "nose": "button", "mouth": "smile_slight"}
SKINS = ("light", "medium-light", "medium", "medium-dark", "dark")


def tile(style, look: Look, skin: str, size: int, caption: str) -> np.ndarray:
    choice = tuple(f"{slot}.{NEUTRAL[slot]}" for slot in parts.SLOTS)
    rgba = AvatarComposer(style, skin, size, look).avatar(choice).astype(np.float32)
    a = rgba[..., 3:] / 255.0
    out = (rgba[..., :3] * a + np.array(BACKGROUND, np.float32) * (1 - a)).astype(np.uint8)
    out = np.concatenate([out, np.full((18, size, 3), 255, np.uint8)], 0)
    cv2.putText(out, caption, (4, size + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (40, 40, 40), 1, cv2.LINE_AA)
    return out


def style_block(name: str, size: int, columns: int) -> np.ndarray:
    style = load_style(name)
    palette = [c for c, _ in style.hair_palette]
    hairs = style.parts_in("hair")
    rows: list[list[np.ndarray]] = [[]]
    for i, hair in enumerate(hairs):
        colour = palette[i % len(palette)]
        rows[-1].append(tile(style, Look(hair=hair.id, hair_colour=colour), SKINS[i % len(SKINS)], size,
                             f"{hair.id.split('.', 1)[1]} / {colour}"))
    extras = [(Look(glasses=g.id), g.id) for g in style.parts_in("glasses")]
    extras += [(Look(facial_hair=f.id, hair_colour="dark_brown"), f.id) for f in style.parts_in("facial_hair")]
    picks = [p.id for p in hairs]
    glasses = [p.id for p in style.parts_in("glasses")]
    beards = [p.id for p in style.parts_in("facial_hair")]
    if picks and glasses and beards:  # a few whole looks
        extras.append((Look(picks[2 % len(picks)], "black", glasses[0], beards[-1]), "look 1"))
        extras.append((Look(picks[-3 % len(picks)], "blond", glasses[1 % len(glasses)], None), "look 2"))
        extras.append((Look(picks[4 % len(picks)], "grey", None, beards[1 % len(beards)]), "look 3"))
    rows.append([tile(style, look, SKINS[i % len(SKINS)], size, caption) for i, (look, caption) in enumerate(extras)])
    blank = np.full_like(rows[0][0], 255)
    lines = []
    for row in rows:
        for k in range(0, len(row), columns):
            chunk = row[k:k + columns]
            lines.append(np.concatenate(chunk + [blank] * (columns - len(chunk)), 1))
    head = np.full((26, lines[0].shape[1], 3), 255, np.uint8)
    cv2.putText(head, f"{style.title} ({name})", (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([head, *lines], 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "identity_parts.jpg")
    ap.add_argument("--size", type=int, default=150)
    ap.add_argument("--columns", type=int, default=12)
    args = ap.parse_args()
    sheet = np.concatenate([style_block(name, args.size, args.columns) for name in list_styles()], 0)
    write_image_atomic(args.out, sheet)
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
