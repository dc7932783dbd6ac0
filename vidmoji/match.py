"""Face part windows -> embeddings -> the nearest avatar parts (top-k per slot), by cosine similarity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vidmoji import parts
from vidmoji.avatar.index import PartIndex
from vidmoji.embed.base import Embedder, embed_slot


@dataclass(frozen=True)
class SlotMatches:
    """Matches of one slot for F faces: embeddings (F, D) float32 centred, sims (F, k) float32 cosine
    similarities best first, rows (F, k) int64 rows of the slot's PartIndex."""

    embeddings: np.ndarray
    sims: np.ndarray
    rows: np.ndarray


def match_windows(embedder: Embedder, indexes: dict[str, PartIndex], windows: dict[str, torch.Tensor],
                  k: int = 5, batch_size: int = 256) -> dict[str, SlotMatches]:
    """Embed each slot's windows ((F, ...) tensors on the device) and search the slot's index.

    The windows are embedded in batches of batch_size on their device; FAISS runs on the CPU.
    """
    out = {}
    for slot in parts.SLOTS:
        w = windows[slot]
        emb = torch.zeros((0, indexes[slot].vectors.shape[1]))
        if len(w):
            with torch.inference_mode():
                emb = torch.cat([embed_slot(embedder, slot, w[i:i + batch_size]).float().cpu()
                                 for i in range(0, len(w), batch_size)])
        emb_np = emb.numpy()
        sims, rows = indexes[slot].search(emb_np, k)
        out[slot] = SlotMatches(emb_np, sims, rows)
    return out
