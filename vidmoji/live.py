"""`vidmoji live`: the avatar in real time, from a camera, a network stream or a file played at its own pace.

The frame path is render's (vidmoji.pipeline): FaceStage, part_candidates, FrameComposer, with the causal
versions of the stages that need look-ahead in a render: OnlineCalibration (population values, then the
subject's own baseline within about two seconds, its straight-ahead gaze within five), OnlineEyes (winks, dead bands) and FixedLagViterbi
(smoothing that decides each frame at most `lag` frames after it arrives).

A source thread reads frames and hands over only the newest: when the frame path falls behind, the frame
waiting is replaced and counted as dropped, never queued. When one thread cannot keep up and the machine has
a core to spare, the face stage of the next frame runs in a second thread beside the rest of this one
(_FaceThread). A frame's latency runs from the moment it is read from the source to the moment its output is
handed to the sinks (a file, raw frames on stdout, a local page, a virtual camera).
"""

from __future__ import annotations

import http.server
import json
import os
import platform
import queue
import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.ma  # noqa: F401 (np.median imports it on its first call: 11 ms of a live stream's first frame)
import torch

from vidmoji import parts
from vidmoji.avatar.compose import LOOK_LAYERS, AvatarComposer, head_pose
from vidmoji.avatar.index import load_indexes
from vidmoji.avatar.templates import load_style, quantize_gaze
from vidmoji.device import choose_device
from vidmoji.embed.registry import load_embedder
from vidmoji.errors import VidmojiError
from vidmoji.face.windows import OnlineCalibration, OnlineEyes, head_angles, measure
from vidmoji.identity import (IdentityOverrides, IdentitySampler, apply_overrides, check_overrides,
                              identity_timeline, measure_identity, read_persona, warm_segmenter)
from vidmoji.pipeline import (TOP_K, FaceStage, FrameComposer, _output_size, chosen_similarity, part_candidates,
                              subject_look,
                              timeline_entry, timeline_document)
from vidmoji.progress import log
from vidmoji.smooth import FixedLagViterbi
from vidmoji.video import (IMAGE_SUFFIXES, DecodeStats, MediaError, VideoWriter, _decode_tolerant, _frame_seconds,
                           _open_input, _reason, _upright_quarter_turns, _video_stream, check_writable,
                           write_text_atomic)

# Smoothing live: the fixed-lag Viterbi at the render's switch cost, or none (each frame's best part).
LIVE_SMOOTHERS = ("viterbi", "none")
MAX_LAG = 2
LIVE_TORCH_THREADS = 1
# The frame path in two stages on two threads: the face stage (locate, mesh, iris: FaceStage.run) of frame
# N+1 in a thread of its own while the rest (measure, eyes, windows, embed, search, smooth, compose) runs on
# frame N; the networks release the GIL inside their ops. One frame at most waits between the two stages
# (the face stage waits for the second to take it), so a slow second stage backs up into the source's
# mailbox, where the waiting frame is replaced and counted as dropped: nothing queues. It overlaps only when
# one thread falls behind and a core is idle (see _FaceThread). 1: always one thread.
LIVE_STAGES = 2
# The detector runs only when the tracked face is lost (its mesh's presence under 0.5), as MediaPipe's live
# face mesh graph does with one face: the mesh's own points give the next frame's crop. A detection costs
# 40-90 ms on a 1280x720 frame here (render's every 16 frames made one frame in 16 two or three frames
# late); live draws the main face only, so a face entering the picture need not be looked for.
LIVE_DETECT_EVERY = 1 << 30
# The iris model skipped on a frame whose lids only moved rigidly since the frame before (EyeRefiner.skip_still).
LIVE_SKIP_STILL_EYES = True
# x264's preset for a live recording: its encoder thread shares the CPU with the models. Measured on 512x512
# frames of the 2-core CPU: 3.8 ms of CPU a frame against 6.5 for render's veryfast (files 2-5 times larger).
LIVE_PRESET = "ultrafast"
# The eyes' switch cost in the fixed-lag Viterbi (render's is smooth.DEFAULT_SWITCH_COST, 0.3). Deciding a
# frame as it arrives, a switch is paid before the new state shows, so at 0.3 a blink's end showed two frames
# late, and at 0.15 still one or two (d14's reopened eyes at 0.9-1.1 of the open eye drawn shut for two frames
# after three of its blinks). The eyes' openness is already held still by its dead band, the pair decision and
# the blink rule, so live's eyes pay nothing to switch: tuned on d14 and d3 (live read whole against render:
# d14's loss 0.029 -> 0.014, d3's 0.073 -> 0.069), checked on d0, d18, d19 and s32 (the same timelines' scores,
# 0.000, 0.024, 0.038, 0.012), with the same still-stretch switches on every clip (d3 0.82 a second, d0 0.22,
# d18 0.54).
LIVE_EYE_SWITCH_COST = 0.0
# Without a persona, identity is measured from up to IDENTITY_VIEWS views over the first IDENTITY_S seconds.
IDENTITY_S = 2.0
IDENTITY_VIEWS = 6
# Network streams and cameras: give up opening or reading after this long without data (seconds).
_STREAM_TIMEOUT_S = 5.0
# The running reference pose (where the head usually is) over this many seconds of face frames.
_REFERENCE_S = 5.0
_STATUS_EVERY_S = 0.5
_STATUS_EVERY_S_NOT_TTY = 5.0
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)
class LiveOptions:
    """Options of `live_media` (see `vidmoji live --help`)."""

    source: str
    output: str | None = None            # a video file, or "-" for raw frames on stdout
    stdout_format: str = "nut"           # y4m | nut, for output "-"
    serve: str | None = None             # HOST:PORT of the local page
    sink: str | None = None              # "virtualcam"
    realtime: bool = False
    style: str = "flat"
    embedder: str = "ae"
    weights: Path | None = None
    size: int = 512
    skin: str = "auto"
    layout: str = "avatar"
    smooth: str = "viterbi"
    lag: int = 0
    timeline: Path | None = None
    stats: Path | None = None
    persona: Path | None = None          # a persona file (vidmoji identify); else identity measured live
    identity: IdentityOverrides = IdentityOverrides()
    templates: Path | None = None
    device: str = "auto"
    show_status: bool = True
    stages: int = LIVE_STAGES            # 2: the face stage in a thread of its own; 1: all in one thread


