"""Per-pixel part label maps of aligned faces, rasterised on the device from the mesh's polygons."""

from __future__ import annotations

import torch

from vidmoji import parts
from vidmoji.face.raster import rasterize_polygons


def mesh_label_map(crop_points: torch.Tensor, size: int = parts.CROP_SIZE) -> torch.Tensor:
    """Label map of faces from their mesh points in crop pixels.

    crop_points: (F, 468, 2) mesh points already mapped into the size x size crop. Returns (F, size, size)
    int64 CelebAMask-HQ label ids (parts.LABEL_IDS). Polygons are painted in parts.PARSE_POLYGONS order, so
    the inner mouth covers the lips and the eyes cover the skin; an eye's region lies inside its lids, so a
    closed eye leaves almost no eye pixels.
    """
    n = crop_points.shape[0]
    labels = torch.zeros((n, size, size), dtype=torch.uint8, device=crop_points.device)
    for name, index in parts.PARSE_POLYGONS:
        inside = rasterize_polygons(crop_points[:, list(index)], size, size)
        labels.masked_fill_(inside, parts.LABEL_IDS[name])
    return labels.long()


def colorize(labels: torch.Tensor) -> torch.Tensor:
    """(..., H, W) int64 label ids -> (..., H, W, 3) uint8 RGB colours from parts.LABEL_COLORS."""
    palette = torch.tensor(parts.LABEL_COLORS, dtype=torch.uint8, device=labels.device)
    return palette[labels]
