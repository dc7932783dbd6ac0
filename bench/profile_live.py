"""Where a live frame's time goes: the live frame path at batch 1, stage by stage.

    python bench/profile_live.py [--clip liveportrait__s32] [--frames 120] [--threads 1]

Reads the clip whole (every frame, no pacing, so the stages are timed without drops) through the real
`LivePath` that `vidmoji live` runs, with a timer around each stage's own function (nothing replaced):
decode (PyAV, to RGB; timed alone before), detect (FaceDetector.detect), mesh (FaceMesh.run), iris
(EyeRefiner.refine), measure, calibrate (OnlineCalibration), eyes (OnlineEyes), windows (part_windows: the
label-map rasterisation), embed (the autoencoder), search (FAISS), smooth (FixedLagViterbi.push), compose
(FrameComposer.compose), follow (reference pose, identity views) and encode (VideoWriter, timed alone
after). "other" is the rest of LivePath.push (eye pairing, the pose, numpy<->torch). Prints per stage the
median and mean CPU ms per frame (a stage that runs on some frames only, like detect, is averaged over all
frames), and the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import av
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import vidmoji.live as live  # noqa: E402
import vidmoji.match as match  # noqa: E402
import vidmoji.pipeline as pipeline  # noqa: E402
from vidmoji.avatar.index import PartIndex  # noqa: E402
from vidmoji.face.detector import FaceDetector  # noqa: E402
from vidmoji.face.iris import EyeRefiner  # noqa: E402
from vidmoji.face.mesh import FaceMesh  # noqa: E402
from vidmoji.smooth import FixedLagViterbi  # noqa: E402
from vidmoji.video import VideoWriter  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
STAGES = ("decode", "detect", "mesh", "iris", "measure", "calibrate", "eyes", "windows", "embed", "search",
          "smooth", "compose", "follow", "encode", "other", "frame path")
TIMED = STAGES[1:-3]

_spent: dict[str, float] = defaultdict(float)


def _timed(owner, name: str, stage: str) -> None:
    """Wrap owner.name so that its time adds to `stage` (outermost call only)."""
    fn = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _spent[stage] += time.thread_time() - t
    setattr(owner, name, wrapper)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="liveportrait__s32")
    ap.add_argument("--frames", type=int, default=180)
    ap.add_argument("--threads", type=int, default=live.LIVE_TORCH_THREADS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    clip = MEDIA / "video" / f"{args.clip}.mp4"

    # Decode first, timed on its own in this thread (live decodes in its own thread).
    frames, decode_ms = [], []
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        decoded = container.decode(stream)
        while len(frames) < args.frames:
            t = time.process_time()
            frame = next(decoded, None)
            if frame is None:
                break
            rgb = frame.to_ndarray(format="rgb24")
            decode_ms.append((time.process_time() - t) * 1000)
            frames.append((rgb, float(frame.time)))

    options = live.LiveOptions(source=str(clip), output="x.mp4", device="cpu", show_status=False)
    path = live.LivePath(options, fps, want_rgba=False)
    _timed(FaceDetector, "detect", "detect")
    _timed(FaceMesh, "run", "mesh")
    _timed(EyeRefiner, "refine", "iris")
    _timed(pipeline, "part_windows", "windows")
    _timed(match, "embed_slot", "embed")
    _timed(PartIndex, "search", "search")
    _timed(FixedLagViterbi, "push", "smooth")
    _timed(pipeline.FrameComposer, "compose", "compose")
    _timed(live, "measure", "measure")
    _timed(live.OnlineCalibration, "update", "calibrate")
    _timed(live.OnlineEyes, "push", "eyes")
    _timed(live.LivePath, "_follow", "follow")

    rows: dict[str, list[float]] = defaultdict(list)
    outputs = []
    for frame, t in frames:
        _spent.clear()
        arrival = live.Arrival(frame, t, time.perf_counter())
        start, cpu = time.perf_counter(), time.thread_time()
        outputs += [(rgb, a.t) for a, rgb, _ in path.push(arrival)]
        total, wall = time.thread_time() - cpu, time.perf_counter() - start
        for stage in TIMED:
            rows[stage].append(_spent.get(stage, 0.0) * 1000)
        rows["other"].append((total - sum(_spent.get(s, 0.0) for s in TIMED)) * 1000)
        rows["frame path"].append(total * 1000)
        rows["frame path wall"].append(wall * 1000)
    rows["decode"] = decode_ms
    # Encode the outputs afterwards, alone (live encodes in the writer's thread, beside the frame path): the
    # process's CPU time from the first write to the closed file, spread over the frames.
    with tempfile.TemporaryDirectory() as tmp:
        cpu = time.process_time()
        preset = getattr(live, "LIVE_PRESET", "veryfast")
        writer = VideoWriter(Path(tmp) / "out.mp4", options.size, options.size, fps, preset=preset)
        for rgb, t in outputs:
            writer.write(rgb, t)
        writer.close()
        rows["encode"] = [(time.process_time() - cpu) * 1000 / max(len(outputs), 1)] * len(outputs)

    n = len(frames)
    print(f"{args.clip}, {n} frames at batch 1, {args.threads} torch thread(s), load average "
          f"{os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} on {os.cpu_count()} CPUs "
          f"({time.strftime('%Y-%m-%d %H:%M')})")
    print("| stage | median ms | mean ms | frames where it ran |")
    print("|---|---|---|---|")
    for stage in STAGES + ("frame path wall",):
        v = np.asarray(rows[stage])
        print(f"| {stage} | {np.median(v):.2f} | {v.mean():.2f} | {int((v > 0.001).sum())} |")
    print("(CPU time of this thread, time.thread_time, which other programs on the CPU inflate less than the "
          "wall clock; 'frame path wall' is the wall-clock time of LivePath.push. decode (before) and encode "
          "(after: the mean) are timed alone as the whole process's CPU time, decoder and encoder threads "
          "included; live runs both in their own threads, beside the frame path)")


if __name__ == "__main__":
    main()