@dataclass(frozen=True)
class LiveResult:
    """What a live run did: frames read, output and dropped; latencies (ms) of the output frames; why it
    stopped, and whether that was asked for (the end of a file, Ctrl-C) or not (a source that went away)."""

    frames: int
    dropped: int
    latencies_ms: tuple[float, ...]
    wall_s: float
    stopped: str
    expected: bool
    written: tuple[str, ...]
    cpu_s: float = 0.0       # CPU time of the whole process (all threads) while frames ran

    @property
    def output_fps(self) -> float:
        return len(self.latencies_ms) / max(self.wall_s, 1e-9)

    def summary(self) -> str:
        lat = np.asarray(self.latencies_ms)
        timing = (f"latency median {np.median(lat):.0f} ms, p99 {np.percentile(lat, 99):.0f} ms"
                  if len(lat) else "no frame out")
        lines = [f"{self.frames} frames read, {len(self.latencies_ms)} out at {self.output_fps:.1f} fps, "
                 f"{self.dropped} dropped ({self.dropped / max(self.frames, 1):.1%}); {timing}; stopped: {self.stopped}"]
        lines += [f"  wrote {p}" for p in self.written]
        return "\n".join(lines)


# --- sources ----------------------------------------------------------------------------------------------
@dataclass
class Arrival:
    """A frame read from the source: (H, W, 3) uint8 RGB, its time in seconds from the first frame, and the
    moment it was read (time.perf_counter())."""

    frame: np.ndarray
    t: float
    read_at: float


@dataclass
class _Ended:
    reason: str
    expected: bool


class Mailbox:
    """Hands frames from the source thread to the frame path. With `drop`, a frame not yet taken when the
    next arrives is replaced (and returned to the caller, who counts it); without, the source waits."""

    def __init__(self, drop: bool):
        self.drop = drop
        self._item = None
        self._cond = threading.Condition()
        self._closed = False

    def wait_room(self) -> None:
        """Without `drop`: wait until the frame path has taken the last item (so a frame is read when it
        can be taken, and its latency does not count the wait)."""
        with self._cond:
            while not self.drop and self._item is not None and not self._closed:
                self._cond.wait(0.1)

    def put(self, item) -> object | None:
        """Offer an item; returns the item it replaced (a dropped frame), else None."""
        self.wait_room()
        with self._cond:
            replaced, self._item = self._item, item
            self._cond.notify_all()
            return replaced if isinstance(replaced, Arrival) else None

    def finish(self, item) -> None:
        """The last item (an end): never replaced, never replacing a frame still waiting."""
        with self._cond:
            while self._item is not None and not self._closed:
                self._cond.wait(0.1)
            self._item = item
            self._cond.notify_all()

    def get(self, timeout: float = 0.1):
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout)
            item, self._item = self._item, None
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


def _camera_input(spec: str) -> tuple[str, str] | None:
    """(device, FFmpeg input format) when `spec` names a camera: an index (0, 1, ...) or /dev/videoN."""
    system = platform.system()
    if spec.isdigit():
        if system == "Linux":
            return f"/dev/video{spec}", "v4l2"
        if system == "Darwin":
            return spec, "avfoundation"
        raise VidmojiError(f"camera {spec}: on this system give the camera by name, e.g. --source 'video=My Camera'")
    if spec.startswith("/dev/video"):
        return spec, "v4l2"
    if spec.startswith("video=") and system == "Windows":
        return spec, "dshow"
    return None


class LiveSource:
    """A camera, a network stream or a file, read in a thread that hands each frame to a Mailbox.

    realtime: a file is played at its own pace (its timestamps against the wall clock); without it a file is
    read as fast as the frame path takes frames, none dropped. Cameras and streams always run at their own
    pace. The source's end is reported as the last item: expected for a file that reached its end, not for
    a camera or stream that stopped, nor for a file the demuxer could not read on.
    """

    def __init__(self, spec: str, realtime: bool):
        self.spec = spec
        camera = _camera_input(spec)
        # A pipe or a device node streams like a camera: its end is not asked for.
        local = Path(spec)
        piped = local.exists() and not local.is_file() and not local.is_dir()
        self.kind = "camera" if camera else "stream" if _URL.match(spec) or piped else "file"
        try:
            if camera:
                self.container = av.open(camera[0], format=camera[1], timeout=_STREAM_TIMEOUT_S)
            elif _URL.match(spec):
                options = {"rtsp_transport": "tcp"} if spec.startswith("rtsp") else {}
                self.container = av.open(spec, options=options, timeout=_STREAM_TIMEOUT_S)
            else:
                self.container = _open_input(Path(spec))
        except MediaError:
            raise
        except Exception as exc:
            raise MediaError(f"cannot open {self.kind} {spec}: {_reason(exc)}") from exc
        if not self.container.streams.video:
            self.container.close()
            raise MediaError(f"{spec}: has no video stream")
        self.stream = _video_stream(Path(spec), self.container)
        rate = self.stream.average_rate or self.stream.guessed_rate or self.stream.base_rate
        self.fps = float(rate) if rate and 0 < float(rate) <= 1000 else 30.0
        self.pace = realtime and self.kind == "file"
        self.mailbox = Mailbox(drop=self.kind != "file" or realtime)
        self.dropped: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vidmoji-live-source", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.mailbox.close()
        self._thread.join(timeout=5)
        try:
            self.container.close()
        except Exception:
            pass

    def _run(self) -> None:
        stats = DecodeStats()
        t0 = wall0 = None
        turns, last = 0, None
        try:
            self.stream.thread_type = "AUTO" if self.kind == "file" and not self.pace else "SLICE"
            for frame in _decode_tolerant(self.container, self.stream, stats):
                if self._stop.is_set():
                    return
                t = _frame_seconds(frame, self.stream)
                if t is None or not np.isfinite(t):
                    t = (last + 1 / self.fps) if last is not None else 0.0
                if t0 is None:
                    t0, wall0, turns = t, time.perf_counter(), _upright_quarter_turns(frame)
                rel = t - t0
                if last is not None and rel <= last:      # out of order or repeated: not a new frame
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                if turns:
                    rgb = np.ascontiguousarray(np.rot90(rgb, turns))
                if self.pace:
                    wait = wall0 + rel - time.perf_counter()
                    if wait > 0 and self._stop.wait(wait):
                        return
                last = rel
                self.mailbox.wait_room()
                replaced = self.mailbox.put(Arrival(rgb, rel, time.perf_counter()))
                if replaced is not None:
                    self.dropped.append(replaced.t)
        except Exception as exc:
            stats.stopped = _reason(exc)
        if self._stop.is_set():
            return
        at = f" at {last:.2f} s" if last is not None else ""
        if stats.stopped is not None:
            ended = _Ended(f"the {self.kind} {self.spec} broke{at} ({stats.stopped})", False)
        elif self.kind == "file":
            ended = _Ended("end of file", True)
        else:
            ended = _Ended(f"the {self.kind} {self.spec} went away{at}", False)
        self.mailbox.finish(ended)


