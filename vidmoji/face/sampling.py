"""Bilinear sampling of small regions out of whole uint8 frames, without converting whole frames to float.

Every face stage cuts small crops out of large frames (the mesh's 192x192 ROI, the iris model's 64x64
eyes, the aligned 306x306 face, skin samples). Handing `grid_sample` the whole frame as float costs a
full-frame conversion per crop (a 1280x720 frame is 11 MB of float), which dominated the face stages on
the CPU. Here each crop first takes the integer window of the frame its grid touches (all crops of a call
share one window size, so they stack into one batch), converts only that to float and
samples it with the grid moved into the window's coordinates. The result equals `grid_sample` on the whole
frame for padding "border" and "zeros": a window is cut short only at the frame's own edges.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def sample_frames(frames: torch.Tensor, frame_index: torch.Tensor, grid: torch.Tensor,
                  padding_mode: str = "border") -> torch.Tensor:
    """`grid_sample` (bilinear, align_corners=False) of frames[frame_index] at grid, in frame units.

    frames: uint8 (N, H, W, 3); frame_index: (F,) long; grid: (F, Ho, Wo, 2) in the frame's normalised
    coordinates ([-1, 1] across the frame). Returns float32 (F, 3, Ho, Wo) in [0, 255].
    """
    f = grid.shape[0]
    _, h, w, _ = frames.shape
    if f == 0:
        return torch.zeros((0, 3, *grid.shape[1:3]), device=frames.device)
    grid = grid.float()
    size = torch.tensor([w, h], device=grid.device, dtype=grid.dtype)
    px = ((grid + 1) * size - 1) / 2                                     # frame pixel coordinates
    flat = px.reshape(f, -1, 2)
    finite = torch.nan_to_num(flat, nan=0.0, posinf=1e6, neginf=-1e6)
    limit = (size - 1).long()
    # Bilinear reads floor(p) and floor(p) + 1; the window holds every frame pixel any sample reads.
    # Reduced along contiguous rows (x's, then y's): over the interleaved (F, P, 2) it took 0.4 ms a crop.
    rows = finite.transpose(1, 2).contiguous()                           # (F, 2, P)
    lo = torch.minimum(rows.amin(2).floor().long().clamp(min=0), limit)
    hi = torch.minimum((rows.amax(2).floor().long() + 1).clamp(min=0), limit)
    extent = (hi - lo + 1).amax(0)                                       # (2,) shared window width, height
    start = torch.minimum(lo, (size.long() - extent).clamp(min=0))       # keep the window inside the frame
    ew, eh = int(extent[0]), int(extent[1])
    # Slicing (views, one copy in stack) is several times faster than gathering with index tensors.
    windows = torch.stack([frames[i, y:y + eh, x:x + ew]
                           for i, (x, y) in zip(frame_index.tolist(), start.tolist())])
    windows = windows.permute(0, 3, 1, 2).float()                       # (F, 3, eh, ew)
    extent_f = extent.to(grid.dtype)
    local = (2 * (px - start[:, None, None, :].to(grid.dtype)) + 1) / extent_f - 1
    return F.grid_sample(windows, local, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def crop_affine(frames: torch.Tensor, frame_index: torch.Tensor, theta: torch.Tensor, out_h: int,
                out_w: int) -> torch.Tensor:
    """Rotated crops: `grid_sample(frames[frame_index], affine_grid(theta, (F, 3, out_h, out_w)))` (bilinear,
    align_corners=False, the edge pixels repeated outside the frame), float32 (F, 3, out_h, out_w) in
    [0, 255]. theta: (F, 2, 3) from the crop's normalised coordinates to the frame's.

    On the CPU each crop is one `cv2.warpAffine` of the uint8 frame with theta turned into pixel terms: the
    same samples to within half a level (its result is rounded to uint8, its weights to 1/32 of a pixel) at a
    tenth of the time (0.25 against 3 ms for the mesh's 192x192 crop of a 720p frame), and without the GIL
    (a live frame path's other stage runs beside it). Elsewhere, or where theta is not finite, grid_sample.
    """
    f = theta.shape[0]
    if frames.device.type != "cpu" or f == 0 or not bool(torch.isfinite(theta).all()):
        grid = F.affine_grid(theta.float(), [f, 3, out_h, out_w], align_corners=False)
        return sample_frames(frames, frame_index, grid, "border")
    h, w = frames.shape[1:3]
    t = theta.double().numpy()
    crops = []
    for i, (row_x, row_y) in zip(frame_index.tolist(), t):
        # Output pixel (j, i) -> normalised (2j+1)/out_w - 1 -> theta -> frame pixel ((x + 1) w - 1) / 2.
        m = np.empty((2, 3))
        for r, (row, size) in enumerate(((row_x, w), (row_y, h))):
            m[r, 0] = size * row[0] / out_w
            m[r, 1] = size * row[1] / out_h
            m[r, 2] = size / 2 * (row[0] * (1 / out_w - 1) + row[1] * (1 / out_h - 1) + row[2] + 1) - 0.5
        crops.append(cv2.warpAffine(frames[i].numpy(), m, (out_w, out_h),
                                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
