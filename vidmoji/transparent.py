"""Transparent outputs: RGBA frames encoded to the formats stickers and video editors take, and read back.

| format | container, codec | alpha |
|---|---|---|
| webm | WebM, VP9 (libvpx-vp9, yuva420p) | the VP9 alpha channel (browsers, Telegram) |
| webp | animated WebP (libwebp_anim, yuva420p) | 8-bit alpha (WhatsApp) |
| gif  | GIF, one palette for the whole clip, optional dither | one transparent palette entry |
| apng | animated PNG (rgba, or pal8 with one palette per clip) | 8-bit alpha, or one transparent entry |
| mov  | QuickTime, ProRes 4444 (prores_ks, yuva444p10le) | 10-bit alpha (Premiere, Final Cut, Resolve, OBS) |
| png  | a folder of numbered PNGs | 8-bit alpha |

Every output is written under a temporary name beside the target and renamed when complete (a PNG sequence:
a temporary folder), so the target never holds a half-written file. `read_alpha` decodes any of them back
to RGBA frames with their times (PyAV; Pillow for animated WebP, which FFmpeg's decoder cannot read).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidmoji.video import MediaError, _reason, _temp_path_for, check_writable


@dataclass(frozen=True)
class AlphaFormat:
    """One transparent format: name, suffix, FFmpeg muxer and encoder, pixel format and time base."""

    name: str
    suffix: str
    muxer: str | None
    codec: str | None
    pix_fmt: str
    time_base: Fraction
    what: str


ALPHA_FORMATS = {f.name: f for f in (
    AlphaFormat("webm", ".webm", "webm", "libvpx-vp9", "yuva420p", Fraction(1, 1000), "VP9 with alpha"),
    AlphaFormat("webp", ".webp", "webp", "libwebp_anim", "yuva420p", Fraction(1, 1000), "animated WebP"),
    AlphaFormat("gif", ".gif", "gif", "gif", "pal8", Fraction(1, 100), "GIF, one palette per clip"),
    AlphaFormat("apng", ".apng", "apng", "apng", "rgba", Fraction(1, 1000), "animated PNG"),
    AlphaFormat("mov", ".mov", "mov", "prores_ks", "yuva444p10le", Fraction(1, 90000), "ProRes 4444 with alpha"),
    AlphaFormat("png", "", None, None, "rgba", Fraction(1, 1000), "a folder of PNG frames"),
)}


def format_of(path: Path, name: str | None = None) -> AlphaFormat | None:
    """The transparent format asked for by name, else by the suffix of path; None for the opaque ones."""
    if name is not None:
        return ALPHA_FORMATS.get(name)
    return next((f for f in ALPHA_FORMATS.values() if f.suffix and f.suffix == path.suffix.lower()), None)


@dataclass(frozen=True)
class EncodeSettings:
    """How hard to compress. crf / bitrate: VP9 quality (0-63) and target bits per second (0: constant
    quality); quality: WebP 0-100; colours: palette size for GIF (always a palette) and APNG (None: full
    RGBA); dither: Floyd-Steinberg dithering into the palette."""

    crf: int = 30
    bitrate: int = 0
    quality: int = 85
    colours: int | None = None
    dither: bool = False


def one_palette(frames: list[np.ndarray], colours: int = 255, dither: bool = False
                ) -> tuple[list[np.ndarray], np.ndarray]:
    """Quantise RGBA frames to one shared palette: (H, W) uint8 index images and the (256, 4) ARGB palette,
    whose last entry is transparent (pixels under half opacity). colours: at most 255 opaque entries."""
    from PIL import Image
    colours = int(np.clip(colours, 2, 255))
    picks = frames[:: max(1, len(frames) // 24)]
    opaque = np.concatenate([f[f[..., 3] >= 128][:, :3] for f in picks] + [np.zeros((1, 3), np.uint8)])
    rng = np.random.default_rng(0)
    if len(opaque) > 200_000:
        opaque = opaque[rng.choice(len(opaque), 200_000, replace=False)]
    side = int(np.ceil(np.sqrt(len(opaque))))
    sample = np.zeros((side * side, 3), np.uint8)
    sample[:len(opaque)] = opaque
    sample[len(opaque):] = opaque[0]
    pal_img = Image.fromarray(sample.reshape(side, side, 3)).quantize(colours, method=Image.Quantize.MEDIANCUT)
    rgb_pal = np.asarray(pal_img.getpalette()[:3 * colours], np.uint8).reshape(-1, 3)
    n = len(rgb_pal)
    full = np.zeros((256, 3), np.uint8)
    full[:n] = rgb_pal
    full[n:] = rgb_pal[0]          # unused entries repeat entry 0, so nothing maps to them by accident
    ref = Image.new("P", (1, 1))
    ref.putpalette(full.reshape(-1).tolist())
    mode = Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE
    out = []
    for f in frames:
        idx = np.asarray(Image.fromarray(np.ascontiguousarray(f[..., :3])).quantize(palette=ref, dither=mode))
        idx = np.where(idx >= n, 0, idx).astype(np.uint8)
        idx[f[..., 3] < 128] = 255
        out.append(idx)
    argb = np.zeros((256, 4), np.uint8)   # entry 255 stays transparent; the others are opaque
    argb[:255, 0] = 255
    argb[:255, 1:] = full[:255]
    return out, argb


def write_alpha(path: Path, fmt: AlphaFormat, frames: list[np.ndarray], times: list[float],
                settings: EncodeSettings = EncodeSettings(), loop: bool = True) -> Path:
    """Encode RGBA frames (H, W, 4) uint8 shown at `times` seconds (increasing) to `path` in `fmt`, via a
    temporary name and an atomic rename. loop: the sticker formats play forever. Returns path."""
    path = Path(path)
    if not frames:
        raise MediaError(f"cannot write {path}: no frames")
    check_writable(path)
    if fmt.name == "png":
        return _write_png_sequence(path, frames)
    tmp = _temp_path_for(path)
    try:
        _encode(tmp, fmt, frames, times, settings, loop)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (OSError, av.error.FFmpegError, ValueError)):
            raise MediaError(f"cannot write {path}: {_reason(exc)}") from exc
        raise
    return path


def _encode(tmp: Path, fmt: AlphaFormat, frames: list[np.ndarray], times: list[float],
            settings: EncodeSettings, loop: bool) -> None:
    h, w = frames[0].shape[:2]
    if fmt.pix_fmt.startswith("yuv") and (w % 2 or h % 2):
        frames = [np.pad(f, ((0, h % 2), (0, w % 2), (0, 0))) for f in frames]
        h, w = frames[0].shape[:2]
    container_options = {}
    if fmt.name in ("webp", "gif"):
        container_options["loop"] = "0" if loop else "1"
    elif fmt.name == "apng":
        container_options["plays"] = "0" if loop else "1"
    steps = np.diff(times)
    rate = Fraction(1 / float(np.median(steps)) if len(steps) else 25.0).limit_denominator(1001)
    pix_fmt, options = fmt.pix_fmt, {}
    if fmt.name == "webm":
        options = {"crf": str(settings.crf), "b": str(settings.bitrate), "deadline": "realtime", "cpu-used": "5",
                   "row-mt": "1", "auto-alt-ref": "0"}
    elif fmt.name == "webp":
        options = {"quality": str(settings.quality), "lossless": "0"}
    elif fmt.name == "mov":
        options = {"profile": "4444", "alpha_bits": "16"}
    elif fmt.name == "apng" and settings.colours:
        pix_fmt = "pal8"
    container = av.open(str(tmp), mode="w", format=fmt.muxer, options=container_options)
    try:
        stream = container.add_stream(fmt.codec, rate=rate, time_base=fmt.time_base)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.codec_context.time_base = fmt.time_base
        stream.options = options
        if pix_fmt == "pal8":
            indices, palette = one_palette(frames, settings.colours or 255, settings.dither)
            pictures = ((i, palette) for i in indices)
        else:
            pictures = frames
        last = None
        for picture, t in zip(pictures, times):
            if pix_fmt == "pal8":
                frame = av.VideoFrame.from_ndarray(picture, format="pal8")
            else:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgba")
                if pix_fmt != "rgba":
                    frame = frame.reformat(format=pix_fmt)
            pts = round(Fraction(t) / fmt.time_base)
            pts = pts if last is None or pts > last else last + 1
            frame.pts, frame.time_base, last = pts, fmt.time_base, pts
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    finally:
        container.close()


def _write_png_sequence(folder: Path, frames: list[np.ndarray]) -> Path:
    """Numbered PNGs (000000.png, ...) in `folder`, written into a temporary folder and renamed; an
    existing folder is replaced only when it holds nothing but an earlier sequence's PNGs."""
    import cv2
    if folder.exists() and any(p.suffix.lower() != ".png" for p in folder.iterdir()):
        raise MediaError(f"cannot write {folder}: it exists and holds other files than PNG frames")
    tmp = _temp_path_for(folder)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for i, f in enumerate(frames):
            if not cv2.imwrite(str(tmp / f"{i:06d}.png"), cv2.cvtColor(f, cv2.COLOR_RGBA2BGRA)):
                raise MediaError(f"cannot write {folder}: PNG encoding failed")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise MediaError(f"cannot write {folder}: {_reason(exc)}") from exc
        raise
    return folder


