"""Avatar templates: every style loads, every part renders, label maps hold the declared classes on the shared
scale, and stored fingerprints catch any change in the art (VIDMOJI_UPDATE_SNAPSHOTS=1 rewrites them)."""

from __future__ import annotations

import json
import os
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import cairosvg
import cv2
import numpy as np
import pytest

from vidmoji import parts
from vidmoji.avatar.compose import AvatarComposer
from vidmoji.avatar.templates import _rasterise as templates_rasterise
from vidmoji.avatar.templates import _svg_bytes as svg_bytes
from vidmoji.avatar.templates import (
    Look,
    StyleError,
    avatar_view,
    compose_svg,
    has_pupils,
    label_map,
    list_styles,
    load_style,
    render_label_window,
    render_part_layer,
    render_rgba,
    window_frame,
)

STYLES = ("cute", "flat", "line")
SNAPSHOTS = Path(__file__).resolve().parent / "snapshots" / "templates.json"
UPDATE = os.environ.get("VIDMOJI_UPDATE_SNAPSHOTS") == "1"
EYE_STATES = ("open", "wide", "half", "closed")
MOUTH_STATES = ("closed", "slightly_open", "open", "wide_open", "round", "smile", "smile_open", "frown",
                "pout", "smirk")
BROW_STATES = ("neutral", "raised", "lowered")
MIN_PARTS = {"eye_left": 8, "eye_right": 8, "mouth": 10, "brow_left": 5, "brow_right": 5, "face": 5, "nose": 3}


