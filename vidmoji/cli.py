"""The command line: options in, one library call out. Heavy imports (torch, faiss, cv2) happen inside
the commands, so `vidmoji --help` and `--version` answer at once."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from typer.exceptions import TyperException

from vidmoji import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Turn a video of a face into an emoji-avatar video.")


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Layout(str, Enum):
    avatar = "avatar"
    side_by_side = "side-by-side"
    overlay = "overlay"


class Smooth(str, Enum):
    viterbi = "viterbi"
    hysteresis = "hysteresis"
    none = "none"


class Loop(str, Enum):
    cut = "cut"
    pingpong = "pingpong"
    fade = "fade"


class Parser(str, Enum):
    mesh = "mesh"
    bisenet = "bisenet"


def _fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


@contextlib.contextmanager
def _warnings_as_lines():
    """Print vidmoji's warnings (damaged frames or audio left out) as `warning: ...` lines, each once."""
    from vidmoji.errors import VidmojiWarning
    from vidmoji.progress import log
    seen: set[str] = set()
    with warnings.catch_warnings():
        warnings.simplefilter("always", VidmojiWarning)
        original = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not issubclass(category, VidmojiWarning):
                return original(message, category, filename, lineno, file, line)
            text = _one_line(message)
            if text not in seen:  # the second pass over a clip meets the same damage again
                seen.add(text)
                log(f"warning: {text}")

        warnings.showwarning = show
        yield


def friendly_errors(func):
    """Report the user's errors as one line and a non-zero exit, never a traceback.

    Anything else that escapes (a bug, or an input case nobody foresaw) is still one `error:` line;
    VIDMOJI_DEBUG=1 lets it through with its traceback instead.
    """
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from vidmoji.errors import VidmojiError
        with _warnings_as_lines():
            try:
                return func(*args, **kwargs)
            except VidmojiError as exc:
                _fail(_one_line(str(exc).splitlines()[0]) if str(exc).strip() else type(exc).__name__)
            except KeyboardInterrupt:
                _fail("interrupted; no partial output was left behind", 130)
            except (typer.Exit, typer.Abort, TyperException):  # the CLI's own exits and usage errors
                raise
            except Exception as exc:
                if os.environ.get("VIDMOJI_DEBUG", "") not in ("", "0"):
                    raise
                what = "out of memory" if isinstance(exc, MemoryError) else \
                    f"unexpected {type(exc).__name__}: {_one_line(exc) or 'no message'}"
                _fail(f"{what} (a bug in vidmoji; VIDMOJI_DEBUG=1 shows the traceback)")
    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vidmoji {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                              help="Print the version and exit.")) -> None:
    """vidmoji: face video in, emoji-avatar video out."""


DEVICE = typer.Option(Device.auto, "--device", help="Where the models run: auto takes CUDA when present.")
STYLE = typer.Option("flat", "--style", help="Avatar style (see `vidmoji styles`).")
TEMPLATES = typer.Option(None, "--templates", help="A folder of styles to use instead of the built-in one.")
EMBEDDER = typer.Option("ae", "--embedder", help="Part embedder: ae, pca or resnet50.")
WEIGHTS = typer.Option(None, "--weights", help="Weights file for the embedder (resnet50: torchvision's).")
PARSER = typer.Option(Parser.mesh, "--parser", help="Face parser: mesh polygons, or BiSeNet with its weights.")
PARSER_WEIGHTS = typer.Option(None, "--parser-weights", help="BiSeNet checkpoint (79999_iter.pth).")
FORMAT = typer.Option(None, "--format", help="mp4 (default), webm, webp, gif, apng, mov, png (a folder of "
                      "frames) or svg; else taken from -o's suffix. All but mp4 are transparent.")
PRESET = typer.Option(None, "--preset", help="A messenger sticker: telegram (WebM), whatsapp (WebP) or "
                      "discord (APNG), fitted to its limits.")
