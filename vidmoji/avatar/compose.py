"""Composing avatar frames: cached RGBA layers of the chosen parts, blended on the style's canvas, then
placed to follow the head (roll, position, scale) in one of three layouts."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from vidmoji import parts
from vidmoji.avatar.templates import Style, has_pupils, quantize_gaze, render_part_layer

BACKGROUND = (245, 245, 240)
# The avatar's head follows the face's scale and position only within these bounds, so a face walking
# off-centre does not take the avatar out of the picture.
_SCALE_RANGE = (0.75, 1.3)
_SHIFT_LIMIT = 0.2


@dataclass(frozen=True)
class HeadPose:
    """Where a face is in its frame: centre (x, y) pixels, inter-ocular distance pixels, roll radians
    (positive turns the face clockwise on screen)."""

    centre: tuple[float, float]
    iod: float
    roll: float


def head_pose(mesh: np.ndarray) -> HeadPose:
    """HeadPose of a (468, >=2) mesh in frame pixels."""
    right = mesh[list(parts.EYE_RIGHT), :2].mean(0)
    left = mesh[list(parts.EYE_LEFT), :2].mean(0)
    mouth = mesh[list(parts.MOUTH_CORNERS), :2].mean(0)
    d = left - right
    centre = (right + left) / 2 * 0.6 + mouth * 0.4
    return HeadPose((float(centre[0]), float(centre[1])), float(np.hypot(*d)), float(np.arctan2(d[1], d[0])))


class AvatarComposer:
    """Avatar pictures of one style, skin colour and size, cached per choice of parts."""

    def __init__(self, style: Style, skin: str, size: int):
        self.style, self.skin, self.size = style, skin, size
        self._parts = {p.id: p for p in style.parts}

    def avatar(self, choice: tuple[str, ...], gaze=None) -> np.ndarray:
        """(size, size, 4) uint8 RGBA (premultiplied-free, straight alpha) of the parts in `choice`
        (one part id per slot, in parts.SLOTS order), the pupils looking toward gaze (x, y) in [-1, 1]
        (None: straight ahead)."""
        return self._avatar(choice, quantize_gaze(gaze))

    @lru_cache(maxsize=512)
    def _avatar(self, choice: tuple[str, ...], gaze: tuple[float, float]) -> np.ndarray:
        out = np.zeros((self.size, self.size, 4), np.float32)
        for part_id in choice:
            layer, box = self._layer(part_id, gaze if has_pupils(self._parts[part_id]) else (0.0, 0.0))
            if box is None:
                continue
            src, dst = layer[box].astype(np.float32), out[box]       # only the part's own bounding box
            a = src[..., 3:] / 255.0
            dst[..., :3] = src[..., :3] * a + dst[..., :3] * (1 - a)
            dst[..., 3:] = 255.0 * a + dst[..., 3:] * (1 - a)
        return out.round().astype(np.uint8)

    @lru_cache(maxsize=2048)
    def _layer(self, part_id: str, gaze: tuple[float, float]) -> tuple[np.ndarray, tuple[slice, slice] | None]:
        """A part's RGBA layer and the bounding box of its visible pixels (None when it has none)."""
        layer = render_part_layer(self.style, self._parts[part_id], self.skin, self.size, gaze)
        ys, xs = np.nonzero(layer[..., 3])
        if len(ys) == 0:
            return layer, None
        return layer, (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))


def _blend(dst: np.ndarray, rgba: np.ndarray, opacity: float = 1.0) -> None:
    """dst = rgba over dst, in place, with OpenCV's saturating uint8 arithmetic (within 1 of the float
    result, several times faster than numpy float)."""
    alpha = cv2.extractChannel(rgba, 3)
    if opacity < 1.0:
        alpha = cv2.convertScaleAbs(alpha, alpha=opacity)
    alpha3 = cv2.cvtColor(alpha, cv2.COLOR_GRAY2RGB)
    front = cv2.multiply(cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB), alpha3, scale=1 / 255.0)
    back = cv2.multiply(dst, cv2.bitwise_not(alpha3), scale=1 / 255.0)
    cv2.add(front, back, dst=dst)