def by_state(style, slot: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for p in style.parts_in(slot):
        out.setdefault(p.state, []).append(p)
    return out


def channel_area(style, slot: str, state: str, channel: str) -> float:
    """Mean label area (window pixels) of one channel over the parts of a state."""
    c = parts.SLOT_CHANNELS[slot].index(channel)
    return float(np.mean([render_label_window(p)[c].sum() for p in by_state(style, slot)[state]]))


def centroid_y(window: np.ndarray) -> float:
    ys = np.arange(window.shape[-2], dtype=np.float64)[:, None]
    return float((window * ys).sum() / window.sum())


# --- loading ----------------------------------------------------------------------------------------------


def test_the_three_styles_are_listed():
    assert list_styles() == list(STYLES)


def test_unknown_style_names_the_available_ones():
    with pytest.raises(StyleError) as e:
        load_style("nope")
    message = str(e.value)
    assert "\n" not in message and "nope" in message
    assert all(name in message for name in STYLES)


@pytest.mark.parametrize("name", STYLES)
def test_style_metadata(name):
    style = load_style(name)
    assert style.name == name and style.licence == "CC0-1.0" and style.author == "vidmoji contributors"
    assert style.canvas == (512, 512)
    assert dict(style.placements).keys() == set(parts.ALL_SLOTS)
    palette = dict(style.palette)
    assert len(palette) >= 6 and style.default_skin in palette
    assert {"light", "medium-light", "medium", "medium-dark", "dark"} <= palette.keys()
    for slot, n in MIN_PARTS.items():
        assert len(style.parts_in(slot)) >= n, slot
    # Left eyes and brows are the right ones mirrored: the same states under the same names.
    for side in ("eye", "brow"):
        names = {s: {p.id.split(".", 1)[1] for p in style.parts_in(f"{side}_{s}")} for s in ("left", "right")}
        assert names["left"] == names["right"]
    assert set(by_state(style, "eye_right")) == set(EYE_STATES)
    assert set(by_state(style, "brow_right")) == set(BROW_STATES)
    assert set(by_state(style, "mouth")) == set(MOUTH_STATES)


@pytest.mark.parametrize("name", STYLES)
def test_parts_are_drawn_in_their_window_with_known_classes(name):
    for p in load_style(name).parts:
        root = ET.fromstring(p.path.read_bytes())
        w = window_frame(p.slot)
        box = [float(v) for v in root.get("viewBox").split()]
        assert box == [w.cx - w.half, w.cy - w.half, 2 * w.half, 2 * w.half], p.id
        allowed = set(parts.SLOT_CHANNELS[p.slot]) | {"deco"}
        for e in root.iter():
            tag = e.tag.rsplit("}", 1)[-1]
            if tag in ("path", "circle", "ellipse", "rect", "polygon", "polyline", "line"):
                in_clip = e in {c for cp in root.iter("{http://www.w3.org/2000/svg}clipPath") for c in cp}
                assert in_clip or e.get("class") in allowed, (p.id, tag, e.get("class"))
        assert p.classes or p.state == "bald", p.id   # a bald head is a hair part that draws nothing


# --- rendering --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STYLES)
def test_every_part_renders_with_the_classes_it_declares(name):
    for p in load_style(name).parts:
        rgba = render_rgba(p, 64)
        assert rgba.shape == (64, 64, 4) and rgba.dtype == np.uint8 and (rgba[..., 3].any() or p.state == "bald"), p.id
        window = render_label_window(p)
        channels = parts.SLOT_CHANNELS[p.slot]
        assert window.shape == (len(channels), parts.WINDOW_SIZE, parts.WINDOW_SIZE)
        assert window.dtype == np.float32 and window.min() >= 0 and window.max() <= 1
        for i, cls in enumerate(channels):
            assert (window[i].sum() > 0) == (cls in p.classes), (p.id, cls)
        labels = label_map(p, 128)
        assert set(np.unique(labels)) - {0} == {parts.LABEL_IDS[c] for c in p.classes}, p.id
        # Parts fit inside their window: no class touches its border (long hair runs out at the bottom).
        bottom = [] if p.slot == "hair" else [-1]
        assert not labels[[0, *bottom], :].any() and not labels[:, [0, -1]].any(), p.id


def test_renders_are_cached():
    p = load_style("flat").parts[0]
    assert render_rgba(p, 48) is render_rgba(p, 48)
    style = load_style("flat")
    assert render_part_layer(style, p, "dark", 64) is render_part_layer(style, p, "dark", 64)


@pytest.mark.parametrize("name", STYLES)
def test_left_parts_mirror_right_parts(name):
    style = load_style(name)
    for side in ("eye", "brow"):
        for right in style.parts_in(f"{side}_right"):
            left = style.part(right.id.replace("_right.", "_left.", 1))
            diff = np.abs(render_label_window(left)[:, :, ::-1] - render_label_window(right)).max()
            assert diff < 0.02, (left.id, diff)


# --- the shared scale -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STYLES)
def test_states_are_ordered_on_the_shared_scale(name):
    style = load_style(name)
    eye = {s: channel_area(style, "eye_right", s, "r_eye") for s in EYE_STATES}
    assert eye["wide"] > eye["open"] > eye["half"] > eye["closed"] > 0
    inner = {s: channel_area(style, "mouth", s, "mouth") for s in ("closed", "slightly_open", "open", "wide_open")}
    assert inner["closed"] == 0 < inner["slightly_open"] < inner["open"] < inner["wide_open"]
    brow_y = {s: np.mean([centroid_y(render_label_window(p)[0]) for p in ps])
              for s, ps in by_state(style, "brow_right").items()}
    assert brow_y["raised"] < brow_y["neutral"] < brow_y["lowered"]


def test_a_state_looks_alike_in_every_style():
    """The same state's label window overlaps across styles far more than different states do."""
    def window(style: str, part_id: str) -> np.ndarray:
        return render_label_window(load_style(style).part(part_id))

    def iou(a: np.ndarray, b: np.ndarray) -> float:
        a, b = a > 0.5, b > 0.5
        return (a & b).sum() / max(1, (a | b).sum())

    for part_id in ("eye_right.open", "eye_right.half", "mouth.open", "mouth.smile", "brow_right.raised",
                    "face.oval"):
        for other in ("line", "cute"):
            assert iou(window("flat", part_id), window(other, part_id)) > 0.75, (part_id, other)
    assert iou(window("flat", "eye_right.open"), window("flat", "eye_right.half")) < 0.6


@pytest.mark.parametrize("name", STYLES)
def test_features_sit_inside_every_face_shape(name):
    style = load_style(name)
    size = 128
    for face in style.parts_in("face"):
        skin = render_part_layer(style, face, style.default_skin, size)[..., 3] > 0
        for p in style.parts:
            if p.slot not in parts.SLOTS or p.slot == "face":   # hair, glasses, beards reach past the face
                continue
            alpha = render_part_layer(style, p, style.default_skin, size)[..., 3] > 0
            outside = (alpha & ~skin).sum() / alpha.sum()
            assert outside < 0.01, (face.id, p.id, outside)


# --- composing ------------------------------------------------------------------------------------------


def random_choice(style, seed: str) -> dict[str, str]:
    rng = random.Random(seed)
    return {slot: rng.choice(style.parts_in(slot)).id for slot in parts.SLOTS}


def rasterise(svg: str, size: int) -> np.ndarray:
    png = cairosvg.svg2png(bytestring=svg.encode(), output_width=size, output_height=size)
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)