# --- sinks ------------------------------------------------------------------------------------------------
class FileSink:
    """A video file, written through VideoWriter (temporary name, renamed when complete)."""

    rgba = False

    def __init__(self, path: Path, width: int, height: int, fps: float):
        self.path = path
        self.writer = VideoWriter(path, width, height, fps, preset=LIVE_PRESET)

    def write(self, frame: np.ndarray, t: float) -> None:
        self.writer.write(frame, t)

    def close(self) -> str:
        self.writer.close()
        return str(self.path)

    def abort(self) -> None:
        self.writer.abort()


class PipeSink:
    """Raw frames on stdout: y4m (yuv420p, constant rate: what ffplay and ffmpeg read without options) or
    nut (rgb24 with each frame's own timestamp, in milliseconds)."""

    rgba = False

    def __init__(self, fmt: str, width: int, height: int, fps: float, out=None):
        from fractions import Fraction
        if fmt not in ("y4m", "nut"):
            raise VidmojiError(f"unknown stdout format {fmt!r}: choose y4m or nut")
        self.fmt = fmt
        self._out = out if out is not None else sys.stdout.buffer
        self.container = av.open(self._out, mode="w", format="yuv4mpegpipe" if fmt == "y4m" else "nut")
        rate = Fraction(fps).limit_denominator(1000)
        self.stream = self.container.add_stream("rawvideo", rate=rate)
        self.stream.width, self.stream.height = width + width % 2, height + height % 2
        self.stream.pix_fmt = "yuv420p" if fmt == "y4m" else "rgb24"
        self.time_base = Fraction(1, 1000) if fmt == "nut" else 1 / rate
        self.stream.time_base = self.stream.codec_context.time_base = self.time_base
        self._n, self._last = 0, -1

    def write(self, frame: np.ndarray, t: float) -> None:
        h, w = self.stream.height, self.stream.width
        if frame.shape[:2] != (h, w):
            frame = np.pad(frame, ((0, h - frame.shape[0]), (0, w - frame.shape[1]), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if self.fmt == "nut":
            pts = max(int(round(t * 1000)), self._last + 1)
        else:
            pts = self._n
        self._last, self._n = pts, self._n + 1
        vf.pts, vf.time_base = pts, self.time_base
        try:
            for packet in self.stream.encode(vf):
                self.container.mux(packet)
            self._out.flush()
        except (BrokenPipeError, OSError) as exc:
            raise _ReaderGone() from exc

    def close(self) -> str:
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
            self.container.close()
            self._out.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass
        return f"stdout ({self.fmt})"

    def abort(self) -> None:
        self.close()


class _ReaderGone(Exception):
    """The program reading stdout has closed it."""


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>vidmoji live</title>
<style>html,body{margin:0;height:100%;background:transparent;overflow:hidden}
img{display:block;height:100vh;width:100vw;object-fit:contain}</style></head>
<body><img id="avatar" src="/frame.png" alt="">
<script>
// Polls the newest frame (a PNG with transparency) as fast as the page draws.
const img = document.getElementById("avatar");
let busy = false;
async function tick() {
  if (!busy) {
    busy = true;
    try {
      const r = await fetch("/frame.png?" + Date.now(), {cache: "no-store"});
      if (r.ok) {
        const url = URL.createObjectURL(await r.blob());
        const old = img.src;
        img.src = url;
        if (old.startsWith("blob:")) URL.revokeObjectURL(old);
      }
    } catch (e) {}
    busy = false;
  }
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);
</script></body></html>
"""


class ServeSink:
    """A local page (http://HOST:PORT/) that shows the newest frame, with a transparent background in the
    avatar layout, for a browser or an OBS Browser Source. /frame.png is the newest frame, /status.json
    the run's counters. The PNG is encoded when asked for, once per frame, outside the frame path."""

    rgba = True

    def __init__(self, address: str, width: int, height: int, status):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise VidmojiError(f"--serve wants HOST:PORT (e.g. 127.0.0.1:8080), got {address!r}")
        self._frame = np.zeros((height, width, 4), np.uint8)
        self._n, self._png, self._png_n = 0, None, -1
        self._lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(200, "text/html; charset=utf-8", _PAGE.encode())
                elif path == "/frame.png":
                    self._send(200, "image/png", sink.png())
                elif path == "/status.json":
                    self._send(200, "application/json", json.dumps(status()).encode())
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, code, kind, body):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.send_header("Cache-Control", "no-store")
                    self.send_header("Access-Control-Allow-Origin", "*")
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        try:
            self.server = http.server.ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as exc:
            raise VidmojiError(f"cannot serve on {address}: {_reason(exc)}") from exc
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, name="vidmoji-serve", daemon=True)
        self._thread.start()

    def write(self, frame: np.ndarray, t: float) -> None:
        with self._lock:
            self._frame, self._n = frame, self._n + 1

    def png(self) -> bytes:
        with self._lock:
            frame, n = self._frame, self._n
            if n == self._png_n:
                return self._png
        code = cv2.COLOR_RGBA2BGRA if frame.shape[2] == 4 else cv2.COLOR_RGB2BGR
        ok, data = cv2.imencode(".png", cv2.cvtColor(frame, code), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        with self._lock:
            self._png, self._png_n = data.tobytes(), n
        return self._png

    def close(self) -> str:
        self.server.shutdown()
        self.server.server_close()
        return f"{self.url} (served until the end)"

    def abort(self) -> None:
        self.close()


_NO_VIRTUALCAM = ("--sink virtualcam needs pyvirtualcam: pip install 'vidmoji[live]' (and v4l2loopback on Linux, "
                  "OBS on Windows and macOS)")


class VirtualCamSink:
    """A virtual camera that Zoom, Meet or OBS see (pyvirtualcam: v4l2loopback on Linux, OBS Virtual Camera
    on Windows and macOS)."""

    rgba = False

    def __init__(self, width: int, height: int, fps: float):
        try:
            import pyvirtualcam
        except ImportError:
            raise VidmojiError(_NO_VIRTUALCAM) from None
        try:
            self.cam = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB)
        except Exception as exc:
            raise VidmojiError(f"cannot open a virtual camera: {_reason(exc)}") from exc

    def write(self, frame: np.ndarray, t: float) -> None:
        self.cam.send(np.ascontiguousarray(frame))

    def close(self) -> str:
        name = self.cam.device
        self.cam.close()
        return f"virtual camera {name}"

    def abort(self) -> None:
        self.close()


# --- the run ----------------------------------------------------------------------------------------------
class LiveAvatarComposer(AvatarComposer):
    """An AvatarComposer that never makes the frame path wait for cairosvg: the parts are drawn looking
    ahead (`warm`: all of them before the first frame; only the ones on show when a measured identity's
    composer is swapped in), and a part not drawn yet is drawn in a background thread while the slot's part
    last shown stands in. A part is drawn with its pupil sprites, so that its eye looking anywhere is composed
    from pixels in the frame path (a fraction of a millisecond) rather than drawn."""

    def __init__(self, style, skin: str, size: int, look=None):
        super().__init__(style, skin, size, look=look)
        self._ready: set[str] = set()
        self._drawing: set[str] = set()
        self._lock = threading.Lock()
        self._shown_parts: dict[str, str] = {}          # slot -> the part last shown
        self._wanted: tuple[str, ...] = ()              # the parts last asked for (some may be stood in for)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()   # parts to draw in the background
        self._worker: threading.Thread | None = None

    def warm(self, part_ids=None, pause=None) -> "LiveAvatarComposer":
        """Draw the layers of `part_ids` (None: every part of the expression slots) and of the look; pause:
        called before each part (see Pacer).

        `_layer` is called as `_blend_layers` calls it, with the layer name given ("" for a whole part):
        its lru_cache keys `f(a, b)` and `f(a, b, "")` apart, and so each part drawn here without it was
        drawn again in the frame path at its first use (10-30 ms)."""
        pause = pause or (lambda: None)
        for part in self.style.parts:
            if part.slot in parts.SLOTS and (part_ids is None or part.id in part_ids):
                pause()
                self._draw_part(part.id)
                self._ready.add(part.id)
                self._shown_parts.setdefault(part.slot, part.id)
        look = self.look.parts() if self.look is not None else {}
        for slot, layer in LOOK_LAYERS:
            if slot in look:
                pause()
                self._layer(look[slot], (0.0, 0.0), layer)
        return self

    def _draw_part(self, part_id: str) -> None:
        self._layer(part_id, (0.0, 0.0), "")
        if self.has_pupils(part_id):
            self._pupil_sprites(part_id, "")

    def avatar(self, choice: tuple[str, ...], gaze=None) -> np.ndarray:
        with self._lock:
            self._wanted = tuple(choice)
            later = [p for p in choice if p not in self._ready]
            # A part not drawn yet: the slot's last part shown stands in (a part never drawn with no stand-in
            # is drawn here, which only a composer used before its warm() would need).
            stand_in = {p: self._shown_parts.get(self._parts[p].slot) for p in later}
        for p in later:
            if stand_in[p] is None:
                self._draw_part(p)
                with self._lock:
                    self._ready.add(p)
        choice = tuple(stand_in.get(p) or p for p in choice)
        with self._lock:
            new = [p for p in later if p not in self._drawing and p not in self._ready]
            self._drawing.update(new)
            for p in choice:
                self._shown_parts[self._parts[p].slot] = p
        if new:
            if self._worker is None:   # one drawing thread, started once (a thread per batch cost 5 ms to start)
                self._worker = threading.Thread(target=self._drawer, daemon=True, name="vidmoji-layers")
                self._worker.start()
            self._queue.put(new)
        return self._avatar(choice, quantize_gaze(gaze))

    def on_show(self) -> set[str]:
        """The parts on show: those last asked for and those standing in (what a composer swapped in for this
        one must have drawn before the swap)."""
        with self._lock:
            return set(self._wanted) | set(self._shown_parts.values())

    def close(self) -> None:
        """Wait for the parts asked for to be drawn, and stop the drawing thread."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()

    def _drawer(self) -> None:
        background_priority()
        while (part_ids := self._queue.get()) is not None:
            for part_id in part_ids:
                self._draw_part(part_id)
                with self._lock:
                    self._ready.add(part_id)
                    self._drawing.discard(part_id)


# The nice value of the threads that work beside the frame path (the identity, layers drawn ahead): on a
# small CPU they took their share of it from the frame's own stages, and a frame waiting for a core shows as
# latency and drops. Linux schedules threads one by one, so this lowers only the calling thread.
BACKGROUND_NICE = 10


# The share of the wall-clock time the identity's measuring and drawing may work while the stream runs: its
# 0.3-0.8 s of CPU (most of it Python, which holds the GIL the frame path's two stages need) done at once took the
# frames it overlapped to 100-160 ms and dropped a fifth of them; spread over three times as long, it fits in
# the time the frame path leaves.
IDENTITY_DUTY = 1 / 3


class Pacer:
    """Spreads background work out: called between its pieces, it sleeps so that the calling thread works
    (CPU time) at most `duty` of the wall-clock time; the sleeps leave the CPU and the GIL to the frame path."""

    def __init__(self, duty: float):
        self.duty = duty
        self._mark = time.thread_time()

    def __call__(self) -> None:
        worked = time.thread_time() - self._mark
        time.sleep(min(worked * (1.0 - self.duty) / self.duty, 1.0))
        self._mark = time.thread_time()


def background_priority() -> None:
    """Lower the calling thread's CPU priority (Linux; elsewhere nothing changes)."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        except (OSError, AttributeError):
            pass


@dataclass
class _Pending:
    """A frame inside the smoother's lag: what it needs to be composed once its parts are decided."""

    arrival: Arrival
    pose: object
    gaze: np.ndarray | None
    embeddings: dict[str, np.ndarray] | None


@dataclass
class _Counters:
    read: int = 0
    out: int = 0
    timed: list = field(default_factory=list)       # (t, latency ms) of every frame out
    cpu_s: float = 0.0
    recent: deque = field(default_factory=lambda: deque(maxlen=120))
    started: float = field(default_factory=time.perf_counter)


class LivePath:
    """The frame path driven one frame at a time: face stage, online baseline and eyes, matching, fixed-lag
    smoothing, composition. `push(arrival)` returns the (arrival, output picture, RGBA picture or None)
    of the frames decided by it (none during the first `lag` frames, one after)."""

    def __init__(self, options: LiveOptions, fps: float, want_rgba: bool):
        self.options, self.fps = options, fps
        self.style = load_style(options.style, options.templates)
        if options.skin != "auto":
            self.style.colour(options.skin)
        self.device = choose_device(options.device)
        self.embedder = load_embedder(options.embedder, self.device, options.weights)
        self.indexes = load_indexes(self.style, self.embedder, self.device, log=log)
        self.stage = FaceStage(self.device, self.embedder if self.embedder.kind == "rgb" else None, max_faces=1,
                               small_faces="fallback", detect_every=LIVE_DETECT_EVERY).freeze()
        self.calibration = OnlineCalibration(fps)
        self.eyes = OnlineEyes(fps)
        switch = {} if options.smooth == "viterbi" else {"switch_cost": 0.0, "end_margin": 0.0}
        eyes = {"switch_cost": LIVE_EYE_SWITCH_COST} if options.smooth == "viterbi" else switch
        self.smoothers = {s: FixedLagViterbi(len(self.indexes[s].part_ids), options.lag,
                                             **(eyes if s in ("eye_left", "eye_right") else switch))
                          for s in parts.SLOTS}
        # Identity: a persona is drawn from the first frame; without one the first IDENTITY_S seconds of
        # frontal views are measured (in the background) and the avatar takes the subject's look then.
        persona = read_persona(options.persona) if options.persona else None
        check_overrides(options.identity, self.style)
        self.overrides = IdentityOverrides(**{**vars(options.identity), "skin": options.skin})
        self.identity, self.hair_part, look = None, None, None
        self._views: IdentitySampler | None = None
        if persona is not None:
            self.identity = apply_overrides(persona, self.overrides)
            look, self.hair_part = subject_look(self.identity, self.style, self.indexes, self.embedder, self.device)
        else:
            self._views = IdentitySampler(limit=IDENTITY_VIEWS)
        self.skin = self.identity.skin if self.identity is not None else (
            options.skin if options.skin != "auto" else self.style.default_skin)
        self._face_frames = 0
        self.composer = FrameComposer(LiveAvatarComposer(self.style, self.skin, options.size, look).warm(),
                                      options.layout)
        self._first_composer, self._identity_thread = self.composer.composer, None
        self._warm_models()
        # After the warm-up, which must run the iris model twice (its second run on the same photo would be
        # skipped, and the stream's first frame took 40 ms in it).
        self.stage.refiner.skip_still = LIVE_SKIP_STILL_EYES
        self._meshes: deque = deque(maxlen=max(1, int(_REFERENCE_S * fps)))
        self.pending: deque[_Pending] = deque()
        self.want_rgba = want_rgba
        self.timeline: list[dict] = []

    def _warm_models(self) -> None:
        """Run the detector and the face stage on the bundled photo (twice: TorchScript optimises a frozen
        network on its first runs, which took the mesh 52 and 20 ms against 4 after, the detector 93 and 65),
        and load and run the person segmenter, and the identity's measures once, when the identity will be
        measured from the stream (it was loaded mid-stream; the measures' first call was one 60-77 ms piece of
        background work), so the stream does not pay for their first calls; then forget it."""
        if self._views is not None:
            warm_segmenter(self.device)
        photo = cv2.imread(str(Path(__file__).with_name("data") / "astronaut.png"), cv2.IMREAD_COLOR)
        if photo is not None:
            frame = cv2.cvtColor(photo, cv2.COLOR_BGR2RGB)[None]
            # The detector's frozen networks too (the stage detects on its first run only).
            frame_t = torch.from_numpy(frame).to(self.device)
            for _ in range(2):
                self.stage.locator.detector.detect(frame_t)
            for warm_run in range(2):
                found = self.stage.run(frame)
                if found.has_face[0]:
                    mesh = found.mesh[:1]
                    if self._views is not None and warm_run == 0:
                        # The identity's own measures too: their first call (OpenCV's and numpy's set-up) took
                        # 60 ms in one piece against 4 after, and that piece stalled the frames it overlapped.
                        views = IdentitySampler(limit=1)
                        views.offer(1, frame[0], mesh[0], float(head_angles(torch.from_numpy(mesh))["yaw"][0]))
                        measure_identity(views.samples, self.device)
                    meas = measure(torch.from_numpy(mesh))
                    eyes, _ = OnlineEyes(self.fps).push(torch.from_numpy(mesh), meas, self.calibration.calibration)
                    part_candidates(mesh, self.calibration.calibration, eyes, self.embedder, self.indexes, self.device,
                                    found.rgb, TOP_K)
        self.stage.locator.reset()
        self.stage.refiner.reset()
        self.stage._previous_box = None

    def push(self, arrival: Arrival | None) -> list[tuple[Arrival, np.ndarray, np.ndarray | None]]:
        """One frame in (None: flush the frames still inside the lag); the frames decided out."""
        if arrival is None:
            out = []
            for _ in range(len(self.pending)):
                out += self._decide({s: np.full(1, -1) for s in parts.SLOTS}, {s: np.zeros(1) for s in parts.SLOTS},
                                    None)
            return out
        return self.push_found(arrival, self.stage.run(arrival.frame[None]))

    def push_found(self, arrival: Arrival, found) -> list[tuple[Arrival, np.ndarray, np.ndarray | None]]:
        """`push` from the face stage's result for this frame on (FaceFrames of one frame)."""
        if not found.has_face[0]:
            self.eyes.reset()
            candidates = {s: (np.full((1, 1), -1), np.zeros((1, 1))) for s in parts.SLOTS}
            pending = _Pending(arrival, None, None, None)
        else:
            mesh = found.mesh[:1]
            mesh_t = torch.from_numpy(mesh)
            meas = measure(mesh_t)
            calibration = self.calibration.update(meas)
            eyes, gaze = self.eyes.push(mesh_t, meas, calibration, torch.from_numpy(found.eye_contrast[:1]))
            matches, candidates = part_candidates(mesh, calibration, eyes, self.embedder, self.indexes, self.device,
                                                  found.rgb, TOP_K, measures=meas)
            self._follow(mesh[0], arrival.frame)
            pending = _Pending(arrival, head_pose(mesh[0]), gaze.numpy()[0],
                               {s: matches[s].embeddings for s in parts.SLOTS})
        self.pending.append(pending)
        return self._decide({s: c[0][0] for s, c in candidates.items()}, {s: c[1][0] for s, c in candidates.items()},
                            pending)

    def _decide(self, ids, sims, pending) -> list:
        rows = {s: self.smoothers[s].push(ids[s], sims[s]) for s in parts.SLOTS}
        if len(self.pending) <= self.options.lag and pending is not None:
            return []
        p = self.pending.popleft()
        choice, rows_i, sim_i = None, None, {}
        if p.embeddings is not None and all(r >= 0 for r in rows.values()):
            rows_i = rows
            choice = tuple(self.indexes[s].part_ids[rows[s]] for s in parts.SLOTS)
            sim_i = {s: chosen_similarity(p.embeddings[s], self.indexes[s], np.array([rows[s]]), np.array([0]), 1)[0]
                     for s in parts.SLOTS}
        gaze = tuple(float(v) for v in p.gaze.mean(0)) if p.gaze is not None and choice is not None else None
        frame = p.arrival.frame if self.options.layout != "avatar" else None
        rgb = self.composer.compose(frame, p.arrival.t, choice, p.pose if choice else None, gaze)
        rgba = self.composer.compose(frame, p.arrival.t, choice, p.pose if choice else None, gaze, rgba=True) \
            if self.want_rgba else None
        if self.options.timeline is not None:
            self.timeline.append(timeline_entry(p.arrival.t, rows_i, sim_i, p.gaze if choice else None, self.indexes))
        return [(p.arrival, rgb, rgba)]

    def _follow(self, mesh: np.ndarray, frame: np.ndarray) -> None:
        """Keep the running reference pose and, without a persona, the views the identity is measured from
        (the first IDENTITY_S seconds of face frames; then measured once, beside the frame path)."""
        self._meshes.append(mesh)
        n = len(self._meshes)
        if n == 1 or n % max(1, int(self.fps / 2)) == 0:
            self.composer.reference = head_pose(np.median(np.stack(self._meshes), axis=0))
        if self._views is None:
            return
        self._face_frames += 1
        yaw = float(head_angles(torch.from_numpy(mesh[None]))["yaw"][0])
        self._views.offer(self._face_frames, frame, mesh, yaw)
        if self._face_frames >= IDENTITY_S * self.fps:
            views, self._views = self._views.samples, None
            self._identity_thread = threading.Thread(target=self._settle_identity, args=(views,), daemon=True,
                                                     name="vidmoji-identity")
            self._identity_thread.start()

    def close(self) -> None:
        """Wait for the work started beside the frame path (the identity, layers drawn ahead): a thread
        still inside torch or cairo when the interpreter exits aborts the process ("FATAL: exception not
        rethrown"), which a short file or an early Ctrl-C made likely."""
        if self._identity_thread is not None:
            self._identity_thread.join()
        for composer in {id(c): c for c in (self._first_composer, self.composer.composer)}.values():
            composer.close()

    def _settle_identity(self, views) -> None:
        """Measure the subject's identity, draw the parts in its skin and look, then swap them in."""
        background_priority()
        pause = Pacer(IDENTITY_DUTY)
        identity = apply_overrides(measure_identity(views, self.device, pause), self.overrides)
        pause()
        look, hair_part = subject_look(identity, self.style, self.indexes, self.embedder, self.device)
        # Only the parts on show are drawn before the swap (drawing all of them took 1 s of CPU from the
        # frame path, 14 ms a part); the others are drawn when first chosen, the slot's last part standing in.
        composer = LiveAvatarComposer(self.style, identity.skin, self.options.size, look).warm(
            self.composer.composer.on_show(), pause)
        self.identity, self.hair_part, self.skin = identity, hair_part, identity.skin
        self.composer.composer = composer


def _check_options(options: LiveOptions) -> None:
    if options.layout not in ("avatar", "side-by-side", "overlay"):
        raise VidmojiError(f"unknown layout {options.layout!r}: choose avatar, side-by-side or overlay")
    if options.smooth not in LIVE_SMOOTHERS:
        raise VidmojiError(f"live smoothing is one of {', '.join(LIVE_SMOOTHERS)}, not {options.smooth!r}")
    if not 0 <= options.lag <= MAX_LAG:
        raise VidmojiError(f"--lag must be 0 to {MAX_LAG} frames, got {options.lag}")
    if options.stages not in (1, 2):
        raise VidmojiError(f"--stages must be 1 or 2, got {options.stages}")
    if options.output is None and options.serve is None and options.sink is None:
        raise VidmojiError("nothing to show the avatar on: give -o FILE (or -o - for stdout), --serve HOST:PORT "
                           "or --sink virtualcam")
    if options.sink not in (None, "virtualcam"):
        raise VidmojiError(f"unknown sink {options.sink!r}: the only one is virtualcam")
    if options.sink == "virtualcam":
        try:
            import pyvirtualcam  # noqa: F401
        except ImportError:
            raise VidmojiError(_NO_VIRTUALCAM) from None
    if options.output not in (None, "-") and Path(options.output).suffix.lower() in IMAGE_SUFFIXES:
        raise VidmojiError(f"cannot write {options.output}: live writes a video (.mp4, .mkv, ...)")
    for path in (options.output if options.output not in (None, "-") else None, options.timeline, options.stats):
        if path is not None:
            check_writable(Path(path))


def _status_line(counters: _Counters, dropped: int) -> str:
    recent = list(counters.recent)
    fps = 0.0
    if len(recent) > 1 and recent[-1][0] > recent[0][0]:
        fps = (len(recent) - 1) / (recent[-1][0] - recent[0][0])
    lat = np.median([r[1] for r in recent]) if recent else float("nan")
    return f"live: {fps:5.1f} fps, latency {lat:4.0f} ms, {dropped} dropped, {counters.out} out"


def live_media(options: LiveOptions) -> LiveResult:
    """Run the avatar live from `options.source` until it ends, breaks or Ctrl-C; see the module docstring."""
    _check_options(options)
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    # One thread for the models: the source's decoding and the sinks' encoding run beside them, and on a
    # small shared CPU two model threads waiting on each other cost a frame's time many times over. The
    # same for OpenCV's compositing (warp, blend): its second thread would wait for a core the other
    # stage holds.
    torch.set_num_threads(LIVE_TORCH_THREADS)
    cv2.setNumThreads(1)
    try:
        return _live(options)
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)


