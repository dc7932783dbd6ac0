"""Many clips in one run: `vidmoji render DIR | GLOB | list.txt ... -o OUTDIR` (and `plot-embeddings`,
`identify`).

Each input is rendered by the one frame path, `vidmoji.pipeline.render_media` (`plot_media` for
plot-embeddings, `identify_media` for identify: the options' type says which), in a worker process that
imports torch once and then takes clips one after another; the models it loads for the first clip serve
the next ones (vidmoji.models):

- the local engine (default): `jobs` worker processes started with the spawn context; the parent hands
  one clip at a time to an idle worker and watches the workers' sentinels, so a worker that dies (killed,
  out of memory) costs only the clip it held, which is retried on a fresh worker (`retries` times) and
  then marked failed;
- the Ray engine (`engine="ray"`, optional extra `vidmoji[ray]`): the same per-clip function as a Ray
  task (one GPU per task where GPUs exist); placement, retries of crashed workers and failure handling
  are Ray's. Inputs and outputs must be on paths every node sees.

OUTDIR/manifest.jsonl gets one JSON line per clip as it finishes (status done/failed, outputs, frames,
fps, the one-line error, what the worker loaded for it); a rerun skips the clips whose last line says done
(and whose outputs exist) and retries the rest. OUTDIR/options.json records the command and the options
that change the outputs: a rerun with other options into the same folder is refused. One bad clip never
stops the others.
"""

from __future__ import annotations

import glob
import json
import os
import resource
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from vidmoji.errors import VidmojiError
from vidmoji.progress import log
from vidmoji.video import IMAGE_SUFFIXES

MANIFEST = "manifest.jsonl"
OPTIONS = "options.json"
# Options that say where or how fast, not what is written: they may change between a run and its rerun.
_NOT_RECORDED = frozenset({"output", "show_progress", "device"})
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".flv",
                            ".wmv", ".ts", ".3gp"})
MEDIA_SUFFIXES = VIDEO_SUFFIXES | IMAGE_SUFFIXES
ENGINES = ("local", "ray")


class BatchError(VidmojiError):
    """The batch as a whole cannot run (no inputs, names that collide, an engine that is missing)."""


@dataclass(frozen=True)
class IdentifyOptions:
    """Options of `vidmoji identify` on many inputs (the arguments of vidmoji.pipeline.identify_media)."""

    output: Path | None = None
    device: str = "auto"
    overrides: object = None          # vidmoji.identity.IdentityOverrides; None: none
    show_progress: bool = True


def command_of(options) -> str:
    """The command whose options these are: render, plot-embeddings or identify."""
    from vidmoji.pipeline import PlotOptions
    return "identify" if isinstance(options, IdentifyOptions) else \
        "plot-embeddings" if isinstance(options, PlotOptions) else "render"


# --- inputs -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Clip:
    """One input and the folder (under OUTDIR) its outputs go to."""

    source: Path
    out_dir: Path


def is_many(sources: list[Path]) -> bool:
    """Whether `render` was given many inputs: several arguments, a folder, a glob or a .txt list."""
    if len(sources) != 1:
        return True
    s = sources[0]
    return s.is_dir() or (s.suffix.lower() == ".txt" and s.is_file()) or (not s.exists() and glob.has_magic(str(s)))


def _media_in(folder: Path, skip: Path | None) -> list[Path]:
    found = []
    for path in sorted(folder.rglob("*")):
        if skip is not None and (path == skip or skip in path.parents):
            continue
        if path.is_file() and path.suffix.lower() in MEDIA_SUFFIXES and \
                not any(p.startswith(".") for p in path.relative_to(folder).parts):
            found.append(path)
    return found


