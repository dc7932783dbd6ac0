"""`resnet50`: the source design's baseline, torchvision's ResNet50 without its classifier on RGB crops.

Weights come from the user's torch cache (torchvision's IMAGENET1K_V2 or V1 file) or --weights PATH;
nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vidmoji.embed.base import EmbedderError, file_fingerprint

_CACHE_NAMES = ("resnet50-11ad3fa6.pth", "resnet50-0676ba61.pth")
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


def find_weights(weights: Path | None) -> Path:
    """The weights file to use: the given path, else torchvision's file in the torch hub cache."""
    if weights is not None:
        if not Path(weights).is_file():
            raise EmbedderError(f"ResNet50 weights not found at {weights}")
        return Path(weights)
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    for name in _CACHE_NAMES:
        if (cache / name).is_file():
            return cache / name
    raise EmbedderError(
        f"ResNet50 weights are not in the torch cache ({cache}) and vidmoji never downloads: on a machine "
        "with internet run `python -c \"import torchvision; torchvision.models.resnet50(weights='DEFAULT')\"` "
        "and copy the file there, or pass --weights PATH")


class ResNet50Embedder:
    """2048-d pooled ResNet50 features of RGB part crops, as the source design used them (uncentred)."""

    name = "resnet50"
    kind = "rgb"

    def __init__(self, device: torch.device, weights: Path | None = None):
        path = find_weights(weights)
        import torchvision  # here, not at the top: it brings torch._dynamo (~160 MB resident) to every render
        model = torchvision.models.resnet50()
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's weights problem
            raise EmbedderError(f"{path} is not a torchvision ResNet50 state_dict: {exc}") from None
        model.fc = torch.nn.Identity()
        self.model = model.to(device).eval()
        self.mean = torch.tensor(_MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(_STD, device=device).view(1, 3, 1, 1)
        self._fingerprint = file_fingerprint(path)

    @torch.inference_mode()
    def embed(self, group: str, windows: torch.Tensor) -> torch.Tensor:
        return self.model((windows - self.mean) / self.std)

    def fingerprint(self) -> str:
        return self._fingerprint
