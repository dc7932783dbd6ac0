"""The label map follows the face: alignment, mesh label maps on real clips, and what `parse` draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import labels, needs_media
from vidmoji import parts
from vidmoji.face.align import alignment_matrices, canonical_anchors, transform_points, _anchor_points
from vidmoji.face.parse import mesh_label_map
from vidmoji.face.raster import rasterize_polygons
from vidmoji.face.windows import calibrated_mesh
from vidmoji.pipeline import subject_calibration

ID = parts.LABEL_IDS


def _label_maps(track) -> torch.Tensor:
    mesh = calibrated_mesh(torch.from_numpy(track.mesh[track.has_face]), subject_calibration(track))
    return mesh_label_map(transform_points(alignment_matrices(mesh), mesh))


def test_rasteriser_fills_a_square_exactly():
    square = torch.tensor([[[2.0, 2.0], [6.0, 2.0], [6.0, 6.0], [2.0, 6.0]]])
    mask = rasterize_polygons(square, 8, 8)[0]
    assert mask.sum() == 16 and mask[2:6, 2:6].all()


@needs_media
def test_alignment_puts_eyes_and_mouth_in_place(face_tracks):
    track = face_tracks("liveportrait__d18")
    mesh = torch.from_numpy(track.mesh[track.has_face])
    placed = transform_points(alignment_matrices(mesh), _anchor_points(mesh))
    err = (placed - canonical_anchors()).norm(dim=-1)
    assert err.median() < 6, f"anchors land {err.median():.1f} px from their canonical place"


@needs_media
def test_inner_mouth_area_follows_the_mouth(face_tracks):
    name = "liveportrait__d18"
    track, lab = face_tracks(name), labels(name)
    maps = _label_maps(track)
    area = (maps == ID["mouth"]).sum((1, 2)).numpy()
    frames = np.flatnonzero(track.has_face)
    gap = np.array(lab["scores"]["mouth_gap"])[frames]
    ok = ~np.array(lab["uncertain"]["mouth"])[frames]
    state = np.array(lab["mouth"], dtype=object)[frames]
    closed = area[ok & (state == "closed")]
    wide = area[ok & (state == "open") & (gap >= np.quantile(gap[ok & (state == "open")], 0.5))]
    assert len(closed) > 10 and len(wide) > 10
    assert np.median(wide) >= 5 * max(np.median(closed), 1), (np.median(wide), np.median(closed))


@needs_media
@pytest.mark.parametrize("name", ["liveportrait__d19"])
def test_a_winking_eye_has_under_a_third_of_the_open_eyes_area(face_tracks, name):
    track, lab = face_tracks(name), labels(name)
    maps = _label_maps(track)
    left = (maps == ID["l_eye"]).sum((1, 2)).numpy()
    right = (maps == ID["r_eye"]).sum((1, 2)).numpy()
    unc = lab["uncertain"]
    ratios = []
    for j, i in enumerate(np.flatnonzero(track.has_face)):
        for shut, other, a, b in (("eye_left", "eye_right", left, right), ("eye_right", "eye_left", right, left)):
            if lab[shut][i] == "closed" and lab[other][i] == "open" and not unc[shut][i] and not unc[other][i]:
                ratios.append(a[j] / max(b[j], 1))
    assert len(ratios) >= 5, f"{name}: only {len(ratios)} certain wink frames"
    assert np.median(ratios) < 1 / 3, f"{name}: winking eye keeps {np.median(ratios):.2f} of the open eye's area"
