"""Who the face is: skin tone, hair, glasses and facial hair, measured once per subject (a clip or a photo).

Identity is per subject, not per frame. While pass 1 tracks the clip, an `IdentitySampler` keeps up to
SAMPLES frontal views of the main face as *head crops*: the face's own frame (roll taken out, face width
100 units, origin the face oval's centre), the window parts.WINDOW_FRAMES["hair"] drawn at HEAD_CROP pixels.
Everything below measures those crops, so the cost does not grow with the clip's length.

- Skin: the median colour of well-lit skin (cheeks, forehead, nose bridge from the mesh; lips, brows, eyes,
  shadows and speculars left out), corrected for the camera's exposure and colour cast, decided in CIELAB by
  the individual typology angle (ITA°) against one shared table of what real skin each palette name stands
  for (SKIN_ITA), not against the drawn colours.
- Hair: the person mask (MediaPipe's selfie segmentation) minus the face, refined by the colour of the hair
  sampled above the forehead; its label window in the face's frame is matched against the style's hair parts
  through FAISS like every other slot. Colour from the hair pixels, with the skin's exposure correction.
- Glasses: edge energy across the nose bridge and along the eye rims against the forehead's.
- Facial hair: the lower face's lightness and texture against the cheeks'.
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from vidmoji import parts
from vidmoji.errors import VidmojiError

HEAD_CROP = 256        # side in pixels of a head crop (the hair window)
SAMPLES = 12           # views kept per clip
HAIR_VIEWS = 4         # of which this many are segmented for the hair
MAX_SAMPLE_YAW = 25.0  # degrees: only fairly frontal views are measured


def face_crop_matrix(mesh: np.ndarray, box: tuple[float, float, float, float], px_per_unit: float) -> np.ndarray:
    """The (2, 3) affine map from frame pixels to a crop of the face's own frame (roll taken out; face width
    100 units, origin the face oval's centre, y down): box (x0, y0, x1, y1) in face units, drawn at
    px_per_unit pixels per unit."""
    xy = np.asarray(mesh, np.float64)[:, :2]
    a, b = xy[parts.FACE_SIDES[0]], xy[parts.FACE_SIDES[1]]
    width = max(float(np.linalg.norm(b - a)), 1e-6)
    axis = (b - a) / width
    anchor = xy[list(parts.FACE_OVAL)].mean(0)
    lin = (px_per_unit * 100.0 / width) * np.array([[axis[0], axis[1]], [-axis[1], axis[0]]])
    offset = -lin @ anchor - px_per_unit * np.array(box[:2])
    return np.concatenate([lin, offset[:, None]], 1)


def head_crop_matrix(mesh: np.ndarray, size: int = HEAD_CROP) -> np.ndarray:
    """Frame pixels -> head-crop pixels: the hair window (parts.WINDOW_FRAMES["hair"]) at size pixels."""
    wf = parts.WINDOW_FRAMES["hair"]
    return face_crop_matrix(mesh, (wf.cx - wf.half, wf.cy - wf.half, wf.cx + wf.half, wf.cy + wf.half),
                            size / (2 * wf.half))


def to_crop(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(P, >=2) frame pixels -> (P, 2) crop pixels."""
    return np.asarray(points, np.float64)[:, :2] @ matrix[:, :2].T + matrix[:, 2]


# The detail crop: eyes to chin at DETAIL_PPU pixels per face unit (about 3x the head crop), for the thin
# lines of a glasses frame and the texture of stubble.
DETAIL_BOX = (-60.0, -45.0, 60.0, 75.0)
DETAIL_PPU = 3.0


