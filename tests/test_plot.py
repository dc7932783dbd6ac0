"""The drawing leaf on synthetic embeddings and images: shapes, determinism, the pink/purple colours where
the graphs are, "no face" frames, the embedding-change measure and the summary picture."""

from __future__ import annotations

import numpy as np
import pytest

from vidmoji.plot import FACE_COLOR, PART_COLOR, EmbeddingFigure, embedding_change, summary_figure

SLOTS = ("eye_left", "eye_right", "brow_left", "mouth")
W, H = 640, 360   # small frames keep the tests fast; the layout is the same at any size


def rgb(hex_color: str) -> np.ndarray:
    return np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)])


def count_near(image: np.ndarray, hex_color: str, tol: int = 20) -> int:
    """Pixels within `tol` of the colour in every channel."""
    return int((np.abs(image.astype(int) - rgb(hex_color)) <= tol).all(axis=-1).sum())


def frame_args(rng: np.random.Generator, embedders=("ae",), dims=None, face_present=True):
    dims = dims or {e: 16 for e in embedders}
    face = {e: {s: rng.normal(0, 0.3, dims[e]).astype(np.float32) if face_present else None for s in SLOTS}
            for e in embedders}
    part = {e: {s: rng.normal(0, 0.3, dims[e]).astype(np.float32) if face_present else None for s in SLOTS}
            for e in embedders}
    sims = {e: {s: float(rng.uniform(0.5, 1.0)) if face_present else float("nan") for s in SLOTS}
            for e in embedders}
    labels = {e: {s: f"{s}_open_0{i} [open, round]" if face_present else "" for i, s in enumerate(SLOTS)}
              for e in embedders}
    crop = np.full((306, 306, 3), 40, np.uint8)
    crop[120:140, 90:130] = (0, 204, 102)          # an eye's label colour
    avatar = np.full((400, 300, 3), 230, np.uint8)  # not square: letterboxed
    return face, part, sims, labels, crop, avatar


def make_figure(embedders=("ae",), dims=None, **kwargs) -> EmbeddingFigure:
    dims = dims or {e: 16 for e in embedders}
    return EmbeddingFigure(SLOTS, embedders, {e: {s: dims[e] for s in SLOTS} for e in embedders},
                           W, H, **kwargs)


def test_draw_shape_dtype():
    img = make_figure().draw(*frame_args(np.random.default_rng(0)), caption="frame 0  t=0.00 s")
    assert img.shape == (H, W, 3) and img.dtype == np.uint8


def test_default_size_is_1280x720():
    fig = EmbeddingFigure(SLOTS, ("ae",), {"ae": {s: 16 for s in SLOTS}})
    assert fig.draw(*frame_args(np.random.default_rng(0))).shape == (720, 1280, 3)


def test_different_data_different_image_same_data_same_image():
    fig = make_figure()
    a_args = frame_args(np.random.default_rng(1))
    b_args = frame_args(np.random.default_rng(2))
    a1 = fig.draw(*a_args, caption="frame 1")
    b = fig.draw(*b_args, caption="frame 2")
    a2 = fig.draw(*a_args, caption="frame 1")
    assert (a1 != b).any()
    np.testing.assert_array_equal(a1, a2)


def test_blit_matches_full_redraw():
    args = frame_args(np.random.default_rng(3), ("ae", "resnet50"), {"ae": 16, "resnet50": 2048})
    kwargs = dict(embedders=("ae", "resnet50"), dims={"ae": 16, "resnet50": 2048},
                  ylim={e: {s: 2.0 for s in SLOTS} for e in ("ae", "resnet50")})
    blit = make_figure(**kwargs).draw(*args, caption="frame 3")
    full = make_figure(blit=False, **kwargs).draw(*args, caption="frame 3")
    np.testing.assert_array_equal(blit, full)


