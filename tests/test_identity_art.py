"""The drawn side of identity: every style's hair, glasses and facial-hair parts, their label windows, how a
look composes (layers in parts.LAYER_ORDER, the hair palette, the framing that makes room for hair), a style
folder without identity parts, and an overlaid avatar's hair hiding real hair on a real photo."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cairosvg
import cv2
import numpy as np
import pytest

from conftest import MEDIA, needs_media
from vidmoji import parts
from vidmoji.avatar.compose import OVERLAY_FACE_COVER, AvatarComposer, _warp, head_pose
from vidmoji.avatar.templates import (
    Look,
    StyleError,
    avatar_view,
    compose_svg,
    load_style,
    render_label_window,
    render_part_layer,
)

STYLES = ("cute", "flat", "line")
SIZE = 256
NEUTRAL = {"face": "oval", "eye_left": "open", "eye_right": "open", "brow_left": "neutral",
           "brow_right": "neutral", "nose": "button", "mouth": "closed"}
CHOICE = tuple(f"{slot}.{NEUTRAL[slot]}" for slot in parts.SLOTS)


def rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])


def lowest_row(window: np.ndarray) -> int:
    return int(np.flatnonzero((window[0] > 0.5).any(1)).max())


def alpha_rows(layer: np.ndarray) -> np.ndarray:
    return np.flatnonzero((layer[..., 3] > 0).any(1))


# --- the parts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STYLES)
def test_every_style_has_the_identity_parts(name):
    style = load_style(name)
    hair = style.parts_in("hair")
    assert len(hair) >= 10
    assert {p.tags[0] for p in hair} == set(parts.HAIR_LENGTHS)
    assert all(len(p.tags) == 2 for p in hair)
    shapes = {p.tags[1] for p in hair}
    assert {"cropped", "side_part", "curly", "afro", "bob", "shoulder", "straight", "wavy", "bun",
            "ponytail"} <= shapes
    assert {"round", "rectangular"} <= {p.state for p in style.parts_in("glasses")}
    assert {p.state for p in style.parts_in("facial_hair")} == set(parts.FACIAL_HAIR) - {"none"}
    palette = dict(style.hair_palette)
    assert set(parts.HAIR_COLOURS) < palette.keys()             # the real colours and the style's own
    assert style.default_hair_colour in palette
    for slot in parts.IDENTITY_SLOTS:
        assert style.placement(slot) == style.placement("face")
    for p in hair:   # two layers in every hair part, the bald one too
        text = p.path.read_text()
        assert text.count('data-layer="back"') == 1 and text.count('data-layer="front"') == 1, p.id


@pytest.mark.parametrize("name", STYLES)
def test_hair_label_windows_tell_the_lengths_apart(name):
    style = load_style(name)
    windows = {p.id: render_label_window(p) for p in style.parts_in("hair")}
    length = {p.id: p.tags[0] for p in style.parts_in("hair")}
    bald = [pid for pid in windows if length[pid] == "bald"]
    assert bald and all(windows[pid].max() == 0 for pid in bald)
    drawn = [pid for pid in windows if length[pid] != "bald"]
    assert all(windows[pid][0].sum() > 20 for pid in drawn)
    for i, a in enumerate(drawn):
        for b in drawn[i + 1:]:
            assert np.abs(windows[a] - windows[b]).sum() > 8, (a, b)
    low = {pid: lowest_row(windows[pid]) for pid in drawn}
    by_length = {n: [low[pid] for pid in drawn if length[pid] == n] for n in ("short", "medium", "long", "tied")}
    # the window's rows: short hair ends above the ears, medium at the jaw or neck, long at the bottom
    assert max(by_length["short"]) < min(by_length["medium"]) < max(by_length["medium"]) < min(by_length["long"])
    assert min(by_length["long"]) >= parts.WINDOW_SIZE - 2
    # tied hair hugs the skull (a ponytail falls on one side): far less hair below the eyes than long hair
    side = {pid: windows[pid][0][parts.WINDOW_SIZE // 2:].sum() for pid in drawn}
    assert max(side[pid] for pid in drawn if length[pid] == "tied") < 0.6 * min(
        side[pid] for pid in drawn if length[pid] == "long")


# --- composing a look -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", STYLES)
def test_a_look_composes_in_layers_with_the_palette(name):
    style = load_style(name)
    look = Look(hair="hair.bob", hair_colour="auburn", glasses="glasses.round")
    view = avatar_view(style, look)
    assert view is not None and view[0] < 0 and view[2] > style.canvas[0]
    composer = AvatarComposer(style, "medium", SIZE, look)
    avatar = composer.avatar(CHOICE).astype(int)

    def layer(part_id: str, part_layer: str = "") -> np.ndarray:
        return render_part_layer(style, style.part(part_id), "medium", SIZE, None, part_layer, "auburn", view)

    face = layer("face.oval")[..., 3] > 0
    back, front = layer("hair.bob", "back"), layer("hair.bob", "front")
    auburn = rgb(dict(style.hair_palette)["auburn"])
    # the back layer shows around the face, in the palette's colour
    around = (back[..., 3] == 255) & ~face
    assert around.sum() > 0.02 * SIZE * SIZE
    assert np.median(np.abs(avatar[around][:, :3] - auburn).sum(1)) < 12
    # the fringe covers the top of the forehead, in the same colour
    forehead = (front[..., 3] == 255) & face
    assert forehead.sum() > 0.005 * SIZE * SIZE
    assert np.median(np.abs(avatar[forehead][:, :3] - auburn).sum(1)) < 12
    # ... and stays above the brows, even raised ones: the expressions always show
    brow_top = min(alpha_rows(layer(f"brow_{side}.raised")).min() for side in ("left", "right"))
    for hair in style.parts_in("hair"):
        rows = alpha_rows(layer(hair.id, "front"))
        assert len(rows) == 0 or rows.max() < brow_top, hair.id
    # eyes and brows are drawn over the hair: where they are opaque, the avatar shows them
    no_glasses = AvatarComposer(style, "medium", SIZE, Look("hair.bob", "auburn")).avatar(CHOICE).astype(int)
    for part_id in ("eye_right.open", "eye_left.open", "brow_left.neutral", "brow_right.neutral"):
        top = layer(part_id)
        solid = top[..., 3] == 255
        assert solid.sum() > 20 and np.abs(no_glasses[solid][:, :3] - top[solid][:, :3]).max() <= 2, part_id
    # the glasses surround both eyes
    glasses = layer("glasses.round")[..., 3] > 0
    gy, gx = np.nonzero(glasses)
    for side in ("left", "right"):
        ey, ex = np.nonzero(layer(f"eye_{side}.open")[..., 3] > 0)
        cy, cx = int(ey.mean()), int(ex.mean())
        ring = glasses[cy - 30:cy + 31, cx - 30:cx + 31]
        assert ring[:, :30].any() and ring[:, 31:].any() and ring[:30].any() and ring[31:].any(), side
    # another colour: the same pixels change to it; a colour by hex works; an unknown one fails in one line
    blond = AvatarComposer(style, "medium", SIZE, Look("hair.bob", "#E2B968", "glasses.round")).avatar(CHOICE)
    assert np.median(np.abs(blond[around][:, :3].astype(int) - rgb("#E2B968")).sum(1)) < 12
    with pytest.raises(StyleError, match="hair colour") as e:
        AvatarComposer(style, "medium", SIZE, Look("hair.bob", "purple-ish"))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("name", STYLES)
def test_the_svg_and_the_cached_layers_agree(name):
    style = load_style(name)
    look = Look("hair.long_wavy", "blond", "glasses.rectangular", "facial_hair.beard")
    png = cairosvg.svg2png(bytestring=compose_svg(style, dict(zip(parts.SLOTS, CHOICE)), "light", None, look).encode(),
                           output_width=SIZE, output_height=SIZE)
    svg = cv2.cvtColor(cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    layers = AvatarComposer(style, "light", SIZE, look).avatar(CHOICE)
    assert np.abs(svg.astype(float) - layers).mean() < 1.5


def test_no_look_is_unchanged_and_an_empty_look_draws_the_same():
    style = load_style("flat")
    choice = dict(zip(parts.SLOTS, CHOICE))
    assert compose_svg(style, choice, "dark") == compose_svg(style, choice, "dark", look=None)
    plain = AvatarComposer(style, "dark", SIZE).avatar(CHOICE).astype(int)
    assert np.abs(AvatarComposer(style, "dark", SIZE, Look()).avatar(CHOICE) - plain).max() <= 2
    bald = AvatarComposer(style, "dark", SIZE, Look(hair="hair.bald", hair_colour="grey"))
    assert np.abs(bald.avatar(CHOICE) - plain).max() <= 2 and bald.face_cover == OVERLAY_FACE_COVER
    assert avatar_view(style, None) is None and avatar_view(style, Look(hair="hair.bald")) is None


def test_a_style_without_identity_parts_loads_and_composes(tmp_path):
    folder = tmp_path / "plain"
    shutil.copytree(load_style("flat").root, folder)
    meta = json.loads((folder / "style.json").read_text())
    meta["parts"] = [p for p in meta["parts"] if p["slot"] in parts.SLOTS]
    for key in ("hair_palette", "default_hair_colour"):
        meta.pop(key)
    meta["placements"] = {s: v for s, v in meta["placements"].items() if s in parts.SLOTS}
    (folder / "style.json").write_text(json.dumps(meta))
    for slot in parts.IDENTITY_SLOTS:
        shutil.rmtree(folder / slot)
    style = load_style(folder)
    assert not any(style.parts_in(slot) for slot in parts.IDENTITY_SLOTS)
    assert style.hair_colour("blond").startswith("#")   # the shared palette stands in
    flat = load_style("flat")
    choice = dict(zip(parts.SLOTS, CHOICE))
    assert compose_svg(style, choice, "medium") == compose_svg(flat, choice, "medium")
    avatar = AvatarComposer(style, "medium", SIZE, Look(hair_colour="blond")).avatar(CHOICE)
    assert np.array_equal(avatar, AvatarComposer(flat, "medium", SIZE).avatar(CHOICE))
    with pytest.raises(StyleError, match="no part 'hair.bob'"):
        AvatarComposer(style, "medium", SIZE, Look(hair="hair.bob"))
    r = subprocess.run([sys.executable, "-m", "vidmoji", "styles", "--templates", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "identity: none" in r.stdout, r.stderr
    r = subprocess.run([sys.executable, "-m", "vidmoji", "styles"], capture_output=True, text=True, timeout=120)
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 3 and all("hair 12, glasses 3, facial_hair 3" in line for line in lines), r.stdout


# --- overlay on a real photo ----------------------------------------------------------------------------


def _person_mask(image: np.ndarray) -> np.ndarray:
    """MediaPipe's selfie segmentation (the .tflite in the wheel the face models came from) run by LiteRT."""
    interpreter_mod = pytest.importorskip("ai_edge_litert.interpreter",
                                          reason="ai-edge-litert (test extra) is not installed")
    wheels = sorted((Path(__file__).resolve().parent.parent / ".cache" / "wheels").glob("mediapipe-*.whl"))
    wheels += sorted(Path("/work/main/.cache/wheels").glob("mediapipe-*.whl"))
    if not wheels:
        pytest.skip("the mediapipe wheel (source of selfie_segmentation.tflite) is not in .cache/wheels")
    with zipfile.ZipFile(wheels[0]) as z:
        model = z.read("mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite")
    interpreter = interpreter_mod.Interpreter(model_content=model)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    x = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255.0
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    return cv2.resize(interpreter.get_tensor(out["index"])[0, ..., 0], image.shape[1::-1]) > 0.5


