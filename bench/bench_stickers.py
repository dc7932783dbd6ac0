"""What the messenger presets reach, and how long fitting takes against the I/O floor, in the same run.

    python bench/bench_stickers.py [--device auto|cpu|cuda] [--runs 3] [--astronaut CLIP.mp4]

For three clips (a 3 s moment of each) and each preset (telegram, whatsapp, discord) it prints what the
written sticker reaches when read back (size, frames, duration, frame rate, bytes against the limit), the
encodes the fit needed, and the fit's time (compose + encode + read back + check) against the I/O floor
of the same moment (decode the clip and encode an opaque 512x512 H.264 of it with PyAV, nothing in
between). Medians of `runs` runs. Passes 1 and 2 of the render (faces, parts) run once per clip and are
not counted: bench_render.py measures them. --astronaut adds the demo clip `make demo` makes from the
bundled public-domain photo.
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

from vidmoji.pipeline import RenderOptions, prepare  # noqa: E402
from vidmoji.stickers import PRESETS, PRESET_SUFFIX, Scene, fit, plan_output  # noqa: E402
from vidmoji.video import io_floor  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media" / "video"
CLIPS = (("liveportrait__d0", 0.0), ("liveportrait__d18", 2.0), ("liveportrait__d19", 3.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--astronaut", type=Path, default=None)
    args = ap.parse_args()
    if not MEDIA.is_dir():
        sys.exit(f"benchmark clips not found: {MEDIA}")
    clips = [(MEDIA / f"{n}.mp4", s) for n, s in CLIPS] + ([(args.astronaut, 0.0)] if args.astronaut else [])
    print(f"{'clip':22s} {'preset':9s} {'size':>8s} {'frames':>6s} {'s':>5s} {'fps':>5s} {'KB':>5s} "
          f"{'limit':>5s} {'encodes':>7s} {'fit s':>6s} {'ratio':>6s}")
    with tempfile.TemporaryDirectory() as tmp:
        for path, start in clips:
            prepared = prepare(path, RenderOptions(device=args.device, show_progress=False))
            scene = Scene(prepared)
            for preset in PRESETS.values():
                out = Path(tmp) / f"sticker{PRESET_SUFFIX[preset.name]}"
                plan = plan_output(path, prepared.info, RenderOptions(preset=preset.name, start=start, output=out))
                fits, floors, result = [], [], None
                for _ in range(args.runs):
                    floors.append(_moment_floor(path, Path(tmp), start, 3.0))
                    t = time.perf_counter()
                    result = fit(scene, plan, out)
                    fits.append(time.perf_counter() - t)
                c = result.check
                f, floor = statistics.median(fits), statistics.median(floors)
                print(f"{path.stem:22s} {preset.name:9s} {c.width:>4d}x{c.height:<3d} {c.frames:>6d} "
                      f"{c.duration_s:>5.2f} {c.fps:>5.1f} {c.bytes / 1024:>5.0f} {preset.max_bytes // 1024:>5d} "
                      f"{result.attempts:>7d} {f:>6.2f} {f / floor:>6.2f}")


def _moment_floor(path: Path, tmp: Path, start: float, seconds: float) -> float:
    """The I/O floor of a moment: the whole clip's floor scaled to the moment's share of it (the floor
    decodes the whole clip; a fit composes only the moment)."""
    from vidmoji.video import probe
    info = probe(path)
    whole = io_floor(path, tmp / "floor.mp4", 512, 512)
    return whole * min(seconds, info.duration_s - start) / max(info.duration_s, 1e-6)


if __name__ == "__main__":
    main()
