"""`pca`: a centred PCA of the label windows, the cheap reference the autoencoder must match."""

from __future__ import annotations

from pathlib import Path

import torch

from vidmoji.embed.base import EmbedderError, file_fingerprint

WEIGHTS = Path(__file__).parent / "weights" / "pca.pt"
DIM = 16


def fit_pca(windows: torch.Tensor, dim: int = DIM) -> dict[str, torch.Tensor]:
    """Fit a PCA to (B, C, S, S) windows; returns {"mean": (C*S*S,), "components": (dim, C*S*S)}."""
    x = windows.flatten(1).double()
    mean = x.mean(0)
    _, _, vh = torch.linalg.svd(x - mean, full_matrices=False)
    return {"mean": mean.float(), "components": vh[:dim].float().contiguous()}


class PCAEmbedder:
    """Projection of the centred window onto the top principal components of its group."""

    name = "pca"
    kind = "label"

    def __init__(self, device: torch.device, weights: Path | None = None):
        path = Path(weights or WEIGHTS)
        if not path.is_file():
            raise EmbedderError(f"PCA weights not found at {path}: run `vidmoji train --embedder pca`")
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            for group, p in state.items():
                if p["components"].shape[1] != p["mean"].shape[0]:
                    raise ValueError(f"group {group}: components and mean disagree")
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's weights problem
            raise EmbedderError(f"PCA weights at {path} cannot be used: {exc}") from None
        self.groups = state
        self._fingerprint = file_fingerprint(path)

    def embed(self, group: str, windows: torch.Tensor) -> torch.Tensor:
        if group not in self.groups:
            raise EmbedderError(f"the PCA weights have no {group!r} group: run `vidmoji train --embedder pca`")
        p = self.groups[group]
        return (windows.flatten(1) - p["mean"]) @ p["components"].T

    def fingerprint(self) -> str:
        return self._fingerprint
