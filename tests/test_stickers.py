"""Stickers and transparent avatars, from real clips: every transparent format decoded back (PyAV; Pillow
for animated WebP), the messenger presets' limits on three clips, the loops, the animated SVG in headless
Chromium, sticker packs, and bad requests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import clip, needs_media

pytestmark = needs_media

W = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prepared():
    """name -> vidmoji.pipeline.Prepared of the clip on the CPU (pass 1 and the choice of parts), once."""
    from vidmoji.pipeline import RenderOptions, prepare
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = prepare(clip(name), RenderOptions(device="cpu", show_progress=False))
        return cache[name]
    return get


def _plan(prep, tmp: Path, **kw):
    from vidmoji.pipeline import RenderOptions
    from vidmoji.stickers import plan_output
    return plan_output(prep.source, prep.info, RenderOptions(layout="avatar", **kw))


def _away_and_inside(expected_alpha: np.ndarray, margin: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Pixels more than `margin` px from any drawn pixel, and pixels more than `margin` px inside it."""
    k = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    away = cv2.dilate((expected_alpha > 0).astype(np.uint8), k) == 0
    inside = cv2.erode((expected_alpha == 255).astype(np.uint8), k) > 0
    return away, inside


@pytest.mark.parametrize("fmt", ["webm", "webp", "gif", "apng", "mov", "png"])
def test_transparent_format_decodes_with_its_frames_and_alpha(prepared, tmp_path, fmt):
    """A 1.5 s moment from 0.5 s of d0 (25 fps) in each format: 38 frames lasting 1.52 s at 25 fps when
    decoded, transparent far from the avatar in every frame and opaque inside it."""
    from vidmoji.stickers import Scene, write_transparent
    from vidmoji.transparent import read_alpha
    prep = prepared("liveportrait__d0")
    out = tmp_path / ("frames" if fmt == "png" else f"sticker.{fmt}")
    plan = _plan(prep, tmp_path, output=out, format=fmt, start=0.5, duration=1.5, size=256)
    assert write_transparent(prep, plan, show_progress=False) == [out]
    decoded = read_alpha(out)
    assert decoded.frames.shape == (38, 256, 256, 4)
    if fmt != "png":
        import av
        with av.open(str(out)) as c:
            ctx = c.streams.video[0].codec_context
            assert ctx.name == {"webm": "vp9", "webp": "webp", "gif": "gif", "apng": "apng", "mov": "prores"}[fmt]
            if fmt == "mov":
                assert ctx.profile == "4444" and ctx.pix_fmt.startswith("yuva")
    if fmt != "png":
        assert decoded.duration_s == pytest.approx(38 / 25, abs=0.011)
        assert decoded.fps == pytest.approx(25, abs=0.3)
    scene = Scene(prep)
    src = np.searchsorted(prep.track.pts, 0.5 + np.arange(38) / 25 + 1e-6, side="right") - 1
    for k in (0, 19, 37):
        expected = scene.rgba(int(src[k]), 256)
        away, inside = _away_and_inside(expected[..., 3])
        got = decoded.frames[k]
        assert away.mean() > 0.2 and inside.mean() > 0.2
        # VP9's alpha is lossy: ringing beside high-contrast edges (dark hair on a light face) leaves up to a
        # few levels in 255 (invisible); the lossless formats must be exact to within 2.
        limit = 8 if fmt == "webm" else 2
        assert got[..., 3][away].max() <= limit, f"{fmt} frame {k}: not transparent away from the avatar"
        assert got[..., 3][inside].min() >= 250, f"{fmt} frame {k}: not opaque inside the avatar"
        colour_err = np.abs(got[..., :3][inside].astype(int) - expected[..., :3][inside]).mean()
        assert colour_err < 6, f"{fmt} frame {k}: colours off by {colour_err:.1f} on average"


PRESET_CLIPS = (("liveportrait__d0", 0.0), ("liveportrait__d18", 2.0), ("liveportrait__d19", 3.0))


