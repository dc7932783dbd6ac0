"""`vidmoji render` end to end on the real clips: timing, audio, agreement with the labels, stillness,
hard clips, still images and errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import LABELLED, MEDIA, clip, labels, needs_media
from vidmoji.evaluate import still_stretches, timeline_agreement
from vidmoji.pipeline import RenderOptions, render_media
from vidmoji.smooth import count_switches

pytestmark = needs_media


def _stream_times(path: Path) -> tuple[np.ndarray, bool]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pts = np.array(sorted(float(f.pts * f.time_base) for f in c.decode(v)))
        return pts, any(s.type == "audio" for s in c.streams)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """name -> (output video, timeline dict, RenderResult), each labelled clip rendered once."""
    out = tmp_path_factory.mktemp("render")
    cache = {}

    def get(name: str):
        if name not in cache:
            video, tl = out / f"{name}_avatar.mp4", out / f"{name}.json"
            result = render_media(clip(name), RenderOptions(output=video, timeline=tl, device="cpu",
                                                            show_progress=False))
            cache[name] = (video, json.loads(tl.read_text()), result)
        return cache[name]
    return get


@pytest.mark.parametrize("name", ["liveportrait__d18", "liveportrait__d0"])
def test_timestamps_duration_and_audio(rendered, name):
    video, _, _ = rendered(name)
    src_pts, src_audio = _stream_times(clip(name))
    out_pts, out_audio = _stream_times(video)
    assert len(out_pts) == len(src_pts)
    frame = np.median(np.diff(src_pts))
    assert np.abs(out_pts - src_pts).max() < 0.5 * frame
    assert abs((out_pts[-1] - out_pts[0]) - (src_pts[-1] - src_pts[0])) < frame
    assert out_audio == src_audio


@pytest.mark.parametrize("name", LABELLED)
def test_timeline_agrees_with_labels(rendered, name):
    _, tl, _ = rendered(name)
    scores = timeline_agreement(tl, labels(name))
    for slot, a in scores.items():
        assert a.frames > 0
        assert a.accuracy >= 0.9, f"{name} {slot}: {a.accuracy:.3f} agreement, confusion {a.confusion}"


@pytest.mark.parametrize("name", LABELLED)
def test_still_stretches_do_not_flicker(rendered, name):
    """Part switches per second (the summary's measure: switches per slot, averaged over the slots) on
    stretches of at least a second where no label changes, 0.2 s trimmed off each end because the labels'
    thresholds and the avatar's parts need not flip on the same frame."""
    _, tl, _ = rendered(name)
    lab = labels(name)
    trim = int(round(0.2 * lab["fps"]))
    spans = [(a + trim, b - trim) for a, b in still_stretches(lab, int(lab["fps"]) + 2 * trim)]
    if not spans:
        pytest.skip(f"{name}: the labels change within every second (no still stretch to measure)")
    t = np.array([f["t"] for f in tl["frames"]])
    slots = list(tl["frames"][spans[0][0]]["parts"])
    switches = seconds = 0.0
    for a, b in spans:
        for slot in slots:
            ids = [tl["frames"][i]["parts"][slot]["id"] for i in range(a, b + 1)]
            switches += sum(x != y for x, y in zip(ids, ids[1:]))
        seconds += (t[b] - t[a]) * len(slots)
    assert switches / seconds < 0.5, f"{name}: {switches:.0f} switches in {seconds:.1f} part-seconds"


def test_summary_switch_rate_matches_the_timeline(rendered):
    _, tl, result = rendered("liveportrait__d18")
    t = np.array([f["t"] for f in tl["frames"]])
    rates = []
    for slot in ("face", "eye_left", "eye_right", "brow_left", "brow_right", "nose", "mouth"):
        ids = [f["parts"][slot]["id"] for f in tl["frames"]]
        rates.append(sum(a != b for a, b in zip(ids, ids[1:])) / (t[-1] - t[0]))
    assert result.frames == len(tl["frames"])
    assert result.switches_per_s == pytest.approx(np.mean(rates), rel=0.05, abs=0.01)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidmoji", *args], capture_output=True, text=True, timeout=600)


def test_no_face_clip_is_an_error_and_writes_nothing(tmp_path):
    src = MEDIA / "video" / "dlib__MOT20-05-raw_even_shorter.mp4"
    out = tmp_path / "crowd.mp4"
    r = _cli("render", str(src), "-o", str(out), "--device", "cpu")
    # The detector sees a face-like pattern in one of its 127 frames: too few to be a face to follow.
    assert _one_line_error(r).startswith(f"error: no face found in {src}")
    assert r.returncode == 1 and not list(tmp_path.iterdir())


def test_scene_cuts_give_a_valid_video(tmp_path):
    out = tmp_path / "hamilton.mp4"
    r = _cli("render", str(clip("face_recognition__short_hamilton_clip")), "-o", str(out), "--device", "cpu",
             "--layout", "overlay")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    src, src_audio = _stream_times(clip("face_recognition__short_hamilton_clip"))
    pts, audio = _stream_times(out)
    assert len(pts) == len(src) and audio == src_audio


def test_still_image_gives_png_and_svg(tmp_path):
    photo = tmp_path / "astronaut.png"
    photo.write_bytes((MEDIA / "image" / "scikit-image__astronaut.png").read_bytes())
    r = _cli("render", str(photo), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    png, svg = tmp_path / "astronaut_avatar.png", tmp_path / "astronaut_avatar.svg"
    assert png.stat().st_size > 1000 and svg.read_text().lstrip().startswith("<")
    assert str(png) in r.stdout


def _has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def _one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0] and "Traceback" not in r.stderr, r.stderr
    return errors[0]


def test_bad_inputs_give_one_line_errors(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(clip("liveportrait__d0").read_bytes()[:20_000])
    for bad in (garbage, truncated, tmp_path / "missing.mp4"):
        assert str(bad.name) in _one_line_error(_cli("render", str(bad), "--device", "cpu"))
    msg = _one_line_error(_cli("render", str(clip("liveportrait__d0")), "--style", "nope", "--device", "cpu"))
    assert "flat" in msg
    _one_line_error(_cli("render", str(clip("liveportrait__d0")), "-o", "/nonexistent/dir/out.mp4",
                         "--device", "cpu"))
    photo = MEDIA / "image" / "scikit-image__astronaut.png"
    assert "must be a video" not in _one_line_error(_cli("render", str(photo), "-o", str(tmp_path / "x.mp4")))
    assert "cuda" in _one_line_error(_cli("render", str(photo), "--device", "cuda")) or _has_cuda()
    assert "79999_iter" in _one_line_error(_cli("parse", str(photo), "-o", str(tmp_path / "p.png"),
                                                "--parser", "bisenet", "--device", "cpu"))
    wall = tmp_path / "wall.png"
    import cv2
    cv2.imwrite(str(wall), np.tile(np.linspace(0, 255, 320, dtype=np.uint8), (240, 1)))
    assert "no face" in _one_line_error(_cli("render", str(wall), "--device", "cpu"))
    assert not list(tmp_path.glob(".*part*")) and not (tmp_path / "wall_avatar.png").exists()
