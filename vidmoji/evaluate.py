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
    return _scores(confusion)


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


# --- hand labels (../shared/media/labels/hand_expressions.json) -------------------------------------------
HAND_KEYS = ("eye_left", "eye_right", "mouth", "gaze_h", "smile", "brows")
# A look counts as toward one side of the image when the mean horizontal gaze of both eyes passes this.
GAZE_SIDE = 0.25


def frame_states(tags: dict[str, tuple[str, ...] | list[str]], gaze: dict[str, tuple[float, float]] | None = None
                 ) -> dict[str, str]:
    """One frame's chosen parts in the hand labels' vocabulary.

    tags: {slot: the chosen part's tags}; gaze: {"eye_right"/"eye_left": (x, y)} or None. Returns eyes and
    mouth `open`/`closed`, `smile` `yes`/`no`, `brows` `raised`/`lowered`/`neutral` (a raise of either brow
    is a raise, else a lowering of either is a lowering), and `gaze_h` `image_left`/`centre`/`image_right`
    from the mean of both eyes' x (beyond -+GAZE_SIDE) when gaze is given.
    """
    out = {"eye_left": binary_state("eye_left", tags["eye_left"]),
           "eye_right": binary_state("eye_right", tags["eye_right"]),
           "mouth": binary_state("mouth", tags["mouth"]),
           "smile": "yes" if "smile" in tags["mouth"] or smiling(tags["mouth"]) else "no"}
    brows = {tags[s][0] for s in ("brow_left", "brow_right")}
    out["brows"] = "raised" if "raised" in brows else "lowered" if "lowered" in brows else "neutral"
    if gaze:
        out["gaze_h"] = gaze_h_state(float(np.mean([g[0] for g in gaze.values()])))
    return out


def gaze_h_state(x: float) -> str:
    """The mean horizontal gaze of both eyes in the hand labels' words: beyond -+GAZE_SIDE a look to that side
    of the image, else `centre`."""
    return "image_left" if x < -GAZE_SIDE else "image_right" if x > GAZE_SIDE else "centre"


def hand_agreement(hand: list[dict], predicted: dict[tuple[str, int], dict[str, str]],
                   keys: tuple[str, ...] = HAND_KEYS) -> dict[str, Agreement]:
    """Agreement of predicted frame states {(clip, frame): frame_states(...)} with hand-labelled frames
    (entries of hand_expressions.json's `frames`), per key, leaving out `unsure` keys and frames without a
    prediction (no face)."""
    out = {}
    for key in keys:
        confusion: dict[tuple[str, str], int] = {}
        for f in hand:
            truth, p = f.get(key), predicted.get((f["clip"], f["frame"]), {}).get(key)
            if truth is None or truth == "unsure" or p is None:
                continue
            confusion[(truth, p)] = confusion.get((truth, p), 0) + 1
        out[key] = _scores(confusion)
    return out


def timeline_hand_agreement(timeline: dict, clip: str, hand: list[dict],
                            keys: tuple[str, ...] = HAND_KEYS) -> dict[str, Agreement]:
    """Balanced agreement of a `--timeline` file of `clip` (a liveportrait__ stem) with its hand-labelled frames
    (hand_expressions.json's `frames`): the frames a person looked at, where the tracker's labels can be wrong
    (a speaker looking down at notes reads shut to it). The timeline's entries must be the clip's frames in
    order, one each (render's; a live timeline laid over the source's frames first, as bench_live's
    `_aligned` does, since live leaves out the frames it dropped)."""
    predicted = {}
    for i, f in enumerate(timeline["frames"]):
        if f.get("face"):
            predicted[(clip, i)] = frame_states({s: p["tags"] for s, p in f["parts"].items()},
                                                {s: f["parts"][s]["gaze"] for s in ("eye_right", "eye_left")
                                                 if f["parts"][s].get("gaze") is not None} or None)
    return hand_agreement([h for h in hand if h["clip"] == clip], predicted, keys)


def _scores(confusion: dict[tuple[str, str], int]) -> Agreement:
    n = sum(confusion.values())
    correct = sum(v for (t, p), v in confusion.items() if t == p)
    recalls = []
    for cls in {t for t, _ in confusion}:
        total = sum(v for (t, _), v in confusion.items() if t == cls)
        recalls.append(confusion.get((cls, cls), 0) / total)
    return Agreement(correct / n if n else float("nan"), float(np.mean(recalls)) if recalls else float("nan"),
                     n, confusion)


