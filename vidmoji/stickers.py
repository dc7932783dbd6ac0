"""Stickers and transparent avatars: the `avatar` layout composed on alpha, in the formats messengers and
video editors take, fitted to each messenger's published limits, and sticker packs from a clip's most
expressive moments.

- `plan_output` reads what `render` was asked for (format by `--format` or the output's suffix, a preset,
  the moment with `--start`/`--duration`, `--loop`) and refuses bad requests before any work.
- `write_transparent` composes the frames (vidmoji.pipeline's avatar states, placed as the opaque layout
  places them, on alpha) and writes them (vidmoji.transparent), or the animated SVG; a preset's output is
  read back and checked, and re-encoded (quality ladder, then a lower frame rate, then fewer frames)
  until it meets the limits.
- `find_moments` and `make_pack` (`vidmoji stickers`) find a smile, a laugh, surprise, a wink, a frown, a
  raised brow ... in the timeline's tags and write one sticker, one still PNG and a pack.json entry each.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from vidmoji.avatar.compose import AvatarComposer, avatar_placement, avatar_rgba_frame
from vidmoji.avatar.templates import animated_svg
from vidmoji.errors import VidmojiError
from vidmoji.progress import Progress, log
from vidmoji.transparent import (ALPHA_FORMATS, Decoded, EncodeSettings, format_of, read_alpha,
                                 write_alpha)
from vidmoji.video import VideoInfo, _temp_path_for, check_writable, write_image_atomic, write_text_atomic

LOOPS = ("cut", "pingpong", "fade")
OUTPUT_FORMATS = ("mp4", *ALPHA_FORMATS, "svg")
DEFAULT_STICKER_S = 3.0
_FADE_S = 0.3     # --loop fade: the sticker fades in and out over this long (at most a quarter of it)


@dataclass(frozen=True)
class Preset:
    """A messenger's limits: format, square size in pixels, transparent margin around the art (pixels),
    longest duration (seconds), highest frame rate and largest file (bytes); None: no limit."""

    name: str
    format: str
    size: int
    inset: int
    max_s: float | None
    max_fps: float | None
    max_bytes: int

    def describe(self) -> str:
        limits = [f"{self.size}x{self.size} px"] + ([f"at most {self.max_s:g} s"] if self.max_s else []) + \
            ([f"at most {self.max_fps:g} fps"] if self.max_fps else []) + [f"at most {self.max_bytes // 1024} KB"]
        return f"{self.name} ({ALPHA_FORMATS[self.format].what}, {', '.join(limits)})"


PRESETS = {p.name: p for p in (
    Preset("telegram", "webm", 512, 0, 3.0, 30.0, 256 * 1024),
    Preset("whatsapp", "webp", 512, 16, None, None, 500 * 1024),
    Preset("discord", "apng", 320, 0, None, None, 512 * 1024),
)}
# The suffix each preset writes: Discord takes APNG stickers as .png files.
PRESET_SUFFIX = {"telegram": ".webm", "whatsapp": ".webp", "discord": ".png"}
# Frame rates and shares of the duration tried, in this order, after the quality ladder alone fails.
_FPS_STEPS = (1.0, 2 / 3, 1 / 2, 1 / 3)
_DURATION_STEPS = (1.0, 0.75, 0.5)


def _quality_ladder(fmt: str, seconds: float, max_bytes: int) -> list[EncodeSettings]:
    """Encoder settings from the best to the smallest: VP9 constant quality, then a bitrate aimed at the
    size limit; WebP quality; APNG palettes (one per clip: flat art loses nothing visible at 255 colours
    and takes a third of the bytes of full RGBA)."""
    if fmt == "webm":
        target = int(max_bytes * 8 * 0.85 / max(seconds, 0.1))
        return [EncodeSettings(crf=30), EncodeSettings(crf=40), EncodeSettings(crf=40, bitrate=target),
                EncodeSettings(crf=50, bitrate=int(target * 0.7)), EncodeSettings(crf=63, bitrate=int(target * 0.5))]
    if fmt == "webp":
        return [EncodeSettings(quality=q) for q in (65, 50, 35, 20, 10)]
    if fmt == "apng":
        return [EncodeSettings(colours=255), EncodeSettings(colours=64), EncodeSettings(colours=16)]
    return [EncodeSettings()]


@dataclass(frozen=True)
class OutputPlan:
    """A transparent output to write: path, format name (an ALPHA_FORMATS key or "svg"), preset, the
    moment (start, duration seconds), loop, frame rate (None: the clip's), GIF dither, and the avatar's
    size and transparent margin in pixels."""

    output: Path
    format: str
    preset: Preset | None
    start: float
    duration: float | None
    loop: str
    fps: float | None
    dither: bool
    size: int
    inset: int = 0


def plan_output(source: Path, info: VideoInfo, options) -> OutputPlan | None:
    """What `render` writes when it is a transparent format or a preset (None: the opaque MP4/PNG path).
    Raises VidmojiError (one line) for an unknown format or preset, a layout other than `avatar`, a
    moment outside the clip, or a duration past the preset's limit."""
    name = options.format.lower().lstrip(".") if options.format else None
    preset = None
    if options.preset is not None:
        if options.preset not in PRESETS:
            raise VidmojiError(f"unknown preset {options.preset!r}: choose {', '.join(PRESETS)}")
        preset = PRESETS[options.preset]
        if name is not None and name != preset.format:
            raise VidmojiError(f"the {preset.name} preset writes {preset.format}, not {name}")
        name = preset.format
    if name is not None and name not in OUTPUT_FORMATS:
        raise VidmojiError(f"unknown format {options.format!r}: choose {', '.join(OUTPUT_FORMATS)}")
    output = Path(options.output) if options.output else None
    if name is None and output is not None:
        fmt = format_of(output)
        name = fmt.name if fmt is not None else ("svg" if output.suffix.lower() == ".svg" and not info.is_image
                                                 else None)
        if name is None and output.suffix.lower() == ".png" and not info.is_image:
            raise VidmojiError(f"cannot write {output}: a clip renders to a PNG sequence with --format png "
                               f"(-o names its folder) or to an animated PNG (.apng)")
    moment_asked = options.start or options.duration is not None or options.loop != "cut" or options.fps
    if name == "mov" and not options.format and preset is None and options.layout != "avatar":
        name = None  # -o x.mov with the side-by-side or overlay layout: the opaque H.264 MOV, as before
    if name is None or name == "mp4":
        if moment_asked:
            raise VidmojiError("--start, --duration, --loop and --fps apply to the transparent formats "
                               "(webm, webp, gif, apng, mov, png, svg) and presets")
        return None
    if options.layout != "avatar":
        raise VidmojiError(f"the {name} output is the avatar on a transparent background: it takes "
                           f"--layout avatar, not {options.layout}")
    if options.loop not in LOOPS:
        raise VidmojiError(f"unknown loop {options.loop!r}: choose {', '.join(LOOPS)}")
    end = info.duration_s if not info.is_image else 0.0
    if options.start < 0 or (options.start and options.start >= end):
        raise VidmojiError(f"--start {options.start:g} s is past the end of {source} ({end:.2f} s)")
    if options.duration is not None and options.duration <= 0:
        raise VidmojiError(f"--duration must be positive, not {options.duration:g}")
    if options.fps is not None and not 0 < options.fps <= 120:
        raise VidmojiError(f"--fps must be in (0, 120], not {options.fps:g}")
    if preset is not None:
        if preset.max_s and options.duration and options.duration > preset.max_s:
            raise VidmojiError(f"--duration {options.duration:g} s cannot meet {preset.describe()}: "
                               f"{options.duration - preset.max_s:g} s over its limit")
        if preset.max_fps and options.fps and options.fps > preset.max_fps:
            raise VidmojiError(f"--fps {options.fps:g} cannot meet {preset.describe()}")
    suffix = PRESET_SUFFIX[preset.name] if preset else (".svg" if name == "svg" else ALPHA_FORMATS[name].suffix)
    if output is None:
        output = source.with_name(f"{source.stem}_{preset.name if preset else 'avatar'}{suffix}")
    elif name != "png" and output.suffix.lower() not in {suffix, ALPHA_FORMATS.get(name, ALPHA_FORMATS["png"]).suffix}:
        raise VidmojiError(f"cannot write {output}: {preset.name + ' stickers are' if preset else name + ' is'} "
                           f"written as {suffix}, not {output.suffix or 'a file without a suffix'}")
    if name == "png":
        output = output.with_suffix("") if output.suffix.lower() == ".png" else output
    size = preset.size - 2 * preset.inset if preset else options.size
    return OutputPlan(output, name, preset, float(options.start), options.duration, options.loop, options.fps,
                      options.dither, size, preset.inset if preset else 0)


# --- frames ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """The frames of a sticker: output times (seconds from 0), the clip frame shown at each, each frame's
    opacity (--loop fade), and the loop's duration."""

    times: np.ndarray
    source: np.ndarray
    opacity: np.ndarray
    duration: float


def segment(pts: np.ndarray, start: float, duration: float, fps: float, loop: str) -> Segment:
    """Sample the clip (frame times pts, seconds) at a constant fps from `start` for `duration` seconds,
    each output frame showing the clip frame on screen at its time. pingpong plays half the duration
    forward and back; fade fades in and out."""
    n = max(1, int(duration * fps + 0.5 + 1e-6))  # half a frame and float noise round up
    forward_n = max(1, (n + 2) // 2) if loop == "pingpong" and n > 2 else n
    t = start + np.arange(forward_n) / fps
    src = np.clip(np.searchsorted(pts, t + 1e-6, side="right") - 1, 0, len(pts) - 1)
    if loop == "pingpong" and n > 2:
        src = np.concatenate([src, src[-2:0:-1]])[:n]
    opacity = np.ones(len(src))
    if loop == "fade" and len(src) > 2:
        ramp = max(1, min(int(round(_FADE_S * fps)), len(src) // 4))
        edge = (np.arange(ramp) + 1) / (ramp + 1)
        opacity[:ramp] = np.minimum(opacity[:ramp], edge)
        opacity[-ramp:] = np.minimum(opacity[-ramp:], edge[::-1])
    return Segment(np.arange(len(src)) / fps, src, opacity, len(src) / fps)


class Scene:
    """A prepared clip (vidmoji.pipeline.Prepared) ready to compose transparent frames and SVGs."""

    def __init__(self, prepared):
        from vidmoji.pipeline import avatar_states, reference_pose, track_fps
        self.prepared = prepared
        self.track = prepared.track
        self.states = avatar_states(prepared.track, prepared.choices, prepared.indexes)
        self.reference = reference_pose(prepared.track)
        self.fps = track_fps(prepared.track)
        self.end = float(self.track.pts[-1] + 1.0 / self.fps)
        self._composers: dict[int, AvatarComposer] = {}

    def composer(self, size: int) -> AvatarComposer:
        if size not in self._composers:
            self._composers[size] = self.prepared.composer(size)
        return self._composers[size]

    def rgba(self, i: int, size: int, opacity: float = 1.0, inset: int = 0) -> np.ndarray:
        """Clip frame i's avatar on alpha: (size + 2 inset) square RGBA, transparent where not drawn."""
        state = self.states[i]
        if state is None or state.opacity * opacity <= 0:
            out = np.zeros((size, size, 4), np.uint8)
        else:
            out = avatar_rgba_frame(self.composer(size).avatar(state.choice, state.gaze), state.pose,
                                    self.reference, state.opacity * opacity)
        return np.pad(out, ((inset, inset), (inset, inset), (0, 0))) if inset else out

    def frames(self, seg: Segment, size: int, inset: int = 0, progress: Progress | None = None) -> list[np.ndarray]:
        out, cache = [], {}
        for i, o in zip(seg.source, seg.opacity):
            key = (int(i), float(o))
            if key not in cache:
                cache[key] = self.rgba(int(i), size, float(o), inset)
            out.append(cache[key])
            if progress:
                progress.advance(1)
        return out

    def svg(self, seg: Segment) -> str:
        """The segment as one animated SVG on the style's canvas (pupils straight ahead)."""
        style = self.prepared.style
        w = style.canvas[0]
        shown, heads = [], []
        for i, o in zip(seg.source, seg.opacity):
            state = self.states[int(i)]
            if state is None:
                shown.append(None)
                heads.append((w / 2, w / 2, 0.85, 0.0, 0.0))
                continue
            (x, y), scale, roll = avatar_placement(state.pose, self.reference, w)
            shown.append(state.choice)
            heads.append((x, y, scale, float(np.degrees(roll)), state.opacity * float(o)))
        return animated_svg(style, self.prepared.skin, list(seg.times), seg.duration, shown, heads,
                            self.prepared.look)


# --- checking and fitting --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """A written sticker read back: its size, frames, duration, frame rate, bytes, whether it has
    transparent pixels, and what breaks the preset's limits (empty: it meets them)."""

    width: int
    height: int
    frames: int
    duration_s: float
    fps: float
    bytes: int
    transparent: bool
    problems: tuple[str, ...]


def check(decoded: Decoded, preset: Preset) -> Check:
    """Whether a decoded output meets the preset's limits."""
    n, h, w = decoded.frames.shape[:3]
    problems = []
    if (w, h) != (preset.size, preset.size):
        problems.append(f"is {w}x{h}, not {preset.size}x{preset.size}")
    if preset.max_s and decoded.duration_s > preset.max_s + 2e-3:  # a millisecond time base rounds each way
        problems.append(f"lasts {decoded.duration_s:.2f} s, {decoded.duration_s - preset.max_s:.2f} s over "
                        f"its {preset.max_s:g} s limit")
    if preset.max_fps and decoded.fps > preset.max_fps + 0.01:
        problems.append(f"plays {decoded.fps:.2f} fps, over its {preset.max_fps:g} fps limit")
    if decoded.bytes > preset.max_bytes:
        over = decoded.bytes - preset.max_bytes
        problems.append(f"is {decoded.bytes / 1024:.0f} KB, {over / 1024:.0f} KB ({over / preset.max_bytes:.0%}) "
                        f"over its {preset.max_bytes // 1024} KB limit")
    transparent = bool((decoded.frames[..., 3] == 0).any())
    if not transparent:
        problems.append("has no transparent pixel")
    return Check(w, h, n, decoded.duration_s, decoded.fps, decoded.bytes, transparent, tuple(problems))


@dataclass(frozen=True)
class Fitted:
    """A preset output that meets its limits: the path, the check, the settings and the frame rate and
    duration it took, and how many encodes it needed."""

    path: Path
    check: Check
    settings: EncodeSettings
    fps: float
    duration: float
    attempts: int


class PresetUnreachable(VidmojiError):
    """No encoding of the moment meets the preset's limits."""


def fit(scene: Scene, plan: OutputPlan, path: Path) -> Fitted:
    """Write the plan's moment to `path` meeting plan.preset: encode, read back, check; when it does not
    fit, try the next quality, then a lower frame rate, then a shorter moment. Each attempt is written
    under a temporary name; only the one that fits is renamed onto `path`. Raises PresetUnreachable
    (saying by how much the smallest attempt missed) when none fits; nothing is left behind then."""
    preset = plan.preset
    fmt = ALPHA_FORMATS[preset.format]
    base_fps = min(plan.fps or scene.fps, preset.max_fps or 1e9)
    base_duration = _duration(scene, plan)
    trial = path.with_name(f".{path.stem}.fit{path.suffix}")
    smallest: Check | None = None
    attempts = 0
    try:
        for d_share in _DURATION_STEPS:
            for f_share in _FPS_STEPS:
                fps, duration = base_fps * f_share, base_duration * d_share
                seg = segment(scene.track.pts, plan.start, duration, fps, plan.loop)
                frames = scene.frames(seg, plan.size, plan.inset)
                for settings in _quality_ladder(fmt.name, seg.duration, preset.max_bytes):
                    settings = replace(settings, dither=plan.dither)
                    attempts += 1
                    write_alpha(trial, fmt, frames, list(seg.times), settings)
                    result = check(read_alpha(trial), preset)
                    if not result.problems:
                        os.replace(trial, path)
                        return Fitted(path, result, settings, fps, seg.duration, attempts)
                    if smallest is None or result.bytes < smallest.bytes:
                        smallest = result
                if d_share == f_share == 1.0 and smallest.bytes * _FPS_STEPS[-1] * _DURATION_STEPS[-1] > \
                        1.5 * preset.max_bytes:
                    break  # even a third of the frames for half as long would not come near: give up now
            else:
                continue
            break
    finally:
        trial.unlink(missing_ok=True)
    raise PresetUnreachable(f"cannot meet {preset.describe()}: after {attempts} encodes the smallest "
                            f"{'; '.join(smallest.problems)}")


def _duration(scene: Scene, plan: OutputPlan) -> float:
    left = scene.end - plan.start
    if plan.duration is not None:
        return min(plan.duration, left)
    if plan.preset is not None:
        return min(DEFAULT_STICKER_S, plan.preset.max_s or DEFAULT_STICKER_S, left)
    return left


def write_transparent(prepared, plan: OutputPlan, show_progress: bool = True) -> list[Path]:
    """Write the plan's output from a prepared clip; returns the paths written."""
    scene = Scene(prepared)
    if prepared.info.is_image:
        seg = Segment(np.zeros(1), np.zeros(1, np.int64), np.ones(1), 1.0)
    else:
        fps = min(plan.fps or scene.fps, plan.preset.max_fps or 1e9) if plan.preset else (plan.fps or scene.fps)
        seg = segment(scene.track.pts, plan.start, _duration(scene, plan), fps, plan.loop)
    if plan.format == "svg":
        write_text_atomic(plan.output, scene.svg(seg))
        return [plan.output]
    if plan.preset is not None:
        fitted = fit(scene, plan, plan.output)
        c = fitted.check
        log(f"{plan.preset.name}: {c.width}x{c.height}, {c.frames} frames, {c.duration_s:.2f} s at "
            f"{c.fps:.1f} fps, {c.bytes / 1024:.0f} KB (limit {plan.preset.max_bytes // 1024} KB), "
            f"{fitted.attempts} encode(s)")
        return [plan.output]
    with Progress("compose", len(seg.source), enabled=show_progress) as progress:
        frames = scene.frames(seg, plan.size, plan.inset, progress)
    write_alpha(plan.output, ALPHA_FORMATS[plan.format], frames, list(seg.times),
                EncodeSettings(dither=plan.dither))
    return [plan.output]


# --- moments and packs -----------------------------------------------------------------------------------
def _tags(frame: dict, slot: str) -> set[str]:
    return set(frame["parts"][slot]["tags"])


def _eye_closed(frame: dict, slot: str) -> bool:
    return "closed" in _tags(frame, slot)


# Each moment: a name and, for a timeline frame, the tags ("slot:tag") that make it that moment, or None.
# Checked in this order; a frame may hold several moments.
def _moment_tags(name: str, f: dict) -> list[str] | None:
    mouth = _tags(f, "mouth")
    brows = {s: _tags(f, s) for s in ("brow_right", "brow_left")}
    eyes = {s: _tags(f, s) for s in ("eye_right", "eye_left")}
    if name == "laugh":
        return ["mouth:laugh"] if "laugh" in mouth else (
            ["mouth:smile_open"] if "smile_open" in mouth and "slight" not in mouth else None)
    if name == "smile":
        return ["mouth:smile"] if ("smile" in mouth and "smile_open" not in mouth) or "slight" in mouth else None
    if name == "surprise":
        raised = [f"{s}:raised" for s, t in brows.items() if "raised" in t] + \
            [f"{s}:wide" for s, t in eyes.items() if "wide" in t]
        opened = [f"mouth:{t}" for t in ("open", "wide_open", "round") if t in mouth and "frown" not in mouth]
        return opened[:1] + raised if opened and raised else None
    if name == "wink":
        closed = [s for s in eyes if "closed" in eyes[s]]
        return [f"{closed[0]}:closed"] if len(closed) == 1 else None
    if name == "frown":
        if "frown" in mouth:
            return ["mouth:frown"]
        lowered = [f"{s}:lowered" for s, t in brows.items() if "lowered" in t]
        return lowered if len(lowered) == 2 else None
    if name == "raised_brow":
        raised = [f"{s}:raised" for s, t in brows.items() if "raised" in t]
        return raised or None
    if name == "open_mouth":
        return [f"mouth:{t}" for t in ("wide_open", "open") if t in mouth][:1] or None
    if name in ("pout", "smirk"):
        return [f"mouth:{name}"] if name in mouth else None
    raise ValueError(name)


MOMENT_NAMES = ("laugh", "smile", "surprise", "wink", "frown", "raised_brow", "open_mouth", "pout", "smirk")
_MIN_RUN = 2          # frames a moment must last (a single frame is a flicker)
_MIN_APART_S = 0.4    # moments closer than this are the same moment


@dataclass(frozen=True)
class Moment:
    """One expressive moment: its name, the frame and time at its middle, the tags ("slot:tag") that
    the timeline holds there and make it that moment, and how long it lasts (seconds)."""

    name: str
    frame: int
    t: float
    tags: tuple[str, ...]
    length_s: float


def find_moments(timeline: dict, count: int = 8) -> list[Moment]:
    """The clip's most expressive moments from its timeline: per moment name, the longest run of frames
    that hold it (at least _MIN_RUN frames), its middle frame; distinct names, at least _MIN_APART_S
    apart, in MOMENT_NAMES order, at most `count`."""
    frames = timeline["frames"]
    chosen: list[Moment] = []
    for name in MOMENT_NAMES:
        if len(chosen) >= count:
            break
        hits = [bool(f["face"]) and _moment_tags(name, f) is not None for f in frames]
        runs, i = [], 0
        while i < len(hits):
            if hits[i]:
                j = i
                while j + 1 < len(hits) and hits[j + 1]:
                    j += 1
                if j - i + 1 >= _MIN_RUN:
                    runs.append((i, j))
                i = j + 1
            else:
                i += 1
        runs.sort(key=lambda r: (-(r[1] - r[0]), r[0]))
        for a, b in runs:
            mid = (a + b) // 2
            t = frames[mid]["t"]
            if all(abs(t - m.t) >= _MIN_APART_S for m in chosen):
                length = frames[b]["t"] - frames[a]["t"]
                chosen.append(Moment(name, mid, float(t), tuple(_moment_tags(name, frames[mid])), float(length)))
                break
    return chosen


@dataclass(frozen=True)
class PackResult:
    """What `vidmoji stickers` wrote: the folder, the moments with their files, pack.json, wall time."""

    folder: Path
    entries: list[dict] = field(default_factory=list)
    wall_s: float = 0.0

    def summary(self) -> str:
        lines = [f"{len(self.entries)} sticker(s) from the clip's moments in {self.wall_s:.1f} s"]
        for e in self.entries:
            lines.append(f"  {e['moment']:11s} t={e['t']:.2f} s  {', '.join(e['tags'])}: {e['sticker']} "
                         f"({e['bytes'] / 1024:.0f} KB), {e['still']}")
        lines.append(f"  wrote {self.folder}/ ({', '.join(e['sticker'] for e in self.entries)}, "
                     f"the stills and pack.json)")
        return "\n".join(lines)


def make_pack(source: Path, output: Path, options, count: int = 8) -> PackResult:
    """Write a sticker pack of `source` into the folder `output` (see `write_pack`); options: a
    vidmoji.pipeline.RenderOptions (style, embedder, preset, duration, loop, fps, dither, ...)."""
    from vidmoji.pipeline import prepare
    from vidmoji.video import probe
    start = time.perf_counter()
    source, output = Path(source), Path(output)
    preset = _pack_checks(output, options, count)
    if probe(source).is_image:
        raise VidmojiError(f"{source} is a still image: a sticker pack is made from a clip")
    prepared = prepare(source, options, start)
    result = write_pack(prepared, output, preset, count, options.duration, options.loop, options.fps,
                        options.dither, options.show_progress)
    return replace(result, wall_s=time.perf_counter() - start)


def _pack_checks(output: Path, options, count: int) -> Preset:
    if count < 1:
        raise VidmojiError(f"--count must be at least 1, not {count}")
    preset_name = options.preset or "telegram"
    if preset_name not in PRESETS:
        raise VidmojiError(f"unknown preset {preset_name!r}: choose {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    if options.loop not in LOOPS:
        raise VidmojiError(f"unknown loop {options.loop!r}: choose {', '.join(LOOPS)}")
    if options.duration is not None and not 0 < options.duration <= (preset.max_s or 1e9):
        raise VidmojiError(f"--duration {options.duration:g} s cannot meet {preset.describe()}")
    if output.suffix:
        raise VidmojiError(f"cannot write {output}: a sticker pack is a folder (e.g. -o pack/)")
    if output.exists() and not (output / "pack.json").is_file() and any(output.iterdir()):
        raise VidmojiError(f"cannot write {output}: it exists and holds files that are not a sticker pack")
    # the pack is built beside the folder and renamed onto it: an earlier pack there is replaced
    check_writable(_temp_path_for(output) if output.is_dir() else output)
    return preset


def write_pack(prepared, output: Path, preset: Preset, count: int = 8, duration: float | None = None,
               loop: str = "cut", fps: float | None = None, dither: bool = False,
               show_progress: bool = True) -> PackResult:
    """Write the sticker pack of a prepared clip into the folder `output`: for each of its moments
    (`find_moments`, at most `count`) a sticker meeting `preset` around the moment, a still 512 px PNG of
    the moment, and pack.json naming each file with its moment, time and tags. The folder is built under
    a temporary name and renamed; an existing folder is replaced only when it holds an earlier pack."""
    start = time.perf_counter()
    output = Path(output)
    timeline = prepared.timeline()
    moments = find_moments(timeline, count)
    if not moments:
        raise VidmojiError(f"no expressive moment in {prepared.source}: no smile, laugh, surprise, wink, frown "
                           f"or raised brow lasts {_MIN_RUN} frames")
    scene = Scene(prepared)
    tmp = _temp_path_for(output)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    entries = []
    try:
        with Progress("stickers", len(moments), enabled=show_progress) as progress:
            for k, m in enumerate(moments):
                d = min(duration or DEFAULT_STICKER_S, preset.max_s or DEFAULT_STICKER_S, scene.end)
                begin = float(np.clip(m.t - d / 2, 0.0, max(0.0, scene.end - d)))
                plan = OutputPlan(tmp / f"{k + 1:02d}_{m.name}{PRESET_SUFFIX[preset.name]}", preset.format, preset,
                                  begin, d, loop, fps, dither, preset.size - 2 * preset.inset, preset.inset)
                fitted = fit(scene, plan, plan.output)
                still = tmp / f"{k + 1:02d}_{m.name}_still.png"
                write_image_atomic(still, scene.rgba(m.frame, 512))
                entries.append({"moment": m.name, "t": round(m.t, 3), "frame": m.frame, "tags": list(m.tags),
                                "sticker": plan.output.name, "still": still.name, "start": round(begin, 3),
                                "duration": round(fitted.check.duration_s, 3), "fps": round(fitted.check.fps, 2),
                                "frames": fitted.check.frames, "bytes": fitted.check.bytes,
                                "size": [fitted.check.width, fitted.check.height]})
                progress.advance(1)
        pack = {"source": prepared.source.name, "preset": asdict(preset), "style": prepared.style.name,
                "stickers": entries}
        write_text_atomic(tmp / "pack.json", json.dumps(pack, indent=1))
        if output.exists():
            shutil.rmtree(output)
        os.replace(tmp, output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return PackResult(output, entries, time.perf_counter() - start)