@dataclass(frozen=True)
class Decoded:
    """A transparent output read back: frames (N, H, W, 4) uint8 RGBA, start times (N,) seconds, the
    duration in seconds (the last frame's end), the frame rate, the codec and the file size in bytes."""

    frames: np.ndarray
    times: np.ndarray
    duration_s: float
    fps: float
    codec: str
    bytes: int


def read_alpha(path: Path) -> Decoded:
    """Decode a transparent output (any ALPHA_FORMATS file or PNG folder) to RGBA frames."""
    path = Path(path)
    if path.is_dir():
        import cv2
        files = sorted(path.glob("*.png"))
        frames = np.stack([cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
                           for p in files])
        return Decoded(frames, np.zeros(len(files)), 0.0, 0.0, "png", sum(p.stat().st_size for p in files))
    size = path.stat().st_size
    head = path.read_bytes()[:4096]
    if head[8:12] == b"WEBP":
        return _read_webp(path, size)
    # An animated PNG named .png (Discord's stickers) would be read as a still by the image demuxer.
    animated_png = head.startswith(b"\x89PNG") and b"acTL" in head
    with av.open(str(path), format="apng" if animated_png else None) as container:
        stream = container.streams.video[0]
        name = stream.codec_context.name
        # FFmpeg's own VP9 decoder drops the alpha plane; libvpx's reads it from the WebM block additions.
        decoder = av.CodecContext.create("libvpx-vp9", "r") if name == "vp9" else stream.codec_context
        frames, times, durations = [], [], []
        for packet in container.demux(stream):
            if name == "vp9" and packet.size == 0:
                continue
            for frame in decoder.decode(packet) if name == "vp9" else packet.decode():
                frames.append(frame.to_ndarray(format="rgba"))
                t = frame.pts * stream.time_base if frame.pts is not None else len(times)
                times.append(float(t))
            if packet.duration:
                durations.append(float(packet.duration * packet.time_base))
        if name == "vp9":
            for frame in decoder.decode(None):
                frames.append(frame.to_ndarray(format="rgba"))
                times.append(float(frame.pts * stream.time_base))
    times = np.asarray(times)
    # The mean step, not the median: times rounded to the time base (33, 67, 100 ms at 30 fps) would
    # otherwise read as 30.3 fps.
    step = float((times[-1] - times[0]) / (len(times) - 1)) if len(times) > 1 else (durations[-1] if durations else 0.0)
    last = durations[-1] if durations and durations[-1] > 0 else step
    duration = float(times[-1] - times[0] + last)
    return Decoded(np.stack(frames), times - times[0], duration, len(times) / duration if duration > 0 else 0.0,
                   name, size)


def _read_webp(path: Path, size: int) -> Decoded:
    from PIL import Image, ImageSequence
    with Image.open(path) as im:
        frames, durations = [], []
        for f in ImageSequence.Iterator(im):
            frames.append(np.asarray(f.convert("RGBA")))
            durations.append(f.info.get("duration", 0) / 1000.0)
    times = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    total = float(sum(durations))
    return Decoded(np.stack(frames), times, total, len(frames) / total if total > 0 else 0.0, "webp", size)