def test_pink_and_purple_appear_in_the_panels():
    fig = make_figure()
    img = fig.draw(*frame_args(np.random.default_rng(4)))
    # Both colours in the panels, none in the image column (its squares start at x = _image_boxes[0][0]).
    image_x = fig._image_boxes[0][0]
    panels, images = img[:, :image_x], img[:, image_x:]
    assert count_near(panels, FACE_COLOR) > 50
    assert count_near(panels, PART_COLOR) > 50
    assert count_near(images, FACE_COLOR) == 0


def test_no_face_frame_has_no_pink():
    fig = make_figure()
    fig.draw(*frame_args(np.random.default_rng(5)))   # a face frame first: nothing of it may remain
    face, part, sims, labels, _, avatar = frame_args(np.random.default_rng(6), face_present=False)
    img = fig.draw(face, part, sims, labels, None, avatar, caption="no face")
    assert img.shape == (H, W, 3)
    assert count_near(img, FACE_COLOR) == 0
    assert count_near(img, PART_COLOR) == 0


def test_large_dims_are_projected_and_drawn():
    dims = {"resnet50": 2048}
    fig = make_figure(("resnet50",), dims)
    img = fig.draw(*frame_args(np.random.default_rng(7), ("resnet50",), dims))
    assert count_near(img, FACE_COLOR) > 50


def test_wrong_embedding_shape_is_an_error():
    face, part, sims, labels, crop, avatar = frame_args(np.random.default_rng(8))
    face["ae"]["mouth"] = np.zeros(15, np.float32)
    with pytest.raises(ValueError, match="shape"):
        make_figure().draw(face, part, sims, labels, crop, avatar)


def test_ylim_grows_to_fit_and_stays():
    fig = make_figure()
    rng = np.random.default_rng(9)
    face, part, sims, labels, crop, avatar = frame_args(rng)
    fig.draw(face, part, sims, labels, crop, avatar)
    small = fig._panels["ae"]["mouth"].half_range
    face["ae"]["mouth"] = face["ae"]["mouth"] * 10
    fig.draw(face, part, sims, labels, crop, avatar)
    big = fig._panels["ae"]["mouth"].half_range
    assert big > small and big >= np.abs(face["ae"]["mouth"]).max()
    face["ae"]["mouth"] = face["ae"]["mouth"] / 10
    fig.draw(face, part, sims, labels, crop, avatar)
    assert fig._panels["ae"]["mouth"].half_range == big


def test_embedding_change_known_vectors():
    e = np.array([
        [1.0, 0.0, 0.0],
        [2.0, 0.0, 0.0],       # same direction: 0
        [0.0, 3.0, 0.0],       # orthogonal: 1
        [0.0, -1.0, 0.0],      # opposite: 2
        [np.nan] * 3,          # no face
        [0.0, 1.0, 0.0],       # previous is NaN
        [0.0, 1.0, 0.0],
    ], dtype=np.float32)
    c = embedding_change(e)
    assert c.shape == (7,)
    assert np.isnan(c[0]) and np.isnan(c[4]) and np.isnan(c[5])
    np.testing.assert_allclose(c[[1, 2, 3, 6]], [0.0, 1.0, 2.0, 0.0], atol=1e-6)


def test_embedding_change_edge_cases():
    assert np.isnan(embedding_change(np.ones((1, 4)))).all()
    assert np.isnan(embedding_change(np.array([[0.0, 0.0], [1.0, 0.0]]))[1])   # zero vector: no direction
    with pytest.raises(ValueError):
        embedding_change(np.ones(4))


def test_summary_figure_shape():
    rng = np.random.default_rng(10)
    t = np.arange(90) / 30.0
    emb = {e: {s: rng.normal(size=(90, 8)) for s in SLOTS} for e in ("ae", "resnet50")}
    emb["ae"]["mouth"][30:40] = np.nan
    sims = {e: {s: rng.uniform(0.5, 1.0, 90) for s in SLOTS} for e in emb}
    change = {e: {s: embedding_change(emb[e][s]) for s in SLOTS} for e in emb}
    img = summary_figure(t, sims, change, 800, 450)
    assert img.shape == (450, 800, 3) and img.dtype == np.uint8
    assert (img != 255).any()