def _live(options: LiveOptions) -> LiveResult:
    source = LiveSource(options.source, options.realtime)
    sinks = []
    try:
        first_w, first_h = source.stream.codec_context.width, source.stream.codec_context.height
        width, height = _output_size(options.layout, options.size, first_w, first_h)
        path = LivePath(options, source.fps, want_rgba=options.serve is not None and options.layout == "avatar")
        if options.layout == "overlay":
            log("note: live draws the main face only (render's overlay covers every face)")
        counters = _Counters()
        status = lambda: {"frames": counters.read, "out": counters.out, "dropped": len(source.dropped),  # noqa: E731
                          "latency_ms": float(np.median([r[1] for r in counters.recent])) if counters.recent else None}
        if options.output == "-":
            sinks.append(PipeSink(options.stdout_format, width, height, source.fps))
        elif options.output is not None:
            sinks.append(FileSink(Path(options.output), width, height, source.fps))
        if options.serve is not None:
            serve = ServeSink(options.serve, options.size if options.layout == "avatar" else width,
                              options.size if options.layout == "avatar" else height, status)
            sinks.append(serve)
            log(f"serving the avatar on {serve.url} (OBS: add a Browser Source with this address)")
        if options.sink == "virtualcam":
            sinks.append(VirtualCamSink(width, height, source.fps))
    except BaseException:
        for sink in sinks:
            sink.abort()
        source.stop()
        raise
    try:
        stopped, expected = _run(source, path, sinks, counters, options)
    finally:
        path.close()
    if counters.out == 0 and not source.dropped:
        for sink in sinks:
            sink.abort()
        raise MediaError(f"{options.source}: no frame could be read ({stopped})")
    written = []
    for sink in sinks:
        written.append(sink.close())
    wall = (time.perf_counter() - counters.started)
    frames = counters.read + len(source.dropped)
    lat = np.asarray([ms for _, ms in counters.timed], np.float64)
    if options.timeline is not None:
        write_text_atomic(options.timeline, json.dumps(
            _live_timeline(path), indent=1))
        written.append(str(options.timeline))
    if options.stats is not None:
        write_text_atomic(options.stats, json.dumps(_stats(counters, source.dropped, wall), indent=1))
        written.append(str(options.stats))
    return LiveResult(frames, len(source.dropped), tuple(lat.tolist()), wall, stopped, expected, tuple(written),
                      counters.cpu_s)


