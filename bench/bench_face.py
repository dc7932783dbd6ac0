"""Frames per second of face location (detection + mesh) against the decode-only rate.

    python bench/bench_face.py [--device auto|cpu|cuda] [--runs 3]

For each clip it prints the decode-only rate (PyAV, the I/O floor) and, for batch sizes 1 and 32, the
rate of FaceLocator.track (per-frame cost: the mesh, with detection every 16 frames) and of
FaceLocator.__call__ (detection + mesh on every frame), and of track + iris refinement + the 306x306 mesh
label map (the per-frame work of `vidmoji parse`), each the median of `runs` runs over the first
`frames` decoded frames, beside its ratio to the decode rate.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vidmoji.device import choose_device  # noqa: E402
from vidmoji.face.align import alignment_matrices, transform_points  # noqa: E402
from vidmoji.face.iris import EyeRefiner  # noqa: E402
from vidmoji.face.locate import FaceLocator  # noqa: E402
from vidmoji.face.parse import mesh_label_map  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media" / "video"
CLIPS = ["liveportrait__d0", "liveportrait__s32"]


def decode(path: Path) -> np.ndarray:
    """All frames of a clip as uint8 (N,H,W,3) RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def time_stage(fn: Callable[[], int], runs: int, device: torch.device) -> float:
    """Median frames per second of `fn` (which returns the number of frames it processed) over `runs`."""
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        frames = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        rates.append(frames / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=64, help="frames timed per clip (from the start)")
    args = parser.parse_args()
    device = choose_device(args.device)
    locator = FaceLocator(device)
    refiner = EyeRefiner(device)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    for clip in CLIPS:
        path = MEDIA / f"{clip}.mp4"
        decode_fps = time_stage(lambda: len(decode(path)), args.runs, device)
        frames = torch.from_numpy(decode(path)[:args.frames]).to(device)
        h, w = frames.shape[1:3]
        print(f"{clip} ({w}x{h}): decode {decode_fps:.1f} fps; models timed on {len(frames)} frames")
        for batch in (1, 32):
            def track() -> int:
                locator.reset()
                for chunk in frames.split(batch):
                    locator.track(chunk)
                return len(frames)

            def detect_all() -> int:
                for chunk in frames.split(batch):
                    locator(chunk)
                return len(frames)

            def track_parse() -> int:
                """Per frame what render and parse do: track, refine the eyes, rasterise the label map."""
                locator.reset()
                for chunk in frames.split(batch):
                    faces = locator.track(chunk)
                    owner = [i for i, ff in enumerate(faces) for _ in ff]
                    if owner:
                        mesh = torch.stack([f.mesh for ff in faces for f in ff])
                        mesh, _ = refiner.refine(chunk, torch.tensor(owner, device=device), mesh)
                        mesh_label_map(transform_points(alignment_matrices(mesh), mesh))
                return len(frames)

            for name, fn in (("track", track), ("detect+mesh", detect_all), ("track+iris+parse", track_parse)):
                fps = time_stage(fn, args.runs, device)
                print(f"  batch {batch:2d} {name:12s} {fps:7.1f} fps  ({fps / decode_fps:.2f}x decode)")


if __name__ == "__main__":
    main()
