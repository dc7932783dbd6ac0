"""Part windows of real faces: calibrated mesh geometry rasterised into each slot's label-map window.

Each part is expressed in its slot's local frame (parts.WindowFrame: reference length 100 units, anchor at
the origin), its geometry normalised by the subject's own baseline (Calibration), then rasterised as a
WINDOW_SIZE x WINDOW_SIZE label window with one channel per class in parts.SLOT_CHANNELS. The avatar side
renders its SVG parts into the very same windows (vidmoji.avatar.templates), so the two can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from vidmoji import parts
from vidmoji.face.raster import gaussian_blur, rasterize_soft
from vidmoji.face.sampling import sample_frames

_POLYGON = dict(parts.PARSE_POLYGONS)
_UPPER_INNER = (191, 80, 81, 82, 13, 312, 311, 310, 415)
_LOWER_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
_UPPER_OUTER = (185, 40, 39, 37, 0, 267, 269, 270, 409)
_LOWER_OUTER = (375, 321, 405, 314, 17, 84, 181, 91, 146)
_UPPER_OUTER_MID, _LOWER_OUTER_MID = 0, 17
_SIDES = {"right": (parts.EYE_RIGHT_CORNERS, parts.EYE_RIGHT_LIDS, parts.EYE_RIGHT, parts.BROW_RIGHT),
          "left": (parts.EYE_LEFT_CORNERS, parts.EYE_LEFT_LIDS, parts.EYE_LEFT, parts.BROW_LEFT)}
_BROW_CONTOURS = {"right": (parts.BROW_RIGHT_UPPER, parts.BROW_RIGHT_LOWER),
                  "left": (parts.BROW_LEFT_UPPER, parts.BROW_LEFT_LOWER)}


def _brow_centre(local: torch.Tensor, side: str) -> torch.Tensor:
    """(F, 5, 2) centre line of a brow band (midpoints of its upper and lower contour) in local units."""
    upper, lower = _BROW_CONTOURS[side]
    return (local[:, list(upper)] + local[:, list(lower)]) / 2


@dataclass(frozen=True)
class LocalFrame:
    """A slot's local frame in frame pixels: anchor (F, 2), unit x axis (F, 2), units per pixel (F,)."""

    anchor: torch.Tensor
    axis: torch.Tensor
    scale: torch.Tensor

    def to_local(self, points: torch.Tensor) -> torch.Tensor:
        """(F, P, 2) frame pixels -> (F, P, 2) part units."""
        d = points - self.anchor[:, None]
        u = self.axis[:, None]
        x = (d * u).sum(-1)
        y = d[..., 1] * u[..., 0] - d[..., 0] * u[..., 1]
        return torch.stack([x, y], -1) * self.scale[:, None, None]


def _frame_from_axis(start: torch.Tensor, end: torch.Tensor, anchor: torch.Tensor) -> LocalFrame:
    vec = end - start
    length = vec.norm(dim=-1).clamp_min(1e-6)
    return LocalFrame(anchor, vec / length[:, None], 100.0 / length)


def local_frames(mesh: torch.Tensor) -> dict[str, LocalFrame]:
    """Each slot's local frame from (F, 468, >=2) mesh points in pixels.

    The x axis runs from the image-left landmark to the image-right one, so no slot is mirrored here.
    """
    xy = mesh[..., :2]
    frames = {}
    for side, (corners, _, _, _) in _SIDES.items():
        outer, inner = xy[:, corners[0]], xy[:, corners[1]]
        start, end = (outer, inner) if side == "right" else (inner, outer)
        frames[f"eye_{side}"] = frames[f"brow_{side}"] = _frame_from_axis(start, end, (start + end) / 2)
    m0, m1 = xy[:, parts.MOUTH_CORNERS[0]], xy[:, parts.MOUTH_CORNERS[1]]
    frames["mouth"] = _frame_from_axis(m0, m1, (m0 + m1) / 2)
    frames["nose"] = _frame_from_axis(xy[:, parts.NOSE_ALAE[0]], xy[:, parts.NOSE_ALAE[1]], xy[:, parts.NOSE_TIP])
    frames["face"] = _frame_from_axis(xy[:, parts.FACE_SIDES[0]], xy[:, parts.FACE_SIDES[1]],
                                      xy[:, list(parts.FACE_OVAL)].mean(1))
    return frames


