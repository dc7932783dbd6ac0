"""Part windows of real faces: calibrated mesh geometry rasterised into each slot's label-map window.

Each part is expressed in its slot's local frame (parts.WindowFrame: reference length 100 units, anchor at
the origin), its geometry normalised by the subject's own baseline (Calibration), then rasterised as a
WINDOW_SIZE x WINDOW_SIZE label window with one channel per class in parts.SLOT_CHANNELS. The avatar side
renders its SVG parts into the very same windows (vidmoji.avatar.templates), so the two can be compared.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from vidmoji import parts
from vidmoji.face.raster import gaussian_blur, rasterize_soft, stack_polygons
from vidmoji.face.sampling import sample_frames

_POLYGON = dict(parts.PARSE_POLYGONS)
_POLYGON_INDEX = {name: torch.tensor(index) for name, index in _POLYGON.items()}
_RASTER_CHUNK = 72
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


# Landmark pairs mirrored across the face's midline (subject's right, left) that expressions barely move:
# eye corners and the face's sides at the temples and cheekbones. Their mean difference is the head's
# left-right axis in 3-D.
_MIRROR_PAIRS = ((33, 263), (133, 362), (127, 356), (234, 454), (93, 323), (132, 361))
# Top of the forehead and the subnasale: the head's up-down axis without the jaw (which opens the mouth).
_FOREHEAD, _CHIN = 10, 2


def head_rotation(mesh: torch.Tensor) -> torch.Tensor:
    """(F, 3, 3) the head's axes in frame coordinates, one per row: x toward the subject's left (the
    image's right in a frontal view), y down the face (forehead to chin), z away from the camera.

    mesh: (F, >=468, 3) points (x, y pixels, z relative depth in x's pixel scale). x is the mean of the
    mirrored landmark pairs' differences, so it holds yaw and roll; y is forehead to chin, made
    orthogonal to x, so it holds pitch.
    """
    m = mesh[..., :3].float()
    right = m[:, [a for a, _ in _MIRROR_PAIRS]]
    left = m[:, [b for _, b in _MIRROR_PAIRS]]
    x = (left - right).mean(1)
    x = x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    y = m[:, _CHIN] - m[:, _FOREHEAD]
    y = y - (y * x).sum(-1, keepdim=True) * x
    y = y / y.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    z = torch.linalg.cross(x, y, dim=-1)
    return torch.stack([x, y, z], 1)


def head_angles(mesh: torch.Tensor) -> dict[str, torch.Tensor]:
    """(F,) yaw and pitch in degrees of (F, >=468, 3) meshes: yaw positive when the subject turns toward
    the image's right (their own left), pitch positive when the face tilts down."""
    r = head_rotation(mesh)
    yaw = torch.rad2deg(torch.atan2(r[:, 0, 2], r[:, 0, 0]))
    pitch = torch.rad2deg(torch.atan2(-r[:, 1, 2], r[:, 1, 1]))
    return {"yaw": yaw, "pitch": pitch}


def frontalize(mesh: torch.Tensor, rotation: torch.Tensor | None = None) -> torch.Tensor:
    """The mesh seen from straight ahead: (F, P, 3) points rotated about their centre by the head's
    rotation (pitch, yaw and roll taken out), in the same pixel scale; x, y stay near where the face was.
    rotation: `head_rotation(mesh)` when the caller has it.

    Looking down shrinks the visible eye and a turned head foreshortens the far eye and the mouth; the
    mesh is 3-D, so measuring the frontal view removes both. A (F, P, 2) mesh is returned as it is.
    """
    if mesh.shape[-1] < 3:
        return mesh
    m = mesh[..., :3].float()
    return _rotated(m, head_rotation(m) if rotation is None else rotation)


def _rotated(m: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """(F, P, 3) points rotated by (F, 3, 3) row-vector rotations about the face's centre, kept in place."""
    centre = m[:, :468].mean(1, keepdim=True)
    return (m - centre) @ rot.transpose(1, 2) + centre * torch.tensor([1.0, 1.0, 0.0], device=m.device)


def unturned(mesh: torch.Tensor, rotation: torch.Tensor | None = None) -> torch.Tensor:
    """The mesh with only the head's yaw taken out: (F, P, 3) points rotated about the camera's vertical axis
    through their centre until the head faces the camera left-right, its nod and tilt kept. A (F, P, 2)
    mesh is returned as it is. rotation: `head_rotation(mesh)` when the caller has it."""
    if mesh.shape[-1] < 3:
        return mesh
    m = mesh[..., :3].float()
    x = (head_rotation(m) if rotation is None else rotation)[:, 0]
    yaw = torch.atan2(x[:, 2], x[:, 0])
    c, s = torch.cos(yaw), torch.sin(yaw)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    # Rotating by -yaw about y takes the head's x axis back into the image plane.
    rot = torch.stack([torch.stack([c, zero, s], -1), torch.stack([zero, one, zero], -1),
                       torch.stack([-s, zero, c], -1)], 1)                          # (F, 3, 3), row vectors
    return _rotated(m, rot)


def _front_and_unturned(mesh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(`frontalize(mesh)`, `unturned(mesh)`) from one head rotation."""
    rotation = head_rotation(mesh[..., :3].float()) if mesh.shape[-1] >= 3 else None
    return frontalize(mesh, rotation), unturned(mesh, rotation)


def measure(mesh: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame geometry the calibration needs, from (F, 468, >=2) mesh points.

    Returns (F,) tensors: `eye_right`, `eye_left` (lid opening in eye units, eye width = 100),
    `brow_right`, `brow_left` (brow centre height in eye units, negative is up), `lip_gap` (inner lip
    gap as a share of the inter-ocular distance), `lip_upper`, `lip_lower` (lip thickness at the middle,
    in mouth units: mouth width = 100); with the irises (a 478-point mesh) also (F, 2) `iris_right`,
    `iris_left`: the iris centre in eye units (x toward the image's right, y down). The eyes and irises of a
    3-D mesh are measured frontalized (`frontalize`), its brows and mouth with the yaw taken out (`unturned`);
    `lip_sag_level` is the mouth's curve frontalized, for the calibration.
    """
    front, turned = _front_and_unturned(mesh)
    xy = front[..., :2]
    frames = local_frames(xy)
    # Brows and mouth are measured with the head's yaw taken out but its nod kept (`unturned`): a turned
    # head bent a brow or the mouth's curve as seen, but frontalized, a nod moved the brows' height above
    # the eyes and bent the mouth's curve into smiles and frowns, which the labels and the viewer do not see.
    sxy = turned[..., :2]
    seen = local_frames(sxy)
    out = {}
    for side, (_, lids, _, _) in _SIDES.items():
        local = frames[f"eye_{side}"].to_local(xy)
        upper = local[:, [u for u, _ in lids]]
        lower = local[:, [lo for _, lo in lids]]
        out[f"eye_{side}"] = (lower[..., 1] - upper[..., 1]).mean(1)
        # The brow's centre line (its ten points in pairs); its mean is the mean of all ten points.
        centre = _brow_centre(seen[f"brow_{side}"].to_local(sxy), side)[..., 1]      # (F, 5)
        out[f"brow_{side}"] = centre.mean(1)
        out[f"brow_shape_{side}"] = centre - out[f"brow_{side}"][:, None]
    gap = (sxy[:, parts.INNER_LIP_MID[1]] - sxy[:, parts.INNER_LIP_MID[0]]).norm(dim=-1)
    out["lip_gap"] = gap / inter_ocular(sxy).clamp_min(1e-6)
    mouth = seen["mouth"].to_local(sxy)[..., 1]
    out["lip_upper"] = mouth[:, parts.INNER_LIP_MID[0]] - mouth[:, _UPPER_OUTER_MID]
    out["lip_lower"] = mouth[:, _LOWER_OUTER_MID] - mouth[:, parts.INNER_LIP_MID[1]]
    out["lip_sag"] = (mouth[:, parts.INNER_LIP_MID[0]] + mouth[:, parts.INNER_LIP_MID[1]]) / 2
    # The same curve seen from straight ahead (a nod tilts the mouth's corners, which sit about 27 mouth
    # units behind its middle, up or down): what the calibration compares with other people's resting mouths.
    level = frames["mouth"].to_local(xy)[..., 1]
    out["lip_sag_level"] = (level[:, parts.INNER_LIP_MID[0]] + level[:, parts.INNER_LIP_MID[1]]) / 2
    if mesh.shape[1] >= parts.MESH_POINTS:
        for side, iris in (("right", parts.IRIS_RIGHT), ("left", parts.IRIS_LEFT)):
            out[f"iris_{side}"] = frames[f"eye_{side}"].to_local(xy[:, [iris[0]]])[:, 0]     # (F, 2)
    return out


# The resting curve of the mouth seen from straight ahead (20th percentile of lip_sag_level over a clip, mouth
# units, positive: the middle below the corners): mean and standard deviation over the public clips whose
# subject rests (d0, d3, d9, d14, d18, d19: -1.65 to 2.36). A clip's own value is used within
# REST_SAG_TRUSTED deviations of the mean; from there to REST_SAG_FAR it is blended into the mean, beyond it
# replaced (s32, who smiles throughout, measures 6.08: 3.1 deviations).
REST_SAG_MEAN, REST_SAG_SD = 1.05, 1.63
REST_SAG_TRUSTED, REST_SAG_FAR = 2.0, 3.0


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
    # The iris centre's straight-ahead offset in each eye (eye units: x toward the image's right, y down).
    gaze_centre: dict[str, tuple[float, float]] | None = None

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
        has no closed frame, and touching lips measure about 0 for everybody. The resting curve of the
        mouth is a low percentile too, trusted within the range of people's resting mouths and moved
        toward the population's beyond it (REST_SAG_MEAN), for a subject who smiles through the clip.
        """
        if len(measures["lip_gap"]) < 15:
            return cls.default()
        eye_open = open_eyes(measures)
        brow_rest = {side: float(measures[f"brow_{side}"].float().median()) for side in ("right", "left")}
        brow_shape = {side: tuple(float(v) for v in measures[f"brow_shape_{side}"].float().median(0).values)
                      for side in ("right", "left")}
        rest_gap = min(float(torch.quantile(measures["lip_gap"].float(), 0.1)), parts.REST_GAP_CAP)
        lips = (float(measures["lip_upper"].float().median()), float(measures["lip_lower"].float().median()))
        # A low percentile, like the resting lip gap: a subject may smile through much of a clip.
        mouth_sag = float(torch.quantile(measures["lip_sag"].float(), parts.REST_SAG_QUANTILE))
        if "lip_sag_level" in measures:
            # A subject who smiles through the whole clip has no resting mouth to find: their low percentile is
            # a smile. It is trusted within the range of people's resting mouths (seen from straight ahead);
            # beyond it, the resting curve moves toward the population's, all the way at REST_SAG_FAR.
            level = float(torch.quantile(measures["lip_sag_level"].float(), parts.REST_SAG_QUANTILE))
            z = abs(level - REST_SAG_MEAN) / REST_SAG_SD
            prior = min(1.0, max(0.0, (z - REST_SAG_TRUSTED) / (REST_SAG_FAR - REST_SAG_TRUSTED)))
            mouth_sag -= prior * (level - REST_SAG_MEAN)
        gaze_centre = None
        if "iris_right" in measures:
            gaze_centre = {side: tuple(float(v) for v in measures[f"iris_{side}"].float().median(0).values)
                           for side in ("right", "left")}
        return cls(eye_open, brow_rest, max(rest_gap, 0.0), lips, brow_shape, mouth_sag, gaze_centre)


def open_eyes(measures: dict[str, torch.Tensor]) -> dict[str, float]:
    """Each eye's open height over frames of `measure()`: the median over plausibly open frames (above 70% of
    the 90th percentile; see `Calibration.from_measures`)."""
    out = {}
    for side in ("right", "left"):
        h = measures[f"eye_{side}"].float()
        out[side] = float(h[h > 0.7 * torch.quantile(h, 0.9)].median())
    return out


def relative_opening(measures: dict[str, torch.Tensor], calibration: Calibration, side: str) -> torch.Tensor:
    """(F,) one eye's lid opening as a share of the subject's open eye's."""
    return measures[f"eye_{side}"] / calibration.eye_open[side]


def eye_openness(measures: dict[str, torch.Tensor], calibration: Calibration, side: str) -> torch.Tensor:
    """(F,) calibrated openness of one eye: 0 shut, 1 the subject's open eye, above 1 wide."""
    return openness_from_relative(relative_opening(measures, calibration, side))


def openness_from_relative(rel: torch.Tensor) -> torch.Tensor:
    """`eye_openness` from the eye's `relative_opening` (for callers that keep both)."""
    (r0, o0), (r1, o1), (r2, o2) = parts.EYE_OPENNESS_KNOTS
    low = o0 + (rel - r0) * (o1 - o0) / (r1 - r0)
    mid = o1 + (rel - r1) * (o2 - o1) / (r2 - r1)
    high = o2 + (rel - r2) * parts.WIDE_EYE_GAIN
    return torch.where(rel < r1, low, torch.where(rel < r2, mid, high)).clamp(0.0, 1.6)


def dead_band_step(x: torch.Tensor, held: torch.Tensor | None, band: float) -> torch.Tensor:
    """One step of a dead band: x, unless it is within `band` of the value held (None: nothing held yet)."""
    return x if held is None else torch.where((x - held).abs() > band, x, held)


def _dead_band(x: torch.Tensor, band: float) -> torch.Tensor:
    """(T, ...) sequence held at its last value until it moves more than `band` from it (causal)."""
    out = x.clone()
    for t in range(1, len(x)):
        out[t] = dead_band_step(x[t], out[t - 1], band)
    return out


def _runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """[start, end) runs of True in a (T,) bool tensor."""
    m = torch.cat([torch.zeros(1, dtype=torch.int8), mask.to(torch.int8), torch.zeros(1, dtype=torch.int8)])
    edges = torch.nonzero(m[1:] != m[:-1]).flatten().tolist()
    return list(zip(edges[0::2], edges[1::2]))


# A blink is both eyes dipping together, fast, below their own level around it and back: its shut frames
# keep part of the opening where the mesh lags the lid (2-frame blinks), behind glasses or on a turned head
# (d19 frame 99 keeps 78% of the open eye's opening, s32 frame 6 75% on the near eye), so they read as
# half-open. The level is each eye's median openness over BLINK_LEVEL_S around the frame; a run of frames on
# which both eyes sit more than BLINK_DROP below their level (extended, with hysteresis, to the frames around it
# where both sit more than BLINK_HOLD of that below), no longer than BLINK_MAX_S (looking down at notes or a smiling
# squint lasts longer), is drawn shut on its frames near its bottom. Live has no look-ahead: there the
# level is the second before, and a dip still going on counts as short until it has lasted BLINK_MAX_S.
BLINK_LEVEL_S = 1.0
BLINK_DROP = 0.35
BLINK_MAX_S = 0.3
# Half of the drop took in the lids' way down and up around d14's one-frame blinks too (its tracker eyes 0.994
# -> 0.983); three quarters keeps d19's first blink frame (drop 0.34 and 0.28) and adds none there.
BLINK_HOLD = 0.75
# Behind glasses and on small faces the mesh's lids hardly move in a blink (d19 frame 99: both eyes dip 0.42 of
# the openness at full size, 0.21-0.24 with the face 90-120 px wide, under 0.15 at 60 px, no more than faces at
# rest wander there), but the eye's look changes: the lid hides the iris and the white of the eye, and the
# contrast over the eye's middle (`eye_contrast`) falls to half its level at every size. So a run no longer than
# BLINK_MAX_S on which both eyes' contrast sits under BLINK_CONTRAST of its own level (its median over
# BLINK_LEVEL_S) while the openness of both dips by more than BLINK_CONTRAST_DROP is a blink too. The contrast
# alone also falls where the eyes narrow in a laugh or a hand passes (d14 469: 0.45 of its level, no dip of the
# lids); on the public clips at full size and at 60-120 px the rule adds d19's blink at 99, two blink frames
# the lids' dip alone missed (d9 562 at full size, d14 128 at 60 px), and no frame the labels call open. An eye
# whose contrast level is under BLINK_CONTRAST_FLOOR grey levels (a flat, blown-out or dark region) is left to
# the lids.
BLINK_CONTRAST = 0.7
BLINK_CONTRAST_DROP = 0.05
BLINK_CONTRAST_FLOOR = 2.0


# Looking down (at notes, a phone, a keyboard) lowers the upper lids with the irises: d3 reads its notes with
# both eyes at 0.58-0.66 of their open opening for frames on end (65-101), the irises showing below the lids
# (open to a person, hand_expressions frames 80 and 100; shut to the tracker), and so inside the range a shut
# eye's contour keeps (parts.RESIDUAL_EYE_GAP), where they were drawn shut. A blink is short (BLINK_MAX_S), and
# a long closure collapses the lids further (d3 at 110-160, looking down further with the eyes shut: 0.25-0.32).
# So a run of frames longer than BLINK_MAX_S on which neither eye is below NARROW_REL of its open opening and
# their mean is below NARROW_MEAN (reading as good as shut) is drawn at least NARROW_OPENNESS open (the `half`
# parts) rather than shut. Nowhere else in the public clips (at full size or scaled to 60 px faces) does such a
# run occur; lowering RESIDUAL_EYE_GAP instead (0.55) lost the blinks that keep more of their opening (d19
# behind glasses, s32's turned head: their hand-labelled eyes 1.00 -> 0.50 and 0.83). NARROW_MEAN 0.7 and 0.75
# draw the same over every public clip; 0.75 also holds live, whose open eye from d3's frames so far reads 17%
# small through the look-down (hand frame 100 at 0.70 of it: drawn shut live with 0.7); at 0.85 it would lift
# frames of s32's blink at 31-41 and d3's second wink.
NARROW_REL = 0.5
NARROW_MEAN = 0.75
NARROW_OPENNESS = 0.45


def _rolling_median(x: torch.Tensor, half: int, trailing: bool = False) -> torch.Tensor:
    """(T,) median over [t - half, t + half], the ends padded with their edge values; trailing: over
    [t - 2 half, t] (the frames so far only, as live has them)."""
    padded = torch.cat([x[:1].expand(2 * half), x]) if trailing else torch.cat([x[:1].expand(half), x, x[-1:].expand(half)])
    return padded.unfold(0, 2 * half + 1, 1).median(-1).values


def _blink_max_frames(fps: float) -> int:
    """BLINK_MAX_S in frames: longer dips of both eyes are no blink."""
    return max(1, int(round(BLINK_MAX_S * fps)))


def blink_frames(right: torch.Tensor, left: torch.Tensor, fps: float, trailing: bool = False,
                 contrast: torch.Tensor | None = None) -> torch.Tensor:
    """(T,) bool: the frames of short dips of both eyes below their own surrounding level (see BLINK_DROP).
    trailing (live): the level from the frames before only, and a dip still going on at the last frame counts
    as short until it has lasted BLINK_MAX_S (a long look-down shows shut for that long at most). contrast:
    (T, 2) `eye_contrast` of the right and left eye, for the blinks the lids hardly show (see BLINK_CONTRAST)."""
    t = len(right)
    out = torch.zeros(t, dtype=torch.bool)
    if t < 3:
        return out
    half = max(1, int(round(BLINK_LEVEL_S * fps / 2)))
    drop = torch.minimum(_rolling_median(right, half, trailing) - right, _rolling_median(left, half, trailing) - left)
    longest = _blink_max_frames(fps)
    # With hysteresis: a dip that reaches BLINK_DROP spans the frames around it where both eyes are more than
    # BLINK_HOLD of it below their level (the lids on their way down and up).
    # Of its frames, those within the eye's wander (parts.EYE_DEAD_BAND) of its deepest are the shut ones; a
    # blink whose bottom reads shut keeps its lids' way down and up as they are.
    mean = (right + left) / 2
    for a, b in _runs(drop > BLINK_DROP * BLINK_HOLD):
        if b - a <= longest and bool((drop[a:b] > BLINK_DROP).any()):
            out[a:b] = mean[a:b] <= mean[a:b].min() + parts.EYE_DEAD_BAND
    if contrast is not None:
        c = contrast.float().cpu()
        level = torch.stack([_rolling_median(c[:, k], half, trailing) for k in range(2)], 1)
        # An eye region of one flat tone (blown out, in the dark) has no look to lose.
        lost = ((c < BLINK_CONTRAST * level) & (level >= BLINK_CONTRAST_FLOOR)).all(1)
        for a, b in _runs(lost & (drop > BLINK_CONTRAST_DROP)):
            if b - a <= longest:
                out[a:b] = True
    return out


def paired_eyes(openness: dict[str, torch.Tensor], yaw: torch.Tensor, fps: float,
                hold: bool = True, wink_min_s: float = parts.WINK_MIN_S,
                blinks: bool = False, trailing: bool = False,
                relative: dict[str, torch.Tensor] | None = None,
                contrast: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Blinks and winks decided over both eyes, for a sequence of T consecutive frames of one face.

    openness: {"right", "left"}: (T,) calibrated openness (`eye_openness`); yaw: (T,) degrees
    (`head_angles`); fps: the frames' rate (a wink must last parts.WINK_MIN_S). A wink (one eye below
    WINK_SHUT, the other above WINK_OPEN and WINK_GAP more open, long enough, the other eye allowed
    EYE_DEAD_BAND under WINK_OPEN after one frame above it; held while the gap stays above WINK_GAP_HOLD)
    draws the shut eye shut and the other at least WINK_OPEN; every other frame gives both eyes their mean,
    so a half-hearted one-eye squint, a foreshortened far eye or a jittery mesh never shows as a wink. Past FAR_EYE_YAW the
    far eye takes the near eye's openness. hold: apply parts.EYE_DEAD_BAND over time. blinks: draw short dips
    of both eyes shut (`blink_frames`; trailing: from the frames so far, as live does). A single frame (a photo) needs no
    duration. relative: {"right", "left": (T,) `relative_opening`}, to draw long narrowings of both eyes that
    stop short of shut (looking down) half open (see NARROW_REL); contrast: (T, 2) `eye_contrast`, for the
    blinks (see BLINK_CONTRAST). Returns {"right", "left": (T,) openness to
    draw, "wink": (T,) bool}.
    """
    right, left = openness["right"].float().cpu().clone(), openness["left"].float().cpu().clone()
    blinking = blink_frames(right, left, fps, trailing, contrast) if blinks and len(right) > 1 \
        else torch.zeros(len(right), dtype=torch.bool)
    # Turned toward the image's right (positive yaw) hides the subject's left eye, and the other way round.
    # The far eye's lids are foreshortened and half hidden, so it reads more shut than it is: its closure is
    # no evidence, but its openness is. Past the limit it reads at least as open as the near eye, so a blink
    # (both shut) still shows, a far eye that only looks shut follows the near one, and a wink of the near
    # eye (the far one reading open) still shows.
    right = torch.where(yaw < -parts.FAR_EYE_YAW, torch.maximum(right, left), right)
    left = torch.where(yaw > parts.FAR_EYE_YAW, torch.maximum(left, right), left)
    min_frames = 1 if len(right) == 1 else max(1, int(round(wink_min_s * fps)))
    mean = (right + left) / 2
    out_r, out_l = mean.clone(), mean.clone()
    winking = torch.zeros(len(right), dtype=torch.bool)
    for shut, other, out_shut, out_other in ((right, left, out_r, out_l), (left, right, out_l, out_r)):
        clear = (shut < parts.WINK_SHUT) & (other > parts.WINK_OPEN) & (other - shut > parts.WINK_GAP)
        # A wink lasts WINK_MIN_S with its open eye clearly open, within the eye's wander (EYE_DEAD_BAND): the
        # winking side's cheek narrows the open eye, and on a small face the iris model reads it a little
        # more shut still (d3's wink at 60 px: the open eye at 0.56-0.65 against 0.63-0.85 at full size; one
        # frame under WINK_OPEN broke the wink into runs too short to show). The eye's openness must pass
        # WINK_OPEN on one frame of the run at least, and the gap stays WINK_GAP on every one.
        near = (shut < parts.WINK_SHUT) & (other > parts.WINK_OPEN - parts.EYE_DEAD_BAND) \
            & (other - shut > parts.WINK_GAP)
        # Once clear, a wink lasts while the eye stays shut and the other clearly more open (the winking
        # side's cheek narrows the open eye too).
        held = (shut < parts.WINK_SHUT) & (other - shut > parts.WINK_GAP_HOLD)
        for a, b in _runs(held | clear):
            if a > 0 and shut[a - 1] < parts.WINK_SHUT and other[a - 1] < parts.WINK_SHUT:
                # It began as a blink (both eyes shut the frame before): one lid reopening later than the
                # other is the blink's end, not a wink (common behind glasses).
                continue
            for c, d in _runs(near[a:b]):
                if d - c >= min_frames and bool(clear[a + c:a + d].any()):
                    # The lid still travelling into the wink or out of it is not the wink (d3 frame 28: the
                    # right lid halfway down, its iris showing, the next frame shut: drawn shut a frame
                    # early): at each end of the run, a frame more than the eye's wander (EYE_DEAD_BAND) more
                    # open than its neighbour inside the run moves both eyes together. A squint held part-shut
                    # (d19: 0.1-0.4 for frames on end) moves less than that from frame to frame and stays.
                    while b - a > 1 and shut[a] - shut[a + 1] > parts.EYE_DEAD_BAND:
                        a += 1
                    while b - a > 1 and shut[b - 1] - shut[b - 2] > parts.EYE_DEAD_BAND:
                        b -= 1
                    out_shut[a:b] = 0.0
                    out_other[a:b] = other[a:b].clamp_min(parts.WINK_OPEN)
                    winking[a:b] = True
                    break
    blinking &= ~winking
    out_r[blinking], out_l[blinking] = 0.0, 0.0
    if relative is not None and len(out_r) > 1:
        rel_r, rel_l = relative["right"].float().cpu(), relative["left"].float().cpu()
        narrow = (torch.minimum(rel_r, rel_l) >= NARROW_REL) & ((rel_r + rel_l) / 2 < NARROW_MEAN)
        longest = _blink_max_frames(fps)
        for a, b in _runs(narrow & ~blinking & ~winking):
            if b - a > longest:
                out_r[a:b], out_l[a:b] = out_r[a:b].clamp_min(NARROW_OPENNESS), out_l[a:b].clamp_min(NARROW_OPENNESS)
    if hold and len(out_r) > 1:
        out_r, out_l = _dead_band(out_r, parts.EYE_DEAD_BAND), _dead_band(out_l, parts.EYE_DEAD_BAND)
    return {"right": out_r, "left": out_l, "wink": winking}


def gaze(measures: dict[str, torch.Tensor], calibration: Calibration, hold: bool = True) -> torch.Tensor:
    """(T, 2, 2) gaze of each eye (0: the subject's right, 1: left) as (x, y) in [-1, 1]: x positive toward
    the image's right, y downward; the iris centre's offset from the subject's straight-ahead over
    parts.GAZE_SCALE. Zero without irises. hold: apply parts.GAZE_DEAD_BAND over time."""
    n = len(measures["lip_gap"])
    if "iris_right" not in measures:
        return torch.zeros((n, 2, 2))
    centre = calibration.gaze_centre or {"right": (0.0, 0.0), "left": (0.0, 0.0)}
    out = torch.stack([(measures[f"iris_{side}"].float().cpu() - torch.tensor(centre[side])) / parts.GAZE_SCALE
                       for side in ("right", "left")], 1).clamp(-1.0, 1.0)
    # Both eyes look the same way: each is drawn with their mean, weighted by how open each eye is (a shut
    # or winking eye's iris is hidden and its iris point a guess).
    w = torch.stack([eye_openness(measures, calibration, side).float().cpu() for side in ("right", "left")], 1)
    w = w.clamp(0.0, 1.0) + 1e-3
    out = ((out * w[..., None]).sum(1, keepdim=True) / w.sum(1)[:, None, None]).expand(n, 2, 2).contiguous()
    return _dead_band(out, parts.GAZE_DEAD_BAND) if hold and n > 1 else out


def eye_sequence(mesh: torch.Tensor, calibration: Calibration, fps: float,
                 measures: dict[str, torch.Tensor] | None = None,
                 contrast: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The drawn openness of both eyes over T consecutive frames of one face ((T, >=468, 3) mesh);
    measures: `measure(mesh)` when the caller has it; contrast: (T, 2) `eye_contrast` where the frames were
    seen."""
    meas = measure(mesh) if measures is None else measures
    relative = {side: relative_opening(meas, calibration, side) for side in ("right", "left")}
    openness = {side: openness_from_relative(rel) for side, rel in relative.items()}
    yaw = head_angles(mesh)["yaw"] if mesh.shape[-1] >= 3 else torch.zeros(len(mesh))
    return paired_eyes(openness, yaw, fps, blinks=True, relative=relative, contrast=contrast)


# The online stages (`vidmoji live`): the same decisions as over a whole clip, each frame decided when it
# arrives from the frames before it.
# Population values until this many face frames are seen (half a second at 30 fps; from_measures needs 15).
ONLINE_MIN_FRAMES = 15
# The baseline is measured over the most recent frames of this span, recomputed every ONLINE_UPDATE_S.
ONLINE_HISTORY_S = 20.0
ONLINE_UPDATE_S = 0.25
# Eyes are decided over the last second of frames. A wink shows once it has been clear for this long: over
# a whole clip a wink must last parts.WINK_MIN_S and then shows from its first frame, live it would show only
# after those 0.15 s; two frames at 30 fps took d19's left-eye agreement from 0.941 to 0.958 with no more
# phantom winks on d14 and d19 (one-eye squints that do not last two frames still read as both eyes).
ONLINE_EYE_WINDOW_S = 1.0
ONLINE_WINK_MIN_S = 0.067
# The open eye and the resting lip gap measured over the first frames are blended with the population's, the
# subject's share rising to all of it at this many face frames (two seconds at 30 fps): over half a second
# the open eye of a subject who squints, smiles or winks then reads 20-30% small (s32: 23 against 32.5 over
# the whole clip), and blinks then show as half-open eyes. Tuned on d0, d3 and d14 (live whole against render:
# d0's loss 0.013 -> 0.000), checked on d9, d18, d19 and s32 (d19 0.042 -> 0.038, the others unchanged).
ONLINE_PRIOR_FRAMES = 60
# The open eye is measured live over the frames that look ahead: those whose irises sit no lower in the eye than
# ONLINE_AHEAD_BAND eye units below the subject's upper range so far (the ONLINE_AHEAD_QUANTILE of the vertical
# iris position; people look down at notes and phones far more than up). Looking down lowers the upper lid with
# the eye (lid-gaze coupling: the opening and the iris's height correlate at -0.57 to -0.91 within each public
# clip), so a speaker who starts at their notes (d3, its first four seconds) had an open eye 25-30% small, and
# their blinks drew half-open. Over a whole clip the robust percentile of `from_measures` is enough (the gate
# moves its open eye by under 4%), so only the causal baseline uses it. Tuned on d3 and d14 (mean baseline error
# against the whole clip's after two seconds: 15.3% -> 10.9%, 5.0% -> 2.0%), checked on d0, d9, d18, d19, s32
# (within 0.5% of before).
ONLINE_AHEAD_QUANTILE = 0.3
ONLINE_AHEAD_BAND = 2.0
# The subject's straight-ahead gaze (the iris centre in eye units, as `measure` gives it) is the median over the
# frames so far, blended with people's own, the subject's share rising to all of it at ONLINE_GAZE_PRIOR_FRAMES
# face frames (five seconds at 30 fps). A median over the first second or two is wherever the subject looked
# then: d0 looks to one side for half of its first two seconds, and its live centre jumped between 0 and 19
# eye units (a third of the scale), so looks to the side read ahead and ahead read aside (its hand-labelled
# gaze 1.00 rendered, 0.90 live). GAZE_PRIOR is the mean of the whole-clip centres of d9, d14, d18 and s32
# (within 7.5 eye units, 0.15 of the scale, of each of them); checked on d0, d3 and d19, which it was not
# taken from: d0 0.90 -> 1.00 live (bench_live's hand table), d3 and d19 unchanged.
GAZE_PRIOR = {"right": (-2.9, -5.6), "left": (5.65, -6.5)}
ONLINE_GAZE_PRIOR_FRAMES = 150
# The resting lip gap live starts from, and blends the subject's with until ONLINE_PRIOR_FRAMES: people's
# typical one, the median of the whole-clip rests of d9, d14, d18 and s32 with the refined lips (0.0006-0.0015 of
# the inter-ocular distance; s32, who talks through its clip, 0.084). The plain mesh's lips rested 0.004-0.035
# apart (0.010 was this prior then); the refined ones touch. Render's photos and clips too short to measure keep
# Calibration.default()'s 0.
ONLINE_REST_GAP_PRIOR = 0.001


def online_prior() -> Calibration:
    """The population's baseline live starts from and blends the subject's with (`_shrunk`):
    `Calibration.default()` with people's straight-ahead gaze (GAZE_PRIOR) and resting lip gap
    (ONLINE_REST_GAP_PRIOR)."""
    return replace(Calibration.default(), gaze_centre=dict(GAZE_PRIOR), rest_gap=ONLINE_REST_GAP_PRIOR)


def _shrunk(calibration: Calibration, frames: int) -> Calibration:
    """A baseline measured over few frames, blended with the population's (`online_prior`): the open eye and
    the resting lip gap (the two the eyes' and mouth's states hang on), the subject's weight rising from
    ONLINE_MIN_FRAMES frames to all of it at ONLINE_PRIOR_FRAMES; the straight-ahead gaze at
    ONLINE_GAZE_PRIOR_FRAMES."""
    if ONLINE_PRIOR_FRAMES <= 0:
        return calibration
    w = min(1.0, frames / ONLINE_PRIOR_FRAMES)
    prior = online_prior()
    gaze_centre = calibration.gaze_centre
    if gaze_centre is not None:
        g = min(1.0, frames / ONLINE_GAZE_PRIOR_FRAMES)
        gaze_centre = {s: tuple(g * a + (1 - g) * b for a, b in zip(c, prior.gaze_centre[s]))
                       for s, c in gaze_centre.items()}
    return replace(calibration,
                   eye_open={s: w * v + (1 - w) * prior.eye_open[s] for s, v in calibration.eye_open.items()},
                   rest_gap=w * calibration.rest_gap + (1 - w) * prior.rest_gap, gaze_centre=gaze_centre)


class OnlineCalibration:
    """The subject's baseline, causally: population values (`online_prior`) until ONLINE_MIN_FRAMES face
    frames are seen, then `Calibration.from_measures` over the last ONLINE_HISTORY_S of face frames,
    recomputed every ONLINE_UPDATE_S and blended with the population's (`_shrunk`), so it settles within about
    two seconds (its straight-ahead gaze within five) and then keeps adapting (lighting, a new subject). A
    whole clip's calibration is the same measure with all of it seen at once."""

    def __init__(self, fps: float):
        self.history = max(ONLINE_MIN_FRAMES, int(round(ONLINE_HISTORY_S * fps)))
        self.every = max(1, int(round(ONLINE_UPDATE_S * fps)))
        # The last `history` face frames' measures, in a ring (the baseline's medians and quantiles ignore
        # their order): stacking a list of 600 frames' rows took 8-10 ms every ONLINE_UPDATE_S of a long stream.
        self._ring: dict[str, torch.Tensor] | None = None
        self._count, self._next = 0, 0
        self._since = 0
        self.calibration = online_prior()

    @property
    def frames(self) -> int:
        return self._count

    def update(self, measures: dict[str, torch.Tensor]) -> Calibration:
        """Add one face frame's `measure()` ((1, ...) tensors); returns the baseline to use for it."""
        if self._ring is None or self._ring.keys() != measures.keys():
            self._ring = {k: v.new_empty((self.history, *v.shape[1:])) for k, v in measures.items()}
            self._count, self._next = 0, 0
        for k, v in measures.items():
            self._ring[k][self._next] = v[0]
        self._next = (self._next + 1) % self.history
        self._count = min(self._count + 1, self.history)
        self._since += 1
        if self._count >= ONLINE_MIN_FRAMES and (self._since >= self.every or self._count == ONLINE_MIN_FRAMES):
            self._since = 0
            stacked = {k: v[:self._count] for k, v in self._ring.items()}
            calibration = Calibration.from_measures(stacked)
            ahead = _looking_ahead(stacked)
            if ahead is not None and int(ahead.sum()) >= ONLINE_MIN_FRAMES and not bool(ahead.all()):
                calibration = replace(calibration, eye_open=open_eyes(
                    {f"eye_{side}": stacked[f"eye_{side}"][ahead] for side in ("right", "left")}))
            self.calibration = _shrunk(calibration, self._count)
        return self.calibration


def _looking_ahead(measures: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """(F,) bool: the frames whose irises are not looking down (see ONLINE_AHEAD_BAND); None without irises."""
    if "iris_right" not in measures:
        return None
    y = (measures["iris_right"][:, 1] + measures["iris_left"][:, 1]) / 2
    return y <= torch.quantile(y.float(), ONLINE_AHEAD_QUANTILE) + ONLINE_AHEAD_BAND


class OnlineEyes:
    """Eyes and gaze decided frame by frame: `paired_eyes` over the last ONLINE_EYE_WINDOW_S of face frames
    (a wink shows once it has lasted ONLINE_WINK_MIN_S, not from its first frame as over a whole clip), and
    the dead bands of EYE_DEAD_BAND and GAZE_DEAD_BAND held from frame to frame."""

    def __init__(self, fps: float, wink_min_s: float = ONLINE_WINK_MIN_S):
        self.fps, self.wink_min_s = fps, wink_min_s
        self.window = max(2, int(round(ONLINE_EYE_WINDOW_S * fps)))
        # openness right, left, yaw, relative opening right, left, eye_contrast right, left
        self._open: list[tuple[float, ...]] = []
        self._held: dict[str, torch.Tensor | None] = {"right": None, "left": None, "gaze": None}

    def reset(self) -> None:
        """A frame without a face: the next face starts afresh (as a new segment does over a clip)."""
        self._open.clear()
        self._held = {k: None for k in self._held}

    def push(self, mesh: torch.Tensor, measures: dict[str, torch.Tensor], calibration: Calibration,
             contrast: torch.Tensor | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """mesh (1, >=468, 3), its measures and baseline, and its (1, 2) `eye_contrast` when the frame was
        seen -> ({"right", "left": (1,) openness, "wink": (1,) bool}, (1, 2, 2) gaze), for this frame."""
        yaw = head_angles(mesh)["yaw"] if mesh.shape[-1] >= 3 else torch.zeros(1)
        rel = [relative_opening(measures, calibration, side)[:1] for side in ("right", "left")]
        seen = contrast.reshape(-1)[:2].tolist() if contrast is not None else [float("nan")] * 2
        self._open.append((*(float(openness_from_relative(r)[0]) for r in rel), float(yaw[0]),
                           *(float(r[0]) for r in rel), *seen))
        if len(self._open) > self.window:
            del self._open[0]
        seq = torch.tensor(self._open)
        eyes = paired_eyes({"right": seq[:, 0], "left": seq[:, 1]}, seq[:, 2], self.fps, hold=False,
                           wink_min_s=self.wink_min_s, blinks=True, trailing=True,
                           relative={"right": seq[:, 3], "left": seq[:, 4]}, contrast=seq[:, 5:7])
        out = {"wink": eyes["wink"][-1:]}
        for side in ("right", "left"):
            out[side] = self._held[side] = dead_band_step(eyes[side][-1:], self._held[side], parts.EYE_DEAD_BAND)
        g = gaze(measures, calibration, hold=False)
        self._held["gaze"] = dead_band_step(g, self._held["gaze"], parts.GAZE_DEAD_BAND)
        return out, self._held["gaze"]


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
    meas = measure(mesh)
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


def part_windows(mesh: torch.Tensor, calibration: Calibration,
                 eyes: dict[str, torch.Tensor] | None = None,
                 measures: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Calibrated label windows of every slot.

    mesh: (F, 468, >=2) points in frame pixels; eyes: {"right", "left"}: (F,) the openness to draw each
    eye at (`eye_sequence`), else each frame's own; measures: `measure(mesh)` when the caller has it
    already (live measures each frame before it calibrates). Returns {slot: (F, C, WINDOW_SIZE, WINDOW_SIZE) float32
    in [0, 1]}, channels as parts.SLOT_CHANNELS[slot], anti-aliased and blurred by one pixel.
    """
    front, turned = _front_and_unturned(mesh)
    xy = front[..., :2].float()
    frames = local_frames(xy)
    meas = measures if measures is not None else measure(mesh)
    local = {slot: frames[slot].to_local(xy) for slot in parts.SLOTS}   # (F, 468, 2) per slot
    seen_xy = turned[..., :2].float()
    seen = local_frames(seen_xy)
    for slot in ("brow_right", "brow_left", "mouth"):                    # brows and mouth unturned (see measure)
        local[slot] = seen[slot].to_local(seen_xy)

    for side in ("right", "left"):
        eye = local[f"eye_{side}"]
        openness = eyes[side].to(eye.device) if eyes is not None else eye_openness(meas, calibration, side)
        target = (openness * parts.OPEN_EYE_HEIGHT).clamp_min(parts.CLOSED_EYE_HEIGHT)
        k = target / meas[f"eye_{side}"].clamp_min(1e-3)
        local[f"eye_{side}"] = torch.stack([eye[..., 0], eye[..., 1] * k[:, None]], -1)
        local[f"brow_{side}"] = _calibrated_brow(local[f"brow_{side}"], side, calibration)

    mouth = local["mouth"].clone()
    units_per_iod = inter_ocular(seen_xy) * seen["mouth"].scale
    gap_units = mouth[:, parts.INNER_LIP_MID[1], 1] - mouth[:, parts.INNER_LIP_MID[0], 1]
    close = torch.minimum(calibration.rest_gap * units_per_iod, gap_units.clamp_min(0.0)) / 2
    mouth[:, list(_UPPER_INNER), 1] += close[:, None]
    mouth[:, list(_LOWER_INNER), 1] -= close[:, None]
    # Parted lips are drawn as they are: the mesh's refined lips (attention.LipParting) read the real parting.
    # The plain mesh's read a talking mouth's 0.05-0.08 of the inter-ocular distance as 0.02-0.03, so these
    # were drawn doubled up to 0.04 beyond the subject's rest (issue 10's second pass); on the refined lips
    # that doubling over-opened every parted mouth (hand-labelled mouth 0.980, smile 0.881, against 0.991 and
    # 0.929 without it, at full size, flat, ae).
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

    # Every slot's channels rasterised and blurred in one batch (see stack_polygons), then split by slot.
    polygons = [_window_pixels(local[slot], slot)[:, _POLYGON_INDEX[name].to(mesh.device)]
                for slot in parts.SLOTS for name in parts.SLOT_CHANNELS[slot]]
    stacked = stack_polygons(polygons)                                   # (F, C, V, 2)
    f, c = stacked.shape[:2]
    # In chunks of _RASTER_CHUNK polygons: one call for a face's nine (live), and large batches (render)
    # stay in cache (measured on the 2-core CPU: 0.7 against 1.6 ms for one face, the same for 256).
    soft = torch.cat([rasterize_soft(chunk, parts.WINDOW_SIZE, parts.WINDOW_SUPERSAMPLE)
                      for chunk in stacked.reshape(f * c, *stacked.shape[2:]).split(_RASTER_CHUNK)])
    blurred = gaussian_blur(soft.reshape(f, c, parts.WINDOW_SIZE, parts.WINDOW_SIZE), parts.WINDOW_BLUR_SIGMA)
    split = blurred.split([len(parts.SLOT_CHANNELS[slot]) for slot in parts.SLOTS], dim=1)
    return {slot: w.contiguous() for slot, w in zip(parts.SLOTS, split)}


# The eyes' look (see blink_frames): the spread of the luminance over a square at each eye's middle (between its
# corners), EYE_PATCH of the eye's width on each side, sampled EYE_PATCH_GRID x EYE_PATCH_GRID. An open eye
# puts the dark iris and the white of the eye there; a shut lid, skin of one tone.
EYE_PATCH = 0.22
EYE_PATCH_GRID = 12
_LUMA = (0.299, 0.587, 0.114)


def eye_contrast(frames: torch.Tensor, frame_index: torch.Tensor, mesh: torch.Tensor) -> torch.Tensor:
    """(F, 2) float32: the luminance's standard deviation (0-255) over the middle of the right and left eye.

    frames: (N, H, W, 3) uint8 RGB; frame_index: (F,) long; mesh: (F, >=468, >=2) pixels."""
    f = len(frame_index)
    if f == 0:
        return torch.zeros((0, 2))
    h, w = frames.shape[1:3]
    xy = mesh[..., :2].float()
    corners = torch.stack([xy[:, list(parts.EYE_RIGHT_CORNERS)], xy[:, list(parts.EYE_LEFT_CORNERS)]], 1)  # (F, 2, 2, 2)
    centre = corners.mean(2).reshape(2 * f, 2)
    half = EYE_PATCH * (corners[:, :, 0] - corners[:, :, 1]).norm(dim=-1).reshape(2 * f).clamp_min(0.5)
    steps = (torch.arange(EYE_PATCH_GRID, device=xy.device, dtype=xy.dtype) + 0.5) / EYE_PATCH_GRID * 2 - 1
    gy, gx = torch.meshgrid(steps, steps, indexing="ij")
    px = centre[:, None, None, :] + half[:, None, None, None] * torch.stack([gx, gy], -1)   # (2F, G, G, 2)
    size = torch.tensor([w, h], device=xy.device, dtype=xy.dtype)
    grid = (2 * px + 1) / size - 1
    rgb = sample_frames(frames, frame_index.repeat_interleave(2), grid, "border")            # (2F, 3, G, G)
    luma = (rgb * torch.tensor(_LUMA, device=rgb.device)[None, :, None, None]).sum(1)
    return luma.flatten(1).std(1).reshape(f, 2).cpu()


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