def phantom_wink_share(labels: dict, eye_states: dict[str, list[str | None]]) -> float:
    """Share of the frames with a face where the labels see no wink (both eyes alike) but the avatar shows
    one eye closed and the other open. eye_states: {"eye_left"/"eye_right": per frame `open`/`closed`/None}.
    Frames where the labels are unsure of either eye are left out, as the labels' README asks of all
    scoring (d3's 18-20, the end of its first wink, where the labels call the right eye shut but unsure,
    and the hand labels see it open)."""
    none = [False] * len(labels["eye_left"])
    unsure = [labels.get("uncertain", {}).get(key, none) for key in ("eye_left", "eye_right")]
    n = shown = 0
    for i, (el, er) in enumerate(zip(eye_states["eye_left"], eye_states["eye_right"])):
        if el is None or er is None or i >= len(labels["eye_left"]) or labels["eye_left"][i] is None:
            continue
        if labels["eye_left"][i] != labels["eye_right"][i]:
            continue
        if unsure[0][i] or unsure[1][i]:
            continue
        n += 1
        shown += el != er
    return shown / n if n else 0.0


def winks_shown(labels: dict, eye_states: dict[str, list[str | None]]) -> tuple[int, int]:
    """(shown, total) of the labels' certain wink events during which the avatar shows that wink (the
    winking eye closed while the other is open) on at least a third of the event's frames."""
    shown = total = 0
    for ev in labels.get("events", []):
        if not ev["label"].startswith("wink_") or not ev.get("certain", True):
            continue
        side = ev["label"].split("_")[1]
        shut, other = (f"eye_{side}", f"eye_{'right' if side == 'left' else 'left'}")
        span = range(ev["start_frame"], ev["end_frame"] + 1)
        hit = sum(eye_states[shut][i] == "closed" and eye_states[other][i] == "open" for i in span
                  if i < len(eye_states[shut]))
        total += 1
        shown += hit * 3 >= len(span)
    return shown, total


# --- identity ---------------------------------------------------------------------------------------------
IDENTITY_FIELDS = ("skin", "skin_within_one", "hair_length", "hair_colour", "glasses", "facial_hair")


@dataclass(frozen=True)
class IdentityScore:
    """How many subjects each identity field got right (of `subjects`), the mean signed skin error in palette
    steps (positive: too dark) and one line per miss."""

    right: dict
    subjects: int
    skin_bias: float
    misses: tuple[str, ...]


def identity_agreement(shown: dict[str, dict], labels: dict[str, dict]) -> IdentityScore:
    """Score timeline identities ({subject: the timeline's "identity"}) against identity.json's subjects
    (each attribute lists the answers that count as right)."""
    from vidmoji.parts import SKIN_TONES

    right = dict.fromkeys(IDENTITY_FIELDS, 0)
    misses, signed = [], []
    for key, label in labels.items():
        got = shown[key]
        steps = min((SKIN_TONES.index(got["skin"]) - SKIN_TONES.index(s) for s in label["skin"]), key=abs) \
            if got["skin"] in SKIN_TONES else len(SKIN_TONES)
        signed.append(steps)
        checks = {"skin": steps == 0, "skin_within_one": abs(steps) <= 1,
                  "hair_length": got["hair"]["length"] in label["hair_length"],
                  "hair_colour": got["hair"]["colour"] in label["hair_colour"],
                  "glasses": got["glasses"] == label["glasses"],
                  "facial_hair": got["facial_hair"] in label["facial_hair"]}
        for name, ok in checks.items():
            right[name] += ok
            if not ok:
                value = {"skin": got["skin"], "skin_within_one": got["skin"], "hair_length": got["hair"]["length"],
                         "hair_colour": got["hair"]["colour"], "glasses": got["glasses"],
                         "facial_hair": got["facial_hair"]}[name]
                misses.append(f"{key} {name}: {value}")
    return IdentityScore(right, len(labels), float(np.mean(signed)) if signed else 0.0, tuple(misses))