def collect(sources: list[Path], out_dir: Path) -> list[Clip]:
    """The clips named by `sources` (files, folders searched recursively, glob patterns, .txt lists of
    paths, one a line, relative to the list), each with its output folder: a folder's clips keep their
    sub-folders under `out_dir`. Raises BatchError when nothing is found or two outputs would collide."""
    out_dir = Path(out_dir).resolve()
    clips: list[Clip] = []
    for source in sources:
        source = Path(source)
        if source.is_dir():
            root = source.resolve()
            clips += [Clip(p, out_dir / p.parent.relative_to(root)) for p in _media_in(root, out_dir)]
        elif source.suffix.lower() == ".txt" and source.is_file():
            for line in source.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    p = Path(line).expanduser()
                    clips.append(Clip((source.parent / p).resolve() if not p.is_absolute() else p, out_dir))
        elif source.exists():
            clips.append(Clip(source.resolve(), out_dir))
        elif glob.has_magic(str(source)):
            matches = sorted(Path(m) for m in glob.glob(str(source), recursive=True))
            clips += [Clip(p.resolve(), out_dir) for p in matches
                      if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES]
            if not matches:
                raise BatchError(f"no file matches {source}")
        else:
            raise BatchError(f"{source} does not exist")
    seen: dict[tuple[Path, str], Path] = {}
    unique = []
    for clip in clips:
        key = (clip.out_dir, clip.source.stem)
        if key in seen:
            if seen[key] == clip.source:
                continue  # named twice (a glob and a list): rendered once
            raise BatchError(f"{seen[key]} and {clip.source} would both write {clip.out_dir / clip.source.stem}_*; "
                             f"rename one or render them into different folders")
        seen[key] = clip.source
        unique.append(clip)
    if not unique:
        raise BatchError(f"no clips or images found in {', '.join(map(str, sources))}")
    return unique


# --- the per-clip task: the same in a local worker and in a Ray task --------------------------------------
def output_for(clip: Clip, options) -> Path:
    """Where `render` writes a clip's output without -o (<stem>_avatar.mp4, .png, or the transparent
    format's name), or `plot-embeddings` (<stem>_embeddings.mp4), moved under the clip's output folder."""
    from vidmoji import stickers
    from vidmoji.pipeline import PlotOptions, _default_output
    from vidmoji.video import probe
    if isinstance(options, PlotOptions):
        return clip.out_dir / f"{clip.source.stem}_embeddings.mp4"
    if isinstance(options, IdentifyOptions):
        return clip.out_dir / f"{clip.source.stem}_persona.json"
    info = probe(clip.source)
    plan = stickers.plan_output(clip.source, info, replace(options, output=None))
    default = plan.output if plan is not None else _default_output(clip.source, info.is_image, "avatar")
    return clip.out_dir / default.name


