"""Identity: skin tone, hair, glasses and facial hair measured from real clips and photos and scored against
../shared/media/labels/identity.json (16 public subjects, labelled by eye); persona files; the avatar drawn
with what was measured.

The floors below are the figures measured when the feature was built (see docs/identity.md), so that a
change that makes identity worse fails here. Skin is below the issue's goal of 14 of 16 and within one
step for all: two of the public photos (Obama) are lit so brightly that their skin measures light, and one
(Biden) so dimly that it measures medium; the issue stays open on that.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import MEDIA, needs_media

pytestmark = needs_media

FLOORS = {"skin": 11, "skin_within_one": 12, "hair_length": 13, "hair_colour": 12, "glasses": 16, "facial_hair": 16}


def _subjects() -> dict:
    return json.loads((MEDIA / "labels" / "identity.json").read_text())["subjects"]


def _source(key: str) -> Path:
    folder, stem = key.split("/")
    return next((MEDIA / folder).glob(stem + ".*"))


@pytest.fixture(scope="module")
def measured(face_tracks):
    """key -> Identity for every labelled subject (clips through the session's tracks where they exist)."""
    from vidmoji.identity import measure_identity
    from vidmoji.pipeline import track_faces
    out = {}
    for key in _subjects():
        name = key.split("/")[1]
        track = face_tracks(name) if key.startswith("video/") else track_faces(_source(key), torch.device("cpu"))
        out[key] = measure_identity(track.heads)
    return out


def _score(measured: dict, style_name: str):
    from vidmoji.avatar.index import load_indexes
    from vidmoji.avatar.templates import load_style
    from vidmoji.embed.registry import load_embedder
    from vidmoji.evaluate import identity_agreement
    from vidmoji.identity import choose_hair, identity_timeline

    device = torch.device("cpu")
    style = load_style(style_name)
    embedder = load_embedder("ae", device, None)
    indexes = load_indexes(style, embedder, device)
    shown = {key: identity_timeline(i, choose_hair(i, style, indexes.get("hair"), embedder, device))
             for key, i in measured.items()}
    return identity_agreement(shown, _subjects())


@pytest.mark.parametrize("style_name", ["flat", "line", "cute"])
def test_identity_agrees_with_the_labels(measured, style_name):
    score = _score(measured, style_name)
    short = {k: (score.right[k], floor) for k, floor in FLOORS.items() if score.right[k] < floor}
    assert not short, f"{style_name}: below the floor {short}; misses: {score.misses}"
    assert abs(score.skin_bias) <= 0.5, f"skin bias {score.skin_bias:+.2f} steps"


def test_measures_sit_beside_the_decisions(measured):
    identity = measured["video/liveportrait__d19"]
    m = identity.measured
    assert m["views"] >= 4 and len(m["skin_lab"]) == 3 and m["glasses_line"] > 0
    assert set(m["hair_zones"]) == {"ear", "jaw", "shoulder"}
    assert identity.hair_window is not None and identity.hair_window.shape == (1, 32, 32)
    assert identity.hair_window.max() > 0.5                   # the hair is in its window


def test_sampler_keeps_a_bounded_spread_of_views(face_tracks):
    from vidmoji.identity import SAMPLES, IdentitySampler
    from vidmoji.video import FrameReader
    track = face_tracks("liveportrait__d0")
    with FrameReader(MEDIA / "video" / "liveportrait__d0.mp4", batch_size=1) as reader:
        frame = next(iter(reader)).frames[0]
    sampler = IdentitySampler()
    for i in range(1000):                                    # one face offered 1000 times: memory stays bounded
        sampler.offer(i, frame, track.mesh[0], 0.0)
    assert len(sampler.samples) <= SAMPLES
    indexes = [s.index for s in sampler.samples]
    assert indexes[0] == 0 and indexes[-1] > 500              # spread over the whole run, not its start


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidmoji", *args], capture_output=True, text=True, timeout=900)


def test_identify_writes_a_persona_that_render_keeps(tmp_path):
    persona = tmp_path / "me.json"
    r = run("identify", str(MEDIA / "image" / "liveportrait__d8.jpg"), "-o", str(persona))
    assert r.returncode == 0, r.stderr
    assert str(persona) in r.stdout and "glasses yes" in r.stdout
    assert "too small to see glasses" not in r.stderr
    doc = json.loads(persona.read_text())
    assert doc["format"] == "vidmoji-persona" and doc["glasses"] is True and doc["hair"]["window"] is not None

    timeline = tmp_path / "t.json"
    out = tmp_path / "astro.png"
    # The persona of d8 (glasses, medium hair) on another person's photo: the avatar is d8's.
    r = run("render", str(MEDIA / "image" / "scikit-image__astronaut.png"), "-o", str(out), "--persona",
            str(persona), "--timeline", str(timeline), "--style", "line")
    assert r.returncode == 0, r.stderr
    ident = json.loads(timeline.read_text())["identity"]
    assert ident["glasses"] is True and ident["skin"] == doc["skin"]
    assert ident["hair"]["length"] == doc["hair"]["length"] and ident["hair"]["id"].startswith("hair.")

    # One attribute at a time overrides the persona.
    r = run("render", str(MEDIA / "image" / "scikit-image__astronaut.png"), "-o", str(tmp_path / "b.png"),
            "--persona", str(persona), "--timeline", str(timeline), "--no-glasses", "--hair", "bald",
            "--hair-colour", "auburn", "--facial-hair", "beard", "--skin", "dark")
    assert r.returncode == 0, r.stderr
    ident = json.loads(timeline.read_text())["identity"]
    assert ident["glasses"] is False and ident["hair"]["length"] == "bald" and ident["hair"]["colour"] == "auburn"
    assert ident["facial_hair"] == "beard" and ident["skin"] == "dark"


def test_a_face_too_small_for_glasses_says_so(tmp_path):
    """d8 wears glasses; scaled to a fifth (a face about 45 px wide) their bridge is under a pixel: identify
    says the face is too small rather than silently answering, and the persona records the face's width."""
    import cv2
    small = tmp_path / "d8_small.png"
    image = cv2.imread(str(MEDIA / "image" / "liveportrait__d8.jpg"))
    cv2.imwrite(str(small), cv2.resize(image, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA))
    persona = tmp_path / "small.json"
    r = run("identify", str(small), "-o", str(persona))
    assert r.returncode == 0, r.stderr
    assert "too small to see glasses" in r.stderr and "--glasses" in r.stderr
    width = json.loads(persona.read_text())["measured"]["face_width_px"]
    assert 30 < width < 64, width
    r = run("identify", str(small), "-o", str(tmp_path / "told.json"), "--glasses")    # told: no note
    assert r.returncode == 0 and "too small" not in r.stderr, r.stderr


def test_bad_personas_get_one_line(tmp_path):
    src = str(MEDIA / "image" / "scikit-image__astronaut.png")
    cases = {"corrupt.json": "{not json", "foreign.json": json.dumps({"name": "someone"}),
             "future.json": json.dumps({"format": "vidmoji-persona", "version": 99})}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    for name in [*cases, "missing.json"]:
        r = run("render", src, "-o", str(tmp_path / "x.png"), "--persona", str(tmp_path / name))
        assert r.returncode != 0
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.stderr, r.stderr
        assert not (tmp_path / "x.png").exists()
    r = run("render", src, "-o", str(tmp_path / "x.png"), "--facial-hair", "goatee")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "facial" in r.stderr


def test_the_avatar_wears_what_was_measured(tmp_path):
    """d9's photo (long hair): the avatar has long hair in the measured colour coming down beside its face,
    and none of it when rendered bald."""
    import cv2
    from vidmoji.avatar.templates import load_style
    src = str(MEDIA / "image" / "liveportrait__d9.jpg")
    r = run("render", src, "-o", str(tmp_path / "a.png"), "--timeline", str(tmp_path / "a.json"))
    assert r.returncode == 0, r.stderr
    hair = json.loads((tmp_path / "a.json").read_text())["identity"]["hair"]
    assert hair["length"] == "long"
    r = run("render", src, "-o", str(tmp_path / "b.png"), "--hair", "bald")
    assert r.returncode == 0, r.stderr
    a = cv2.imread(str(tmp_path / "a.png"))[..., ::-1].astype(int)
    b = cv2.imread(str(tmp_path / "b.png"))[..., ::-1].astype(int)
    colour = load_style("flat").hair_colour(hair["colour"])
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    near = lambda img: (np.abs(img - rgb).sum(-1) < 30)   # noqa: E731
    assert near(a).mean() > 0.05 and near(b).mean() < 0.01
    h = a.shape[0]
    assert near(a)[3 * h // 4:].mean() > 0.02              # long hair comes down beside the face