@needs_media
@pytest.mark.parametrize("photo, hair", [("liveportrait__d9.jpg", "hair.long_straight"),
                                         ("face_recognition__biden.jpg", "hair.side_part")])
def test_overlaid_hair_hides_the_real_hair(photo, hair):
    """On a real photo: the real hair above the face (person minus face oval, above the eyes) is hidden far
    more by an avatar with hair placed with its composer's face_cover than by the bald avatar."""
    import torch

    from vidmoji.pipeline import track_faces

    path = MEDIA / "image" / photo
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    person = _person_mask(image)
    track = track_faces(path, torch.device("cpu"))
    mesh = track.mesh[0]
    oval = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(oval, [mesh[list(parts.FACE_OVAL), :2].round().astype(np.int32)], 1)
    eyes_y = mesh[list(parts.EYE_RIGHT) + list(parts.EYE_LEFT), 1].mean()
    real_hair = person & (oval == 0) & (np.arange(image.shape[0])[:, None] < eyes_y)
    assert real_hair.sum() > 1000
    pose = head_pose(mesh)
    style = load_style("flat")
    covered = {}
    for look in (None, Look(hair, "black")):
        composer = AvatarComposer(style, "light", 512, look)
        alpha = _warp(composer.avatar(CHOICE), pose.centre, composer.face_cover * pose.iod / 512, pose.roll,
                      image.shape[1], image.shape[0])[..., 3] > 128
        covered[look is not None] = (alpha & real_hair).sum() / real_hair.sum()
    assert covered[False] < 0.1 and covered[True] > 0.7, covered


