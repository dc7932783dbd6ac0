"""A corpus of damaged and unusual media files, derived at test time from the public clips in
../shared/media with fixed seeds (nothing of it is committed).

`build_corpus(out_dir)` writes every file under `out_dir` and returns the `Case`s. Each case says what an
acceptable outcome is:

- "any": a damaged file. Either the decodable part is rendered (exit 0, a complete output), or one
  `error:` line and exit 1. Never a traceback, a hang or a half-written output.
- "ok": a valid, unusual file that must render.
- "error": must give one `error:` line (zero-byte, garbage, audio-only, a text file named .png).
- "no-face": a readable clip without any face: one `error: no face found in ...` line.
- "audio-dropped": good video with damaged audio: renders, and a warning says the audio was dropped.
- "partial": some video packets are garbage: renders the rest, and a warning says how many frames could
  not be decoded.

Sizes are kept small (160 px, about a second) so that every command can run over every case quickly.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SIZE = 160
SECONDS = 0.5
SOURCE_CLIP = "liveportrait__d18"   # 480x480, 30 fps, aac audio: a clean frontal face
SOURCE_IMAGE = "liveportrait__d19"  # 720x720 photo of the same subject


@dataclass(frozen=True)
class Case:
    name: str
    path: Path
    expect: str  # "any", "ok", "error", "no-face", "audio-dropped", "partial"
    image: bool = False


def _has_encoder(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except Exception:
        return False
    return True


def _source_frames(media: Path, seconds: float = SECONDS, size: int | None = SIZE):
    """RGB frames (resized to size x size) and audio frames of the first `seconds` of the source clip."""
    frames, audio = [], []
    with av.open(str(media / "video" / f"{SOURCE_CLIP}.mp4")) as c:
        for frame in c.decode(c.streams.video[0]):
            if frame.time * 1.0 >= seconds:
                break
            if size:
                frame = frame.reformat(width=size, height=size)
            frames.append(frame.to_ndarray(format="rgb24"))
    with av.open(str(media / "video" / f"{SOURCE_CLIP}.mp4")) as c:
        for frame in c.decode(c.streams.audio[0]):
            if frame.time >= seconds:
                break
            audio.append(frame)
    return frames, audio


def _encode(path: Path, frames: list[np.ndarray], vcodec: str, pix_fmt: str, fps: int = 30,
            acodec: str | None = None, audio=(), options: dict | None = None, vtag: str | None = None) -> Path:
    """Encode RGB frames (and optionally the source's audio frames, resampled) into `path`."""
    with av.open(str(path), "w") as out:
        v = out.add_stream(vcodec, rate=fps)
        h, w = frames[0].shape[:2]
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        if options:
            v.options = options
        if vtag:
            v.codec_tag = vtag
        a = resampler = None
        if acodec:
            rate = 48000 if acodec in ("libopus", "libmp3lame") else 44100
            a = out.add_stream(acodec, rate=rate)
            a.layout = "stereo"
            fmt = av.Codec(acodec, "w").audio_formats[0].name
            resampler = av.AudioResampler(format=fmt, layout="stereo", rate=rate)
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is not None:
            for frame in audio:
                frame = frame.__class__.from_ndarray(frame.to_ndarray(), format=frame.format.name,
                                                     layout=frame.layout.name)
                frame.sample_rate = audio[0].sample_rate
                for r in resampler.resample(frame):
                    r.pts = None
                    out.mux(a.encode(r))
            for r in resampler.resample(None):
                r.pts = None
                out.mux(a.encode(r))
            out.mux(a.encode(None))
    return path


def _remux(src: Path, dst: Path, seconds: float) -> Path:
    """Copy the first `seconds` of every stream's packets (no re-encoding)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        for packet in inp.demux(*[s for s in inp.streams if s.index in streams]):
            if packet.dts is None or packet.size == 0:
                continue
            if packet.pts is not None and packet.pts * packet.time_base > seconds:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


# --- damage -----------------------------------------------------------------------------------------------
def flip_header_bits(data: bytes, seed: int, bits: int = 12, span: int = 2048) -> bytes:
    """Flip `bits` random bits among the first `span` bytes (the container header)."""
    rng = np.random.default_rng(seed)
    b = bytearray(data)
    for pos in rng.integers(0, min(span, len(b)), bits):
        b[pos] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def cut_tail(data: bytes, seed: int) -> bytes:
    """Cut the file at 30-80% of its length and append 1-4 kB of random bytes."""
    rng = np.random.default_rng(seed)
    cut = int(len(data) * rng.uniform(0.3, 0.8))
    return data[:cut] + rng.integers(0, 256, int(rng.integers(1000, 4000)), dtype=np.uint8).tobytes()


def scatter_bytes(data: bytes, seed: int, count: int = 200) -> bytes:
    """Overwrite `count` bytes at random positions with random values."""
    rng = np.random.default_rng(seed)
    b = bytearray(data)
    for pos, value in zip(rng.integers(0, len(b), count), rng.integers(0, 256, count)):
        b[pos] = int(value)
    return bytes(b)


def garble_packets(path: Path, seed: int, every: int = 3) -> bytes:
    """The file with the payload of every `every`-th video packet from the 5th on replaced by random bytes
    (the container stays intact, so the demuxer hands the damaged packets to the decoder)."""
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(c.streams.video[0]) if p.size and p.pos is not None]
    rng = np.random.default_rng(seed)
    b = bytearray(path.read_bytes())
    for pos, size in packets[5::every]:
        b[pos + 4:pos + size] = rng.integers(0, 256, size - 4, dtype=np.uint8).tobytes()
    return bytes(b)


def damage_audio_description(data: bytes) -> bytes:
    """Scramble the MP4 audio sample description (the `mp4a` entry and its `esds`): the video stays intact,
    the audio stream's codec becomes unknown or unusable."""
    b = bytearray(data)
    at = bytes(b).find(b"mp4a")
    assert at > 0, "no mp4a sample entry"
    rng = np.random.default_rng(14)
    b[at:at + 4] = b"zzzz"
    esds = bytes(b).find(b"esds", at)
    if esds > 0:
        b[esds + 8:esds + 40] = rng.integers(0, 256, 32, dtype=np.uint8).tobytes()
    return bytes(b)


DAMAGES = (
    [("flip", s, lambda d, s=s: flip_header_bits(d, s)) for s in (1, 2)]
    + [("tail", s, lambda d, s=s: cut_tail(d, s)) for s in (3,)]
    + [("scatter", s, lambda d, s=s: scatter_bytes(d, s)) for s in (4, 5, 6)]
)


# --- the corpus -------------------------------------------------------------------------------------------
def build_corpus(media: Path, out: Path) -> list[Case]:
    """Write the corpus under `out` (created) and return its cases, in a fixed order."""
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    frames, audio = _source_frames(media)
    cases: list[Case] = []

    def add(name: str, path: Path, expect: str, image: bool = False) -> None:
        cases.append(Case(name, path, expect, image))

    # Clean bases, one per container the project reads, and two still images.
    bases = {
        "mp4": _encode(out / "base.mp4", frames, "libx264", "yuv420p", acodec="aac", audio=audio),
        "mov": _encode(out / "base.mov", frames, "libx264", "yuv420p", acodec="pcm_s16le", audio=audio),
        "mkv": _encode(out / "base.mkv", frames, "libx264", "yuv420p", acodec="libopus", audio=audio),
        "webm": _encode(out / "base.webm", frames, "libvpx-vp9", "yuv420p", acodec="libopus", audio=audio,
                        options={"deadline": "realtime", "cpu-used": "8"}),
        "avi": _encode(out / "base.avi", frames, "mpeg4", "yuv420p", acodec="libmp3lame", audio=audio),
    }
    photo = cv2.imread(str(media / "image" / f"{SOURCE_IMAGE}.jpg"))
    photo = cv2.resize(photo, (SIZE * 2, SIZE * 2), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(out / "base.jpg"), photo)
    cv2.imwrite(str(out / "base.png"), photo)
    bases["jpg"] = out / "base.jpg"
    bases["png"] = out / "base.png"
    for kind, path in bases.items():
        add(f"clean-{kind}", path, "ok", image=kind in ("jpg", "png"))
    # The same clip remuxed from the original (its own H.264 and AAC), as the d18 case was.
    remuxed = _remux(media / "video" / f"{SOURCE_CLIP}.mp4", out / "d18_cut.mp4", 0.7)
    bases["d18"] = remuxed

    # Damaged copies: header bit flips, cut tails with garbage, scattered bytes.
    for kind, path in bases.items():
        data = path.read_bytes()
        for label, seed, damage in DAMAGES:
            bad = out / f"{label}{seed}-{kind}{path.suffix}"
            bad.write_bytes(damage(data))
            add(bad.stem, bad, "any", image=kind in ("jpg", "png"))

    # Good video, damaged audio (the traceback: an audio stream without a codec context).
    bad_audio = out / "bad-audio-d18.mp4"
    bad_audio.write_bytes(damage_audio_description(remuxed.read_bytes()))
    add("bad-audio-d18", bad_audio, "audio-dropped")
    bad_audio = out / "bad-audio-mp4.mp4"
    bad_audio.write_bytes(damage_audio_description(bases["mp4"].read_bytes()))
    add("bad-audio-mp4", bad_audio, "audio-dropped")

    # Intact containers with garbage in a few video packets: the other frames render, a warning says how
    # many could not be decoded.
    for kind in ("mkv", "mp4"):
        bad = out / f"garbled-{kind}{bases[kind].suffix}"
        bad.write_bytes(garble_packets(bases[kind], 7, every=4))
        add(bad.stem, bad, "partial")
    mjpeg = _encode(out / "mjpeg_base.avi", frames, "mjpeg", "yuvj420p")
    (out / "garbled-mjpeg.avi").write_bytes(garble_packets(mjpeg, 8, every=4))
    add("garbled-mjpeg", out / "garbled-mjpeg.avi", "partial")

    # Hand-made cases.
    rng = np.random.default_rng(0)
    (out / "zero.mp4").write_bytes(b"")
    add("zero-byte", out / "zero.mp4", "error")
    (out / "random.mp4").write_bytes(rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    add("random-bytes", out / "random.mp4", "error")
    (out / "truncated.mp4").write_bytes(bases["mp4"].read_bytes()[:1500])
    add("truncated-header", out / "truncated.mp4", "error")
    (out / "fake.png").write_text("this is not a picture\n")
    add("fake-png", out / "fake.png", "error", image=True)
    with av.open(str(out / "audio_only.mp4"), "w") as c:
        a = c.add_stream("aac", rate=44100)
        for frame in audio:
            frame.pts = None
            c.mux(a.encode(frame))
        c.mux(a.encode(None))
    add("audio-only", out / "audio_only.mp4", "error")
    add("one-frame", _encode(out / "one_frame.mp4", frames[:1], "libx264", "yuv420p"), "ok")
    small = [cv2.resize(f, (60, 60), interpolation=cv2.INTER_AREA) for f in frames[:10]]
    add("60x60", _encode(out / "tiny.mp4", small, "libx264", "yuv420p"), "any")
    odd = [cv2.resize(f, (161, 123), interpolation=cv2.INTER_AREA) for f in frames[:10]]
    add("odd-size", _encode(out / "odd.mkv", odd, "ffv1", "yuv444p"), "ok")
    big = [cv2.resize(f, (3840, 2160), interpolation=cv2.INTER_NEAREST) for f in frames[:2]]
    add("4k", _encode(out / "uhd.mp4", big, "libx264", "yuv420p", options={"preset": "ultrafast"}), "ok")
    add("gray", _encode(out / "gray.mp4", frames[:10], "libx264", "gray"), "ok")
    add("mjpeg", _encode(out / "mjpeg.avi", frames[:10], "mjpeg", "yuvj420p"), "ok")
    add("vp9", _encode(out / "vp9.webm", frames[:10], "libvpx-vp9", "yuv420p",
                       options={"deadline": "realtime", "cpu-used": "8"}), "ok")
    if _has_encoder("prores_ks"):
        add("prores", _encode(out / "prores.mov", frames[:10], "prores_ks", "yuv422p10le"), "ok")
    if _has_encoder("libx265"):
        add("hevc-10bit", _encode(out / "hevc10.mp4", frames[:10], "libx265", "yuv420p10le", vtag="hvc1",
                                  options={"preset": "ultrafast", "x265-params": "log-level=none"}), "ok")
    cv2.imwrite(str(out / "deep.png"), photo.astype(np.uint16) * 257)
    add("png-16bit", out / "deep.png", "ok", image=True)
    cv2.imwrite(str(out / "grey.png"), cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
    add("png-grey", out / "grey.png", "ok", image=True)
    uni = out / "visage été 顔 😀.mp4"
    uni.write_bytes(bases["mp4"].read_bytes())
    add("unicode-name", uni, "ok")
    black = [np.zeros_like(f) for f in frames[:15]]
    add("black", _encode(out / "black.mp4", black, "libx264", "yuv420p"), "no-face")
    return cases