def inter_ocular(mesh: torch.Tensor) -> torch.Tensor:
    """(F,) distance between the eye centres in pixels."""
    xy = mesh[..., :2]
    return (xy[:, list(parts.EYE_LEFT)].mean(1) - xy[:, list(parts.EYE_RIGHT)].mean(1)).norm(dim=-1)


def measure(mesh: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame geometry the calibration needs, from (F, 468, >=2) mesh points.

    Returns (F,) tensors: `eye_right`, `eye_left` (lid opening in eye units, eye width = 100),
    `brow_right`, `brow_left` (brow centre height in eye units, negative is up), `lip_gap` (inner lip
    gap as a share of the inter-ocular distance), `lip_upper`, `lip_lower` (lip thickness at the middle,
    in mouth units: mouth width = 100).
    """
    frames = local_frames(mesh)
    xy = mesh[..., :2]
    out = {}
    for side, (_, lids, _, _) in _SIDES.items():
        local = frames[f"eye_{side}"].to_local(xy)
        upper = local[:, [u for u, _ in lids]]
        lower = local[:, [lo for _, lo in lids]]
        out[f"eye_{side}"] = (lower[..., 1] - upper[..., 1]).mean(1)
        # The brow's centre line (its ten points in pairs); its mean is the mean of all ten points.
        centre = _brow_centre(local, side)[..., 1]                                    # (F, 5)
        out[f"brow_{side}"] = centre.mean(1)
        out[f"brow_shape_{side}"] = centre - out[f"brow_{side}"][:, None]
    gap = (xy[:, parts.INNER_LIP_MID[1]] - xy[:, parts.INNER_LIP_MID[0]]).norm(dim=-1)
    out["lip_gap"] = gap / inter_ocular(mesh).clamp_min(1e-6)
    mouth = frames["mouth"].to_local(xy)[..., 1]
    out["lip_upper"] = mouth[:, parts.INNER_LIP_MID[0]] - mouth[:, _UPPER_OUTER_MID]
    out["lip_lower"] = mouth[:, _LOWER_OUTER_MID] - mouth[:, parts.INNER_LIP_MID[1]]
    out["lip_sag"] = (mouth[:, parts.INNER_LIP_MID[0]] + mouth[:, parts.INNER_LIP_MID[1]]) / 2
    return out


@dataclass(frozen=True)
class Calibration:
    """The subject's own baseline: open-eye opening per eye, resting brow height per brow (eye units),
    resting lip gap (share of the inter-ocular distance), lip thickness (mouth units)."""

    eye_open: dict[str, float]
    brow_rest: dict[str, float]
    rest_gap: float
    lips: tuple[float, float] = (9.6, 17.0)
    # The resting brow's own arch: its centre line's heights (outer to inner) about their mean, per side;
    # None (a single image) keeps the subject's arch as it is.
    brow_shape: dict[str, tuple[float, ...]] | None = None
    # How far the resting mouth's middle sits below its corners (mouth units); None: not known (an image).
    mouth_sag: float | None = None

    @classmethod
    def default(cls) -> "Calibration":
        """Population values (medians of the project's test subjects), for a single image or a clip too
        short to measure."""
        return cls({"right": 32.0, "left": 32.0}, {"right": -68.0, "left": -68.0}, 0.0)

    @classmethod
    def from_measures(cls, measures: dict[str, torch.Tensor]) -> "Calibration":
        """Robust whole-clip baselines from `measure()` outputs of the frames with a face.

        The open eye is the median over plausibly open frames (above 70% of the 90th percentile): a
        high percentile alone would be a stare in an expressive clip. The resting lip gap is a low
        percentile capped at parts.REST_GAP_CAP, because a person talking or smiling through a whole clip
        has no closed frame, and touching lips measure about 0 for everybody.
        """
        if len(measures["lip_gap"]) < 15:
            return cls.default()
        eye_open, brow_rest = {}, {}
        for side in ("right", "left"):
            h = measures[f"eye_{side}"].float()
            plausible = h[h > 0.7 * torch.quantile(h, 0.9)]
            eye_open[side] = float(plausible.median())
            brow_rest[side] = float(measures[f"brow_{side}"].float().median())
        brow_shape = {side: tuple(float(v) for v in measures[f"brow_shape_{side}"].float().median(0).values)
                      for side in ("right", "left")}
        rest_gap = min(float(torch.quantile(measures["lip_gap"].float(), 0.1)), parts.REST_GAP_CAP)
        lips = (float(measures["lip_upper"].float().median()), float(measures["lip_lower"].float().median()))
        # A low percentile, like the resting lip gap: a subject may smile through much of a clip.
        mouth_sag = float(torch.quantile(measures["lip_sag"].float(), parts.REST_SAG_QUANTILE))
        return cls(eye_open, brow_rest, max(rest_gap, 0.0), lips, brow_shape, mouth_sag)


def eye_openness(measures: dict[str, torch.Tensor], calibration: Calibration, side: str) -> torch.Tensor:
    """(F,) calibrated openness of one eye: 0 shut, 1 the subject's open eye, above 1 wide."""
    rel = measures[f"eye_{side}"] / calibration.eye_open[side]
    (r0, o0), (r1, o1), (r2, o2) = parts.EYE_OPENNESS_KNOTS
    low = o0 + (rel - r0) * (o1 - o0) / (r1 - r0)
    mid = o1 + (rel - r1) * (o2 - o1) / (r2 - r1)
    high = o2 + (rel - r2) * parts.WIDE_EYE_GAIN
    return torch.where(rel < r1, low, torch.where(rel < r2, mid, high)).clamp(0.0, 1.6)


def _calibrated_brow(local: torch.Tensor, side: str, calibration: Calibration) -> torch.Tensor:
    """A brow redrawn in the templates' terms: its centre line moved so that the subject's resting brow
    (height and, from a clip, arch) lands on the templates' neutral brow while raises, frowns and tilts
    keep their own size (from a clip: less a dead band of parts.BROW_DEAD_BAND), and its band redrawn at
    parts.BROW_THICKNESS (mesh brows are about twice as thick as drawn ones, which made every brow look
    raised). local: (F, 468, 2) in the brow's units."""
    upper, lower = _BROW_CONTOURS[side]
    centre = _brow_centre(local, side)                                   # (F, 5, 2)
    x, y = centre[..., 0], centre[..., 1]
    y = y + (parts.NEUTRAL_BROW_Y - calibration.brow_rest[side])
    if calibration.brow_shape is not None:
        # Replace the resting arch by the neutral template's (its centre line: base + arch (t^2 - 1/3) for
        # t in [-1, 1] along the brow, see scripts/make_templates.py).
        rest = torch.tensor(calibration.brow_shape[side], dtype=y.dtype, device=y.device)
        t = ((x - x.mean(1, keepdim=True)) / (x.amax(1, keepdim=True) - x.amin(1, keepdim=True)).clamp_min(1e-3)
             * 2).clamp(-1, 1)
        # Deviation of each point from the subject's resting brow, with a dead band: small moves (talking,
        # blinking, a hint of a frown) stay the neutral brow, real raises and frowns keep their size less
        # the band.
        dev = y - parts.NEUTRAL_BROW_Y - rest
        dev = dev.sign() * (dev.abs() - parts.BROW_DEAD_BAND).clamp_min(0)
        y = parts.NEUTRAL_BROW_Y + dev + parts.NEUTRAL_BROW_ARCH * (t * t - 1.0 / 3.0)
    half = parts.BROW_THICKNESS / 2
    out = local.clone()
    out[:, list(upper)] = torch.stack([x, y - half], -1)
    out[:, list(lower)] = torch.stack([x, y + half], -1)
    return out


def calibrated_mesh(mesh: torch.Tensor, calibration: Calibration) -> torch.Tensor:
    """The mesh with each eye's opening replaced by its calibrated one, in the subject's own scale.

    mesh: (F, 468, >=2) frame pixels. Returns a copy in which the eye contour's distance from the corner
    line is scaled so the opening is eye_openness x the subject's open opening: a shut eye collapses
    although the mesh keeps part of its gap, an open eye stays as it is. Label maps drawn from it show
    what the embedders see.
    """
    out = mesh.clone().float()
    xy = out[..., :2]
    frames = local_frames(xy)
    meas = measure(xy)
    for side, (_, _, contour, _) in _SIDES.items():
        frame = frames[f"eye_{side}"]
        target = eye_openness(meas, calibration, side) * calibration.eye_open[side]
        k = target / meas[f"eye_{side}"].clamp_min(1e-3)
        local = frame.to_local(xy[:, list(contour)])
        u = frame.axis[:, None]
        v = torch.stack([-u[..., 1], u[..., 0]], -1)
        pixels = frame.anchor[:, None] + (local[..., :1] * u + (local[..., 1:] * k[:, None, None]) * v) \
            / frame.scale[:, None, None]
        out[:, list(contour), :2] = pixels
    return out


def _window_pixels(local: torch.Tensor, slot: str) -> torch.Tensor:
    frame = parts.WINDOW_FRAMES[slot]
    origin = torch.tensor([frame.cx - frame.half, frame.cy - frame.half], device=local.device)
    return (local - origin) * (parts.WINDOW_SIZE / (2 * frame.half))


def part_windows(mesh: torch.Tensor, calibration: Calibration) -> dict[str, torch.Tensor]:
    """Calibrated label windows of every slot.

    mesh: (F, 468, >=2) points in frame pixels. Returns {slot: (F, C, WINDOW_SIZE, WINDOW_SIZE) float32
    in [0, 1]}, channels as parts.SLOT_CHANNELS[slot], anti-aliased and blurred by one pixel.
    """
    xy = mesh[..., :2].float()
    frames = local_frames(xy)
    meas = measure(xy)
    local = {slot: frames[slot].to_local(xy) for slot in parts.SLOTS}   # (F, 468, 2) per slot

    for side in ("right", "left"):
        eye = local[f"eye_{side}"]
        target = (eye_openness(meas, calibration, side) * parts.OPEN_EYE_HEIGHT).clamp_min(parts.CLOSED_EYE_HEIGHT)
        k = target / meas[f"eye_{side}"].clamp_min(1e-3)
        local[f"eye_{side}"] = torch.stack([eye[..., 0], eye[..., 1] * k[:, None]], -1)
        local[f"brow_{side}"] = _calibrated_brow(local[f"brow_{side}"], side, calibration)

    mouth = local["mouth"].clone()
    units_per_iod = inter_ocular(xy) * frames["mouth"].scale
    gap_units = mouth[:, parts.INNER_LIP_MID[1], 1] - mouth[:, parts.INNER_LIP_MID[0], 1]
    close = torch.minimum(calibration.rest_gap * units_per_iod, gap_units.clamp_min(0.0)) / 2
    mouth[:, list(_UPPER_INNER), 1] += close[:, None]
    mouth[:, list(_LOWER_INNER), 1] -= close[:, None]
    # Lips of every thickness are drawn at the templates' thickness, kept relative to the inner lip line.
    for outer, inner, own, target in ((_UPPER_OUTER, parts.INNER_LIP_MID[0], calibration.lips[0],
                                       parts.UPPER_LIP_THICKNESS),
                                      (_LOWER_OUTER, parts.INNER_LIP_MID[1], calibration.lips[1],
                                       parts.LOWER_LIP_THICKNESS)):
        base = mouth[:, inner, 1][:, None]
        mouth[:, list(outer), 1] = base + (mouth[:, list(outer), 1] - base) * (target / max(own, 1e-3))
    if calibration.mouth_sag is not None:
        # The subject's resting curve of the mouth is taken out (zero at the corners, full in the middle), so
        # a mouth whose corners sit high at rest does not read as a smile, nor a low one as a frown.
        x = mouth[..., 0] / 50.0
        mouth[..., 1] -= calibration.mouth_sag * (1 - x * x).clamp_min(0)
    local["mouth"] = mouth

    windows = {}
    for slot in parts.SLOTS:
        pix = _window_pixels(local[slot], slot)
        channels = [rasterize_soft(pix[:, list(_POLYGON[name])], parts.WINDOW_SIZE, parts.WINDOW_SUPERSAMPLE)
                    for name in parts.SLOT_CHANNELS[slot]]
        windows[slot] = gaussian_blur(torch.stack(channels, 1), parts.WINDOW_BLUR_SIGMA)
    return windows


# Cheek and forehead landmarks whose neighbourhoods show bare skin in most faces.
_SKIN_POINTS = (50, 280, 151)


def skin_colours(frames: torch.Tensor, frame_index: torch.Tensor, mesh: torch.Tensor) -> torch.Tensor:
    """Median skin colour per face.

    frames: (N, H, W, 3) uint8 RGB; frame_index: (F,) long; mesh: (F, 468, >=2) pixels.
    Returns (F, 3) float32 RGB in [0, 255], the median over 5x5 patches (spaced 1/40 of the
    inter-ocular distance) around cheek and forehead landmarks.
    """
    n, h, w, _ = frames.shape
    centres = mesh[:, list(_SKIN_POINTS), :2].float()                    # (F, 3, 2)
    step = (inter_ocular(mesh) / 40.0)[:, None, None, None]
    offs = torch.arange(-2, 3, device=mesh.device, dtype=torch.float32)
    grid_off = torch.stack(torch.meshgrid(offs, offs, indexing="xy"), -1).reshape(1, 1, 25, 2)
    pts = centres[:, :, None] + grid_off * step                          # (F, 3, 25, 2)
    norm = torch.stack([pts[..., 0] / w * 2 - 1, pts[..., 1] / h * 2 - 1], -1)
    samples = sample_frames(frames, frame_index, norm, "zeros")         # (F, 3, 3, 25)
    return samples.flatten(2).median(dim=2).values


def part_rgb_crops(frames: torch.Tensor, frame_index: torch.Tensor, mesh: torch.Tensor,
                   size: int = parts.RGB_CROP) -> dict[str, torch.Tensor]:
    """RGB crops of each slot's window (the same square as the label window, in the part's own frame).

    frames: (N, H, W, 3) uint8 RGB; frame_index: (F,) long; mesh: (F, 468, >=2) pixels. Returns
    {slot: (F, 3, size, size) float32 in [0, 1]}, for embedders that look at pixels (resnet50).
    """
    n, h, w, _ = frames.shape
    out = {}
    for slot, frame in local_frames(mesh[..., :2].float()).items():
        wf = parts.WINDOW_FRAMES[slot]
        half_px = wf.half / frame.scale                                  # (F,) window half-size in pixels
        u = frame.axis
        v = torch.stack([-u[:, 1], u[:, 0]], -1)
        centre = frame.anchor + (wf.cx * u + wf.cy * v) / frame.scale[:, None]
        theta = torch.stack([
            torch.stack([u[:, 0] * half_px * 2 / w, v[:, 0] * half_px * 2 / w, centre[:, 0] * 2 / w - 1], -1),
            torch.stack([u[:, 1] * half_px * 2 / h, v[:, 1] * half_px * 2 / h, centre[:, 1] * 2 / h - 1], -1),
        ], 1)
        grid = F.affine_grid(theta, [len(frame_index), 3, size, size], align_corners=False)
        out[slot] = sample_frames(frames, frame_index, grid, "border").div_(255.0)
    return out