def _live_timeline(path: LivePath) -> dict:
    doc = timeline_document(path.timeline, path.calibration.calibration, path.style, path.embedder)
    if path.identity is not None:
        doc["identity"] = identity_timeline(path.identity, path.hair_part)
    return doc


def _stats(counters: _Counters, dropped: list[float], wall: float) -> dict:
    """The --stats file: every frame read (time, latency in ms, dropped), then the summary."""
    frames = [{"t": round(t, 6), "latency_ms": round(ms, 3), "dropped": False} for t, ms in counters.timed]
    frames += [{"t": round(t, 6), "latency_ms": None, "dropped": True} for t in dropped]
    frames.sort(key=lambda f: f["t"])
    lat = np.asarray([ms for _, ms in counters.timed], np.float64)
    return {"frames": frames,
            "summary": {"median_ms": round(float(np.median(lat)), 3) if len(lat) else None,
                        "p99_ms": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
                        "fps": round(len(lat) / max(wall, 1e-9), 3), "dropped": len(dropped)}}


def _run(source: LiveSource, path: LivePath, sinks: list, counters: _Counters,
         options: LiveOptions) -> tuple[str, bool]:
    """The loop: newest frame in, decided frames out to every sink. Returns why it stopped and whether that
    was asked for."""
    tty = sys.stderr.isatty()
    every = _STATUS_EVERY_S if tty else _STATUS_EVERY_S_NOT_TTY
    next_status = time.perf_counter() + every
    faces = _FaceThread(source, path) if options.stages > 1 else None
    if faces is not None:
        faces.choose_start()
    source.start()
    if faces is not None:
        faces.start()
    counters.started = time.perf_counter()
    cpu = time.process_time()
    stopped, expected = "", True
    try:
        while True:
            item = faces.next_item() if faces is not None else source.mailbox.get()
            if item is None:
                continue
            if isinstance(item, _Failed):
                raise item.error
            if isinstance(item, _Ended):
                stopped, expected = item.reason, item.expected
                _emit(path.push(None), sinks, counters)
                break
            counters.read += 1
            began, began_cpu = time.perf_counter(), time.thread_time()
            # A frame straight from the source (one thread, or serial) goes through the whole frame path
            # here; one from the face stage's thread through the rest of it.
            _emit(path.push(item) if isinstance(item, Arrival) else path.push_found(*item), sinks, counters)
            if faces is not None:
                faces.finished(time.perf_counter() - began, time.thread_time() - began_cpu)
            now = time.perf_counter()
            if options.show_status and now >= next_status:
                next_status = now + every
                line = _status_line(counters, len(source.dropped))
                sys.stderr.write(f"\r{line}" if tty else f"{line}\n")
                sys.stderr.flush()
    except KeyboardInterrupt:
        stopped, expected = "Ctrl-C", True
        try:
            _emit(path.push(None), sinks, counters)
        except Exception:
            pass
    except _ReaderGone:
        stopped, expected = "the program reading stdout closed it", True
    finally:
        counters.cpu_s = time.process_time() - cpu
        source.stop()
        if faces is not None:
            faces.stop()
        if options.show_status and tty:
            sys.stderr.write("\n")
    return stopped, expected