def blend(layers: list[np.ndarray]) -> np.ndarray:
    """Alpha-blend straight-alpha RGBA layers, first at the bottom."""
    rgb = np.zeros(layers[0].shape[:2] + (3,))
    alpha = np.zeros(layers[0].shape[:2] + (1,))
    for layer in layers:
        a = layer[..., 3:] / 255.0
        rgb = layer[..., :3] * a + rgb * (1 - a)
        alpha = a + alpha * (1 - a)
    return np.concatenate([rgb, alpha * 255], -1)


@pytest.mark.parametrize("name", STYLES)
def test_layers_compose_to_the_avatar_and_skin_is_swapped(name):
    style = load_style(name)
    choice = random_choice(style, name)
    size = 128
    avatar = rasterise(compose_svg(style, choice, "dark"), size).astype(np.float64)
    layers = [render_part_layer(style, style.part(choice[s]), "dark", size) for s in parts.SLOTS]
    assert np.abs(blend(layers) - avatar).mean() < 1.5
    face = style.part(choice["face"])
    anchor = style.placement("face")
    x, y = (round(v * size / style.canvas[0]) for v in (anchor.x, anchor.y + 20))  # cheek, clear of features
    dark = dict(style.palette)["dark"]
    expected = [int(dark[i:i + 2], 16) for i in (1, 3, 5)]
    assert np.abs(render_part_layer(style, face, "dark", size)[y, x, :3].astype(int) - expected).max() <= 2
    with pytest.raises(StyleError):
        compose_svg(style, choice, "no-such-skin")


@pytest.mark.parametrize("name", STYLES)
def test_the_rasteriser_gives_the_pngs_pixels(name):
    """`_rasterise` reads cairo's surface straight (no PNG): its pixels are exactly those of cairosvg's PNG,
    un-premultiplied alike, at every alpha an anti-aliased edge has."""
    style = load_style(name)
    for p in [style.parts[0], *[q for q in style.parts if has_pupils(q)][:2], style.parts[-1]]:
        data = svg_bytes(p.path)
        png = cv2.imdecode(np.frombuffer(cairosvg.svg2png(bytestring=data, output_width=150, output_height=150),
                                         np.uint8), cv2.IMREAD_UNCHANGED)
        reference = cv2.cvtColor(png, cv2.COLOR_BGRA2RGBA)
        ours = templates_rasterise(data, 150, 150)
        assert 0 < (ours[..., 3] % 255).astype(bool).sum(), "no anti-aliased edge to compare"
        np.testing.assert_array_equal(ours, reference, err_msg=p.id)


@pytest.mark.parametrize("name", STYLES)
def test_a_moved_pupil_is_composed_in_its_eye_and_matches_cairo(name):
    """AvatarComposer composes an eye looking elsewhere from its pupil sprites (the pieces under and over the
    pupils, their clip, the pupils drawn unclipped) in the box of the eye looking ahead: the layer matches
    the part drawn by cairo with its pupils moved, on the whole canvas, for looks to the far corners and a
    sub-pixel one, with and without hair. Compared premultiplied over the drawn pixels: a pupil one pixel off,
    or blurred by moving it at the output's resolution, was 3-4 levels off on average there."""
    style = load_style(name)
    hair = next(p.id for p in style.parts if p.slot == "hair" and p.state != "bald")
    for look in (None, Look(hair=hair)):
        composer = AvatarComposer(style, "dark", 256, look)
        for p in [q for q in style.parts if has_pupils(q)][::3]:
            for gaze in ((1.0, 1.0), (-1.0, -1.0), (0.35, -0.6), (0.05, 0.0)):
                whole = render_part_layer(style, p, "dark", 256, gaze, "", None, avatar_view(style, look))
                cut, box = composer._layer(p.id, gaze, "")
                assert cut.shape[0] * cut.shape[1] < 0.2 * whole.shape[0] * whole.shape[1]
                drawn = np.zeros_like(whole)
                drawn[box] = cut
                ours, cairo = (a.astype(np.float32) for a in (drawn, whole))
                for a in (ours, cairo):
                    a[..., :3] *= a[..., 3:] / 255.0
                where = (ours[..., 3] > 0) | (cairo[..., 3] > 0)
                diff = np.abs(ours - cairo)[where]
                # Anti-aliased edges differ a little (cairo's clip coverage, the sprite averaged down).
                assert diff.mean() < 1.5 and np.percentile(diff.max(1), 99) < 32, f"{p.id} {gaze} {look}"


