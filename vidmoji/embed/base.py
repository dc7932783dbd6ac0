"""What every embedder offers, and the slot-level helper that both the face and the avatar side call."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import torch

from vidmoji import parts
from vidmoji.errors import VidmojiError


class EmbedderError(VidmojiError):
    """An embedder cannot be loaded (unknown name, missing or mismatched weights)."""


class Embedder(Protocol):
    """One vector per part window.

    `kind` says what the embedder looks at: "label" windows ((B, C, WINDOW_SIZE, WINDOW_SIZE) float32 in
    [0, 1], channels as parts.SLOT_CHANNELS) or "rgb" part crops ((B, 3, 224, 224) float32 in [0, 1]).
    """

    name: str
    kind: str

    def embed(self, group: str, windows: torch.Tensor) -> torch.Tensor:
        """(B, ...) windows of one embed group (parts.EMBED_GROUP) -> (B, D) float32, centred."""

    def fingerprint(self) -> str:
        """A short hash of the weights: an index built with other weights is stale."""


def mirror_if_left(slot: str, windows: torch.Tensor) -> torch.Tensor:
    """Mirror the subject's left eye and brow windows so one model serves both sides."""
    return windows.flip(-1) if slot in parts.MIRRORED_SLOTS else windows


def embed_slot(embedder: Embedder, slot: str, windows: torch.Tensor) -> torch.Tensor:
    """Embed windows of one slot: (B, C, S, S) -> (B, D) float32 on the windows' device."""
    return embedder.embed(parts.EMBED_GROUP[slot], mirror_if_left(slot, windows))


def file_fingerprint(path: Path) -> str:
    """The first 16 hex digits of a file's SHA-256."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
