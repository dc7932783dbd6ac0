"""Part indexes: deterministic, self-retrieving, style switching without retraining, and face-to-avatar
agreement with the labels (nearest part, before any smoothing)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import LABELLED, labels, needs_media
from vidmoji import parts
from vidmoji.avatar.index import build_indexes, embed_parts, load_indexes, read_indexes
from vidmoji.avatar.templates import list_styles, load_style
from vidmoji.embed.registry import load_embedder
from vidmoji.evaluate import agreement, binary_state, smiling
from vidmoji.face.windows import Calibration, measure
from vidmoji.match import match_windows
from vidmoji.pipeline import face_windows

CPU = torch.device("cpu")
STATE_SLOTS = ("eye_left", "eye_right", "brow_left", "brow_right", "mouth")


@pytest.fixture(scope="module", params=["ae", "pca"])
def embedder(request):
    return load_embedder(request.param, CPU)


def test_index_is_deterministic_and_finds_itself(embedder, tmp_path):
    style = load_style("flat")
    a = read_indexes(style, embedder.name, build_indexes(style, embedder, CPU, tmp_path / "a").parent.parent)
    b = read_indexes(style, embedder.name, build_indexes(style, embedder, CPU, tmp_path / "b").parent.parent)
    for slot in parts.SLOTS:
        np.testing.assert_array_equal(a[slot].vectors, b[slot].vectors)
        assert a[slot].part_ids == b[slot].part_ids
        sims, rows = a[slot].search(a[slot].vectors, 1)
        # Parts may repeat a shape (a gaze variant has the same label map as the plain eye): then its twin
        # is as near as itself.
        own = sims[:, 0] >= 0.99
        assert own.all(), f"{slot}: parts not found by their own embedding: {np.flatnonzero(~own)}"
        same = [a[slot].part_ids[r] == pid or s > 0.999 for pid, r, s in zip(a[slot].part_ids, rows[:, 0], sims[:, 0])]
        assert all(same)


def test_stale_index_is_rebuilt_and_corrupt_one_refused(embedder, tmp_path):
    from vidmoji.avatar.index import IndexError_
    style = load_style("flat")
    out = build_indexes(style, embedder, CPU, tmp_path)
    meta = out / "meta.json"
    meta.write_text(meta.read_text().replace('"fingerprint": "', '"fingerprint": "x'))
    messages = []
    load_indexes(style, embedder, CPU, tmp_path, log=messages.append)
    assert messages and "stale" in messages[0]
    (out / "mouth.faiss").write_bytes(b"not an index")
    with pytest.raises(IndexError_, match="corrupt"):
        read_indexes(style, embedder.name, tmp_path)


def test_style_switching_keeps_the_state(embedder):
    """For each part of one style, its nearest part in each other style carries the same state tag."""
    styles = [load_style(n) for n in list_styles()]
    assert len(styles) >= 3
    for a in styles:
        for b in styles:
            if a is b:
                continue
            ok = total = 0
            idx_b = load_indexes(b, embedder, CPU, log=lambda m: None)
            for slot in STATE_SLOTS:
                tags_a = [p.tags for p in a.parts if p.slot == slot]
                _, rows = idx_b[slot].search(embed_parts(a, embedder, slot, CPU), 1)
                ok += sum(t[0] == idx_b[slot].tags[r][0] for t, r in zip(tags_a, rows[:, 0]))
                total += len(tags_a)
            assert ok / total >= 0.8, f"{embedder.name}: {a.name} -> {b.name} keeps the state in {ok}/{total}"


def _nearest_states(embedder, face_tracks, name: str, slots: tuple[str, ...], state=binary_state):
    """(style, slot, per-frame state(slot, tags) of the nearest part, None where no face) for every style."""
    track = face_tracks(name)
    mesh = track.mesh[track.has_face]
    windows = face_windows(mesh, Calibration.from_measures(measure(torch.from_numpy(mesh))), CPU)
    present = np.flatnonzero(track.has_face)
    for style_name in list_styles():
        idx = load_indexes(load_style(style_name), embedder, CPU, log=lambda m: None)
        matches = match_windows(embedder, idx, windows, k=1)
        for slot in slots:
            predicted = [None] * len(track.pts)
            for j, i in enumerate(present):
                predicted[i] = state(slot, idx[slot].tags[int(matches[slot].rows[j, 0])])
            yield style_name, slot, predicted


@needs_media
@pytest.mark.parametrize("name", LABELLED)
def test_face_to_avatar_nearest_part_agrees_with_labels(embedder, face_tracks, name):
    lab = labels(name)
    for style_name, slot, predicted in _nearest_states(embedder, face_tracks, name, ("eye_left", "eye_right", "mouth")):
        a = agreement(lab, slot, predicted)
        assert a.accuracy >= 0.9, (f"{embedder.name} {style_name} {name} {slot}: {a.accuracy:.3f} "
                                   f"({a.confusion})")


@needs_media
@pytest.mark.parametrize("name", ("liveportrait__d0", "liveportrait__d14", "liveportrait__d19", "liveportrait__d9"))
def test_brows_agree_with_labels(embedder, face_tracks, name):
    """Resting brows read as not raised, and real raises as raised, each brow on its own. d9 holds the only
    certain brow raises of the labelled media; the embedders saw its windows in training, never its labels."""
    lab = labels(name)
    for style_name, slot, predicted in _nearest_states(embedder, face_tracks, name, ("brow_left", "brow_right")):
        a = agreement(lab, "brows", predicted)
        for cls, floor in (("neutral", 0.85), ("raised", 0.8)):
            total = sum(v for (t, _), v in a.confusion.items() if t == cls)
            if total >= 10:
                recall = a.confusion.get((cls, cls), 0) / total
                assert recall >= floor, (f"{embedder.name} {style_name} {name} {slot} {cls}: {recall:.2f} "
                                         f"({a.confusion})")


@needs_media
@pytest.mark.parametrize("name", ("liveportrait__d0", "liveportrait__d3", "liveportrait__d9", "liveportrait__d14",
                                  "liveportrait__d19"))
def test_smiles_agree_with_labels(embedder, face_tracks, name):
    """Smiling frames get a smile part (closed or open) and the others do not, with the mouth's resting curve
    calibrated. Measured (nearest part, all styles, ae / pca, since the refined lips): smiles found 0.73-1.00 /
    0.54-1.00 (d3 left out, below), other frames kept 0.82-1.00 / 0.81-1.00; before the calibration and the
    slight-smile parts, d0, d3, d9 and d14 found none of their smiles."""
    lab = labels(name)
    # d3's tracker smiles (9-19) are its mouth open 0.17-0.20 of the inter-ocular distance (MediaPipe's own
    # measure) inside its first wink, where the hand labeller could not tell a smile (12 and 18: unsure); the
    # refined lips draw that mouth `open`. pca finds 0.54-0.65 of d9's (ae 0.87-0.90): smirk and smile parts
    # score within 0.01-0.03 of each other there, and the hand-labelled smiles, pooled, are 0.94-0.95.
    floors = {True: None if name == "liveportrait__d3" else 0.5 if embedder.name == "pca" else 0.6, False: 0.75}
    for style_name, _, predicted in _nearest_states(embedder, face_tracks, name, ("mouth",),
                                                   state=lambda slot, tags: smiling(tags)):
        a = agreement(lab, "smile", predicted)
        for cls, floor in floors.items():
            if floor is None:
                continue
            total = sum(v for (t, _), v in a.confusion.items() if t == cls)
            if total >= 10:
                recall = a.confusion.get((cls, cls), 0) / total
                assert recall >= floor, f"{embedder.name} {style_name} {name} smile={cls}: {recall:.2f} ({a.confusion})"