def _warp(frame: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    shrink = m[0, 0] ** 2 + m[0, 1] ** 2 < 1.0
    return cv2.warpAffine(frame, m, size, flags=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


@dataclass
class HeadSample:
    """One view of the subject: the head crop (S, S, 3) uint8 RGB (black outside the frame) with the mesh
    in its pixels (P, 2) and where it lies inside the frame (S, S) bool; the detail crop (DETAIL_BOX at DETAIL_PPU) with the mesh in its pixels; the
    frame's index, the head's yaw in degrees, a coarse grid of the whole frame's pixels (N, 3) uint8
    (the exposure estimate), and the frame pixels per face unit (the face's own resolution: a small face in
    a low-resolution clip has few, and its crops are upsampled)."""

    crop: np.ndarray
    mesh: np.ndarray
    valid: np.ndarray
    detail: np.ndarray
    detail_mesh: np.ndarray
    index: int
    yaw: float
    frame_pixels: np.ndarray
    source_ppu: float = DETAIL_PPU


def head_sample(index: int, frame: np.ndarray, mesh: np.ndarray, yaw: float = 0.0,
                size: int = HEAD_CROP) -> HeadSample:
    """The crops of one face in one frame. frame: (H, W, 3) uint8 RGB; mesh: (>=468, >=2) frame pixels."""
    m = head_crop_matrix(mesh, size)
    d = face_crop_matrix(mesh, DETAIL_BOX, DETAIL_PPU)
    detail_size = (round((DETAIL_BOX[2] - DETAIL_BOX[0]) * DETAIL_PPU), round((DETAIL_BOX[3] - DETAIL_BOX[1]) * DETAIL_PPU))
    step = max(1, min(frame.shape[:2]) // 90)
    source_ppu = DETAIL_PPU / math.sqrt(abs(np.linalg.det(d[:, :2])))
    inside = cv2.warpAffine(np.full(frame.shape[:2], 255, np.uint8), m, (size, size), flags=cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0
    return HeadSample(_warp(frame, m, (size, size)), to_crop(mesh, m).astype(np.float32), inside,
                      _warp(frame, d, detail_size), to_crop(mesh, d).astype(np.float32), index, float(yaw),
                      np.ascontiguousarray(frame[::step, ::step].reshape(-1, 3)), source_ppu)


class IdentitySampler:
    """Keeps up to `limit` views spread evenly over a clip of unknown length: every `stride`-th fairly
    frontal view is taken; when the store is full every other one is dropped and the stride doubles, so
    memory stays bounded (about 0.6 MB a view) and the views stay spread over the whole clip. Turned heads
    are kept only while no frontal view has been seen."""

    def __init__(self, limit: int = SAMPLES, size: int = HEAD_CROP):
        self.limit, self.size = limit, size
        self.stride = 1
        self.samples: list[HeadSample] = []
        self._count = 0
        self._frontal = False
        self.seconds = 0.0                  # time spent in offer(), for the render's stage times

    def offer(self, index: int, frame: np.ndarray, mesh: np.ndarray, yaw: float) -> None:
        """frame: (H, W, 3) uint8 RGB; mesh: (>=468, >=2) frame pixels of the main face; yaw in degrees."""
        frontal = abs(yaw) <= MAX_SAMPLE_YAW
        if frontal and not self._frontal:          # the first frontal view: start again from it
            self.samples, self.stride, self._count, self._frontal = [], 1, 0, True
        elif self._frontal and not frontal:
            return
        self._count += 1
        if (self._count - 1) % self.stride:
            return
        start = time.perf_counter()
        self.samples.append(head_sample(index, frame, mesh, yaw, self.size))
        self.seconds += time.perf_counter() - start
        if len(self.samples) > self.limit:
            self.samples = self.samples[::2]
            self.stride *= 2


# --- colour ----------------------------------------------------------------------------------------------
def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 255] -> (..., 3) float32 CIELAB (D65)."""
    arr = np.asarray(rgb, np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(arr, cv2.COLOR_RGB2Lab).reshape(np.shape(rgb)).astype(np.float32)


def _linear(rgb: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb, np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb(linear: np.ndarray) -> np.ndarray:
    c = np.clip(linear, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055) * 255.0


# The camera's exposure: the frame's near-white (99th percentile of luminance) is brought to WHITE_TARGET,
# with the gain held within EXPOSURE_GAIN: a frame without anything white (a dark room, a green screen)
# must not turn every face pale. The colour cast: the frame's bright neutral-ish pixels (top decile, low
# chroma) are pulled CAST_STRENGTH of the way to grey, within CAST_LIMIT per channel.
WHITE_TARGET = 0.9
EXPOSURE_GAIN = (0.8, 1.6)
CAST_STRENGTH = 0.5
CAST_LIMIT = 0.15


def camera_correction(frame_pixels: np.ndarray) -> np.ndarray:
    """(3,) per-channel gains on linear RGB that undo a frame's exposure and part of its colour cast."""
    lin = _linear(frame_pixels.reshape(-1, 3))
    y = lin @ np.array([0.2126, 0.7152, 0.0722])
    white = float(np.percentile(y, 99)) if len(y) else WHITE_TARGET
    gain = float(np.clip(WHITE_TARGET / max(white, 1e-4), *EXPOSURE_GAIN))
    bright = lin[y >= np.percentile(y, 90)] if len(y) else np.ones((1, 3))
    chroma = bright / np.maximum(bright.mean(1, keepdims=True), 1e-4)
    neutral = bright[np.abs(chroma - 1).max(1) < 0.35]
    cast = np.ones(3)
    if len(neutral) >= 10:
        mean = neutral.mean(0)
        cast = np.clip((mean.mean() / np.maximum(mean, 1e-4)) ** CAST_STRENGTH, 1 - CAST_LIMIT, 1 + CAST_LIMIT)
    return gain * cast


def corrected_lab(rgb: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """(..., 3) RGB uint8-range colours through the camera correction, as CIELAB."""
    return rgb_to_lab(_srgb(_linear(rgb) * gains))


# --- skin ------------------------------------------------------------------------------------------------
# Mesh landmarks at the middle of well-lit skin: forehead, nose bridge, cheeks (never lips, brows or eyes).
SKIN_REGIONS: dict[str, tuple[int, ...]] = {
    "forehead": (151, 108, 337), "bridge": (6, 197, 195), "cheeks": (50, 280, 101, 330, 36, 266),
}
SKIN_PATCH = 4          # half-side of the square patch around each landmark, head-crop pixels
SKIN_REGION_DROP = 12.0  # a region this much darker (L) than the brightest one is hair or shadow: left out
# What real skin each palette name stands for: the individual typology angle ITA° = atan((L - 50) / b) of
# the exposure-corrected skin, above each bound (Chardon et al.'s scale, its bounds moved for skin seen
# through a camera rather than a spectrophotometer). One shared table for every style: a style's palette
# keeps these names and draws them in its own colours.
SKIN_ITA: tuple[tuple[str, float], ...] = (
    ("light", 30.0), ("medium-light", 15.0), ("medium", 0.0), ("medium-dark", -30.0), ("dark", -1e9),
)


def skin_lab(sample: HeadSample) -> np.ndarray | None:
    """The exposure-corrected CIELAB colour of one view's well-lit skin (None where none is seen)."""
    crop, mesh = sample.crop, sample.mesh
    h, w = crop.shape[:2]
    regions = {}
    for name, points in SKIN_REGIONS.items():
        px = []
        for i in points:
            x, y = (int(round(v)) for v in mesh[i])
            patch = crop[max(0, y - SKIN_PATCH):y + SKIN_PATCH + 1, max(0, x - SKIN_PATCH):x + SKIN_PATCH + 1]
            px.append(patch.reshape(-1, 3))
        px = np.concatenate(px)
        px = px[px.max(1) > 0]                      # outside the frame is black
        if len(px) >= 8:
            regions[name] = px
    if not regions:
        return None
    lab = {k: rgb_to_lab(v) for k, v in regions.items()}
    top = max(float(np.median(v[:, 0])) for v in lab.values())
    keep = np.concatenate([regions[k] for k, v in lab.items() if np.median(v[:, 0]) > top - SKIN_REGION_DROP])
    L = rgb_to_lab(keep)[:, 0]
    lo, hi = np.percentile(L, [30, 90])              # shadows and speculars out
    colour = np.median(keep[(L >= lo) & (L <= hi)].astype(np.float32), 0)
    return corrected_lab(colour[None], camera_correction(sample.frame_pixels))[0]


def ita(lab: np.ndarray) -> float:
    """The individual typology angle in degrees of a CIELAB colour."""
    return math.degrees(math.atan2(float(lab[0]) - 50.0, float(lab[2])))


def skin_tone(lab: np.ndarray) -> str:
    """The palette name (parts.SKIN_TONES) of an exposure-corrected skin colour."""
    angle = ita(lab)
    for name, bound in SKIN_ITA:
        if angle > bound:
            return name
    return SKIN_ITA[-1][0]


# --- glasses ---------------------------------------------------------------------------------------------
# A frame's bridge is a thin line across the nose between the eyes, which bare skin never has: the peak of
# the rows' mean line response (|d2/dy2| of the detail crop) between the inner eye corners, against the
# cheeks' typical response under the eyes. Bare faces measured 1.8-6.4 on the public clips, glasses 22-46.
GLASSES_LINE = 12.0
GLASSES_SHARE = 0.5       # glasses are worn when this share of the views show them
# Below this face width (frame pixels across the cheeks, 100 face units) a frame's bridge is thinner than a
# pixel: the public subjects scaled down (bench/identity.py --face-px) kept all 16 glasses answers at faces
# 70-82 px wide and missed every pair of glasses at 47-55 px. Such a face gets a warning, not a silent guess.
SMALL_FACE_PX = 64.0


def glasses_score(sample: HeadSample) -> float:
    g = cv2.cvtColor(sample.detail, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = cv2.GaussianBlur(g, (0, 0), 1.2)
    ridge = np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=5))
    m = sample.detail_mesh
    ri, li = m[parts.EYE_RIGHT_CORNERS[1]], m[parts.EYE_LEFT_CORNERS[1]]
    gap = max(float(np.linalg.norm(li - ri)), 1.0)
    cx, cy = (ri + li) / 2
    x0, x1 = int(cx - 0.2 * gap), int(cx + 0.2 * gap) + 1
    rows = ridge[max(int(cy - 0.4 * gap), 0):max(int(cy + 0.15 * gap) + 1, 1), max(x0, 0):x1].mean(1)
    cheek = ridge[int(cy + 0.3 * gap):int(cy + 0.6 * gap), max(x0, 0):x1]
    if rows.size == 0 or cheek.size == 0:
        return 0.0
    return float(rows.max() / (np.median(cheek) + 1.0))


# --- facial hair -----------------------------------------------------------------------------------------
# Hair on the lower face is darker and rougher than the cheeks: the upper lip (nose base to lip) and the chin
# (lip to chin) against cheek patches, as the drop in lightness (L) and the ratio of fine texture (the
# detail crop minus its 2-pixel blur). Bare faces on the public clips measured lip/chin drops up to 14.5 (a
# shadow under the nose, a lit chin) at texture ratios under 2.7; no public subject has a beard, so the
# beard and moustache bounds are set from what a full dark beard does to these measures, not tuned.
STUBBLE = (10.0, 10.0, 1.5)      # lip drop, chin drop, texture ratio of both: all above
MOUSTACHE = (22.0, 12.0)         # lip drop above, chin drop below
BEARD = (18.0, 25.0)             # lip drop, chin drop: both above


def _box(img: np.ndarray, p: np.ndarray, q: np.ndarray, widen: float) -> np.ndarray:
    x0, x1 = int(min(p[0], q[0]) - widen), int(max(p[0], q[0]) + widen)
    y0, y1 = int(min(p[1], q[1])), int(max(p[1], q[1]))
    return img[max(y0, 0):max(y1, 1), max(x0, 0):max(x1, 1)]


def _lightness_texture(px: np.ndarray) -> tuple[float, float]:
    if px.size == 0 or min(px.shape[:2]) < 5:
        return float("nan"), float("nan")
    g = cv2.cvtColor(np.ascontiguousarray(px), cv2.COLOR_RGB2GRAY).astype(np.float32)
    fine = g - cv2.GaussianBlur(g, (0, 0), 2.0)
    return float(np.median(rgb_to_lab(px.reshape(-1, 3))[:, 0])), float(fine[2:-2, 2:-2].std())


def facial_hair_measures(sample: HeadSample) -> np.ndarray:
    """(lip drop, lip texture ratio, chin drop, chin texture ratio) of one view."""
    m, img, unit = sample.detail_mesh, sample.detail, DETAIL_PPU
    lip = _lightness_texture(_box(img, m[2], m[0], 12 * unit))
    chin = _lightness_texture(_box(img, m[17], m[152], 10 * unit))
    cheeks = [_lightness_texture(img[int(m[i][1]) - 6:int(m[i][1]) + 7, int(m[i][0]) - 6:int(m[i][0]) + 7])
              for i in (50, 280, 205, 425)]
    cl, ct = np.nanmedian(np.array(cheeks), 0)
    return np.array([cl - lip[0], lip[1] / (ct + 0.5), cl - chin[0], chin[1] / (ct + 0.5)])


def facial_hair_kind(measures: np.ndarray) -> str:
    lip, lip_tex, chin, chin_tex = (float(v) for v in measures)
    if lip > BEARD[0] and chin > BEARD[1]:
        return "beard"
    if lip > MOUSTACHE[0] and chin < MOUSTACHE[1]:
        return "moustache"
    if lip > STUBBLE[0] and chin > STUBBLE[1] and min(lip_tex, chin_tex) > STUBBLE[2]:
        return "stubble"
    return "none"


# --- hair ------------------------------------------------------------------------------------------------
PERSON_THRESHOLD = 0.5
HAIR_SAMPLE_BAND = (3.0, 15.0)   # face units below the top of the head where the hair's own colour is sampled
HAIR_SAMPLE_HALF = 22.0          # ... within this many units of the midline
BALD_DELTA_E = 14.0              # a "hair" sample this close to the skin's colour (CIELAB) is skin: bald
HAIR_DELTA_E = 30.0              # person pixels within this distance of the hair colour (and nearer it than the
                                 # skin's) are hair


def _units_to_crop(points: np.ndarray, size: int = HEAD_CROP) -> np.ndarray:
    """(N, 2) face units -> head-crop pixels."""
    wf = parts.WINDOW_FRAMES["hair"]
    return (np.asarray(points, np.float64) - np.array([wf.cx - wf.half, wf.cy - wf.half])) * (size / (2 * wf.half))


def _crop_to_units(pixels: np.ndarray, size: int = HEAD_CROP) -> np.ndarray:
    wf = parts.WINDOW_FRAMES["hair"]
    return np.asarray(pixels, np.float64) * (2 * wf.half / size) + np.array([wf.cx - wf.half, wf.cy - wf.half])


def _polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points * 4).astype(np.int32)], 1, shift=2)
    return mask.astype(bool)