START = typer.Option(0.0, "--start", help="Seconds into the clip where a transparent output starts.")
DURATION = typer.Option(None, "--duration", help="Seconds of the clip a transparent output lasts.")
LOOP = typer.Option(Loop.cut, "--loop", help="cut, pingpong (forward and back) or fade (in and out).")
FPS = typer.Option(None, "--fps", help="Frame rate of a transparent output (default: the clip's).")
DITHER = typer.Option(False, "--dither/--no-dither", help="Dither GIF/APNG palettes.")
PERSONA = typer.Option(None, "--persona", help="A persona file from `vidmoji identify`: the same avatar "
                                             "across clips.")
HAIR = typer.Option(None, "--hair", help="A hair part id of the style, or a length: bald, short, medium, long, "
                                       "tied.")
HAIR_COLOUR = typer.Option(None, "--hair-colour", help="black, dark_brown, brown, auburn, blond, grey, the "
                                                     "style's own, or #RRGGBB.")
GLASSES = typer.Option(None, "--glasses/--no-glasses", help="Draw glasses, or not (default: as measured).")
FACIAL_HAIR = typer.Option(None, "--facial-hair", help="none, stubble, moustache or beard.")


SOURCES = typer.Argument(..., metavar="SOURCE", help="A clip (any format FFmpeg reads) or a still image; or "
                         "many: folders, globs ('clips/*.mp4'), .txt lists of paths, several files.")
JOBS = typer.Option(None, "--jobs", "-j", help="Many inputs: worker processes (default: one per GPU, else one "
                    "per 4 cores); with --engine ray, a local cluster's CPUs.")
ENGINE = typer.Option("local", "--engine", help="Many inputs: local (a pool of processes) or ray "
                      "(pip install 'vidmoji[ray]').")
ADDRESS = typer.Option(None, "--address", help="A running Ray cluster (auto, or HEAD:6379); default: a local one.")
RETRIES = typer.Option(1, "--retries", help="Many inputs: retries of a clip whose worker died.")
THREADS = typer.Option(None, "--threads", help="Many inputs: torch threads per worker (default: cores // jobs; "
                       "1 per Ray task).")


def _many(sources: list[Path], output: Optional[Path], jobs, engine, address, threads) -> bool:
    """Whether the command was given many inputs; checks that -o and the batch options fit that."""
    from vidmoji import batch
    many = batch.is_many(sources)
    if many and output is None:
        _fail("with many inputs (a folder, a glob, a .txt list or several files), -o names the output folder")
    if not many and (jobs is not None or engine != "local" or address is not None or threads is not None):
        _fail("--jobs, --engine, --address and --threads apply to many inputs (a folder, a glob, a .txt list)")
    return many


def _run_many(sources: list[Path], output: Path, options, jobs, engine, address, retries, threads) -> None:
    from vidmoji import batch
    result = batch.run_batch(sources, output, options, jobs, engine, address, retries, threads=threads)
    typer.echo(result.summary())
    if result.failed:
        raise typer.Exit(1)


def _overrides(hair, hair_colour, glasses, facial_hair):
    from vidmoji.identity import IdentityOverrides
    return IdentityOverrides(hair=hair, hair_colour=hair_colour, glasses=glasses, facial_hair=facial_hair)




@app.command()
@friendly_errors
def parse(
    source: Path = typer.Argument(..., help="An image or a clip."),
    output: Path = typer.Option(..., "-o", "--output", help="Image (.png/.jpg) or video (.mp4) to write."),
    parser: Parser = PARSER,
    parser_weights: Optional[Path] = PARSER_WEIGHTS,
    device: Device = DEVICE,
) -> None:
    """Draw the mesh and the label map over the frame(s), to see what the parser sees.

    Example: vidmoji parse selfie.jpg -o parsed.png
    """
    from vidmoji.pipeline import ParseOptions, parse_media
    result = parse_media(source, output, ParseOptions(parser=parser.value, parser_weights=parser_weights,
                                                      device=device.value))
    typer.echo(result.summary())


