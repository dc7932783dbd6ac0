"""The one place where the torch device is chosen."""

from __future__ import annotations

import torch

from vidmoji.errors import VidmojiError


class DeviceError(VidmojiError):
    """The requested device cannot be used."""


def choose_device(name: str = "auto") -> torch.device:
    """Map `auto|cpu|cuda` to a torch device: `auto` takes CUDA when a GPU is present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for, but no CUDA GPU is available (use --device cpu)")
    if name not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device {name!r}: use auto, cpu or cuda")
    return torch.device(name)
