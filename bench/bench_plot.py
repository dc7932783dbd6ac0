"""Time `EmbeddingFigure.draw` at 1280x720: 4 slots x 1 embedder ("ae", 16 dims) and x 2 embedders
("ae" + "resnet50", 2048 dims drawn as a 64-dim projection), with blitting (the default) and with a full
`canvas.draw()` per frame for comparison. Prints the median ms per frame and the fps it allows.

Synthetic data: a 306x306 label-map crop, a 512x512 avatar, embeddings that drift slowly (as a still
face does) inside fixed y limits, so every frame is a pure blit frame; the chosen part (its label) changes
every 20 frames and the similarity wanders by ~0.01, so the text cache sees realistic hits and misses.

    python bench/bench_plot.py [--frames 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from vidmoji.plot import EmbeddingFigure

SLOTS = ("eye_left", "eye_right", "brow_left", "mouth")
DIMS = {"ae": 16, "resnet50": 2048}


def frames(embedders: tuple[str, ...], n: int, rng: np.random.Generator):
    """n frames of draw() arguments: slowly drifting face embeddings, a part that switches now and then."""
    base = {e: {s: rng.normal(0, 0.3, DIMS[e]).astype(np.float32) for s in SLOTS} for e in embedders}
    crop = rng.integers(0, 19, (306, 306), dtype=np.uint8)
    crop = np.stack([crop * 13, crop * 7, crop * 3], axis=-1).astype(np.uint8)
    avatar = np.full((512, 512, 3), 230, np.uint8)
    for i in range(n):
        face = {e: {s: base[e][s] + rng.normal(0, 0.05, DIMS[e]).astype(np.float32) for s in SLOTS}
                for e in embedders}
        part = {e: {s: base[e][s] * (1.0 if (i // 20) % 2 else 0.8) for s in SLOTS} for e in embedders}
        # Similarity noise of ~0.01 around a level that changes with the part, as on a still face.
        sims = {e: {s: float(0.8 + 0.05 * ((i // 20) % 2) + rng.normal(0, 0.01)) for s in SLOTS}
                for e in embedders}
        labels = {e: {s: f"{s}_{(i // 20) % 7:02d} [open, round]" for s in SLOTS} for e in embedders}
        yield face, part, sims, labels, crop, avatar, f"frame {i}  t={i / 30:.2f} s"


def bench(embedders: tuple[str, ...], blit: bool, n: int) -> float:
    """Median seconds per draw() over n frames (after 5 warm-up frames)."""
    rng = np.random.default_rng(0)
    ylim = {e: {s: 2.0 for s in SLOTS} for e in embedders}
    fig = EmbeddingFigure(SLOTS, embedders, {e: {s: DIMS[e] for s in SLOTS} for e in embedders},
                          1280, 720, ylim=ylim, blit=blit)
    data = list(frames(embedders, n + 5, rng))
    times = []
    for i, args in enumerate(data):
        t0 = time.perf_counter()
        fig.draw(*args)
        if i >= 5:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=200)
    n = ap.parse_args().frames
    for embedders in (("ae",), ("ae", "resnet50")):
        for blit in (True, False):
            t = bench(embedders, blit, n)
            print(f"{len(SLOTS)} slots x {'+'.join(embedders):<12} {'blit' if blit else 'full draw':<9} "
                  f"{t * 1e3:7.1f} ms/frame  {1.0 / t:6.1f} fps")


if __name__ == "__main__":
    main()
