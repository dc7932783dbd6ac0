"""The window sampler equals grid_sample on whole float frames (it only avoids converting them)."""

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidmoji.face.sampling import crop_affine, sample_frames
from vidmoji.face.raster import rasterize_polygons


@pytest.mark.parametrize("padding", ["border", "zeros"])
def test_sample_frames_equals_grid_sample(padding):
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (3, 70, 100, 3), dtype=torch.uint8, generator=g)
    # Rotated, scaled and shifted grids, several reaching past the frame's edges.
    theta = torch.randn(6, 2, 3, generator=g) * 0.5
    theta[:, :, 2] *= 3
    grid = F.affine_grid(theta, [6, 3, 17, 13], align_corners=False)
    index = torch.tensor([0, 2, 1, 1, 0, 2])
    expected = F.grid_sample(frames[index].permute(0, 3, 1, 2).float(), grid, padding_mode=padding,
                             align_corners=False)
    got = sample_frames(frames, index, grid, padding)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=5e-3, rtol=0)


def test_crop_affine_on_the_cpu_equals_grid_sample():
    """The CPU's crops (cv2.warpAffine on the uint8 frame) are grid_sample's to within a level on pictures
    with camera-like detail (its output is rounded to uint8 and its weights to 1/32 pixel), rotated, scaled
    and reaching past the frame's edges (the edge repeated); a crop a pixel off would differ by tens of levels."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, (3, 90, 120, 3)).astype(np.float32)
    frames = torch.from_numpy(np.stack([cv2.normalize(cv2.GaussianBlur(f, (0, 0), 1.5), None, 0, 255,
                                                      cv2.NORM_MINMAX) for f in noise]).round().astype(np.uint8))
    g = torch.Generator().manual_seed(1)
    theta = torch.randn(6, 2, 3, generator=g) * 0.5
    theta[:, :, 2] *= 3
    index = torch.tensor([0, 2, 1, 1, 0, 2])
    expected = F.grid_sample(frames[index].permute(0, 3, 1, 2).float(),
                             F.affine_grid(theta, [6, 3, 17, 13], align_corners=False),
                             padding_mode="border", align_corners=False)
    got = crop_affine(frames, index, theta, 17, 13)
    assert got.shape == expected.shape
    diff = (got - expected).abs()
    assert diff.max() <= 1.0 and diff.mean() < 0.25
    shifted = theta.clone()
    shifted[:, 0, 2] += 2.0 / frames.shape[2]               # one frame pixel to the right
    assert (crop_affine(frames, index, shifted, 17, 13) - expected).abs().mean() > 10 * diff.mean()


def test_sample_frames_outside_the_frame_and_empty():
    frames = torch.full((1, 20, 30, 3), 7, dtype=torch.uint8)
    grid = torch.full((1, 4, 4, 2), 5.0)                      # far outside, right and below
    assert torch.all(sample_frames(frames, torch.tensor([0]), grid, "border") == 7)
    assert torch.all(sample_frames(frames, torch.tensor([0]), grid, "zeros") == 0)
    assert sample_frames(frames, torch.zeros(0, dtype=torch.long), grid[:0]).shape == (0, 3, 4, 4)


def test_rasterised_polygons_follow_the_even_odd_rule():
    # A square and a triangle: pixels count as inside when their centres (i + 0.5) are.
    square = torch.tensor([[2, 2], [18, 2], [18, 18], [2, 18]], dtype=torch.float32)
    inside = rasterize_polygons(square[None], 20, 20)[0]
    assert inside.sum() == 16 * 16 and inside[2:18, 2:18].all()
    triangle = torch.tensor([[[0, 0], [20, 0], [0, 20]]], dtype=torch.float32)
    mask = rasterize_polygons(triangle, 20, 20)[0]
    ys, xs = torch.meshgrid(torch.arange(20) + 0.5, torch.arange(20) + 0.5, indexing="ij")
    on_edge = (xs + ys) == 20                                  # centres on the hypotenuse: either side
    assert torch.equal(mask[~on_edge], (xs + ys < 20)[~on_edge])


def test_stacked_polygons_rasterise_as_each_alone():
    # Polygons of 3 to 9 vertices padded to one batch (the part windows' nine channels in one call).
    from vidmoji.face.raster import rasterize_soft, stack_polygons

    g = torch.Generator().manual_seed(1)
    polygons = [torch.rand(2, v, 2, generator=g) * 32 for v in (3, 9, 5, 4)]
    stacked = stack_polygons(polygons)
    assert stacked.shape == (2, 4, 9, 2)
    together = rasterize_soft(stacked.reshape(8, 9, 2), 32, 4).reshape(2, 4, 32, 32)
    for i, p in enumerate(polygons):
        assert torch.equal(together[:, i], rasterize_soft(p, 32, 4))


def test_resize_frames_on_the_cpu_resizes_uint8_within_a_level_of_float():
    """The detector's and segmenter's input (`resize_frames`): on the CPU the uint8 frames are resized as they
    are, within one level of resizing them as floats (antialiased bilinear, 1280x720 -> 128x72 and an
    upscale), and the shape, range and layout are the float path's; a resize off by a pixel or without the
    antialiasing differs by tens of levels."""
    from vidmoji.face.detector import resize_frames

    rng = np.random.default_rng(2)
    noise = rng.uniform(0, 255, (2, 720, 1280, 3)).astype(np.float32)
    frames = torch.from_numpy(np.stack([cv2.normalize(cv2.GaussianBlur(f, (0, 0), 3), None, 0, 255,
                                                      cv2.NORM_MINMAX) for f in noise]).round().astype(np.uint8))
    for h, w in ((72, 128), (900, 1600)):
        got = resize_frames(frames, h, w, in_uint8=True)
        x = frames.permute(0, 3, 1, 2).float() / 255.0
        expected = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        assert got.shape == expected.shape == (2, 3, h, w) and got.dtype == torch.float32
        assert float((got - expected).abs().max()) <= 1.01 / 255
        plain = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        if h < 720:   # without antialiasing a ten-fold reduction aliases
            assert float((got - plain).abs().max()) > 10 / 255
        shifted = F.interpolate(x[..., 1:, 1:], size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        assert float((got - shifted).abs().max()) > 10 / 255
