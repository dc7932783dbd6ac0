"""Batched polygon rasterisation on the torch device (scanline crossings + searchsorted)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rasterize_polygons(polygons: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Fill closed polygons with the even-odd rule, one polygon per batch entry.

    polygons: (B, V, 2) float, vertices (x, y) in pixels, pixel centres at i + 0.5; the last vertex
    joins the first. Returns (B, height, width) bool, True where the pixel centre is inside.

    Per scanline each edge crossing toggles the inside/outside parity of every pixel right of it: the
    crossings are scattered into a row of toggles and a running sum gives each pixel's count, O(V + W) per
    scanline instead of testing every edge at every pixel.
    """
    a = polygons
    b = torch.roll(polygons, shifts=-1, dims=1)
    ys = torch.arange(height, device=polygons.device, dtype=polygons.dtype) + 0.5
    ay, by = a[..., 1, None], b[..., 1, None]                       # (B, V, 1)
    crosses = (ay <= ys) != (by <= ys)                              # (B, V, H)
    dy = torch.where(crosses, by - ay, torch.ones_like(by - ay))
    t = (ys - ay) / dy
    x = a[..., 0, None] + t * (b[..., 0, None] - a[..., 0, None])
    x = torch.where(crosses, x, torch.full_like(x, float("inf")))
    # Pixel i lies right of a crossing at x when its centre i + 0.5 > x, i.e. from column floor(x - 0.5) + 1
    # on: each crossing toggles the parity from its column to the end of the row (a running sum).
    start = torch.floor(x - 0.5).clamp(min=-1, max=width - 1) + 1         # (B, V, H); inf -> width: no toggle
    # uint8 counts wrap at 256, which keeps their parity.
    toggles = torch.zeros((x.shape[0], height, width + 1), device=polygons.device, dtype=torch.uint8)
    toggles.scatter_add_(2, start.long().transpose(1, 2), torch.ones_like(toggles[..., :1]).expand(
        -1, -1, start.shape[1]))
    return (toggles[..., :width].cumsum(dim=2, dtype=torch.uint8) & 1).bool()


def stack_polygons(polygons: list[torch.Tensor]) -> torch.Tensor:
    """Polygons with different vertex counts, (B, V_i, 2) each, as one (B, len(polygons), max V_i, 2) batch:
    a shorter polygon repeats its last vertex. The repeats add edges of zero length, which cross no
    scanline, and the closing edge stays the same, so each rasterises exactly as it would alone."""
    v = max(p.shape[1] for p in polygons)
    return torch.stack([torch.cat([p, p[:, -1:].expand(-1, v - p.shape[1], -1)], 1) if p.shape[1] < v else p
                        for p in polygons], 1)


def rasterize_soft(polygons: torch.Tensor, size: int, supersample: int = 4) -> torch.Tensor:
    """Anti-aliased coverage of polygons on a size x size grid.

    polygons: (B, V, 2) vertices in output pixels. Returns (B, size, size) float32 in [0, 1]: the share
    of each pixel covered, measured on a supersample x supersample grid.
    """
    hi = rasterize_polygons(polygons * supersample, size * supersample, size * supersample)
    return F.avg_pool2d(hi[:, None].float(), supersample)[:, 0]


def gaussian_blur(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) float images, edges clamped; sigma in pixels."""
    radius = max(1, int(round(3 * sigma)))
    k = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    x = F.pad(images, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