@pytest.mark.parametrize("name,start", PRESET_CLIPS)
def test_presets_meet_their_limits_on_three_clips(prepared, tmp_path, name, start):
    """Each preset's output, read back, meets the messenger's published limits: size, duration, frame rate,
    bytes, a transparent background (WhatsApp: the 16 px margin is empty), and Telegram's has no audio."""
    import av

    from vidmoji.stickers import PRESET_SUFFIX, PRESETS, Scene, fit
    from vidmoji.transparent import read_alpha
    prep = prepared(name)
    scene = Scene(prep)
    for preset in PRESETS.values():
        plan = _plan(prep, tmp_path, preset=preset.name, start=start,
                     output=tmp_path / f"{name}_{preset.name}{PRESET_SUFFIX[preset.name]}")
        fitted = fit(scene, plan, plan.output)
        decoded = read_alpha(plan.output)
        n, h, w = decoded.frames.shape[:3]
        assert (w, h) == (preset.size, preset.size)
        assert plan.output.stat().st_size <= preset.max_bytes
        assert decoded.bytes == plan.output.stat().st_size == fitted.check.bytes
        if preset.max_s:
            assert decoded.duration_s <= preset.max_s + 2e-3
        if preset.max_fps:
            assert decoded.fps <= preset.max_fps + 0.01
        assert decoded.duration_s == pytest.approx(min(3.0, scene.end - start), abs=0.07) or fitted.duration < 3.0
        alpha = decoded.frames[..., 3]
        assert (alpha == 0).mean() > 0.2 and (alpha == 255).mean() > 0.2
        if preset.inset:
            m = preset.inset
            border = np.ones((h, w), bool)
            border[m:h - m, m:w - m] = False
            assert alpha[:, border].max() == 0
        with av.open(str(plan.output)) as c:
            assert not c.streams.audio
            assert c.streams.video[0].codec_context.name == {"webm": "vp9", "webp": "webp", "apng": "apng"}[
                preset.format] or preset.format == "webp"


def test_a_preset_that_cannot_be_met_says_by_how_much_and_leaves_nothing(prepared, tmp_path):
    from vidmoji.stickers import Preset, PresetUnreachable, Scene, fit
    prep = prepared("liveportrait__d0")
    tiny = Preset("tiny", "webm", 256, 0, 3.0, 30.0, 1024)
    plan = _plan(prep, tmp_path, preset="telegram", output=tmp_path / "t.webm")
    plan = plan.__class__(**{**plan.__dict__, "preset": tiny, "size": 256})
    with pytest.raises(PresetUnreachable, match=r"cannot meet tiny .* KB \(\d+%\) over its 1 KB limit"):
        fit(Scene(prep), plan, plan.output)
    assert list(tmp_path.iterdir()) == []


def test_loops_pingpong_and_fade(prepared, tmp_path):
    """pingpong plays forward then back (the last frame is the second, so the loop joins without a jump);
    fade starts and ends nearly transparent."""
    from vidmoji.stickers import write_transparent
    from vidmoji.transparent import read_alpha
    prep = prepared("liveportrait__d0")
    out = tmp_path / "pp"
    write_transparent(prep, _plan(prep, tmp_path, output=out, format="png", start=0.4, duration=2.0,
                                  loop="pingpong", size=128), show_progress=False)
    f = read_alpha(out).frames.astype(int)
    assert len(f) == 50
    half = 26  # forward frames; then 24 back
    for j in range(1, 24):
        assert np.array_equal(f[half - 1 - j], f[half - 1 + j])
    assert np.abs(f[0] - f[half - 1]).mean() > 0.5  # the head moves over the second: not a still
    out = tmp_path / "fade"
    write_transparent(prep, _plan(prep, tmp_path, output=out, format="png", start=0.4, duration=2.0,
                                  loop="fade", size=128), show_progress=False)
    a = read_alpha(out).frames[..., 3].astype(int)
    assert a[0].max() < 0.2 * a[25].max() and a[-1].max() < 0.2 * a[25].max()
    assert a[25].max() == 255


def _runs(timeline: dict, slot: str) -> list[tuple[int, int, str]]:
    """(first, last, part id) of each run of frames showing one part in the slot."""
    ids = [f["parts"][slot]["id"] if f["face"] else None for f in timeline["frames"]]
    out, a = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[a]:
            out.append((a, i - 1, ids[a]))
            a = i
    return out


