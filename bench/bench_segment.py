"""Speed of the selfie (person) segmentation against the decode-only rate.

    python bench/bench_segment.py [--device auto|cpu|cuda] [--runs 50] [--frames 64] [--threads N]

For each model (general 256x256, landscape 144x256) it prints the network's time per image on an input of
its own size at batch 1 and 8 (median of `runs` calls), then, for each clip, the decode-only rate (PyAV,
the I/O floor) and the rate of PersonSegmenter.segment on whole frames (resize in, network, resize the mask
back to the frame) at batch 1 and 8 over the first `frames` frames (median of 3 passes), beside its ratio
to the decode rate. --threads sets torch's CPU threads (default: torch's own choice); on a CPU shared with
other work, one thread gives steadier numbers than threads that wait on each other.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_face import CLIPS, MEDIA, decode, time_stage  # noqa: E402

from vidmoji.device import choose_device  # noqa: E402
from vidmoji.face.segment import MODELS, PersonSegmenter  # noqa: E402

BATCHES = (1, 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--runs", type=int, default=50, help="timed calls of the network per batch size")
    parser.add_argument("--frames", type=int, default=64, help="frames segmented per clip (from the start)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if not MEDIA.is_dir():
        sys.exit(f"benchmark clips not found: {MEDIA}")
    device = choose_device(args.device)
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    segmenters = {name: PersonSegmenter(device, name) for name in MODELS}
    for name, segmenter in segmenters.items():
        h, w = segmenter.input_size
        for batch in BATCHES:
            x = torch.rand(batch, 3, h, w, device=device).contiguous(memory_format=torch.channels_last)

            def net() -> int:
                with torch.inference_mode():
                    segmenter.net(x)
                return batch

            net()                                                     # warm-up
            fps = time_stage(net, args.runs, device)
            print(f"{name} {w}x{h} network, batch {batch}: {1000 / fps:.2f} ms per image (median of {args.runs})")
    for clip in CLIPS:
        path = MEDIA / f"{clip}.mp4"
        decode_fps = time_stage(lambda: len(decode(path)), 3, device)
        frames = torch.from_numpy(decode(path)[:args.frames]).to(device)
        h, w = frames.shape[1:3]
        print(f"{clip} ({w}x{h}): decode {decode_fps:.1f} fps; segmentation timed on {len(frames)} frames")
        for name, segmenter in segmenters.items():
            for batch in BATCHES:
                def segment() -> int:
                    for chunk in frames.split(batch):
                        segmenter.segment(chunk)
                    return len(frames)

                fps = time_stage(segment, 3, device)
                print(f"  {name:9s} batch {batch}: {fps:7.1f} fps  ({fps / decode_fps:.2f}x decode)")


if __name__ == "__main__":
    main()
