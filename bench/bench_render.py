"""Render speed against the I/O floor, measured in the same run.

    python bench/bench_render.py [--device auto|cpu|cuda] [--runs 3] [--embedder ae]

For a 512x512 clip (liveportrait__d0) and a 1280x720 clip (liveportrait__s32) it prints the I/O floor
(decode the input and encode an output of the render's size with PyAV, nothing in between), the render's
frames per second (`vidmoji render`, layout avatar, 512x512 output), the ratio render time / I/O floor,
and the render's stage times (faces = decode + detect + mesh + iris; match = calibrate + embed + FAISS +
smooth; compose = compose + encode). Then the same for `vidmoji plot-embeddings` (1280x720 diagnostic
video) against an I/O floor with a 1280x720 output. Medians of `runs` runs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidmoji.pipeline import PlotOptions, RenderOptions, plot_media, render_media  # noqa: E402
from vidmoji.video import io_floor, probe  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media" / "video"
CLIPS = ("liveportrait__d0", "liveportrait__s32")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--embedder", default="ae")
    ap.add_argument("--layout", default="avatar")
    args = ap.parse_args()
    if not MEDIA.is_dir():
        sys.exit(f"benchmark clips not found: {MEDIA}")
    print(f"{'clip':28s} {'size':>9s} {'frames':>6s} {'I/O fps':>8s} {'render fps':>10s} {'ratio':>6s}  stages (s)")
    with tempfile.TemporaryDirectory() as tmp:
        for name in CLIPS:
            clip = MEDIA / f"{name}.mp4"
            info = probe(clip)
            floors, renders, results = [], [], []
            for _ in range(args.runs):
                floors.append(io_floor(clip, Path(tmp) / "floor.mp4", 512, 512) if args.layout == "avatar"
                              else io_floor(clip, Path(tmp) / "floor.mp4"))
                start = time.perf_counter()
                results.append(render_media(clip, RenderOptions(output=Path(tmp) / "out.mp4", device=args.device,
                                                                embedder=args.embedder, layout=args.layout,
                                                                show_progress=False)))
                renders.append(time.perf_counter() - start)
            frames = results[0].frames
            floor, render = statistics.median(floors), statistics.median(renders)
            stages = {k: statistics.median(r.stages[k] for r in results) for k in results[0].stages}
            shown = ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
            print(f"{name:28s} {info.width:>4d}x{info.height:<4d} {frames:>6d} {frames / floor:>8.1f} "
                  f"{frames / render:>10.1f} {render / floor:>6.2f}  {shown}  [{results[0].device}]")
            floors, plots = [], []
            for _ in range(args.runs):
                floors.append(io_floor(clip, Path(tmp) / "floor.mp4", 1280, 720))
                start = time.perf_counter()
                plot_media(clip, PlotOptions(output=Path(tmp) / "plot.mp4", device=args.device,
                                             embedders=(args.embedder,), show_progress=False))
                plots.append(time.perf_counter() - start)
            floor, plot = statistics.median(floors), statistics.median(plots)
            print(f"{'  plot-embeddings 1280x720':28s} {'':9s} {frames:>6d} {frames / floor:>8.1f} "
                  f"{frames / plot:>10.1f} {plot / floor:>6.2f}")


if __name__ == "__main__":
    main()
