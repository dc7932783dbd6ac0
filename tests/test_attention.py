"""The attention mesh's lips (vidmoji.face.attention): the graph converted from MediaPipe's
face_landmark_with_attention.tflite, its custom operators, and its lips against MediaPipe's own.

The TFLite interpreter cannot run this model (its three MediaPipe custom operators are not built in), so the
parity check is against what MediaPipe itself measured: the labels in ../shared/media/labels were made with
mediapipe 0.10.21's refined face mesh, and carry its inner-lip gap per frame (`scores.mouth_gap`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import converter, labels, mediapipe_wheel, needs_media
from vidmoji.face import attention
from vidmoji.face.detector import WEIGHTS_DIR
from vidmoji.face.windows import measure


def test_shipped_graph_is_the_converters():
    """weights/face_landmark_attention.pt is what scripts/convert_attention.py makes of the wheel's model."""
    conv = converter("convert_attention")
    wheel = mediapipe_wheel(conv, "face_landmark_with_attention.tflite")
    import zipfile
    with zipfile.ZipFile(wheel) as z:
        spec = conv.convert(z.read(conv.MEMBER))
    shipped = torch.load(WEIGHTS_DIR / attention.WEIGHTS, weights_only=True)
    def plain(ops):
        return [(kind, list(ins), list(outs), dict(opts)) for kind, ins, outs, opts in ops]
    assert plain(spec["ops"]) == plain(shipped["ops"])
    assert spec["refine"] == shipped["refine"] and spec["outputs"] == shipped["outputs"]
    assert spec["consts"].keys() == shipped["consts"].keys()
    for key, value in spec["consts"].items():
        assert torch.equal(value, shipped["consts"][key]), key
    assert len(spec["refine"]["lips"]) == attention.LIPS and len(spec["refine"]["eye_a"]) == attention.EYE


def test_crop_matrix_frames_the_turned_subset():
    """`landmarks_to_matrix` maps the crop's corners onto the subset's bounding box in its own turned frame,
    scale_x/scale_y times as large, and `transform_landmarks` applies it."""
    angle = math.radians(30)
    u = torch.tensor([math.cos(angle), math.sin(angle)])
    v = torch.tensor([-math.sin(angle), math.cos(angle)])
    centre = torch.tensor([20.0, 24.0])
    # A 10 x 4 rectangle turned by 30 degrees: its left and right middles are the rotation points.
    corners = [centre + a * 5 * u + b * 2 * v for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    points = torch.stack([centre - 5 * u, centre + 5 * u, *corners])[None]                   # (1, 6, 2)
    opts = {"left_rotation_idx": 0, "right_rotation_idx": 1, "subset_idxs": [0, 1, 2, 3, 4, 5],
            "output_width": 16, "output_height": 16, "scale_x": 1.5, "scale_y": 1.5}
    m = attention.landmarks_to_matrix(points, opts)
    out = attention.transform_landmarks(torch.tensor([[[0.0, 0.0], [16.0, 16.0], [8.0, 8.0]]]), m)[0]
    torch.testing.assert_close(out[2], centre, atol=1e-4, rtol=0)
    torch.testing.assert_close(out[0], centre - 1.5 * (5 * u + 2 * v), atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1], centre + 1.5 * (5 * u + 2 * v), atol=1e-4, rtol=0)


def test_transform_tensor_samples_pixel_centres_and_zeroes_outside():
    """`TransformTensorBilinear` v2: output pixel (x, y) reads the input at matrix (x + 0.5, y + 0.5) - 0.5,
    bilinearly, and zero where that falls outside the feature map."""
    features = torch.arange(2 * 6 * 6, dtype=torch.float32).reshape(1, 2, 6, 6)
    shift = torch.eye(4)[None].clone()
    shift[0, 0, 3], shift[0, 1, 3] = 1.0, 2.0                       # read (x + 1, y + 2)
    out = attention.transform_tensor(features, shift, {"output_height": 4, "output_width": 6})
    torch.testing.assert_close(out[..., :5], features[..., 2:6, 1:6])    # up to the last column, x + 1 = 5
    assert torch.all(out[..., 5] == 0)                                  # x + 1 = 6: outside
    half = torch.eye(4)[None].clone()
    half[0, 0, 3] = 0.5
    out = attention.transform_tensor(features, half, {"output_height": 2, "output_width": 2})
    torch.testing.assert_close(out[0, 0, 0, 0], (features[0, 0, 0, 0] + features[0, 0, 0, 1]) / 2)


@needs_media
@pytest.mark.parametrize("name", ("liveportrait__d3", "liveportrait__d14", "liveportrait__d19"))
def test_lip_gap_follows_mediapipes(face_tracks, name):
    """The mesh's inner-lip gap, over every frame of the clip, against the one MediaPipe's refined mesh
    measured for the labels: correlation at least 0.98 (measured 0.999, 0.999, 0.988; the plain mesh's lips,
    used before, 0.975, 0.947, 0.914: shut lips 0.01-0.03 of the inter-ocular distance apart)."""
    track = face_tracks(name)
    lab = labels(name)
    present = np.flatnonzero(track.has_face)
    theirs = np.array([lab["scores"]["mouth_gap"][i] if i < len(lab["scores"]["mouth_gap"]) else None
                       for i in present], dtype=float)
    ours = measure(torch.from_numpy(track.mesh[present]).float())["lip_gap"].numpy()
    ok = ~np.isnan(theirs)
    assert ok.sum() > 100
    r = float(np.corrcoef(ours[ok], theirs[ok])[0, 1])
    assert r >= 0.98, f"{name}: correlation {r:.3f}"