def test_animated_svg_plays_in_chromium_as_the_timeline_says(prepared, tmp_path):
    """The animated SVG of d0, shown by headless Chromium paused at two times on either side of a change of
    mouth in the timeline: transparent away from the avatar, different pictures, and each picture matches
    the avatar the pipeline composes for its own time better than the other time's."""
    from browser import chromium_or_skip, screenshot

    from vidmoji.avatar.compose import avatar_rgba_frame
    from vidmoji.stickers import Scene, write_transparent
    chromium_or_skip()
    prep = prepared("liveportrait__d0")
    out = tmp_path / "d0.svg"
    write_transparent(prep, _plan(prep, tmp_path, output=out, format="svg"), show_progress=False)
    svg = out.read_text()
    assert svg.startswith("<svg") and "@keyframes vm-head" in svg
    timeline = prep.timeline()
    runs = [r for r in _runs(timeline, "mouth") if r[1] - r[0] >= 4]
    (a0, a1, mouth_a), (b0, b1, mouth_b) = next((r, s) for r, s in zip(runs, runs[1:]) if r[2] != s[2])
    frames = timeline["frames"]
    scene = Scene(prep)
    shots, refs = [], []
    for first, last in ((a0, a1), (b0, b1)):
        i = (first + last) // 2
        page = tmp_path / f"t{i}.html"
        page.write_text('<!doctype html><html><body style="margin:0;background:transparent">'
                        f'<div style="--vidmoji-t:{frames[i]["t"]};--vidmoji-play:paused">{svg}</div></body></html>')
        shots.append(screenshot(page.as_uri(), tmp_path / f"t{i}.png", (512, 512), transparent=True).astype(int))
        state = scene.states[i]
        refs.append(avatar_rgba_frame(scene.composer(512).avatar(state.choice), state.pose, scene.reference)
                    .astype(int))
    for shot, ref in zip(shots, refs):
        assert shot.shape == (512, 512, 4)
        away, inside = _away_and_inside(ref[..., 3].astype(np.uint8))
        assert shot[..., 3][away].max() == 0 and shot[..., 3][inside].min() == 255
    assert np.abs(shots[0] - shots[1]).mean() > 1.0

    def diff(shot, ref):
        return np.abs(shot - ref)[..., :3][(shot[..., 3] == 255) & (ref[..., 3] == 255)].mean()
    assert diff(shots[0], refs[0]) < diff(shots[0], refs[1]), (mouth_a, mouth_b)
    assert diff(shots[1], refs[1]) < diff(shots[1], refs[0]), (mouth_a, mouth_b)
    assert diff(shots[0], refs[0]) < 8 and diff(shots[1], refs[1]) < 8


def test_sticker_pack_from_the_clips_moments(prepared, tmp_path):
    """d19 (winks, smiles): a pack of distinct moments, each named by tags its timeline frame holds, each
    sticker meeting Telegram's limits around its moment, each still a 512 px transparent PNG."""
    from vidmoji.stickers import PRESETS, write_pack
    from vidmoji.transparent import read_alpha
    prep = prepared("liveportrait__d19")
    result = write_pack(prep, tmp_path / "pack", PRESETS["telegram"], count=8, show_progress=False)
    pack = json.loads((tmp_path / "pack" / "pack.json").read_text())
    entries = pack["stickers"]
    assert entries == result.entries and 3 <= len(entries) <= 8
    names = [e["moment"] for e in entries]
    assert len(set(names)) == len(names) and {"smile", "wink"} <= set(names)
    times = sorted(e["t"] for e in entries)
    assert min(np.diff(times)) >= 0.4
    frames = prep.timeline()["frames"]
    for e in entries:
        f = frames[e["frame"]]
        assert f["t"] == pytest.approx(e["t"], abs=1e-3) and f["face"]
        for tag in e["tags"]:
            slot, name = tag.split(":")
            assert name in f["parts"][slot]["tags"], (e, f["parts"][slot])
        sticker = read_alpha(tmp_path / "pack" / e["sticker"])
        assert sticker.frames.shape[1:3] == (512, 512) and sticker.duration_s <= 3.0 + 2e-3
        assert sticker.bytes <= 256 * 1024 and sticker.fps <= 30.01
        assert e["start"] <= e["t"] <= e["start"] + sticker.duration_s
        still = cv2.imread(str(tmp_path / "pack" / e["still"]), cv2.IMREAD_UNCHANGED)
        assert still.shape == (512, 512, 4) and still[0, 0, 3] == 0 and still[256, 256, 3] == 255
    assert sorted(p.name for p in (tmp_path / "pack").iterdir()) == sorted(
        [e["sticker"] for e in entries] + [e["still"] for e in entries] + ["pack.json"])
    assert [p.name for p in tmp_path.iterdir()] == ["pack"]


