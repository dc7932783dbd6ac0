"""Decode/encode on real clips from ../shared/media, plus synthetic clips made with PyAV for the cases no
real clip covers (VFR, odd size, rotation, audio-only, PCM audio)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from vidmoji.video import (
    FrameReader,
    MediaError,
    VideoWriter,
    io_floor,
    probe,
    scaled_video,
    write_image_atomic,
    write_text_atomic,
)

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
needs_media = pytest.mark.skipif(
    not MEDIA.is_dir(), reason=f"real media folder {MEDIA} is absent (only CI and shared checkouts have it)"
)
D18 = MEDIA / "video" / "liveportrait__d18.mp4"  # 480x480, 30 fps, aac
D0 = MEDIA / "video" / "liveportrait__d0.mp4"  # 512x512, 25 fps, no audio
MEGAMIND = MEDIA / "control" / "opencv-doc__Megamind.avi"  # mpeg4 + ac3
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def read_all(path) -> tuple[np.ndarray, np.ndarray]:
    """All frames (N, H, W, 3) and their times (N,) in seconds."""
    frames, pts = [], []
    with FrameReader(path, batch_size=16) as reader:
        for batch in reader:
            frames.append(batch.frames)
            pts.append(batch.pts_s)
    return np.concatenate(frames), np.concatenate(pts)


def round_trip(src: Path, dst: Path) -> None:
    info = probe(src)
    with FrameReader(src) as reader, VideoWriter(
        dst, info.width, info.height, info.fps, info.time_base, audio_from=src
    ) as writer:
        for batch in reader:
            for frame, t in zip(batch.frames, batch.pts_s):
                writer.write(frame, float(t))


def make_clip(path: Path, frames: list[np.ndarray], pts: list[int], time_base: Fraction, rotation=None):
    """Encode RGB frames at the given pts (in time_base ticks) with libx264."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30, time_base=time_base)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for image, tick in zip(frames, pts):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = tick, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def make_sine(path: Path, codec: str, seconds: float = 1.0, rate: int = 44100, video: bool = False):
    """Write a 440 Hz sine with `codec` (optionally beside a short black video) to `path`."""
    with av.open(str(path), "w") as container:
        vstream = None
        if video:
            vstream = container.add_stream("libx264", rate=25)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = container.add_stream(codec, rate=rate)
        astream.layout = "mono"
        t = np.arange(int(seconds * rate)) / rate
        samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
        for start in range(0, len(samples), 1024):
            chunk = samples[None, start : start + 1024]
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            container.mux(astream.encode(frame))
        container.mux(astream.encode(None))
        if vstream is not None:
            for i in range(int(seconds * 25)):
                frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
                frame.pts = i
                container.mux(vstream.encode(frame))
            container.mux(vstream.encode(None))


def assert_one_line_media_error(exc_info):
    message = str(exc_info.value)
    assert message and "\n" not in message


# --- real clips --------------------------------------------------------------------------------------


@needs_media
def test_round_trip_keeps_duration_timestamps_and_audio(tmp_path):
    out = tmp_path / "out.mp4"
    round_trip(D18, out)
    src, dst = probe(D18), probe(out)
    assert (dst.width, dst.height) == (480, 480)
    assert abs(dst.duration_s - src.duration_s) <= 1 / src.fps
    assert dst.has_audio and dst.audio_codec == "aac"
    src_frames, src_pts = read_all(D18)
    dst_frames, dst_pts = read_all(out)
    assert len(dst_pts) == len(src_pts) == 216
    np.testing.assert_allclose(dst_pts, src_pts, atol=float(src.time_base))
    # crf 20 on a clean studio clip: close to the source, not bit-exact.
    assert np.abs(dst_frames.astype(np.int16) - src_frames).mean() < 3.0
    assert not list(tmp_path.glob(".*part*"))


@needs_media
def test_clip_without_audio_gives_output_without_audio(tmp_path):
    out = tmp_path / "out.mp4"
    round_trip(D0, out)
    info = probe(out)
    assert not info.has_audio and info.audio_codec is None
    assert info.frame_count == probe(D0).frame_count


@needs_media
def test_ac3_audio_round_trips(tmp_path):
    out = tmp_path / "out.mp4"
    round_trip(MEGAMIND, out)
    src, dst = probe(MEGAMIND), probe(out)
    assert dst.has_audio and dst.audio_codec == "ac3"  # copied, not re-encoded
    _, src_pts = read_all(MEGAMIND)
    _, dst_pts = read_all(out)
    np.testing.assert_allclose(dst_pts, src_pts, atol=float(src.time_base))


@needs_media
def test_still_image_is_one_frame():
    path = MEDIA / "image" / "scikit-image__astronaut.png"
    info = probe(path)
    assert info.is_image and (info.width, info.height) == (512, 512) and info.frame_count == 1
    frames, pts = read_all(path)
    assert frames.shape == (1, 512, 512, 3) and frames.dtype == np.uint8
    assert pts.tolist() == [0.0]