@dataclass
class HairView:
    """The hair of one view: its mask over the head crop (S, S) bool, its colour (CIELAB, camera-corrected;
    None when bald) and whether the top of the head reads as bald."""

    mask: np.ndarray
    lab: np.ndarray | None
    bald: bool


def hair_view(sample: HeadSample, person: np.ndarray, skin: np.ndarray | None) -> HairView:
    """Hair = the person minus the face (the mesh's oval), kept where its colour is the hair's own (sampled
    above the forehead) rather than the skin's, and joined to the hair on top of the head (clothes below are
    left out unless they touch it in the hair's colour). person: (S, S) float probability; skin: the view's
    corrected skin Lab."""
    size = sample.crop.shape[0]
    shape = sample.crop.shape[:2]
    body = (person > PERSON_THRESHOLD) & sample.valid
    face = _polygon_mask(sample.mesh[list(parts.FACE_OVAL)], shape)
    candidates = body & ~face
    gains = camera_correction(sample.frame_pixels)
    lab = corrected_lab(sample.crop.reshape(-1, 3).astype(np.float32), gains).reshape(size, size, 3)
    # The hair's own colour: the crown, just inside the top of the person's silhouette near the midline (the
    # mesh's forehead ends below most hairlines, so the band just above it is often still skin).
    top = _crop_to_units(sample.mesh[10:11], size)[0]
    ux, uy = _unit_grid(size)
    yy = np.arange(size)[:, None]
    columns = (np.abs(ux - top[0]) < HAIR_SAMPLE_HALF) & (uy < top[1])
    above = body & columns
    if above.sum() < 12:                                 # nothing of the person above the forehead: bald
        return HairView(np.zeros(shape, bool), None, True)
    crown = np.where(above.any(0), np.argmax(above, 0), size)          # first person row in each column
    depth = (yy - crown[None, :]) * (2 * parts.WINDOW_FRAMES["hair"].half / size)
    band = above & (depth >= HAIR_SAMPLE_BAND[0]) & (depth <= HAIR_SAMPLE_BAND[1])
    if band.sum() < 12:
        return HairView(np.zeros(shape, bool), None, True)
    hair_lab = np.median(lab[band], 0)
    if skin is not None and np.linalg.norm(hair_lab - skin) < BALD_DELTA_E:
        return HairView(np.zeros(shape, bool), None, True)
    d_hair = np.linalg.norm(lab - hair_lab, axis=-1)
    d_skin = np.linalg.norm(lab - skin, axis=-1) if skin is not None else np.full(shape, np.inf)
    hair = candidates & (d_hair < HAIR_DELTA_E) & (d_hair < d_skin)
    hair = cv2.morphologyEx(hair.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
    count, labels = cv2.connectedComponents(hair.astype(np.uint8))
    seeds = set(np.unique(labels[band & hair])) - {0}
    hair = np.isin(labels, list(seeds)) if seeds else hair
    return HairView(hair, hair_lab, False)


# Hair length from where the hair lies around the face (face units; the chin is the mesh's lowest point):
# beside the jaw and below it (long), over the ears (medium), else short. "tied" hair (a bun, a ponytail
# behind) reads as short from the front; the matched part may still be a tied one.
EAR_ZONE = (48.0, 85.0)          # |x| range beside the face, from eye level to just above the chin
JAW_ZONE = (40.0, 100.0)         # |x| range from just above the chin to below it
SHOULDER_ZONE = (35.0, 130.0)    # |x| range well below the chin
LONG_JAW, LONG_SHOULDER, MEDIUM_EAR, MEDIUM_JAW = 0.12, 0.15, 0.10, 0.05


@functools.lru_cache(maxsize=4)
def _unit_grid(size: int = HEAD_CROP) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) face units of every head-crop pixel, (size, size) each; computed once per size (read-only)."""
    yy, xx = np.mgrid[:size, :size]
    u = _crop_to_units(np.stack([xx.ravel(), yy.ravel()], 1), size)
    ux, uy = u[:, 0].reshape(size, size), u[:, 1].reshape(size, size)
    ux.setflags(write=False)
    uy.setflags(write=False)
    return ux, uy


def hair_length_measures(sample: HeadSample, mask: np.ndarray) -> np.ndarray:
    """(ear, jaw, shoulder): the share of each zone's in-frame pixels that are hair (NaN where the zone is
    out of the frame)."""
    ux, uy = _unit_grid(mask.shape[0])
    ax = np.abs(ux)
    chin = float(_crop_to_units(sample.mesh[152:153], mask.shape[0])[0, 1])
    zones = (((ax > EAR_ZONE[0]) & (ax < EAR_ZONE[1]) & (uy > -10) & (uy < chin - 15)),
             ((ax > JAW_ZONE[0]) & (ax < JAW_ZONE[1]) & (uy > chin - 15) & (uy < chin + 25)),
             ((ax > SHOULDER_ZONE[0]) & (ax < SHOULDER_ZONE[1]) & (uy > chin + 35) & (uy < chin + 95)))
    out = []
    for zone in zones:
        z = zone & sample.valid
        out.append(float(mask[z].mean()) if z.sum() > 20 else float("nan"))
    return np.array(out)


def hair_length(measures: np.ndarray, bald: bool) -> str:
    ear, jaw, shoulder = (float(v) for v in np.nan_to_num(measures, nan=0.0))
    if bald:
        return "bald"
    if jaw >= LONG_JAW or shoulder >= LONG_SHOULDER:
        return "long"
    if ear >= MEDIUM_EAR or jaw >= MEDIUM_JAW:
        return "medium"
    return "short"


def hair_lab(sample: HeadSample, mask: np.ndarray) -> np.ndarray | None:
    """The hair's camera-corrected CIELAB colour: its lit half (the 50th-90th percentile of lightness; the
    shadows between strands say little about the colour people see), above the chin."""
    _, uy = _unit_grid(mask.shape[0])
    chin = float(_crop_to_units(sample.mesh[152:153], mask.shape[0])[0, 1])
    m = mask & (uy < chin)
    if m.sum() < 12:
        return None
    lab = corrected_lab(sample.crop[m].astype(np.float32), camera_correction(sample.frame_pixels))
    lo, hi = np.percentile(lab[:, 0], [50, 90])
    return np.median(lab[(lab[:, 0] >= lo) & (lab[:, 0] <= hi)], 0)


# Hair colour names (parts.HAIR_COLOURS) from the corrected colour of the hair's lit half: lightness L,
# chroma C and the yellow-blue b. Light hair is blond when warm and grey when neutral or cool; dark hair is
# black when neutral or cool and dark brown when warm; auburn when red dominates.
def hair_colour(lab: np.ndarray) -> str:
    L, a, b = (float(v) for v in lab)
    chroma = math.hypot(a, b)
    if L >= 60:
        return "blond" if b >= 2 else "grey"
    if chroma < 6 and L >= 40:
        return "grey"
    if a >= 10 and a >= 0.8 * b and L >= 20:
        return "auburn"
    if L < 27:
        return "dark_brown" if b >= 4 else "black"
    if L < 45:
        return "brown" if b >= 6 else "black"
    return "brown" if b >= 6 else "grey"


# --- the subject -----------------------------------------------------------------------------------------
@dataclass
class Identity:
    """What one subject looks like, decided over a clip or a photo.

    skin: a name of parts.SKIN_TONES; hair_length, hair_colour: words of parts.HAIR_LENGTHS and
    parts.HAIR_COLOURS (or a style's own hair colour / "#RRGGBB" when set by hand); glasses: worn;
    facial_hair: parts.FACIAL_HAIR; hair_window: (1, WINDOW_SIZE, WINDOW_SIZE) float32 label window of the
    hair in the face's frame (matched against a style's hair parts; None when bald or not measured);
    hair_part: a part id chosen by hand (--hair), else None; measured: the numbers behind each decision.
    """

    skin: str
    hair_length: str
    hair_colour: str
    glasses: bool
    facial_hair: str
    hair_window: np.ndarray | None = None
    hair_part: str | None = None
    measured: dict = field(default_factory=dict)


DEFAULT_IDENTITY = Identity("medium-light", "short", "dark_brown", False, "none")


def _round(x, digits: int = 2):
    if isinstance(x, dict):
        return {k: _round(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [_round(v, digits) for v in np.asarray(x).tolist()] if np.ndim(x) else _round(float(x), digits)
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else round(float(x), digits)
    return x


def hair_window(masks: list[np.ndarray]) -> np.ndarray:
    """The hair's label window from per-view hair masks over the head crop (which is the hair window)."""
    mean = np.mean([m.astype(np.float32) for m in masks], 0)
    w = cv2.resize(mean, (parts.WINDOW_SIZE, parts.WINDOW_SIZE), interpolation=cv2.INTER_AREA)
    k = 2 * max(1, round(3 * parts.WINDOW_BLUR_SIGMA)) + 1
    w = cv2.GaussianBlur(w, (k, k), parts.WINDOW_BLUR_SIGMA, borderType=cv2.BORDER_REPLICATE)
    return w[None].astype(np.float32)


