"""Decode and encode video with PyAV, each in its own thread, so the torch device never waits on I/O.

- `probe` reads what a file is (size, rate, rotation, audio) and fails with a one-line `MediaError`.
- `FrameReader` yields batches of upright RGB frames with their presentation times in seconds.
- `VideoWriter` encodes H.264 at the caller's timestamps, copies the input's audio, and only ever leaves a
  complete file at the target path (temporary file + atomic rename).
- `write_image_atomic` / `write_text_atomic` do the same for single PNG/SVG/JSON outputs.
- `io_floor` times decode + encode with nothing in between: the baseline benchmarks compare against.

Timestamps are always the container's (`pts * time_base`), never a frame counter, so variable-frame-rate
input keeps its timing and the copied audio stays in sync.
"""

from __future__ import annotations

import heapq
import os
import queue
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vidmoji.errors import VidmojiError, VidmojiWarning

# x264 quality: crf 20 is visually lossless for flat emoji art; "veryfast" keeps encoding well below the
# cost of the models per frame.
DEFAULT_CRF = 20
DEFAULT_PRESET = "veryfast"
# Output time base when the caller gives none: the 90 kHz MPEG clock, so rounding moves any input timestamp
# by at most 6 microseconds.
DEFAULT_TIME_BASE = Fraction(1, 90000)
# Audio codecs copied as-is into MP4/MOV. FFmpeg's muxer also accepts others (PCM as "ipcm"), but common
# players do not play those, so they are re-encoded to AAC like any codec a container refuses.
_MP4_AUDIO_COPY = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "alac", "flac"})
_AUDIO_REENCODE_CODEC = "aac"
# Still-image suffixes, besides FFmpeg's image demuxers ("image2", "*_pipe") that already say so.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
# Frames held back to put decode-order timestamps into presentation order (see _DecodeWorker._timed_frames);
# packed B-frames displace timestamps by one or two frames, H.264 B-pyramids by at most a few.
_REORDER_DEPTH = 8
# Frame rates beyond this are a damaged header's, not a camera's: treated as unknown.
_MAX_FPS = 1000.0
# Output ticks accepted from the input (seconds); others come from a damaged header.
_MIN_TICK, _MAX_TICK = Fraction(1, 10_000_000), Fraction(1, 10)
# How often blocked queue operations wake up to see whether the other side has stopped.
_POLL_S = 0.1
_ROOM_POLL_S = 0.005   # the decode thread waiting for room in its queue before it starts another batch


