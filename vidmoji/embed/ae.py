"""`ae` (the default): a small convolutional autoencoder per embed group over label windows.

The embedding is the bottleneck minus its mean over the training windows (faces and drawn parts alike):
cosine similarity on centred codes compares shapes, not the shared offset every window has.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vidmoji import parts
from vidmoji.embed.base import EmbedderError, file_fingerprint

WEIGHTS = Path(__file__).parent / "weights" / "ae.pt"
DIM = 16


class WindowAutoencoder(nn.Module):
    """(B, C, 32, 32) float32 in [0, 1] -> code (B, DIM) -> reconstruction (B, C, 32, 32) logits."""

    def __init__(self, channels: int, dim: int = DIM):
        super().__init__()
        s = parts.WINDOW_SIZE // 8
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, 16, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * s * s, dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(dim, 64 * s * s), nn.ReLU(), nn.Unflatten(1, (64, s, s)),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(16, channels, 4, 2, 1),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.encoder(x)
        return code, self.decoder(code)


def group_channels() -> dict[str, int]:
    """Number of window channels of each embed group."""
    return {group: len(parts.SLOT_CHANNELS[slot]) for slot, group in parts.EMBED_GROUP.items()}


class AutoencoderEmbedder:
    """Centred bottleneck codes of the trained per-group autoencoders."""

    name = "ae"
    kind = "label"

    def __init__(self, device: torch.device, weights: Path | None = None):
        path = Path(weights or WEIGHTS)
        if not path.is_file():
            raise EmbedderError(f"autoencoder weights not found at {path}: run `vidmoji train --embedder ae`")
        self.models, self.centres = {}, {}
        try:
            state = torch.load(path, map_location=device, weights_only=True)
            for group, channels in group_channels().items():
                if group not in state:      # weights from before the group existed: see `embed`
                    continue
                model = WindowAutoencoder(channels).to(device).eval()
                model.load_state_dict(state[group]["model"])
                self.models[group] = model
                self.centres[group] = state[group]["centre"]
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's weights problem
            raise EmbedderError(f"autoencoder weights at {path} do not fit this version: {exc}") from None
        self._fingerprint = file_fingerprint(path)

    @torch.inference_mode()
    def embed(self, group: str, windows: torch.Tensor) -> torch.Tensor:
        if group not in self.models:
            raise EmbedderError(f"the autoencoder weights have no {group!r} model: run `vidmoji train --embedder ae`")
        return self.models[group].encoder(windows) - self.centres[group]

    def fingerprint(self) -> str:
        return self._fingerprint