@dataclass
class _Failed:
    """The face stage's thread stopped on an error, raised again in the frame path's thread."""

    error: BaseException


class _Serial:
    """The face stage's thread has stopped taking frames: the frame path's thread reads the source itself."""


class _FaceThread:
    """The first stage of the frame path (FaceStage.run: locate, mesh, iris) in a thread of its own, one
    frame ahead of the rest: it takes the newest frame from the source's mailbox once the second stage has
    taken the last one, and hands (arrival, the face stage's result) over through a mailbox of one that
    waits rather than drops, so that when the second stage is slow the frame waiting in the source's mailbox
    is the one replaced and counted.

    Overlapping the stages pays only with a core free for each: on a CPU that other programs keep busy
    the two threads share one core's worth of time, each stage takes twice as long, and every hand-over
    waits for the other thread to be scheduled, so a frame's latency grows for no more frames out. So it
    starts overlapped only on a machine that is idle before the stream (`choose_start`), else serial (this
    thread parked, the frame path's thread reading the source and running the whole frame path, as with
    one thread), overlaps when serial falls behind the source (a frame's mean time over
    the last half second above BEHIND of the frame period) while the machine leaves IDLE_TO_OVERLAP cores
    idle (Linux's /proc/stat; elsewhere it overlaps whenever serial falls behind), and goes serial again
    when the stages' wall-clock time is more than STARVED times their CPU time (this thread hands over its
    last frame, then a _Serial), trying again after a back-off (2 s, doubling to 16 s)."""

    # On an idle 2-core CPU the two stages' wall-clock time runs 1.3-1.5 times their CPU time (they share the
    # GIL, and the identity's measuring bursts beside them); at 1.5 the stages went serial half of the time
    # there (s32 at real time: 51% overlapped, 30-42 of 180 frames dropped), where serial (39 ms a frame) cannot
    # keep up. Other programs holding the cores make it 2 and more.
    STARVED = 2.0
    WINDOW = 15
    IDLE_TO_OVERLAP = 0.6
    BEHIND = 0.9              # serial's mean time a frame over this share of the frame period: overlap
    START_PROBE_S = 0.2
    IDLE_TO_START = 1.6       # the cores idle before the stream (nothing of ours running) to overlap at once

    def __init__(self, source: LiveSource, path: LivePath):
        self.source, self.path = source, path
        self.mailbox = Mailbox(drop=False)
        # Serial first: the frame path's thread reads the source itself until serial falls behind.
        self.overlap = False           # the frame path's thread reads from this thread (else the source)
        self.switches = 0
        self._want_overlap = False     # what the frame path's thread asked this thread for
        self._period = 1.0 / max(source.fps, 1e-3)
        self._stop = threading.Event()
        self._gate = threading.Condition()
        self._face_times: deque = deque(maxlen=self.WINDOW)     # (wall, cpu) of FaceStage.run
        self._rest_times: deque = deque(maxlen=self.WINDOW)     # (wall, cpu) of the rest, or of it all
        self._backoff, self._retry_at = 2.0, 0.0
        self._cpu_stat: tuple[float, float] | None = None
        self._thread = threading.Thread(target=self._run, name="vidmoji-live-faces", daemon=True)

    def choose_start(self) -> None:
        """Before the stream: overlap from the first frame when the machine leaves more than IDLE_TO_START
        cores idle over START_PROBE_S (serial first took the first half second's frames at 40-75 ms, a
        third of them dropped, until serial was seen to fall behind), else start serial."""
        self._idle_cores()
        time.sleep(self.START_PROBE_S)
        idle = self._idle_cores()
        if idle is not None and idle >= self.IDLE_TO_START:
            self.overlap = self._want_overlap = True
            self.switches += 1

    def start(self) -> None:
        self._idle_cores()             # the idle time counts from here
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.mailbox.close()
        with self._gate:
            self._gate.notify_all()
        self._thread.join(timeout=5)

    def next_item(self):
        """For the frame path's thread: (arrival, found) from this thread while overlapping, else the
        source's next item (an Arrival to run the whole frame path on); an end, a failure or None."""
        while self.overlap:
            item = self.mailbox.get()
            if not isinstance(item, _Serial):
                return item
            self.overlap = False
            self._rest_times.clear()       # from now on, the whole frame path's times
        return self.source.mailbox.get()

    def finished(self, wall: float, cpu: float) -> None:
        """The frame path's thread is done with a frame (its wall-clock and CPU seconds): choose the mode."""
        self._rest_times.append((wall, cpu))
        now = time.perf_counter()
        if self.overlap:
            if self._want_overlap and len(self._rest_times) == self.WINDOW and len(self._face_times) == self.WINDOW:
                a, b = np.asarray(list(self._face_times)), np.asarray(list(self._rest_times))
                if (a[:, 0] + b[:, 0]).sum() > self.STARVED * (a[:, 1] + b[:, 1]).sum():
                    self._want_overlap = False          # this thread hands over what it holds, then parks
                    self._retry_at = now + self._backoff
                    self._backoff = min(2 * self._backoff, 16.0)
                    self._idle_cores()                  # the idle time counts from here
                    self.switches += 1
        elif (len(self._rest_times) == self.WINDOW and now >= self._retry_at
              and np.mean(np.asarray(list(self._rest_times))[:, 0]) > self.BEHIND * self._period):
            idle = self._idle_cores()
            if idle is None or idle >= self.IDLE_TO_OVERLAP:
                self._face_times.clear()
                self._rest_times.clear()
                self.overlap = self._want_overlap = True
                self.switches += 1
                with self._gate:
                    self._gate.notify_all()
            else:
                self._retry_at = now + 0.5

    def _idle_cores(self) -> float | None:
        """Cores the whole machine left idle since the last call (None where /proc/stat is not there)."""
        try:
            with open("/proc/stat") as f:
                fields = [float(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle, total = fields[3] + (fields[4] if len(fields) > 4 else 0.0), sum(fields)
        last, self._cpu_stat = self._cpu_stat, (idle, total)
        if last is None or total <= last[1]:
            return None if last is None else 0.0
        return (idle - last[0]) / (total - last[1]) * (os.cpu_count() or 1)

    def _run(self) -> None:
        active = False                 # taking frames (else parked, the frame path's thread reading the source)
        try:
            while not self._stop.is_set():
                # Take a frame only once the second stage has taken the last one: a frame finished early
                # would wait, old, while the source holds a newer one.
                self.mailbox.wait_room()
                if not self._want_overlap:
                    if active:                 # after the frames handed over: the frame path reads the source
                        self.mailbox.put(_Serial())
                        active = False
                    with self._gate:
                        while not self._want_overlap and not self._stop.is_set():
                            self._gate.wait(0.1)
                    continue
                active = True
                item = self.source.mailbox.get()
                if item is None:
                    continue
                if isinstance(item, _Ended):
                    self.mailbox.finish(item)
                    return
                wall, cpu = time.perf_counter(), time.thread_time()
                found = self.path.stage.run(item.frame[None])
                self._face_times.append((time.perf_counter() - wall, time.thread_time() - cpu))
                self.mailbox.put((item, found))
        except BaseException as exc:  # handed to the frame path's thread, which raises it
            self.mailbox.finish(_Failed(exc))


def _emit(decided: list, sinks: list, counters: _Counters) -> None:
    for arrival, rgb, rgba in decided:
        for sink in sinks:
            sink.write(rgba if sink.rgba and rgba is not None else rgb, arrival.t)
        done = time.perf_counter()
        ms = (done - arrival.read_at) * 1000.0
        counters.out += 1
        counters.timed.append((arrival.t, ms))
        counters.recent.append((done, ms))