@functools.lru_cache(maxsize=2)
def _segmenter(device: str):
    """The person segmenter, loaded once per device per process (renders of many clips reuse it)."""
    from vidmoji.face.segment import PersonSegmenter
    return PersonSegmenter(device)


def warm_segmenter(device: torch.device | str = "cpu") -> None:
    """Load the person segmenter and run it once (a first call sets up its kernels): live does this before
    its stream starts, not in the middle of it, when the identity is measured."""
    with torch.inference_mode():
        _segmenter(str(device)).segment_images(torch.zeros((1, 3, 256, 256), device=device))


def measure_identity(samples: list[HeadSample], device: torch.device | str = "cpu",
                     pause: Callable[[], None] | None = None) -> Identity:
    """The identity of the subject seen in `samples` (IdentitySampler views of one clip or photo). pause:
    called between the pieces of the work (a view each), so that a caller working beside a real-time frame
    path can spread it out (see vidmoji.live.Pacer)."""
    if not samples:
        return DEFAULT_IDENTITY
    pause = pause or (lambda: None)
    # Hair changes least over a clip and segmentation is the dearest step: HAIR_VIEWS views, spread out.
    hair_views = set(np.linspace(0, len(samples) - 1, min(HAIR_VIEWS, len(samples))).round().astype(int).tolist())
    segmenter, person = _segmenter(str(device)), {}
    for i in sorted(hair_views):
        pause()
        crop = torch.from_numpy(samples[i].crop[None]).permute(0, 3, 1, 2).float().div_(255.0).to(device)
        person[i] = segmenter.segment_images(crop).float().cpu().numpy()[0]
    skins, glasses, facial, lengths, colours, masks, bald = [], [], [], [], [], [], []
    for i, sample in enumerate(samples):
        pause()
        skin = skin_lab(sample)
        if skin is not None:
            skins.append(skin)
        glasses.append(glasses_score(sample))
        facial.append(facial_hair_measures(sample))
        if i not in person:
            continue
        pause()
        view = hair_view(sample, person[i], skin)
        bald.append(view.bald)
        masks.append(view.mask)
        lengths.append(hair_length_measures(sample, view.mask))
        colour = hair_lab(sample, view.mask) if not view.bald else None
        if colour is not None:
            colours.append(colour)
    skin_m = np.median(skins, 0) if skins else None
    is_bald = float(np.mean(bald)) > 0.5
    with warnings.catch_warnings():                    # a zone out of the frame in every view is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        length_m = np.nanmedian(np.array(lengths), 0) if lengths and not is_bald else np.full(3, np.nan)
        facial_m = np.nanmedian(np.array(facial), 0)
    colour_m = np.median(colours, 0) if colours else None
    share = float(np.mean(np.array(glasses) > GLASSES_LINE))
    measured = {
        "views": len(samples), "face_width_px": float(np.median([s.source_ppu * 100.0 for s in samples])),
        "skin_lab": skin_m, "skin_ita": ita(skin_m) if skin_m is not None else None,
        "hair_bald_share": float(np.mean(bald)), "hair_zones": {"ear": length_m[0], "jaw": length_m[1],
                                                                 "shoulder": length_m[2]},
        "hair_lab": colour_m,
        "glasses_line": float(np.median(glasses)), "glasses_share": share,
        "facial_hair": {"lip_drop": facial_m[0], "lip_texture": facial_m[1], "chin_drop": facial_m[2],
                        "chin_texture": facial_m[3]},
    }
    return Identity(
        skin=skin_tone(skin_m) if skin_m is not None else DEFAULT_IDENTITY.skin,
        hair_length=hair_length(length_m, is_bald),
        hair_colour=hair_colour(colour_m) if colour_m is not None else DEFAULT_IDENTITY.hair_colour,
        glasses=share >= GLASSES_SHARE,
        facial_hair=facial_hair_kind(facial_m),
        hair_window=None if is_bald else hair_window(masks),
        measured=_round(measured),
    )