@needs_media
def test_truncated_clip_decodes_what_it_can(tmp_path):
    for src in (D18, D0):
        data = src.read_bytes()
        cut = tmp_path / f"cut_{src.name}"
        cut.write_bytes(data[: int(len(data) * 0.3)])
        try:
            frames, pts = read_all(cut)
        except MediaError as exc:
            assert "\n" not in str(exc)
            continue
        full = probe(src).frame_count
        assert 0 < len(frames) <= full
        assert np.all(np.diff(pts) > 0)


@needs_media
def test_io_floor_times_a_resized_copy(tmp_path):
    out = tmp_path / "floor.mp4"
    seconds = io_floor(D18, out, width=241, height=120)
    assert seconds > 0
    info = probe(out)
    assert (info.width, info.height) == (242, 120) and info.has_audio


def test_truncated_streamable_clip_gives_its_first_frames(tmp_path):
    # moov first (faststart), so a cut file still has its index and the frames before the cut.
    src = tmp_path / "whole.mp4"
    rng = np.random.default_rng(2)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(60)]
    with av.open(str(src), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = src.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    decoded, pts = read_all(cut)
    assert 0 < len(decoded) < 60
    np.testing.assert_allclose(pts, np.arange(len(decoded)) / 30, atol=1e-6)


# --- unreadable inputs ---------------------------------------------------------------------------------


def test_garbage_missing_text_and_directory_raise_media_error(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.txt"
    text.write_text("this is not a video\nat all\n")
    for path in (garbage, text, tmp_path / "missing.mp4", tmp_path):
        with pytest.raises(MediaError) as exc_info:
            probe(path)
        assert_one_line_media_error(exc_info)
        assert str(path) in str(exc_info.value)
        with pytest.raises(MediaError):
            FrameReader(path)


def test_audio_only_file_raises_media_error(tmp_path):
    path = tmp_path / "tone.m4a"
    make_sine(path, "aac")
    with pytest.raises(MediaError, match="no video stream") as exc_info:
        probe(path)
    assert_one_line_media_error(exc_info)


@pytest.mark.skipif(AS_ROOT, reason="root reads any file whatever its permissions")
def test_unreadable_file_raises_media_error(tmp_path):
    path = tmp_path / "secret.mp4"
    make_clip(path, [np.zeros((16, 16, 3), np.uint8)], [0], Fraction(1, 30))
    path.chmod(0)
    with pytest.raises(MediaError, match="cannot read"):
        probe(path)


# --- writing -------------------------------------------------------------------------------------------


def test_writing_into_missing_directory_or_below_a_file_raises(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target in (tmp_path / "nope" / "out.mp4", blocker / "out.mp4"):
        with pytest.raises(MediaError, match="cannot write") as exc_info:
            VideoWriter(target, 64, 48, 30)
        assert_one_line_media_error(exc_info)
        with pytest.raises(MediaError, match="cannot write"):
            write_text_atomic(target.with_suffix(".json"), "{}")


@pytest.mark.skipif(AS_ROOT, reason="root writes into any directory whatever its permissions")
def test_writing_into_read_only_directory_raises(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(MediaError, match="not writable"):
            VideoWriter(locked / "out.mp4", 64, 48, 30)
    finally:
        locked.chmod(0o700)


def test_exception_inside_writer_leaves_no_file(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(out, 64, 48, 30) as writer:
            for i in range(10):
                writer.write(np.full((48, 64, 3), i * 20, np.uint8), i / 30)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_keyboard_interrupt_inside_writer_leaves_no_file(tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(out, 64, 48, 30) as writer:
            writer.write(np.zeros((48, 64, 3), np.uint8), 0.0)
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_replaced_only_on_success(tmp_path):
    out = tmp_path / "out.mp4"
    out.write_bytes(b"previous run")
    with pytest.raises(ValueError):
        with VideoWriter(out, 64, 48, 30) as writer:
            writer.write(np.zeros((10, 10, 3), np.uint8), 0.0)  # wrong size
    assert out.read_bytes() == b"previous run"
    with VideoWriter(out, 64, 48, 30) as writer:
        writer.write(np.zeros((48, 64, 3), np.uint8), 0.0)
    assert probe(out).frame_count == 1


def test_vfr_timestamps_are_kept(tmp_path):
    src = tmp_path / "vfr.mp4"
    tb = Fraction(1, 1000)
    ticks = [0, 33, 50, 120, 133, 300, 310, 500, 733, 750]
    frames = [np.full((48, 64, 3), 25 * i, np.uint8) for i in range(len(ticks))]
    make_clip(src, frames, ticks, tb)
    _, pts = read_all(src)
    np.testing.assert_allclose(pts, np.array(ticks) / 1000, atol=1e-9)
    out = tmp_path / "out.mp4"
    round_trip(src, out)  # default-free: uses the source's 1/1000 time base
    _, out_pts = read_all(out)
    np.testing.assert_allclose(out_pts, pts, atol=1e-3)
    fine = tmp_path / "fine.mp4"
    with VideoWriter(fine, 64, 48, 30) as writer:  # default 1/90000 time base
        for frame, t in zip(frames, pts):
            writer.write(frame, float(t))
    _, fine_pts = read_all(fine)
    np.testing.assert_allclose(fine_pts, pts, atol=1 / 90000)


def test_odd_size_encodes_and_decodes(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (75, 101, 3), dtype=np.uint8) for _ in range(5)]
    out = tmp_path / "odd.mp4"
    with VideoWriter(out, 101, 75, 25) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, i / 25)
    info = probe(out)
    assert (info.width, info.height) == (102, 76)  # padded to even by one replicated pixel
    decoded, _ = read_all(out)
    assert decoded.shape == (5, 76, 102, 3)


def test_odd_size_input_is_decoded_at_its_size(tmp_path):
    path = tmp_path / "odd.mkv"
    with av.open(str(path), "w") as container:  # ffv1 stores odd sizes, unlike yuv420p H.264
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 101, 75, "yuv444p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((75, 101, 3), 60 * i, np.uint8), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    assert (probe(path).width, probe(path).height) == (101, 75)
    frames, _ = read_all(path)
    assert frames.shape == (3, 75, 101, 3)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path, rotation):
    if not hasattr(av.video.stream.VideoStream, "set_display_rotation"):
        pytest.skip(f"PyAV {av.__version__} cannot write a display matrix")
    # A landscape frame with a white block in the top-left corner.
    image = np.zeros((32, 64, 3), np.uint8)
    image[:16, :32] = 255
    path = tmp_path / "rotated.mp4"
    make_clip(path, [image] * 3, [0, 1, 2], Fraction(1, 30), rotation=rotation)
    info = probe(path)
    assert info.rotation == rotation % 360
    expected = np.rot90(image, rotation // 90)  # display matrix angles are counter-clockwise
    assert (info.width, info.height) == (expected.shape[1], expected.shape[0])
    frames, _ = read_all(path)
    assert frames.shape[1:3] == expected.shape[:2]
    assert np.abs(frames[0].astype(np.int16) - expected).mean() < 10


def test_pcm_audio_is_reencoded_to_aac(tmp_path):
    src = tmp_path / "pcm.mkv"
    make_sine(src, "pcm_s16le", seconds=1.0, video=True)
    assert probe(src).audio_codec == "pcm_s16le"
    out = tmp_path / "out.mp4"
    round_trip(src, out)
    info = probe(out)
    assert info.has_audio and info.audio_codec == "aac"
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
    assert abs(samples / 44100 - 1.0) < 0.05


def test_reader_stops_cleanly_when_abandoned(tmp_path):
    path = tmp_path / "long.mp4"
    make_clip(path, [np.zeros((48, 64, 3), np.uint8)] * 60, list(range(60)), Fraction(1, 30))
    reader = FrameReader(path, batch_size=2, max_queue=1)
    first = next(reader)
    assert first.frames.shape == (2, 48, 64, 3) and first.index == 0
    reader.close()
    assert not reader._thread.is_alive()
    with pytest.raises(StopIteration):
        next(reader)


def test_abandoned_reader_stops_its_thread(tmp_path):
    import gc

    path = tmp_path / "long.mp4"
    make_clip(path, [np.zeros((48, 64, 3), np.uint8)] * 60, list(range(60)), Fraction(1, 30))
    reader = FrameReader(path, batch_size=1, max_queue=1)
    next(reader)
    thread = reader._thread
    del reader
    gc.collect()
    thread.join(timeout=5)
    assert not thread.is_alive()


def test_atomic_image_and_text_writes(tmp_path):
    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 128
    write_image_atomic(tmp_path / "a.png", rgba)
    write_text_atomic(tmp_path / "a.json", '{"ok": true}')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "a.png"]
    assert (tmp_path / "a.json").read_text() == '{"ok": true}'
    import cv2

    back = cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_UNCHANGED)
    assert back.shape == (10, 20, 4) and back[0, 0].tolist() == [0, 0, 255, 128]


@needs_media
def test_scaled_copies_are_the_same_bytes_every_time(tmp_path):
    """Small-face tests and benchmarks scale the public clips down and re-encode them: the same input must
    give the same file (x264's threads made each copy differ, and the meshes on it by up to 3.6 px)."""
    src = MEDIA / "video" / "liveportrait__s32.mp4"
    a = scaled_video(src, 0.45, tmp_path / "a.mp4").read_bytes()
    b = scaled_video(src, 0.45, tmp_path / "b.mp4").read_bytes()
    assert a == b
    with av.open(str(tmp_path / "a.mp4")) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (576, 324) and s.frames == probe(src).frame_count