@app.command()
@friendly_errors
def styles(templates: Optional[Path] = TEMPLATES) -> None:
    """List the styles with their part counts and licence.

    Example: vidmoji styles
    """
    from vidmoji import parts
    from vidmoji.avatar.templates import list_styles, load_style
    for name in list_styles(templates):
        style = load_style(name, templates)
        counts = {slot: len(style.parts_in(slot)) for slot in parts.ALL_SLOTS}
        shown = ", ".join(f"{slot} {counts[slot]}" for slot in parts.SLOTS)
        identity = ", ".join(f"{slot} {counts[slot]}" for slot in parts.IDENTITY_SLOTS if counts[slot])
        hair_colours = ", ".join(c for c, _ in style.hair_palette)
        typer.echo(f"{name:8s} {style.title} — {shown}; identity: {identity or 'none'}; hair colours: "
                   f"{hair_colours}; licence {style.licence}, by {style.author}")


@app.command()
@friendly_errors
def index(
    style: str = STYLE,
    all_styles: bool = typer.Option(False, "--all", help="Index every style."),
    embedder: str = EMBEDDER,
    weights: Optional[Path] = WEIGHTS,
    templates: Optional[Path] = TEMPLATES,
    device: Device = DEVICE,
) -> None:
    """Render a style's SVG parts, embed them and build its FAISS indexes.

    In a source checkout the shipped styles' indexes are written to its indexes/; otherwise (an installed
    vidmoji, or your own --templates) to your cache folder (~/.cache/vidmoji), or to $VIDMOJI_INDEXES.

    Example: vidmoji index --style flat --embedder ae
    """
    from vidmoji.pipeline import build_style_indexes
    for line in build_style_indexes(None if all_styles else style, embedder, weights, templates, device.value):
        typer.echo(line)


@app.command()
@friendly_errors
def train(
    embedder: str = typer.Option("all", "--embedder", help="ae, pca or all."),
    faces: list[Path] = typer.Option([], "--faces", help="Clips or images of real faces to train on too."),
    epochs: int = typer.Option(30, "--epochs"),
    seed: int = typer.Option(0, "--seed"),
    max_face_frames: int = typer.Option(600, "--max-face-frames", help="Frames sampled per face clip."),
    groups: list[str] = typer.Option([], "--group", help="Train only this embed group (face, eye, brow, nose, "
                                                          "mouth, hair), keeping the others; repeatable."),
    device: Device = DEVICE,
) -> None:
    """Train the label-window embedders on every style's parts (augmented) and parsed real faces.

    Example: vidmoji train --faces clip1.mp4 --faces clip2.mp4
    """
    from vidmoji.train import TrainOptions, train_embedders
    for line in train_embedders(TrainOptions(embedder=embedder, faces=tuple(faces), epochs=epochs, seed=seed,
                                             max_face_frames=max_face_frames, device=device.value,
                                             groups=tuple(groups))):
        typer.echo(line)


