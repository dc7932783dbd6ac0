"""Scoring part choices against per-frame expression labels (the JSON format of ../shared/media/labels:
`eye_left`, `eye_right`, `mouth` as open/closed per frame, `uncertain[key][i]`), for tests, benchmarks and
anyone comparing embedders or styles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Mouth states whose lips are apart; any part tagged "open" counts too (e.g. an open frown).
_OPEN_MOUTHS = frozenset({"slightly_open", "open", "wide_open", "round", "smile_open"})
SCORED = (("eye_left", "eye_left"), ("eye_right", "eye_right"), ("mouth", "mouth"))


def binary_state(slot: str, tags: tuple[str, ...] | list[str]) -> str:
    """A part's tags as the labels' vocabulary: eyes and mouth are `open` or `closed`, brows `raised` or
    `neutral` (a lowered brow is not raised).

    An eye is closed only when its state is `closed` (a half-open or squinting eye shows its iris); a mouth
    is open when its lips are apart.
    """
    if slot.startswith("eye"):
        return "closed" if tags[0] == "closed" else "open"
    if slot == "mouth":
        return "open" if tags[0] in _OPEN_MOUTHS or "open" in tags else "closed"
    if slot.startswith("brow"):
        return "raised" if tags[0] == "raised" else "neutral"
    raise ValueError(f"no binary state for slot {slot!r}")


def smiling(tags: tuple[str, ...] | list[str]) -> bool:
    """Whether a mouth part shows a smile (closed or open), the labels' `smile`."""
    return tags[0] in ("smile", "smile_open")


@dataclass(frozen=True)
class Agreement:
    """Agreement of one slot with the labels over the scored frames: accuracy, balanced accuracy (mean
    of the per-class recalls), frames scored, and the confusion counts {(label, predicted): n}."""

    accuracy: float
    balanced: float
    frames: int
    confusion: dict[tuple[str, str], int]


def agreement(labels: dict, slot_label: str, predicted: list[str | None]) -> Agreement:
    """Compare predicted states (None where no face) with `labels[slot_label]`, leaving out frames the
    labels mark uncertain or without a face."""
    truth = labels[slot_label]
    uncertain = labels.get("uncertain", {}).get(slot_label, [False] * len(truth))
    confusion: dict[tuple[str, str], int] = {}
    for i, p in enumerate(predicted[:len(truth)]):
        if p is None or truth[i] is None or uncertain[i]:
            continue
        confusion[(truth[i], p)] = confusion.get((truth[i], p), 0) + 1
    n = sum(confusion.values())
    correct = sum(v for (t, p), v in confusion.items() if t == p)
    recalls = []
    for cls in {t for t, _ in confusion}:
        total = sum(v for (t, _), v in confusion.items() if t == cls)
        recalls.append(confusion.get((cls, cls), 0) / total)
    return Agreement(correct / n if n else float("nan"), float(np.mean(recalls)) if recalls else float("nan"),
                     n, confusion)


def timeline_agreement(timeline: dict, labels: dict) -> dict[str, Agreement]:
    """Agreement of a `vidmoji render --timeline` file with the labels, per scored slot."""
    out = {}
    for slot, key in SCORED:
        predicted = [binary_state(slot, f["parts"][slot]["tags"]) if f["face"] else None
                     for f in timeline["frames"]]
        out[slot] = agreement(labels, key, predicted)
    return out


def still_stretches(labels: dict, min_frames: int) -> list[tuple[int, int]]:
    """Inclusive frame spans of at least min_frames where no label (eyes, mouth, smile, brows) changes,
    none is uncertain and a face is present: where a still avatar is expected."""
    keys = [k for k in ("eye_left", "eye_right", "mouth", "smile", "brows") if k in labels]
    n = len(labels[keys[0]])
    unc = labels.get("uncertain", {})

    def signature(i):
        if not labels.get("face", [True] * n)[i] or any(unc.get(k, [False] * n)[i] for k in keys):
            return None
        return tuple(labels[k][i] for k in keys)

    spans, start = [], None
    for i in range(n + 1):
        same = i < n and start is not None and signature(i) is not None and signature(i) == signature(start)
        if not same:
            if start is not None and i - start >= min_frames:
                spans.append((start, i - 1))
            start = i if i < n and signature(i) is not None else None
    return spans
