"""Many clips: clips per minute of `vidmoji render DIR -o OUTDIR` with --jobs 1, --jobs 2 and --engine ray
on the same folder, against the I/O floor measured in the same run, and peak resident memory per worker;
then the peak resident memory of one render of a 1920x1080 clip, and of the same clip looped to 4x its
length (flat in the clip's length: the two peaks should match).

    python bench/bench_batch.py [--seconds 2] [--runs 1] [--device cpu] [--no-ray] [--no-1080p] [--loop 4]

The folder holds the first `seconds` of each of four public clips (their packets copied, not re-encoded).
The I/O floor decodes each clip and encodes a 512x512 output with PyAV, nothing in between, one clip after
another. Ratio: the batch's wall time / the I/O floor's. Peak RSS per worker: the largest ru_maxrss a
worker reported after a clip (models, torch and the clip's frames included). Loads: the seconds a worker
spent loading models for its first clip and, median, for each later one (the manifest's load_s; vidmoji.models
keeps them per process). The 1080p renders run in a fresh process each (facenet-pytorch__video.mp4,
1920x1080, 105 frames, and the same looped `--loop` times, packets copied, in a temporary file) and their
peak RSS is that process's VmHWM (Linux: /proc/self/status); "after imports" is a fresh process that only imports
vidmoji.pipeline. Medians of `runs` runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from vidmoji.batch import read_manifest, run_batch  # noqa: E402
from vidmoji.pipeline import RenderOptions  # noqa: E402
from vidmoji.video import io_floor, probe  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media" / "video"
CLIPS = ("liveportrait__d0", "liveportrait__d14", "liveportrait__d18", "liveportrait__d19")
HD = "facenet-pytorch__video"


def make_folder(folder: Path, seconds: float) -> list[Path]:
    from corpus import _remux
    folder.mkdir(parents=True, exist_ok=True)
    return [_remux(MEDIA / f"{name}.mp4", folder / f"{name}.mp4", seconds) for name in CLIPS]


def looped(src: Path, dst: Path, times: int) -> Path:
    """`src`'s video played `times` times over, its packets copied (no re-encoding) with their timestamps
    shifted by the clip's length on each pass; the audio is left out. A clip that opens on a key frame (the
    public ones do) decodes as one clip `times` as long."""
    import av
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        packets = [p for p in inp.demux(stream) if p.dts is not None and p.size]
        step = max(p.pts for p in packets) - min(p.pts for p in packets) + \
            round(1 / (float(stream.average_rate) * stream.time_base))
        with av.open(str(dst), "w") as out:
            ostream = out.add_stream_from_template(stream)
            for k in range(times):
                for p in packets:
                    q = av.Packet(bytes(p))
                    q.pts, q.dts, q.time_base, q.is_keyframe = p.pts + k * step, p.dts + k * step, p.time_base, p.is_keyframe
                    q.stream = ostream
                    out.mux(q)
    return dst


def peak_rss_of_render(clip: Path | None, out: Path, device: str) -> tuple[float, float]:
    """(peak RSS in MB, wall s) of `render_media` of `clip` in a fresh Python process (clip None: only the
    imports)."""
    code = ("import sys; from pathlib import Path; from vidmoji.pipeline import RenderOptions, render_media; " +
            (f"render_media(Path({str(clip)!r}), RenderOptions(output=Path({str(out)!r}), device={device!r}, "
             "show_progress=False))" if clip is not None else "pass"))
    # The process's own high-water mark (VmHWM), printed as it ends: the child's ru_maxrss (os.wait4) also
    # counts what the forked copy of this benchmark held before exec (791 MB for a child that only imports).
    code += "; print('VmHWM', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        sys.exit(f"the 1080p render failed with exit code {proc.returncode}")
    kb = next(int(line.split()[1]) for line in proc.stdout.splitlines() if line.startswith("VmHWM "))
    return kb / 1024, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--no-1080p", action="store_true")
    ap.add_argument("--loop", type=int, default=4, help="the long 1080p clip: the short one this many times "
                    "over (0: leave it out)")
    args = ap.parse_args()
    if not MEDIA.is_dir():
        sys.exit(f"benchmark clips not found: {MEDIA}")
    engines = [("--jobs 1", "local", 1), ("--jobs 2", "local", 2)]
    try:
        import ray  # noqa: F401
        if not args.no_ray:
            engines.append(("--engine ray (2 CPUs)", "ray", 2))
    except ImportError:
        print("ray is not installed: --engine ray left out (pip install 'vidmoji[ray]')")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = make_folder(tmp / "clips", args.seconds)
        frames = sum(probe(c).frame_count for c in clips)
        floors = [sum(io_floor(c, tmp / "floor.mp4", 512, 512) for c in clips) for _ in range(args.runs)]
        floor = statistics.median(floors)
        print(f"{len(clips)} clips of {args.seconds:g} s ({frames} frames), {os.cpu_count()} cores, "
              f"device {args.device}; I/O floor {floor:.2f} s = {60 * len(clips) / floor:.1f} clips/min")
        print(f"{'run':24s} {'wall s':>7s} {'clips/min':>9s} {'ratio':>6s} {'peak RSS/worker MB':>19s} "
              f"{'loads s: 1st clip / later':>26s}")
        for label, engine, jobs in engines:
            walls, rss, first_loads, later_loads = [], [], [], []
            for i in range(args.runs):
                out = tmp / f"out_{engine}_{jobs}_{i}"
                result = run_batch([tmp / "clips"], out, RenderOptions(device=args.device), jobs=jobs,
                                   engine=engine, show_progress=False)
                if result.failed:
                    sys.exit(f"{label}: {result.failed} clips failed:\n{result.summary()}")
                walls.append(result.wall_s)
                records = list(read_manifest(out).values())
                rss.append(max(r["peak_rss_mb"] or 0 for r in records))
                seen: set = set()
                for r in records:  # in the order they finished: a pid's first record is its first clip
                    (later_loads if r["pid"] in seen else first_loads).append(r.get("load_s") or 0.0)
                    seen.add(r["pid"])
                shutil.rmtree(out)
            wall = statistics.median(walls)
            loads = f"{statistics.median(first_loads):.2f} / " + \
                (f"{statistics.median(later_loads):.2f}" if later_loads else "-")
            print(f"{label:24s} {wall:>7.1f} {60 * len(clips) / wall:>9.2f} {wall / floor:>6.1f} "
                  f"{statistics.median(rss):>19.0f} {loads:>26s}")
        if not args.no_1080p:
            imports = [peak_rss_of_render(None, tmp / "none.mp4", args.device)[0] for _ in range(args.runs)]
            print(f"a fresh process after importing vidmoji.pipeline: peak RSS {statistics.median(imports):.0f} MB")
            hd = [(MEDIA / f"{HD}.mp4", "")]
            if args.loop > 1:
                hd.append((looped(MEDIA / f"{HD}.mp4", tmp / f"{HD}_x{args.loop}.mp4", args.loop),
                           f", looped {args.loop}x"))
            for clip, label in hd:
                info = probe(clip)
                peaks = [peak_rss_of_render(clip, tmp / "hd.mp4", args.device) for _ in range(args.runs)]
                print(f"one render of {HD}{label} ({info.width}x{info.height}, {info.frame_count} frames): peak RSS "
                      f"{statistics.median(p for p, _ in peaks):.0f} MB, {statistics.median(w for _, w in peaks):.1f} s")


if __name__ == "__main__":
    main()