@app.command()
@friendly_errors
def render(
    sources: list[Path] = SOURCES,
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Default: <stem>_avatar.mp4 (or .png) beside the input. With "
                                               "many inputs: the output folder (required)."),
    style: str = STYLE,
    embedder: str = EMBEDDER,
    weights: Optional[Path] = WEIGHTS,
    size: int = typer.Option(512, "--size", help="Avatar size in pixels."),
    skin: str = typer.Option("auto", "--skin", help="auto (measured from the face), a palette name, or #RRGGBB."),
    persona: Optional[Path] = PERSONA,
    hair: Optional[str] = HAIR,
    hair_colour: Optional[str] = HAIR_COLOUR,
    glasses: Optional[bool] = GLASSES,
    facial_hair: Optional[str] = FACIAL_HAIR,
    layout: Layout = typer.Option(Layout.avatar, "--layout"),
    smooth: Smooth = typer.Option(Smooth.viterbi, "--smooth"),
    timeline: Optional[Path] = typer.Option(None, "--timeline", help="Write per-frame choices as JSON."),
    templates: Optional[Path] = TEMPLATES,
    device: Device = DEVICE,
    format: Optional[str] = FORMAT,
    preset: Optional[str] = PRESET,
    start: float = START,
    duration: Optional[float] = DURATION,
    loop: Loop = LOOP,
    fps: Optional[float] = FPS,
    dither: bool = DITHER,
    jobs: Optional[int] = JOBS,
    engine: str = ENGINE,
    address: Optional[str] = ADDRESS,
    retries: int = RETRIES,
    threads: Optional[int] = THREADS,
) -> None:
    """Render the avatar video (or image) of a clip; transparent stickers with --format or a preset.

    Example: vidmoji render clip.mp4 --style cute --layout side-by-side

    Example: vidmoji render clip.mp4 --preset telegram --start 1.5 --loop pingpong -o wave.webm

    Example: vidmoji render clips/ more/*.mp4 list.txt -o out/ --jobs 2   (out/manifest.jsonl; reruns resume)
    """
    from vidmoji.pipeline import RenderOptions, render_media
    many = _many(sources, output, jobs, engine, address, threads)
    options = RenderOptions(
        output=None if many else output, style=style, embedder=embedder, weights=weights, size=size,
        layout=layout.value, smooth=smooth.value, timeline=timeline, templates=templates, device=device.value, skin=skin,
        persona=persona, identity=_overrides(hair, hair_colour, glasses, facial_hair),
        format=format, preset=preset, start=start, duration=duration, loop=loop.value, fps=fps, dither=dither)
    if many:
        return _run_many(sources, output, options, jobs, engine, address, retries, threads)
    result = render_media(sources[0], options)
    typer.echo(result.summary())


@app.command()
@friendly_errors
def stickers(
    source: Path = typer.Argument(..., help="A clip with a face."),
    output: Path = typer.Option(..., "-o", "--output", help="The pack's folder (e.g. pack/)."),
    preset: str = typer.Option("telegram", "--preset", help="telegram, whatsapp or discord."),
    count: int = typer.Option(8, "--count", help="At most this many stickers (distinct moments)."),
    duration: Optional[float] = typer.Option(None, "--duration", help="Seconds per sticker (default 3)."),
    loop: Loop = LOOP,
    fps: Optional[float] = FPS,
    dither: bool = DITHER,
    style: str = STYLE,
    embedder: str = EMBEDDER,
    weights: Optional[Path] = WEIGHTS,
    skin: str = typer.Option("auto", "--skin", help="auto (measured from the face), a palette name, or #RRGGBB."),
    persona: Optional[Path] = PERSONA,
    hair: Optional[str] = HAIR,
    hair_colour: Optional[str] = HAIR_COLOUR,
    glasses: Optional[bool] = GLASSES,
    facial_hair: Optional[str] = FACIAL_HAIR,
    templates: Optional[Path] = TEMPLATES,
    device: Device = DEVICE,
) -> None:
    """A sticker pack from a clip's most expressive moments (smile, laugh, surprise, wink, frown, raised
    brow, ...): one sticker and one still 512 px PNG per moment, and pack.json.

    Example: vidmoji stickers clip.mp4 --preset telegram -o pack/
    """
    from vidmoji.pipeline import RenderOptions
    from vidmoji.stickers import make_pack
    result = make_pack(source, output, RenderOptions(
        style=style, embedder=embedder, weights=weights, templates=templates, device=device.value, skin=skin,
        preset=preset, duration=duration, loop=loop.value, fps=fps, dither=dither, persona=persona,
        identity=_overrides(hair, hair_colour, glasses, facial_hair)), count)
    typer.echo(result.summary())


