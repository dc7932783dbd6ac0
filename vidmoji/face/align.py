"""Similarity alignment of a face mesh to the canonical CROP_SIZE x CROP_SIZE crop."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vidmoji import parts
from vidmoji.face.sampling import sample_frames


def _anchor_points(mesh: torch.Tensor) -> torch.Tensor:
    """(F, 468, >=2) mesh in pixels -> (F, 3, 2): right eye centre, left eye centre, mouth centre."""
    xy = mesh[..., :2]
    right = xy[:, list(parts.EYE_RIGHT)].mean(1)
    left = xy[:, list(parts.EYE_LEFT)].mean(1)
    mouth = xy[:, list(parts.MOUTH_CORNERS)].mean(1)
    return torch.stack([right, left, mouth], 1)


def canonical_anchors(device: torch.device | str = "cpu") -> torch.Tensor:
    """(3, 2) float32: where the eye centres and mouth centre land in the canonical crop (pixels)."""
    return torch.tensor([parts.CANONICAL_EYE_RIGHT, parts.CANONICAL_EYE_LEFT, parts.CANONICAL_MOUTH],
                        dtype=torch.float32, device=device)


def similarity_transform(src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src onto dst (Umeyama).

    src: (F, P, 2), dst: (P, 2) or (F, P, 2). Returns (F, 2, 3) matrices M with dst ~ M @ [x, y, 1].
    """
    dst = dst.expand_as(src)
    mu_s, mu_d = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    s, d = src - mu_s, dst - mu_d
    # For 2-D similarities the optimum has a closed form in complex numbers: z_d = a z_s, a = <z_s, z_d>/|z_s|^2.
    dot = (s * d).sum((1, 2))
    cross = (s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0]).sum(1)
    norm = (s ** 2).sum((1, 2)).clamp_min(1e-9)
    a, b = dot / norm, cross / norm
    rot = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], 1)   # (F, 2, 2)
    t = mu_d[:, 0] - (rot @ mu_s[:, 0, :, None])[..., 0]
    return torch.cat([rot, t[..., None]], 2)


def alignment_matrices(mesh: torch.Tensor) -> torch.Tensor:
    """(F, 468, 3) mesh in frame pixels -> (F, 2, 3) frame-to-crop similarity transforms."""
    return similarity_transform(_anchor_points(mesh), canonical_anchors(mesh.device))


def transform_points(matrices: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply (F, 2, 3) affine matrices to (F, P, >=2) points; returns (F, P, 2)."""
    return points[..., :2] @ matrices[:, :, :2].transpose(1, 2) + matrices[:, None, :, 2]


def invert_affine(matrices: torch.Tensor) -> torch.Tensor:
    """Inverse of (F, 2, 3) affine matrices."""
    inv = torch.linalg.inv(matrices[:, :, :2])
    return torch.cat([inv, -(inv @ matrices[:, :, 2:])], 2)


def warp_crops(frames: torch.Tensor, frame_index: torch.Tensor, matrices: torch.Tensor,
               size: int = parts.CROP_SIZE) -> torch.Tensor:
    """Cut aligned face crops out of frames by bilinear grid sampling.

    frames: (N, H, W, 3) uint8 RGB on the device; frame_index: (F,) long, the frame of each face;
    matrices: (F, 2, 3) frame-to-crop transforms. Returns (F, 3, size, size) float32 RGB in [0, 1].
    """
    n, h, w, _ = frames.shape
    inv = invert_affine(matrices)                                    # crop pixels -> frame pixels
    # affine_grid works in normalised coordinates [-1, 1] with align_corners=False (pixel centres at i + 0.5).
    to_crop = torch.tensor([[size / 2, 0, size / 2], [0, size / 2, size / 2], [0, 0, 1]],
                           dtype=matrices.dtype, device=matrices.device)
    from_frame = torch.tensor([[2 / w, 0, -1], [0, 2 / h, -1]], dtype=matrices.dtype, device=matrices.device)
    theta = from_frame @ torch.cat([inv, torch.tensor([[[0, 0, 1]]], dtype=inv.dtype, device=inv.device)
                                    .expand(len(inv), 1, 3)], 1) @ to_crop
    grid = F.affine_grid(theta, [len(matrices), 3, size, size], align_corners=False)
    return sample_frames(frames, frame_index, grid, "zeros").div_(255.0)