def _warp(rgba: np.ndarray, centre: tuple[float, float], scale: float, roll: float,
          out_w: int, out_h: int) -> np.ndarray:
    """Place an avatar (S, S, 4) with its centre at `centre`, scaled and rotated by roll (radians)."""
    s = rgba.shape[0]
    m = cv2.getRotationMatrix2D((s / 2, s / 2), -np.degrees(roll), scale)
    m[:, 2] += np.array(centre) - np.array([s / 2, s / 2])
    return cv2.warpAffine(rgba, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0, 0))


def _placement(pose: HeadPose | None, reference: HeadPose | None, s: int) -> tuple[tuple[float, float], float, float]:
    """Centre, scale and roll of the avatar on an (s, s) canvas: following the head's roll, and its scale
    and position relative to the typical pose (`reference`), within bounds."""
    if pose is None or reference is None:
        return (s / 2, s / 2), 0.85, 0.0
    scale = float(np.clip(pose.iod / max(reference.iod, 1e-6), *_SCALE_RANGE))
    shift = (np.array(pose.centre) - np.array(reference.centre)) / max(reference.iod, 1e-6)
    shift = np.clip(shift * 0.25, -_SHIFT_LIMIT, _SHIFT_LIMIT) * s
    return (s / 2 + shift[0], s / 2 + shift[1]), 0.85 * scale, pose.roll


def avatar_frame(avatar: np.ndarray, pose: HeadPose | None, reference: HeadPose | None,
                 opacity: float = 1.0) -> np.ndarray:
    """The `avatar` layout: (S, S, 3) uint8 with the avatar following the head's roll, and its scale and
    position relative to the clip's typical pose (`reference`), within bounds."""
    s = avatar.shape[0]
    frame = np.empty((s, s, 3), np.uint8)
    frame[:] = BACKGROUND
    centre, scale, roll = _placement(pose, reference, s)
    _blend(frame, _warp(avatar, centre, scale, roll, s, s), opacity)
    return frame


def avatar_rgba_frame(avatar: np.ndarray | None, pose: HeadPose | None, reference: HeadPose | None,
                      opacity: float, size: int) -> np.ndarray:
    """The `avatar` layout on a transparent background: (size, size, 4) uint8 RGBA, straight alpha (for a
    page over a stream); all transparent when avatar is None."""
    if avatar is None:
        return np.zeros((size, size, 4), np.uint8)
    centre, scale, roll = _placement(pose, reference, avatar.shape[0])
    out = _warp(avatar, centre, scale, roll, avatar.shape[0], avatar.shape[0])
    if opacity < 1.0:
        out[..., 3] = cv2.convertScaleAbs(out[..., 3], alpha=opacity)
    return out


def overlay_frame(frame: np.ndarray, avatars: list[tuple[np.ndarray, HeadPose]], face_cover: float = 3.2,
                  opacity: float = 1.0) -> np.ndarray:
    """The `overlay` layout: each avatar drawn over its face in the original (H, W, 3) uint8 frame.

    face_cover: avatar width in inter-ocular distances (a drawn head is about 3 of them wide).
    """
    out = frame.copy()
    h, w = frame.shape[:2]
    for avatar, pose in avatars:
        scale = face_cover * pose.iod / avatar.shape[0]
        _blend(out, _warp(avatar, pose.centre, scale, pose.roll, w, h), opacity)
    return out


def side_by_side_frame(frame: np.ndarray, avatar_rgb: np.ndarray) -> np.ndarray:
    """The `side-by-side` layout: the original frame, then the avatar frame scaled to its height."""
    h = frame.shape[0]
    right = cv2.resize(avatar_rgb, (h, h), interpolation=cv2.INTER_AREA)
    return np.concatenate([frame, right], 1)