def identity_notes(identity: Identity) -> list[str]:
    """What a user should know about a measured identity: a face too small to see glasses on."""
    width = (identity.measured or {}).get("face_width_px")
    if width is not None and width < SMALL_FACE_PX:
        return [f"warning: the face is only {width:.0f} px wide (under {SMALL_FACE_PX:.0f}), too small to see glasses "
                "reliably: say so with --glasses or --no-glasses, or a persona"]
    return []


# --- overrides, personas, and a style's parts ---------------------------------------------------------------
class PersonaError(VidmojiError):
    """A persona file that cannot be read, or an override that names nothing."""


PERSONA_FORMAT = "vidmoji-persona"
PERSONA_VERSION = 1


@dataclass(frozen=True)
class IdentityOverrides:
    """One attribute each, set by hand (None: as measured or as the persona says). hair: a hair part id of
    the style, or a length word (parts.HAIR_LENGTHS); hair_colour: a hair palette name or "#RRGGBB"."""

    skin: str | None = None
    hair: str | None = None
    hair_colour: str | None = None
    glasses: bool | None = None
    facial_hair: str | None = None


def check_overrides(o: IdentityOverrides, style=None) -> None:
    """Say (PersonaError, one line) what an override names that does not exist, before any work."""
    if o.facial_hair is not None and o.facial_hair not in parts.FACIAL_HAIR:
        raise PersonaError(f"--facial-hair must be one of {', '.join(parts.FACIAL_HAIR)}, not {o.facial_hair!r}")
    if style is None:
        return
    if o.skin not in (None, "auto"):
        style.colour(o.skin)
    if o.hair is not None and o.hair not in parts.HAIR_LENGTHS:
        style.part(o.hair)
    if o.hair_colour is not None:
        style.hair_colour(o.hair_colour)