@app.command()
@friendly_errors
def identify(
    sources: list[Path] = typer.Argument(..., metavar="SOURCE", help="A clip or a photo of the person; or many: "
                                         "folders, globs, .txt lists of paths, several files."),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Persona file to write (default: <stem>_persona.json). With many "
                                               "inputs: the output folder (required)."),
    skin: str = typer.Option("auto", "--skin", help="auto (measured), or a skin tone name."),
    hair: Optional[str] = HAIR,
    hair_colour: Optional[str] = HAIR_COLOUR,
    glasses: Optional[bool] = GLASSES,
    facial_hair: Optional[str] = FACIAL_HAIR,
    device: Device = DEVICE,
    jobs: Optional[int] = JOBS,
    engine: str = ENGINE,
    address: Optional[str] = ADDRESS,
    retries: int = RETRIES,
    threads: Optional[int] = THREADS,
) -> None:
    """Measure who the face is (skin tone, hair, glasses, facial hair) and keep it as a persona file.

    Example: vidmoji identify selfie.jpg -o me.json && vidmoji render clip.mp4 --persona me.json

    Example: vidmoji identify people/ -o personas/ --jobs 2   (one <stem>_persona.json per input)
    """
    from dataclasses import replace
    from vidmoji.pipeline import identify_media
    overrides = replace(_overrides(hair, hair_colour, glasses, facial_hair), skin=skin)
    if _many(sources, output, jobs, engine, address, threads):
        from vidmoji.batch import IdentifyOptions
        return _run_many(sources, output, IdentifyOptions(device=device.value, overrides=overrides), jobs, engine,
                         address, retries, threads)
    typer.echo(identify_media(sources[0], output, device.value, overrides).summary())


class LiveSmooth(str, Enum):
    viterbi = "viterbi"
    none = "none"


class PipeFormat(str, Enum):
    nut = "nut"
    y4m = "y4m"


class Sink(str, Enum):
    virtualcam = "virtualcam"


@app.command()
@friendly_errors
def live(
    source: str = typer.Option(..., "--source", "-s",
                               help="A camera (0, /dev/video0), a stream URL (rtsp://, rtmp://, http://, udp://) "
                                    "or a file."),
    output: Optional[str] = typer.Option(None, "-o", "--output",
                                         help="A video file to record, or - for raw frames on stdout."),
    stdout_format: PipeFormat = typer.Option(PipeFormat.nut, "--format",
                                             help="Raw frames on stdout (-o -): nut (timed) or y4m."),
    serve: Optional[str] = typer.Option(None, "--serve", help="Serve a page with the avatar on HOST:PORT "
                                                               "(for a browser or an OBS Browser Source)."),
    sink: Optional[Sink] = typer.Option(None, "--sink", help="virtualcam: a camera for Zoom, Meet, OBS "
                                                            "(needs the live extra: pyvirtualcam)."),
    realtime: bool = typer.Option(False, "--realtime", help="Play a file at its own pace (frames the CPU cannot "
                                                            "keep up with are dropped)."),
    style: str = STYLE,
    embedder: str = EMBEDDER,
    weights: Optional[Path] = WEIGHTS,
    size: int = typer.Option(512, "--size", help="Avatar size in pixels."),
    skin: str = typer.Option("auto", "--skin", help="auto (matched to the face), a palette name, or #RRGGBB."),
    layout: Layout = typer.Option(Layout.avatar, "--layout"),
    smooth: LiveSmooth = typer.Option(LiveSmooth.viterbi, "--smooth"),
    lag: int = typer.Option(0, "--lag", help="Frames the smoother may wait before deciding one (0-2); each adds "
                                             "a frame of latency."),
    stages: int = typer.Option(2, "--stages", help="2: the face stage on a second thread when serial falls "
                                                   "behind and a core is idle; 1: one thread."),
    timeline: Optional[Path] = typer.Option(None, "--timeline", help="Write per-frame choices as JSON."),
    stats: Optional[Path] = typer.Option(None, "--stats", help="Write per-frame latencies as JSON."),
    persona: Optional[Path] = PERSONA,
    hair: Optional[str] = HAIR,
    hair_colour: Optional[str] = HAIR_COLOUR,
    glasses: Optional[bool] = GLASSES,
    facial_hair: Optional[str] = FACIAL_HAIR,
    templates: Optional[Path] = TEMPLATES,
    device: Device = DEVICE,
) -> None:
    """The avatar in real time, from a camera, a stream or a file, to a file, stdout, a page or a virtual camera.

    Example: vidmoji live --source 0 --serve 127.0.0.1:8080
    """
    from vidmoji.live import LiveOptions, live_media
    result = live_media(LiveOptions(
        source=source, output=output, stdout_format=stdout_format.value, serve=serve,
        sink=sink.value if sink else None, realtime=realtime, style=style, embedder=embedder, weights=weights,
        size=size, skin=skin, layout=layout.value, smooth=smooth.value, lag=lag, timeline=timeline, stats=stats,
        templates=templates, device=device.value, persona=persona, stages=stages,
        identity=_overrides(hair, hair_colour, glasses, facial_hair)))
    # With frames on stdout, the summary goes to stderr.
    typer.echo(result.summary(), err=output == "-")
    if not result.expected:
        _fail(result.stopped)