class MediaError(VidmojiError):
    """A media file cannot be read or written. The message is one line that makes sense on its own."""


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` found in a media file.

    width, height: display size in pixels, after rotation. fps: average frame rate (frames per second).
    time_base: the video stream's tick in seconds. duration_s: container duration in seconds (0 for an
    image). frame_count: an estimate (the header's count, else duration * fps). rotation: degrees
    counter-clockwise that decoded frames are turned to display upright (0, 90, 180 or 270).
    """

    path: Path
    width: int
    height: int
    fps: float
    time_base: Fraction
    duration_s: float
    frame_count: int
    rotation: int
    has_audio: bool
    audio_codec: str | None
    is_image: bool


@dataclass(frozen=True)
class FrameBatch:
    """Consecutive decoded frames.

    frames: (N, H, W, 3) uint8 RGB, upright. pts_s: (N,) float64 presentation times in seconds.
    index: the position of the first frame in the whole stream (0-based).
    """

    frames: np.ndarray
    pts_s: np.ndarray
    index: int


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _reason(exc: BaseException) -> str:
    """An exception as a short one-line reason."""
    return _one_line(getattr(exc, "strerror", None) or exc) or type(exc).__name__


def _warn(message: str) -> None:
    """A one-line warning about the input (the CLI prints it as `warning: ...`)."""
    warnings.warn(message, VidmojiWarning, stacklevel=2)


def _open_error(path: Path, exc: BaseException) -> MediaError:
    """Translate an exception from opening or demuxing `path` into a MediaError that reads alone."""
    if isinstance(exc, MediaError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return MediaError(f"{path}: no such file")
    if isinstance(exc, IsADirectoryError):
        return MediaError(f"{path}: is a directory, not a media file")
    if isinstance(exc, PermissionError):
        return MediaError(f"{path}: cannot read file (permission denied)")
    reason = _reason(exc)
    if isinstance(exc, (av.error.FFmpegError, UnicodeDecodeError)):
        return MediaError(
            f"{path}: not a readable video or image (corrupt, truncated or unsupported format: {reason})"
        )
    return MediaError(f"{path}: cannot read media ({type(exc).__name__}: {reason})")


def _open_input(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    if path.is_dir():
        raise MediaError(f"{path}: is a directory, not a media file")
    if not os.access(path, os.R_OK):
        raise MediaError(f"{path}: cannot read file (permission denied)")
    try:
        # A damaged tag is not worth refusing the file for: undecodable metadata is dropped.
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except Exception as exc:
        raise _open_error(path, exc) from exc
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        container.close()
        raise MediaError(f"{path}: has no video stream (found: {', '.join(kinds)})")
    return container


def _video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first video stream that has a decoder (a damaged header can leave a stream without one)."""
    for stream in container.streams.video:
        if stream.codec_context is not None:
            return stream
    raise MediaError(f"{path}: its video stream cannot be decoded (unknown codec or damaged header)")


def _usable_audio(container: av.container.InputContainer) -> av.audio.stream.AudioStream | None:
    """The first audio stream with a known codec, a sample rate and channels; None when there is none."""
    for stream in container.streams.audio:
        ctx = stream.codec_context
        try:
            if ctx is not None and ctx.name and ctx.sample_rate > 0 and ctx.channels > 0:
                return stream
        except Exception:  # a field the damaged header left unreadable
            continue
    return None


class DecodeStats:
    """What tolerant decoding met: frames decoded, packets the decoder rejected, and the reason the demuxer
    stopped early (None when it reached the end)."""

    def __init__(self) -> None:
        self.frames = 0
        self.failed = 0
        self.stopped: str | None = None
        self.stopped_at_s: float | None = None
        self.last_error: str | None = None


def _decode_tolerant(container: av.container.InputContainer, stream, stats: DecodeStats):
    """Yield the frames of `stream` that decode, packet by packet.

    A packet the decoder rejects is skipped and counted in stats.failed (the decoder carries on with the
    next one); a demuxer error ends the stream there (stats.stopped), after flushing what the decoder holds.
    """
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets, None)
        except Exception as exc:  # the demuxer gave up: the rest of the file cannot be read
            stats.stopped = _reason(exc)
            break
        if packet is None:
            return
        try:
            frames = packet.decode()
        except Exception as exc:  # a damaged packet: skip it, the decoder resynchronises
            if packet.size:
                stats.failed += 1
                stats.last_error = _reason(exc)
            continue
        for frame in frames:
            stats.frames += 1
            yield frame
    try:  # the demuxer stopped early: the decoder still holds frames
        frames = stream.codec_context.decode(None)
    except Exception:
        return
    for frame in frames:
        stats.frames += 1
        yield frame


def _is_image(path: Path, container: av.container.InputContainer) -> bool:
    fmt = container.format.name
    return fmt == "image2" or fmt.endswith("_pipe") or path.suffix.lower() in IMAGE_SUFFIXES


def _upright_quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that display `frame` upright (its display-matrix rotation)."""
    return int(round(frame.rotation / 90.0)) % 4


def _frame_seconds(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> float | None:
    ts = frame.pts if frame.pts is not None else frame.dts
    if ts is None or not stream.time_base:
        return None
    return float(ts * stream.time_base)


def probe(path: str | os.PathLike) -> VideoInfo:
    """Describe a video or still image, decoding its first frame to prove it is readable.

    path: a video (any container FFmpeg reads) or a still image. Returns a `VideoInfo`.
    Raises MediaError (one-line message) for a missing or unreadable file, garbage or an unsupported
    format, a file without a video stream, or a file with no decodable frame.
    """
    path = Path(path)
    container = _open_input(path)
    try:
        return _probe(path, container)
    except MediaError:
        raise
    except Exception as exc:  # whatever else a damaged header makes the fields say
        raise _open_error(path, exc) from exc
    finally:
        container.close()


def _probe(path: Path, container: av.container.InputContainer) -> VideoInfo:
    stream = _video_stream(path, container)
    first = next(_decode_tolerant(container, stream, DecodeStats()), None)
    if first is None:
        raise MediaError(f"{path}: no decodable video frames (truncated or corrupt file)")
    turns = _upright_quarter_turns(first)
    width, height = (first.height, first.width) if turns % 2 else (first.width, first.height)
    is_image = _is_image(path, container)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    if not 0 < fps <= _MAX_FPS:  # a damaged header's rate: unknown
        fps = 0.0
    if is_image:
        duration_s, frame_count = 0.0, 1
    else:
        if container.duration is not None:
            duration_s = container.duration / av.time_base
        elif stream.duration is not None:
            duration_s = float(stream.duration * stream.time_base)
        else:
            duration_s = 0.0
        if not np.isfinite(duration_s) or duration_s < 0:
            duration_s = 0.0
        frame_count = stream.frames if stream.frames and stream.frames > 0 else int(round(duration_s * fps))
    audio = _usable_audio(container)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        fps=fps,
        time_base=Fraction(stream.time_base) if stream.time_base and stream.time_base > 0 else Fraction(1, 90000),
        duration_s=float(duration_s),
        frame_count=int(frame_count),
        rotation=turns * 90,
        has_audio=audio is not None,
        audio_codec=audio.codec_context.name if audio is not None else None,
        is_image=is_image,
    )


class _End:
    """Queue sentinel: the producer has finished."""


_END = _End()


class _DecodeWorker:
    """The decode thread's side of a FrameReader. It holds no reference to the reader, so a reader
    dropped without close() is still collected and its __del__ stops this thread."""

    def __init__(self, path: Path, fps: float, batch_size: int, out: queue.Queue, stop: threading.Event,
                 expected_frames: int = 0):
        self.path = path
        self.fps = fps
        self.expected_frames = expected_frames
        self.batch_size = batch_size
        self._queue = out
        self._stop = stop

    def _put(self, item) -> bool:
        """Hand `item` to the consumer; False when the consumer has gone away."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _wait_for_room(self) -> bool:
        """Wait until the queue has room for one more batch; False when the consumer has gone away."""
        while not self._stop.is_set():
            if self._queue.qsize() < self._queue.maxsize:
                return True
            time.sleep(_ROOM_POLL_S)
        return False

    def run(self) -> None:
        try:
            self._decode_into_queue()
        except BaseException as exc:  # handed to the consumer, which re-raises it in its own thread
            self._put(exc)
        self._put(_END)

    def _decode_into_queue(self) -> None:
        container = _open_input(self.path)
        stats = DecodeStats()
        try:
            # Each batch is one array filled frame by frame (not a list of frames stacked at the end, which
            # held every frame twice: 2 x 100 MB for 16 frames at 1080p).
            frames: np.ndarray | None = None
            filled = 0
            pts: list[float] = []
            emitted = 0
            size: tuple[int, int] | None = None
            turns = 0
            for frame, t in self._timed_frames(container, stats):
                try:
                    if size is None:
                        size = (frame.width, frame.height)
                        turns = _upright_quarter_turns(frame)
                    # Frames whose size changes mid-stream are scaled to the first one's, and all are
                    # turned as the first is (the display matrix is the stream's), so batches stack.
                    rgb = frame.to_ndarray(format="rgb24", width=size[0], height=size[1])
                except Exception as exc:  # a frame the scaler cannot convert: skip it like a bad packet
                    stats.failed += 1
                    stats.last_error = _reason(exc)
                    continue
                if turns:
                    rgb = np.rot90(rgb, turns)
                if frames is None:
                    # The batch being filled counts against the queue's bound: a new one is started only
                    # when the queue has room, so at most max_queue batches are held here, not one more.
                    if not self._wait_for_room():
                        return
                    frames = np.empty((self.batch_size, *rgb.shape), np.uint8)
                frames[filled] = rgb
                del rgb
                filled += 1
                pts.append(t)
                if filled == self.batch_size:
                    batch, frames, filled = frames, None, 0
                    if not self._put(FrameBatch(batch, np.asarray(pts, np.float64), emitted)):
                        return
                    del batch
                    emitted += len(pts)
                    pts = []
            if filled:
                self._put(FrameBatch(frames[:filled].copy() if filled < len(frames) // 2 else frames[:filled],
                                     np.asarray(pts, np.float64), emitted))
                emitted += filled
            if self._stop.is_set():
                return
            if emitted == 0:
                reason = f" ({stats.stopped or stats.last_error})" if stats.stopped or stats.last_error else ""
                raise MediaError(f"{self.path}: no decodable video frames (truncated or corrupt file){reason}")
            self._report(stats, emitted)
        finally:
            container.close()

    def _report(self, stats: DecodeStats, emitted: int) -> None:
        """Warn, in one line, about the frames that could not be decoded."""
        if stats.stopped is not None:
            where = f" at {stats.stopped_at_s:.2f} s" if stats.stopped_at_s is not None else ""
            missing = self.expected_frames - emitted
            lost = (f"about {missing} frame(s) could not be decoded" if missing > 0
                    else f"{stats.failed} frame(s) could not be decoded" if stats.failed
                    else "the rest could not be decoded")
            _warn(f"{self.path}: {lost}: the file is unreadable from{where} on ({stats.stopped}); "
                  f"kept {emitted} frame(s)")
        elif stats.failed:
            _warn(f"{self.path}: {stats.failed} frame(s) could not be decoded and were skipped "
                  f"({stats.last_error}); kept {emitted}")

    def _timed_frames(self, container: av.container.InputContainer, stats: DecodeStats):
        """Yield (frame, seconds) in presentation order until the end or close(); damaged packets are
        skipped (see _decode_tolerant).

        Decoders emit frames in presentation order, but some containers hand out timestamps in decode
        order (AVI with packed B-frames: 1, 2, 3, 5, 4, ...). Holding a few frames and pairing each with
        the smallest pending timestamp restores presentation times; for well-formed streams it changes
        nothing.
        """
        stream = _video_stream(self.path, container)
        stream.thread_type = "AUTO"
        fallback_step = 1.0 / self.fps if self.fps > 0 else 1.0 / 25
        held: deque[av.VideoFrame] = deque()
        times: list[float] = []
        last_t: float | None = None
        for frame in _decode_tolerant(container, stream, stats):
            if self._stop.is_set():
                return
            t = _frame_seconds(frame, stream)
            if t is None or not np.isfinite(t):
                # Only streams without any timestamps land here (raw elementary streams); the
                # nominal rate is the only timing there is.
                t = last_t + fallback_step if last_t is not None else 0.0
            last_t = t
            held.append(frame)
            heapq.heappush(times, t)
            if len(held) > _REORDER_DEPTH:
                yield held.popleft(), heapq.heappop(times)
        if stats.stopped is not None:
            stats.stopped_at_s = last_t
        while held and not self._stop.is_set():
            yield held.popleft(), heapq.heappop(times)


class FrameReader:
    """Iterate over a video's frames in batches, decoded in a background thread.

    path: video or still image. batch_size: frames per `FrameBatch` (the last may be shorter).
    max_queue: decoded batches held ahead of the consumer (bounds memory at
    max_queue * batch_size * H * W * 3 bytes).

    Yields `FrameBatch`: frames (N, H, W, 3) uint8 RGB rotated upright, pts_s (N,) float64 seconds from
    the container. Frames whose size changes mid-stream are scaled to the first frame's size so batches
    stack. Damaged input gives what can be decoded: a packet the decoder rejects is skipped, a demuxer
    error ends the stream there (a truncated file gives what it holds), and one `VidmojiWarning` at the
    end says how many frames could not be decoded; no decodable frame at all raises MediaError. Use as a
    context manager, or call `close()` when stopping early, so the decode thread ends.
    """

    def __init__(self, path: str | os.PathLike, batch_size: int = 32, max_queue: int = 4):
        if batch_size < 1 or max_queue < 1:
            raise ValueError("batch_size and max_queue must be >= 1")
        self.path = Path(path)
        self.info = probe(self.path)
        self.batch_size = batch_size
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._done = False
        worker = _DecodeWorker(self.path, self.info.fps, batch_size, self._queue, self._stop,
                               self.info.frame_count)
        self._thread = threading.Thread(target=worker.run, name="vidmoji-decode", daemon=True)
        self._thread.start()

    def __iter__(self) -> FrameReader:
        return self

    def __next__(self) -> FrameBatch:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            self._thread.join()
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            if isinstance(item, av.error.FFmpegError):
                raise _open_error(self.path, item) from item
            raise item
        return item

    def close(self) -> None:
        """Stop decoding and wait for the thread; safe to call more than once."""
        self._done = True
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                pass
        self._thread.join()

    def __del__(self) -> None:
        # A reader abandoned mid-stream (e.g. `next(iter(FrameReader(p)))`) must not leave its thread
        # waiting on a full queue forever.
        if hasattr(self, "_stop"):
            self._stop.set()

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _temp_path_for(path: Path) -> Path:
    """A hidden temporary beside `path`, same suffix so the muxer/encoder picks the same format."""
    return path.with_name(f".{path.stem}.part{path.suffix}")


def check_writable(path: Path) -> None:
    """Raise MediaError unless a file can be created at `path` (its folder exists and is writable).

    A temporary that an earlier run writing `path` left behind (killed before it could clean up) is
    removed: the run about to write `path` owns that name.
    """
    parent = path.parent
    if not parent.exists():
        raise MediaError(f"cannot write {path}: directory {parent} does not exist")
    if not parent.is_dir():
        raise MediaError(f"cannot write {path}: {parent} is not a directory")
    if path.is_dir():
        raise MediaError(f"cannot write {path}: it is a directory")
    if not os.access(parent, os.W_OK):
        raise MediaError(f"cannot write {path}: directory {parent} is not writable")
    stale = _temp_path_for(path)
    if stale.is_file() or stale.is_symlink():
        try:
            stale.unlink()
        except OSError:
            pass  # the write itself will say what is wrong


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write bytes via a temporary file beside `path` and an atomic rename. Raises MediaError."""
    path = Path(path)
    check_writable(path)
    tmp = _temp_path_for(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"cannot write {path}: {_one_line(exc.strerror or exc)}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_image_atomic(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an image (format from the suffix, e.g. .png) via a temporary file and an atomic rename.

    image: (H, W, 3) uint8 RGB, (H, W, 4) uint8 RGBA, or (H, W) uint8 grey.
    Raises MediaError when the file cannot be written.
    """
    import cv2  # kept out of module import: heavy, and only PNG outputs need it

    path = Path(path)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    elif image.ndim != 2:
        raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4); got {image.shape}")
    try:
        ok, encoded = cv2.imencode(path.suffix or ".png", image)
    except cv2.error:
        ok = False
    if not ok:
        raise MediaError(f"cannot write {path}: no image encoder for {path.suffix!r}")
    write_bytes_atomic(path, encoded.tobytes())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text (SVG, JSON) via a temporary file and an atomic rename. Raises MediaError."""
    path = Path(path)
    write_bytes_atomic(path, text.encode("utf-8"))


class VideoWriter:
    """Encode RGB frames to H.264 (libx264, yuv420p) in a background thread, keeping given timestamps.

    path: output file (.mp4 recommended). width, height: frame size in pixels; odd sizes are padded by
    one replicated pixel to even, as yuv420p requires. fps: nominal rate (frames per second), used by the
    encoder's rate control and written as the stream's average rate. time_base: tick of the output
    timestamps (seconds); default 1/90000. Pass the input stream's time base to keep its ticks exactly.
    audio_from: a media file whose first audio stream is copied into the output (packets as they are;
    re-encoded to AAC only when the output container cannot hold the codec, e.g. PCM in MP4); the output
    has audio exactly when this file has.

    The file is written to `.<stem>.part<suffix>` beside `path` and renamed onto `path` by `close()`;
    `abort()` (or an exception, KeyboardInterrupt included, inside `with VideoWriter(...)`) removes it,
    so the target path never holds a half-written file.
    Raises MediaError when the output cannot be created.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: float,
        time_base: Fraction | None = None,
        audio_from: str | os.PathLike | None = None,
        *,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        max_queue: int = 8,
    ):
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        if self.width < 1 or self.height < 1:
            raise ValueError(f"frame size must be positive, got {width}x{height}")
        check_writable(self.path)
        self._tmp = _temp_path_for(self.path)
        # A tick coarser than 0.1 s (or absurdly fine) comes from a damaged header: keep the 90 kHz clock.
        usable = time_base and _MIN_TICK <= Fraction(time_base) <= _MAX_TICK
        self._time_base = Fraction(time_base) if usable else DEFAULT_TIME_BASE
        self._last_pts: int | None = None
        self._error: BaseException | None = None
        self._closed = False
        self._audio_in: av.container.InputContainer | None = None
        self._audio_source = Path(audio_from) if audio_from is not None else None
        self._open_output(fps, crf, preset, with_audio=True)
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._encode, name="vidmoji-encode", daemon=True)
        self._thread.start()

    def _open_output(self, fps: float, crf: int, preset: str, with_audio: bool) -> None:
        """Create the temporary file with its streams and write its header. When the header cannot be
        written because of the input's audio (damaged parameters), start again without it."""
        try:
            self._container = av.open(str(self._tmp), mode="w")
        except Exception as exc:
            raise MediaError(f"cannot write {self.path}: {_reason(exc)}") from exc
        try:
            self._video = self._add_video_stream(fps, crf, preset)
            self._setup_audio(self._audio_source if with_audio else None)
            try:
                self._container.start_encoding()
            except Exception as exc:
                if self._audio_out is None:
                    raise MediaError(f"cannot write {self.path}: {_reason(exc)}") from exc
                self._discard()
                self._drop_audio(f"the output cannot hold it: {_reason(exc)}")
                self._open_output(fps, crf, preset, with_audio=False)
        except BaseException:
            self._discard()
            raise

    def _add_video_stream(self, fps: float, crf: int, preset: str) -> av.video.stream.VideoStream:
        rate = Fraction(fps).limit_denominator(100000) if 0 < fps <= _MAX_FPS else Fraction(30)
        stream = self._container.add_stream("libx264", rate=rate, time_base=self._time_base)
        # yuv420p halves chroma in both directions, so x264 needs even sizes.
        stream.width = self.width + self.width % 2
        stream.height = self.height + self.height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        return stream

    def _drop_audio(self, reason: str, from_s: float | None = None) -> None:
        """Leave out the (rest of the) input's audio, saying so once; the video goes on."""
        self._audio_out = None
        self._pending_audio = None
        if from_s is None:
            _warn(f"{self._audio_source}: its audio is damaged ({reason}); the audio was dropped, "
                  f"the video kept")
        else:
            _warn(f"{self._audio_source}: its audio is damaged from {from_s:.2f} s on ({reason}); "
                  f"the audio after that was dropped, the video kept")

    def _setup_audio(self, source: Path | None) -> None:
        self._audio_out = None
        self._pending_audio = None  # a demuxed packet not yet due (its time is past the last video frame)
        self._audio_copy = True
        self._audio_skipped = 0
        self._audio_error: str | None = None
        self._audio_next: int | None = None  # the next re-encoded audio frame's timestamp (samples)
        self._audio_last_s: float | None = None
        if source is None:
            return
        self._audio_in = _open_audio_source(source)
        if self._audio_in is None:
            return
        template = _usable_audio(self._audio_in)
        if template is None:
            self._drop_audio("unknown codec or missing parameters")
            return
        try:
            mp4_like = self._container.format.name in ("mp4", "mov")
            self._audio_copy = template.codec_context.name in _MP4_AUDIO_COPY or not mp4_like
            if self._audio_copy:
                try:
                    self._audio_out = self._container.add_stream_from_template(template)
                except ValueError:  # the output container refuses this codec
                    self._audio_copy = False
            if not self._audio_copy:
                self._audio_out = self._container.add_stream(
                    _AUDIO_REENCODE_CODEC, rate=template.codec_context.sample_rate
                )
                # The default layout for the channel count: PCM often carries an unordered "N channels"
                # layout, which the AAC encoder rejects.
                self._audio_out.layout = av.AudioLayout(f"{template.codec_context.channels}c")
            self._audio_packets = self._audio_in.demux(template)
        except Exception as exc:  # parameters the output cannot take
            if self._audio_out is not None:
                raise  # the stream is in the output already: _open_output starts again without it
            self._drop_audio(_reason(exc))

    def _pump_audio(self, until_s: float | None) -> None:
        """Mux input audio up to `until_s` seconds (None: all of it), interleaved with the video.

        Damaged audio never stops the video: a packet that cannot be muxed or decoded is skipped, and a
        demuxer error drops the rest of the audio (each said once, as a warning)."""
        if self._audio_out is None:
            return
        while self._audio_out is not None:
            if self._pending_audio is None:
                try:
                    self._pending_audio = next(self._audio_packets, None)
                except Exception as exc:
                    self._drop_audio(_reason(exc), self._audio_last_s or 0.0)
                    return
                if self._pending_audio is None:
                    self._finish_audio()
                    return
            packet = self._pending_audio
            t = float(packet.pts * packet.time_base) if packet.pts is not None and packet.time_base else None
            if t is not None and until_s is not None and t > until_s:
                return
            self._pending_audio = None
            try:
                if self._audio_copy:
                    if packet.size == 0 or packet.dts is None:  # demuxer flush packets carry no data
                        continue
                    packet.stream = self._audio_out
                    self._container.mux(packet)
                else:
                    for frame in packet.decode():
                        self._container.mux(self._audio_out.encode(self._retime(frame)))
            except Exception as exc:  # a damaged packet
                if packet.size:
                    self._audio_skipped += 1
                    self._audio_error = _reason(exc)
                continue
            if t is not None:
                self._audio_last_s = t

    def _retime(self, frame: av.AudioFrame) -> av.AudioFrame:
        """Give a decoded audio frame contiguous timestamps in samples, from the first frame's time on.
        The decoder's own can be out of order or in the packet time base of the input (AVI counts
        packets), which the encoder refuses."""
        rate = frame.sample_rate
        if self._audio_next is None:
            t = frame.time
            self._audio_next = max(0, round(t * rate)) if t is not None and np.isfinite(t) else 0
        frame.pts = self._audio_next
        frame.time_base = Fraction(1, rate)
        self._audio_next += frame.samples
        return frame

    def _finish_audio(self) -> None:
        if not self._audio_copy:
            try:
                self._container.mux(self._audio_out.encode(None))
            except Exception as exc:
                self._audio_skipped += 1
                self._audio_error = _reason(exc)
        self._audio_out = None
        if self._audio_skipped:
            _warn(f"{self._audio_source}: {self._audio_skipped} damaged audio packet(s) were dropped "
                  f"({self._audio_error})")

    def _encode(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                if item is None:  # abort
                    return
                rgb, pts = item
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = pts
                frame.time_base = self._time_base
                self._container.mux(self._video.encode(frame))
                self._pump_audio(float(pts * self._time_base))
            self._container.mux(self._video.encode(None))
            self._pump_audio(None)
        except BaseException as exc:
            self._error = exc
            # Keep draining so a producer blocked on a full queue sees the error instead of hanging.
            item = self._queue.get()
            while item is not _END and item is not None:
                item = self._queue.get()

    def write(self, frame_rgb: np.ndarray, pts_s: float) -> None:
        """Queue one frame for encoding.

        frame_rgb: (height, width, 3) uint8 RGB. pts_s: presentation time in seconds; rounded to the
        time base. A time not after the previous frame's is moved one tick later (encoders need strictly
        increasing timestamps). Raises the encode thread's error, if it has failed, as MediaError.
        """
        if self._closed:
            raise MediaError(f"cannot write {self.path}: writer already closed")
        self._raise_if_failed()
        if frame_rgb.shape != (self.height, self.width, 3) or frame_rgb.dtype != np.uint8:
            raise ValueError(
                f"frame must be ({self.height}, {self.width}, 3) uint8, "
                f"got {frame_rgb.shape} {frame_rgb.dtype}"
            )
        if self.width % 2 or self.height % 2:
            frame_rgb = np.pad(frame_rgb, ((0, self.height % 2), (0, self.width % 2), (0, 0)), mode="edge")
        else:
            # The caller may reuse its buffer once write() returns, and the encoder reads it later.
            frame_rgb = np.array(frame_rgb, order="C", copy=True)
        pts = round(Fraction(pts_s) / self._time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        self._last_pts = pts
        item = (frame_rgb, pts)
        while True:
            try:
                self._queue.put(item, timeout=_POLL_S)
                return
            except queue.Full:
                self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            exc = self._error
            self.abort()
            reason = _one_line(getattr(exc, "strerror", None) or exc)
            raise MediaError(f"cannot write {self.path}: encoding failed ({reason})") from exc

    def close(self) -> None:
        """Flush the encoder, finish the audio, and atomically move the file onto `path`."""
        if self._closed:
            return
        self._queue.put(_END)
        self._thread.join()
        self._raise_if_failed()
        self._closed = True
        try:
            self._container.close()
            if self._audio_in is not None:
                self._audio_in.close()
            os.replace(self._tmp, self.path)
        except BaseException as exc:
            self._tmp.unlink(missing_ok=True)
            if isinstance(exc, (OSError, av.error.FFmpegError)):
                raise MediaError(
                    f"cannot write {self.path}: {_one_line(getattr(exc, 'strerror', None) or exc)}"
                ) from exc
            raise

    def abort(self) -> None:
        """Stop encoding and delete the temporary file; the target path is left untouched."""
        if self._closed:
            return
        self._closed = True
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=_POLL_S)
                break
            except queue.Full:
                try:  # make room: the frames still queued are being thrown away anyway
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
        self._thread.join()
        self._discard()

    def _discard(self) -> None:
        for closable in (self._container, self._audio_in):
            if closable is None:
                continue
            try:
                closable.close()
            except Exception:  # the file is being thrown away; a failing close changes nothing
                pass
        self._audio_in = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _open_audio_source(path: Path) -> av.container.InputContainer | None:
    """Open `path` for its audio; None when it has no audio stream. Raises MediaError if unreadable."""
    if not path.exists():
        raise MediaError(f"{path}: no such file")
    try:
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except Exception as exc:
        raise _open_error(path, exc) from exc
    if not container.streams.audio:
        container.close()
        return None
    return container


def io_floor(
    path: str | os.PathLike,
    out_path: str | os.PathLike,
    width: int | None = None,
    height: int | None = None,
) -> float:
    """Decode `path` and encode it to `out_path` with nothing else in between; return wall seconds.

    width, height: output size in pixels (default: the input's display size); frames are resized with
    cv2 when they differ. Audio is copied as in a real render. This is the I/O floor that benchmarks
    report their ratios against.
    """
    info = probe(path)
    width = width or info.width
    height = height or info.height
    resize = (width, height) != (info.width, info.height)
    if resize:
        import cv2  # only needed when resizing

    start = time.perf_counter()
    with FrameReader(path) as reader, VideoWriter(
        out_path, width, height, info.fps, info.time_base, audio_from=path
    ) as writer:
        for batch in reader:
            for frame, pts in zip(batch.frames, batch.pts_s):
                if resize:
                    frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
                writer.write(frame, float(pts))
    return time.perf_counter() - start


def scaled_video(source: Path, scale: float, out: Path) -> Path:
    """The video at `source` scaled to `scale` of its size (area-averaged, as a smaller camera would see it, even
    sides), encoded with x264 at `out` (for tests and benchmarks of small faces). The same input gives the same
    bytes: x264's lookahead (macroblock tree rate control) made each copy a little different, with one thread too
    (the same s32 at 90 px came out 139.4-140.2 kB, its meshes up to 3.6 px apart), and a blink at the edge of a
    threshold then showed in one run and not in the next; without it (and one thread) the copies are identical."""
    with av.open(str(source)) as inp, av.open(str(out), "w") as dst:
        src = inp.streams.video[0]
        w, h = max(2, round(src.width * scale / 2) * 2), max(2, round(src.height * scale / 2) * 2)
        stream = dst.add_stream("libx264", rate=src.average_rate or 30,
                                options={"x264-params": "threads=1:lookahead-threads=1:rc-lookahead=0:mbtree=0"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in inp.decode(video=0):
            for packet in stream.encode(frame.reformat(w, h, "yuv420p", interpolation="AREA")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return out