def apply_overrides(identity: Identity, o: IdentityOverrides) -> Identity:
    """The identity with each given attribute replaced (checked against the words it may take)."""
    from dataclasses import replace

    changes: dict = {}
    if o.skin is not None and o.skin != "auto":
        changes["skin"] = o.skin
    if o.hair is not None:
        if o.hair in parts.HAIR_LENGTHS:
            changes.update(hair_length=o.hair, hair_part=None)
        else:
            changes.update(hair_part=o.hair)
    if o.hair_colour is not None:
        changes["hair_colour"] = o.hair_colour
    if o.glasses is not None:
        changes["glasses"] = o.glasses
    if o.facial_hair is not None:
        if o.facial_hair not in parts.FACIAL_HAIR:
            raise PersonaError(f"--facial-hair must be one of {', '.join(parts.FACIAL_HAIR)}, not {o.facial_hair!r}")
        changes["facial_hair"] = o.facial_hair
    return replace(identity, **changes) if changes else identity


def persona_json(identity: Identity, source: str | None = None) -> dict:
    """The identity as a persona document (style-independent: the hair is kept as its measured window, so
    that every style matches its own hair part)."""
    window = None if identity.hair_window is None else np.round(identity.hair_window[0], 3).tolist()
    return {"format": PERSONA_FORMAT, "version": PERSONA_VERSION, "source": source,
            "skin": identity.skin, "hair": {"length": identity.hair_length, "colour": identity.hair_colour,
                                            "part": identity.hair_part, "window": window},
            "glasses": identity.glasses, "facial_hair": identity.facial_hair, "measured": identity.measured}


