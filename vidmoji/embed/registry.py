"""The one table of embedders: adding one is a new file and a line here."""

from __future__ import annotations

from pathlib import Path

import torch

from vidmoji.embed.ae import AutoencoderEmbedder
from vidmoji.embed.base import Embedder, EmbedderError
from vidmoji.embed.pca import PCAEmbedder
from vidmoji.embed.resnet50 import ResNet50Embedder

EMBEDDERS = {"ae": AutoencoderEmbedder, "pca": PCAEmbedder, "resnet50": ResNet50Embedder}
DEFAULT_EMBEDDER = "ae"


def load_embedder(name: str, device: torch.device, weights: Path | None = None) -> Embedder:
    """Build the named embedder on the device; unknown names raise EmbedderError listing the choices."""
    if name not in EMBEDDERS:
        raise EmbedderError(f"unknown embedder {name!r}: choose one of {', '.join(EMBEDDERS)}")
    return EMBEDDERS[name](device, weights)