@needs_media
def test_overlay_draws_each_person_in_their_own_look(tmp_path):
    """Obama and Biden on one photo: with --layout overlay the other face (Biden, left of Obama) is measured
    as a person of its own and drawn in his own hair colour (grey in the identity labels), not in the main
    face's look; the hair drawn over his head in the written picture is his."""
    from vidmoji.pipeline import RenderOptions, prepare, render_media

    photo = MEDIA / "image" / "face_recognition__obama_and_biden.jpg"
    labels = json.loads((MEDIA / "labels" / "identity.json").read_text())["subjects"]
    options = RenderOptions(output=tmp_path / "both.png", layout="overlay", device="cpu", show_progress=False)
    prepared = prepare(photo, options)
    track = prepared.track
    main_x = np.nanmean(track.mesh[0][:, 0])
    assert prepared.identity.hair_colour in labels["image/face_recognition__obama"]["hair_colour"]
    # Biden: the largest other face left of the main one
    others = [(m, p) for m, p in zip(track.others[0], track.other_ids[0]) if m[:, 0].mean() < main_x]
    mesh, person = max(others, key=lambda o: np.ptp(o[0][:, 0]))
    identity, look = prepared.others[person]
    assert identity.hair_colour in labels["image/face_recognition__biden"]["hair_colour"], identity
    assert look != prepared.look
    render_media(photo, options)
    out = cv2.cvtColor(cv2.imread(str(tmp_path / "both.png")), cv2.COLOR_BGR2RGB).astype(int)
    # the top of Biden's drawn head: between the brows and one inter-ocular distance above them
    pose = head_pose(mesh)
    x, y = (int(v) for v in pose.centre)
    band = out[max(0, y - int(1.6 * pose.iod)):y - int(0.9 * pose.iod), x - int(0.3 * pose.iod):x + int(0.3 * pose.iod)]
    style = prepared.style

    def share(colour: str) -> float:
        rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
        return float((np.abs(band - rgb).sum(-1) < 30).mean())

    own, main = share(style.hair_colour(identity.hair_colour)), share(style.hair_colour(prepared.identity.hair_colour))
    assert own > 0.15 and main < 0.02, (own, main)