def read_persona(path) -> Identity:
    """A persona file written by `vidmoji identify` (PersonaError, one line, for anything else)."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PersonaError(f"persona file not found: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PersonaError(f"{path} is not a persona file (unreadable JSON: {type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != PERSONA_FORMAT:
        raise PersonaError(f"{path} is not a vidmoji persona file (make one with `vidmoji identify`)")
    if doc.get("version") != PERSONA_VERSION:
        raise PersonaError(f"{path}: persona version {doc.get('version')!r} is not supported (this vidmoji "
                           f"reads version {PERSONA_VERSION})")
    try:
        hair = doc["hair"]
        window = hair.get("window")
        if window is not None:
            window = np.asarray(window, np.float32)
            if window.shape != (parts.WINDOW_SIZE, parts.WINDOW_SIZE) or not np.isfinite(window).all():
                raise ValueError("hair window")
            window = window[None]
        identity = Identity(skin=str(doc["skin"]), hair_length=str(hair["length"]), hair_colour=str(hair["colour"]),
                            glasses=bool(doc["glasses"]), facial_hair=str(doc["facial_hair"]), hair_window=window,
                            hair_part=hair.get("part"), measured=dict(doc.get("measured") or {}))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PersonaError(f"{path}: malformed persona ({type(exc).__name__}: {exc})") from None
    if identity.hair_length not in parts.HAIR_LENGTHS or identity.facial_hair not in parts.FACIAL_HAIR:
        raise PersonaError(f"{path}: malformed persona (hair length {identity.hair_length!r} or facial hair "
                           f"{identity.facial_hair!r} unknown)")
    return identity


def choose_hair(identity: Identity, style, index=None, embedder=None, device="cpu"):
    """The style's hair part for the identity (None where the style draws no hair).

    A part named by hand wins; bald takes the style's bald part; otherwise the measured hair window is
    matched through the style's FAISS hair index among the parts of the measured length. (Tied hair reads
    as short from the front and is not told apart: among all the parts, a bun's window is nearest to many
    short cuts, so the length decides first.)"""
    hair_parts = style.parts_in("hair")
    if not hair_parts:
        return None
    if identity.hair_part is not None:
        style.part(identity.hair_part)           # StyleError (one line) for a part the style lacks
        return style.part(identity.hair_part)
    if identity.hair_length == "bald":
        bald = [p for p in hair_parts if p.state == "bald"]
        return bald[0] if bald else None
    candidates = [p for p in hair_parts if p.state == identity.hair_length] \
        or [p for p in hair_parts if p.state != "bald"]
    if not candidates:
        return None
    if index is None or embedder is None or identity.hair_window is None:
        return candidates[0]
    from vidmoji.embed.base import embed_slot

    query = embed_slot(embedder, "hair", torch.from_numpy(identity.hair_window)[None].to(device))
    _, rows = index.search(query.float().cpu().numpy(), len(index.part_ids))
    allowed = {p.id for p in candidates}
    for r in rows[0]:
        if r >= 0 and index.part_ids[int(r)] in allowed:
            return style.part(index.part_ids[int(r)])
    return candidates[0]


def identity_timeline(identity: Identity, hair_part) -> dict:
    """The timeline's top-level "identity" (the shape the issue names), with the measures beside it."""
    length = hair_part.state if hair_part is not None and hair_part.state in parts.HAIR_LENGTHS else identity.hair_length
    return {"skin": identity.skin,
            "hair": {"id": hair_part.id if hair_part is not None else None, "length": length,
                     "colour": identity.hair_colour},
            "glasses": identity.glasses, "facial_hair": identity.facial_hair, "measured": identity.measured}