@app.command("plot-embeddings")
@friendly_errors
def plot_embeddings(
    sources: list[Path] = SOURCES,
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="Default: <stem>_embeddings.mp4 beside the input. With many "
                                               "inputs: the output folder (required)."),
    embedder: str = typer.Option("ae", "--embedder", help="ae, pca, resnet50, or two joined by '+'."),
    style: str = STYLE,
    slots: str = typer.Option("eye_right,eye_left,mouth,brow_right", "--parts",
                              help="Comma-separated slots to plot (hair: the subject's hair, one per clip)."),
    skin: str = typer.Option("auto", "--skin", help="auto (measured from the face), a palette name, or #RRGGBB."),
    persona: Optional[Path] = PERSONA,
    hair: Optional[str] = HAIR,
    hair_colour: Optional[str] = HAIR_COLOUR,
    glasses: Optional[bool] = GLASSES,
    facial_hair: Optional[str] = FACIAL_HAIR,
    data: Optional[Path] = typer.Option(None, "--data", help="Write the plotted values (.npz)."),
    weights: Optional[Path] = WEIGHTS,
    templates: Optional[Path] = TEMPLATES,
    device: Device = DEVICE,
    jobs: Optional[int] = JOBS,
    engine: str = ENGINE,
    address: Optional[str] = ADDRESS,
    retries: int = RETRIES,
    threads: Optional[int] = THREADS,
) -> None:
    """The diagnostic video: each part's embedding (pink) against the chosen avatar part's (purple).

    Example: vidmoji plot-embeddings clip.mp4 --embedder ae+pca --data values.npz

    Example: vidmoji plot-embeddings clips/ -o plots/ --jobs 2   (plots/manifest.jsonl; reruns resume)
    """
    from vidmoji.pipeline import PlotOptions, plot_media
    many = _many(sources, output, jobs, engine, address, threads)
    options = PlotOptions(
        output=None if many else output, embedders=tuple(embedder.split("+")), style=style,
        slots=tuple(s.strip() for s in slots.split(",") if s.strip()), data=data, weights=weights,
        templates=templates, device=device.value, skin=skin, persona=persona,
        identity=_overrides(hair, hair_colour, glasses, facial_hair))
    if many:
        return _run_many(sources, output, options, jobs, engine, address, retries, threads)
    result = plot_media(sources[0], options)
    typer.echo(result.summary())


def main() -> None:
    """Console-script entry point."""
    app(prog_name="vidmoji")


if __name__ == "__main__":
    sys.exit(main())
