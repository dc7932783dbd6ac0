"""Many clips: clips per minute of `vidmoji render DIR -o OUTDIR` with --jobs 1, --jobs 2 and --engine ray
on the same folder, against the I/O floor measured in the same run, and peak resident memory per worker;
then the peak resident memory of one render of a 1920x1080 clip.

    python bench/bench_batch.py [--seconds 2] [--runs 1] [--device cpu] [--no-ray] [--no-1080p]

The folder holds the first `seconds` of each of four public clips (their packets copied, not re-encoded).
The I/O floor decodes each clip and encodes a 512x512 output with PyAV, nothing in between, one clip after
another. Ratio: the batch's wall time / the I/O floor's. Peak RSS per worker: the largest ru_maxrss a
worker reported after a clip (models, torch and the clip's frames included). The 1080p render runs in a
fresh process (facenet-pytorch__video.mp4, 1920x1080, 105 frames) and its peak RSS is that process's
ru_maxrss (os.wait4). Medians of `runs` runs.
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


def peak_rss_of_render(clip: Path, out: Path, device: str) -> tuple[float, float]:
    """(peak RSS in MB, wall s) of `render_media` of `clip` in a fresh Python process."""
    code = ("import sys; from pathlib import Path; from vidmoji.pipeline import RenderOptions, render_media; "
            f"render_media(Path({str(clip)!r}), RenderOptions(output=Path({str(out)!r}), device={device!r}, "
            "show_progress=False))")
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"the 1080p render failed with exit code {proc.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--no-1080p", action="store_true")
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
        print(f"{'run':24s} {'wall s':>7s} {'clips/min':>9s} {'ratio':>6s} {'peak RSS/worker MB':>19s}")
        for label, engine, jobs in engines:
            walls, rss = [], []
            for i in range(args.runs):
                out = tmp / f"out_{engine}_{jobs}_{i}"
                result = run_batch([tmp / "clips"], out, RenderOptions(device=args.device), jobs=jobs,
                                   engine=engine, show_progress=False)
                if result.failed:
                    sys.exit(f"{label}: {result.failed} clips failed:\n{result.summary()}")
                walls.append(result.wall_s)
                rss.append(max(r["peak_rss_mb"] or 0 for r in read_manifest(out).values()))
                shutil.rmtree(out)
            wall = statistics.median(walls)
            print(f"{label:24s} {wall:>7.1f} {60 * len(clips) / wall:>9.2f} {wall / floor:>6.1f} "
                  f"{statistics.median(rss):>19.0f}")
        if not args.no_1080p:
            info = probe(MEDIA / f"{HD}.mp4")
            peaks = [peak_rss_of_render(MEDIA / f"{HD}.mp4", tmp / "hd.mp4", args.device) for _ in range(args.runs)]
            print(f"one render of {HD} ({info.width}x{info.height}, {info.frame_count} frames): peak RSS "
                  f"{statistics.median(p for p, _ in peaks):.0f} MB, {statistics.median(w for _, w in peaks):.1f} s")


if __name__ == "__main__":
    main()