def _peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM where /proc has it (ru_maxrss of a process started by
    fork and exec also counts what the forked copy of its parent held before the exec), else ru_maxrss."""
    from vidmoji.models import status_mb
    peak = status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes


def _identify(source: Path, options: IdentifyOptions):
    from vidmoji.identity import IdentityOverrides
    from vidmoji.pipeline import identify_media
    return identify_media(source, options.output, options.device, options.overrides or IdentityOverrides(),
                          options.show_progress)


def render_one(clip: Clip, options) -> dict:
    """Render one clip with vidmoji.pipeline.render_media (plot_media for PlotOptions, identify_media for
    IdentifyOptions); never raises for the clip's own failures: the record says failed with the one-line
    reason. The record's `loads` says what the process loaded for this clip (vidmoji.models: nothing when
    an earlier clip of the same worker loaded it) and `load_s` how long that took."""
    from vidmoji import models
    from vidmoji.pipeline import PlotOptions, plot_media, render_media
    media = plot_media if isinstance(options, PlotOptions) else \
        _identify if isinstance(options, IdentifyOptions) else render_media
    start = time.perf_counter()
    loads_before, load_s_before = models.loads(), sum(models.LOAD_S.values())
    record = {"input": str(clip.source), "status": "failed", "outputs": [], "frames": None, "fps": None,
              "error": None, "warnings": [], "wall_s": None, "pid": os.getpid()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            clip.out_dir.mkdir(parents=True, exist_ok=True)
            result = media(clip.source, replace(options, output=output_for(clip, options), show_progress=False))
            frames = getattr(result, "frames", None)   # identify's result has none
            record.update(status="done", outputs=[str(p) for p in result.written], frames=frames,
                          fps=round(frames / max(result.wall_s, 1e-9), 3) if frames is not None else None)
        except Exception as exc:  # one bad clip never stops the others: its reason goes to the manifest
            text = " ".join(str(exc).split()) if isinstance(exc, VidmojiError) else \
                f"unexpected {type(exc).__name__}: {' '.join(str(exc).split()) or 'no message'}"
            record["error"] = text or type(exc).__name__
    from vidmoji.errors import VidmojiWarning
    record["warnings"] = sorted({" ".join(str(w.message).split()) for w in caught
                                 if issubclass(w.category, VidmojiWarning)})
    record["wall_s"] = round(time.perf_counter() - start, 3)
    record["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    after = models.loads()
    record["loads"] = {k: n - loads_before.get(k, 0) for k, n in sorted(after.items()) if n - loads_before.get(k, 0)}
    record["load_s"] = round(sum(models.LOAD_S.values()) - load_s_before, 3)
    return record


def _init_worker(threads: int, gpu: int | None) -> None:
    if gpu is not None:  # the gpu-th of the GPUs this run may use
        visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[gpu] if gpu < len(visible) else str(gpu)
    import torch  # imported once per worker, with the pipeline and its models' modules
    torch.set_num_threads(max(1, threads))
    import vidmoji.pipeline  # noqa: F401
    from vidmoji import models
    models.bound_heap()


def _worker_main(conn, threads: int, gpu: int | None) -> None:
    """A local worker: take (index, clip, options) from the parent, one after another, until None."""
    _init_worker(threads, gpu)
    conn.send(("ready", os.getpid()))
    while True:
        job = conn.recv()
        if job is None:
            return
        index, clip, options = job
        conn.send((index, render_one(clip, options)))


# --- the manifest --------------------------------------------------------------------------------------------
def read_manifest(out_dir: Path) -> dict[str, dict]:
    """input -> its last record in OUTDIR/manifest.jsonl (a torn last line from a killed run is ignored)."""
    path = Path(out_dir) / MANIFEST
    records: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "input" in record:
                records[record["input"]] = record
    return records


class Manifest:
    """Appends one JSON line per finished clip, flushed at once, so a killed run keeps what it did."""

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / MANIFEST
        self.previous = read_manifest(out_dir)

    def is_done(self, clip: Clip) -> bool:
        record = self.previous.get(str(clip.source))
        return bool(record and record.get("status") == "done" and record.get("outputs")
                    and all(Path(p).exists() for p in record["outputs"]))

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())


# --- the options a folder was made with ----------------------------------------------------------------------
def options_record(options) -> dict:
    """The command and the options that change its outputs, as JSON values (OUTDIR/options.json)."""
    import dataclasses
    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name not in _NOT_RECORDED}
    values = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in values.items()}
    return json.loads(json.dumps({"command": command_of(options), "options": values}, default=str))


def check_options(out_dir: Path, options) -> None:
    """Record the options in OUTDIR/options.json on the first run; refuse (BatchError) a rerun into the
    same folder with another command or other options, which would mix their outputs (and skip clips done
    with the old ones)."""
    from vidmoji.video import write_text_atomic
    path = Path(out_dir) / OPTIONS
    want = options_record(options)
    if path.is_file():
        try:
            have = json.loads(path.read_text())
            have["options"].items()
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise BatchError(f"{path} is unreadable: remove it, or use another output folder") from None
        if have.get("command") != want["command"]:
            raise BatchError(f"{out_dir} holds the outputs of `vidmoji {have.get('command')}`, not of "
                             f"`vidmoji {want['command']}`: use another output folder")
        changed = [f"{k} {have['options'].get(k)!r} -> {v!r}" for k, v in want["options"].items()
                   if have["options"].get(k) != v]
        changed += [f"{k} {v!r} -> (none)" for k, v in have["options"].items() if k not in want["options"]]
        if changed:
            raise BatchError(f"{out_dir} was made with other options ({'; '.join(changed)}): use another "
                             f"output folder, or the same options to resume")
        return
    write_text_atomic(path, json.dumps(want, indent=1, sort_keys=True) + "\n")


# --- the run --------------------------------------------------------------------------------------------------
@dataclass
class BatchResult:
    """What a batch did: per-clip records of this run, the clips skipped as already done, the wall time."""

    out_dir: Path
    records: list[dict]
    skipped: int
    wall_s: float
    engine: str
    jobs: int
    failed_lines: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return sum(r["status"] == "done" for r in self.records)

    @property
    def failed(self) -> int:
        return sum(r["status"] != "done" for r in self.records)

    @property
    def clips_per_minute(self) -> float:
        return 60.0 * self.done / max(self.wall_s, 1e-9)

    def summary(self) -> str:
        rows = [("done", self.done), ("failed", self.failed), ("skipped", self.skipped)]
        table = "\n".join(f"  {name:8s} {n:6d}" for name, n in rows)
        lines = [f"{len(self.records) + self.skipped} inputs on {self.engine} ({self.jobs} workers), "
                 f"{self.wall_s:.1f} s, {self.clips_per_minute:.2f} clips per minute", table]
        lines += [f"  failed   {r['error'] if r['input'] in r['error'] else r['input'] + ': ' + r['error']}"
                  for r in self.records if r["status"] != "done"]
        lines.append(f"  wrote {self.out_dir / MANIFEST} and the outputs under {self.out_dir}")
        return "\n".join(lines)


def default_jobs() -> int:
    """One worker per GPU where GPUs exist, else one per 4 CPU cores (each worker uses cores // jobs
    torch threads)."""
    try:
        import torch
        gpus = torch.cuda.device_count()
    except Exception:
        gpus = 0
    return gpus if gpus else max(1, (os.cpu_count() or 1) // 4)


def run_batch(sources: list[Path], out_dir: Path, options, jobs: int | None = None, engine: str = "local",
              address: str | None = None, retries: int = 1, show_progress: bool = True,
              threads: int | None = None) -> BatchResult:
    """Render every clip of `sources` into `out_dir` (see the module's docstring). threads: torch's
    threads per worker (default: cores // jobs locally, 1 per Ray task). A render's pixels depend on
    torch's thread count (float sums in another order), so compare runs at the same count."""
    if engine not in ENGINES:
        raise BatchError(f"unknown engine {engine!r}: choose {', '.join(ENGINES)}")
    if options.output is not None or getattr(options, "timeline", None) or getattr(options, "data", None):
        raise BatchError("with many inputs -o names the output folder, and --timeline and --data (one file "
                         "each) are not available")
    if jobs is not None and jobs < 1:
        raise BatchError(f"--jobs must be at least 1, not {jobs}")
    if threads is not None and threads < 1:
        raise BatchError(f"--threads must be at least 1, not {threads}")
    if retries < 0:
        raise BatchError(f"--retries must be 0 or more, not {retries}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BatchError(f"cannot write into {out_dir}: it is a file (with many inputs -o names a folder)")
    clips = collect(sources, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    out_dir = out_dir.resolve()
    check_options(out_dir, options)
    manifest = Manifest(out_dir)
    todo = [c for c in clips if not manifest.is_done(c)]
    skipped = len(clips) - len(todo)
    jobs = min(jobs or default_jobs(), max(1, len(todo)))
    start = time.perf_counter()
    records: list[dict] = []
    if todo:
        log(f"{len(todo)} clips to render ({skipped} already done) on {engine} with {jobs} workers")
        run = _run_ray if engine == "ray" else _run_local
        from vidmoji.progress import Progress
        with Progress("clips", len(todo), enabled=show_progress) as progress:
            for record in run(todo, options, jobs, retries, address, threads):
                manifest.write(record)
                records.append(record)
                progress.advance(1)
    return BatchResult(out_dir, records, skipped, time.perf_counter() - start, engine, jobs)


def _run_local(clips: list[Clip], options, jobs: int, retries: int, address: str | None,
               threads: int | None):
    """A pool of spawned worker processes, each fed one clip at a time; yields records as they finish."""
    import multiprocessing as mp
    from multiprocessing.connection import wait
    if address is not None:
        raise BatchError("--address names a Ray cluster: use it with --engine ray")
    ctx = mp.get_context("spawn")
    try:
        import torch
        gpus = torch.cuda.device_count()
    except Exception:
        gpus = 0
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    pending = list(enumerate(clips))[::-1]       # popped from the end: in order
    attempts = {i: 0 for i in range(len(clips))}
    workers: dict[int, tuple] = {}               # slot -> (process, conn, job index or None)

    def start(slot: int) -> None:
        parent, child = ctx.Pipe()
        gpu = slot % gpus if gpus else None
        p = ctx.Process(target=_worker_main, args=(child, threads, gpu), daemon=True, name=f"vidmoji-{slot}")
        p.start()
        child.close()
        workers[slot] = (p, parent, None)

    def feed(slot: int) -> None:
        p, conn, _ = workers[slot]
        if pending:
            index, clip = pending.pop()
            try:
                conn.send((index, clip, options))
            except OSError:  # died right after its last clip: the sentinel says so next
                pending.append((index, clip))
                workers[slot] = (p, conn, None)
                return
            attempts[index] += 1
            workers[slot] = (p, conn, index)
        else:
            try:
                conn.send(None)
            except OSError:
                pass
            workers[slot] = (p, conn, None)
            busy_or_starting.discard(slot)

    busy_or_starting: set[int] = set()
    ready: set[int] = set()
    ever_ready = False
    start_failures = 0
    for slot in range(jobs):
        start(slot)
        busy_or_starting.add(slot)
    try:
        while busy_or_starting:
            by_handle = {}
            for slot in busy_or_starting:
                p, conn, _ = workers[slot]
                by_handle[conn] = slot
                by_handle[p.sentinel] = slot
            handled: set[int] = set()
            for handle in wait(list(by_handle)):
                slot = by_handle[handle]
                if slot not in busy_or_starting or slot in handled:
                    continue
                handled.add(slot)
                p, conn, index = workers[slot]
                message = None
                if handle is conn or conn.poll():
                    try:
                        message = conn.recv()
                    except (EOFError, OSError):
                        message = None
                if message is not None:
                    if message[0] == "ready":
                        ready.add(slot)
                        ever_ready = True
                    else:
                        yield message[1]
                    feed(slot)
                    continue
                # the worker died: its clip (if any) is retried on a fresh worker, or marked failed
                p.join(1)
                conn.close()
                busy_or_starting.discard(slot)
                if slot not in ready:
                    # a worker that dies while starting is replaced, unless starting itself fails: none has
                    # ever started, or more have died starting than the pool has slots
                    start_failures += 1
                    if not ever_ready or start_failures > jobs:
                        raise BatchError(f"a worker process could not start (exit code {p.exitcode}); "
                                         f"try `vidmoji render` on one clip to see why")
                    log(f"warning: worker process {p.pid} died (exit code {p.exitcode}) while starting; "
                        f"starting another")
                ready.discard(slot)
                if index is not None:
                    clip = clips[index]
                    why = f"worker process {p.pid} died (exit code {p.exitcode})"
                    if attempts[index] <= retries:
                        log(f"warning: {why} while rendering {clip.source}; retrying it")
                        pending.append((index, clip))
                    else:
                        yield {"input": str(clip.source), "status": "failed", "outputs": [], "frames": None,
                               "fps": None, "error": f"{why} on each of {attempts[index]} attempts",
                               "warnings": [], "wall_s": None, "pid": p.pid, "peak_rss_mb": None}
                if pending:
                    start(slot)
                    busy_or_starting.add(slot)
    finally:
        for p, conn, _ in workers.values():
            if p.is_alive():
                try:
                    conn.send(None)
                except (OSError, BrokenPipeError):
                    pass
        for p, _, _ in workers.values():
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(5)


def _run_ray(clips: list[Clip], options, jobs: int, retries: int, address: str | None,
             threads: int | None):
    """The same per-clip task scheduled by Ray: a running cluster at `address`, else a local one with
    `jobs` CPUs. One GPU per task where the cluster has GPUs; Ray retries tasks whose worker died."""
    try:
        import ray
    except ImportError:
        raise BatchError("--engine ray needs Ray: pip install 'vidmoji[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=jobs, log_to_driver=False, include_dashboard=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        threads = threads or 1
        task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=threads, max_retries=retries)(_ray_render)
        refs = {task.remote(clip, options, threads): clip for clip in clips}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                clip = refs.pop(ref)
                try:
                    yield ray.get(ref)
                except Exception as exc:  # the task's worker crashed on every try, or Ray itself failed
                    yield {"input": str(clip.source), "status": "failed", "outputs": [], "frames": None,
                           "fps": None, "error": f"ray: {type(exc).__name__}: " + " ".join(str(exc).split())[:300],
                           "warnings": [], "wall_s": None, "pid": None, "peak_rss_mb": None}
    finally:
        if started_here:
            ray.shutdown()


def _ray_render(clip: Clip, options, threads: int) -> dict:
    """The Ray task, in a Ray worker process that Ray reuses across tasks (torch imported once)."""
    import torch
    torch.set_num_threads(threads)
    return render_one(clip, options)