@pytest.mark.parametrize("name", STYLES)
def test_a_new_gaze_blends_only_the_eyes_again_with_the_same_pixels(name):
    """An avatar looking somewhere new is the avatar looking ahead with only its eyes' box blended again:
    pixel for pixel what blending every layer over the whole canvas gives, with and without a look (hair and
    glasses over the eyes), and it differs from the avatar looking ahead (the pupils moved)."""
    style = load_style(name)
    hair = next(p.id for p in style.parts if p.slot == "hair" and p.state != "bald")
    glasses = next(p.id for p in style.parts if p.slot == "glasses")
    rng = random.Random(name)
    for look in (None, Look(hair=hair, glasses=glasses)):
        composer = AvatarComposer(style, "dark", 192, look)
        for _ in range(3):
            choice = tuple(rng.choice([p.id for p in style.parts if p.slot == s and has_pupils(p)]
                                      or [p.id for p in style.parts if p.slot == s]) for s in parts.SLOTS)
            gaze = (rng.choice([-0.8, -0.3, 0.45, 0.9]), rng.choice([-0.6, 0.25, 0.7]))
            fast = composer._avatar(choice, gaze)
            assert composer._gaze_region(choice) is not None
            whole = AvatarComposer(style, "dark", 192, look)
            whole._gaze_region = lambda _choice: None                # blend every layer on the whole canvas
            np.testing.assert_array_equal(fast, whole._avatar(choice, gaze))
            assert (fast != composer._avatar(choice, (0.0, 0.0))).any()


# --- snapshots --------------------------------------------------------------------------------------------


def hexbytes(a: np.ndarray) -> str:
    return np.clip(np.rint(a), 0, 255).astype(np.uint8).tobytes().hex()


def fingerprint_part(p) -> dict[str, str]:
    """8x8 area averages of the label window (per channel) and of the picture (alpha-premultiplied RGBA)."""
    window = render_label_window(p)
    label = np.stack([cv2.resize(c, (8, 8), interpolation=cv2.INTER_AREA) for c in window]) * 255
    rgba = render_rgba(p, 64).astype(np.float32)
    rgba[..., :3] *= rgba[..., 3:] / 255.0
    return {"label": hexbytes(label), "rgba": hexbytes(cv2.resize(rgba, (8, 8), interpolation=cv2.INTER_AREA))}


def fingerprint_avatar(style, seed: str) -> dict[str, str]:
    rgba = rasterise(compose_svg(style, random_choice(style, seed), style.default_skin), 64).astype(np.float32)
    rgba[..., :3] *= rgba[..., 3:] / 255.0
    return {"rgba": hexbytes(cv2.resize(rgba, (8, 8), interpolation=cv2.INTER_AREA))}


def fingerprints() -> dict[str, dict[str, str]]:
    out = {}
    for name in STYLES:
        style = load_style(name)
        for p in style.parts:
            out[f"{name}/{p.id}"] = fingerprint_part(p)
        for seed in range(3):  # fixed seeds per style, as avatars
            out[f"{name}/avatar-{seed}"] = fingerprint_avatar(style, f"{name}-{seed}")
    return out


def test_snapshots():
    current = fingerprints()
    if UPDATE:
        SNAPSHOTS.parent.mkdir(parents=True, exist_ok=True)
        rows = ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(current.items()))
        SNAPSHOTS.write_text("{\n" + rows + "\n}\n")
    stored = json.loads(SNAPSHOTS.read_text())
    hint = "rerun with VIDMOJI_UPDATE_SNAPSHOTS=1 if the change is intended"
    assert stored.keys() == current.keys(), f"parts added or removed; {hint}"
    # Small tolerances: cairo versions anti-alias slightly differently; a changed drawing moves far more.
    tolerance = {"label": 8, "rgba": 12}
    changed = []
    for key, prints in current.items():
        for kind, value in prints.items():
            a = np.frombuffer(bytes.fromhex(value), np.uint8).astype(int)
            b = np.frombuffer(bytes.fromhex(stored[key][kind]), np.uint8).astype(int)
            if a.shape != b.shape or np.abs(a - b).max() > tolerance[kind]:
                changed.append(f"{key}:{kind}")
    assert not changed, f"templates changed: {', '.join(changed[:10])}; {hint}"