def test_bad_requests_are_one_line_errors_and_write_nothing(tmp_path):
    d0 = str(clip("liveportrait__d0"))
    cases = {
        "format": (["render", d0, "--format", "bmpx", "-o", str(tmp_path / "a.bmpx")], "unknown format"),
        "preset": (["render", d0, "--preset", "snapchat"], "unknown preset"),
        "start": (["render", d0, "-o", str(tmp_path / "a.webm"), "--start", "9"], "past the end"),
        "over": (["render", d0, "--preset", "telegram", "--duration", "5", "-o", str(tmp_path / "t.webm")],
                 "2 s over its limit"),
        "png": (["render", d0, "-o", str(tmp_path / "a.png")], "--format png"),
        "suffix": (["render", d0, "--preset", "telegram", "-o", str(tmp_path / "a.gif")], "written as .webm"),
        "layout": (["render", d0, "-o", str(tmp_path / "a.gif"), "--layout", "overlay"], "--layout avatar"),
        "mp4": (["render", d0, "-o", str(tmp_path / "a.mp4"), "--start", "1"], "transparent formats"),
        "pack_preset": (["stickers", d0, "--preset", "snapchat", "-o", str(tmp_path / "p")], "unknown preset"),
        "pack_file": (["stickers", d0, "-o", str(tmp_path / "p.webm")], "a sticker pack is a folder"),
    }
    records = _drive(tmp_path, {k: argv for k, (argv, _) in cases.items()})
    for key, (_, expected) in cases.items():
        r = records[key]
        lines = [line for line in r["stderr"].splitlines() if line.strip() and not line.startswith("device:")]
        assert r["exit_code"] == 1 and r["traceback"] is None, r
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], (key, lines)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.json"]


def _drive(tmp_path: Path, cases: dict[str, list[str]]) -> dict[str, dict]:
    """Run vidmoji command lines in one process (tests/_drive.py); id -> its result."""
    (tmp_path / "cases.json").write_text(json.dumps([{"id": k, "argv": a, "timeout": 300} for k, a in cases.items()]))
    out = tmp_path.parent / f"{tmp_path.name}_results.jsonl"
    subprocess.run([sys.executable, str(W / "tests" / "_drive.py"), str(tmp_path / "cases.json"), str(out)],
                   check=True, timeout=900, capture_output=True)
    return {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}


def test_cli_writes_a_preset_sticker_and_a_pack(tmp_path):
    """The command lines end to end: a WhatsApp sticker from a moment of d0, and a Discord pack of d0; each
    says what it wrote."""
    from vidmoji.transparent import read_alpha
    d0 = str(clip("liveportrait__d0"))
    records = _drive(tmp_path, {
        "render": ["render", d0, "--preset", "whatsapp", "--start", "0.5", "--loop", "pingpong",
                   "-o", str(tmp_path / "s.webp"), "--device", "cpu"],
        "stickers": ["stickers", d0, "--preset", "discord", "--count", "2", "-o", str(tmp_path / "pack"),
                     "--device", "cpu"]})
    for r in records.values():
        assert r["exit_code"] == 0 and r["traceback"] is None, r
    assert f"wrote {tmp_path / 's.webp'}" in records["render"]["stdout"]
    sticker = read_alpha(tmp_path / "s.webp")
    assert sticker.frames.shape[1:] == (512, 512, 4) and sticker.bytes <= 500 * 1024
    assert sticker.duration_s == pytest.approx(2.62, abs=0.05)  # 3 s from 0.5 s is past the 3.12 s clip's end
    pack = json.loads((tmp_path / "pack" / "pack.json").read_text())
    assert 1 <= len(pack["stickers"]) <= 2 and pack["preset"]["name"] == "discord"
    assert f"wrote {tmp_path / 'pack'}/" in records["stickers"]["stdout"]
    for e in pack["stickers"]:
        assert e["sticker"].endswith(".png") and e["still"].endswith("_still.png")
        assert read_alpha(tmp_path / "pack" / e["sticker"]).frames.shape[1:3] == (320, 320)


def test_a_pack_written_again_replaces_the_earlier_one(tmp_path):
    """`vidmoji stickers` run twice into the same folder (as `make demo` does when run again): the second
    pack replaces the first, with nothing of the first left behind."""
    d0 = str(clip("liveportrait__d0"))
    pack = tmp_path / "pack"
    for count in ("2", "1"):
        r = _drive(tmp_path, {"stickers": ["stickers", d0, "--preset", "discord", "--count", count, "-o", str(pack),
                                           "--device", "cpu"]})["stickers"]
        assert r["exit_code"] == 0 and r["traceback"] is None, r
    doc = json.loads((pack / "pack.json").read_text())
    assert len(doc["stickers"]) == 1
    named = {"pack.json"} | {e["sticker"] for e in doc["stickers"]} | {e["still"] for e in doc["stickers"]}
    assert {p.name for p in pack.iterdir()} == named
