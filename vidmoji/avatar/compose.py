"""Composing avatar frames: cached RGBA layers of the chosen parts, blended on the style's canvas, then
placed to follow the head (roll, position, scale) in one of three layouts."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from vidmoji import parts
from vidmoji.avatar.templates import (PUPIL_TRAVEL, Look, Style, avatar_view, draw_order, has_pupils,
                                      quantize_gaze, render_part_layer, render_rgba, window_frame)

BACKGROUND = (245, 245, 240)
# The avatar's head follows the face's scale and position only within these bounds, so a face walking
# off-centre does not take the avatar out of the picture.
_SCALE_RANGE = (0.75, 1.3)
_SHIFT_LIMIT = 0.2
# Overlay: the avatar canvas's width in inter-ocular distances (a drawn head is about 3 of them wide).
OVERLAY_FACE_COVER = 3.2
# Where a real head of hair reaches above the face's centre, face units (face width 100): the crown of the
# hair masks (person minus face, MediaPipe's selfie segmentation) of the public photos lies at -114..-130.
# An overlaid avatar with hair is grown (by at most HAIR_COVER_MAX) until its drawn hair reaches this high.
HAIR_COVER_TOP = -122.0
HAIR_COVER_MAX = 1.3
# With a look, the layers drawn before the first of the other slots (hair behind, face, fringe) are blended
# once per face part and kept.
_BASE_SLOTS = frozenset({"hair", "face"})
# The look's layers beside the expression parts: (slot, layer name).
LOOK_LAYERS = (("hair", "back"), ("hair", "front"), ("glasses", ""), ("facial_hair", ""))
# Pixels around an eye's drawing kept in its pupil sprites, for anti-aliasing (see AvatarComposer._pupil_sprites).
_PUPIL_BOX_PAD = 2
# The unclipped pupils are drawn at this many times the output's resolution and moved there, then averaged
# down: moved at the output's own resolution, bilinear sampling blurred their edges by up to half a pixel.
_PUPIL_SUPERSAMPLE = 4


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
    """Avatar pictures of one style, skin colour, size and look (hair, glasses, facial hair; None: none),
    cached per choice of parts."""

    def __init__(self, style: Style, skin: str, size: int, look: Look | None = None):
        self.style, self.skin, self.size, self.look = style, skin, size, look
        self._parts = {p.id: p for p in style.parts}
        self._view = avatar_view(style, look)
        self._pupils: dict[str, bool] = {}     # part id -> has_pupils (which reads the SVG file)
        if look is not None:
            style.hair_colour(look.hair_colour)   # an unknown colour fails here, not mid-render
            for part_id in look.parts().values():
                style.part(part_id)

    @property
    def face_cover(self) -> float:
        """The avatar canvas's width in inter-ocular distances for `overlay_frame`: the drawn face as wide as
        the real one (OVERLAY_FACE_COVER), widened with the frame that holds the hair, and grown (up to
        HAIR_COVER_MAX) until the drawn hair reaches as high as real hair does (HAIR_COVER_TOP)."""
        cover = OVERLAY_FACE_COVER
        if self._view is not None:
            cover *= self._view[2] / self.style.canvas[0]
        if self.look is not None and self.look.hair is not None:
            hair = self._parts[self.look.hair]
            crown = hair_crown(hair)
            if crown is not None:
                p, face = self.style.placement(hair.slot), self.style.placement("face")
                top = (p.y + crown * p.scale - face.y) / face.scale      # face units
                if top < 0:
                    cover *= float(np.clip(HAIR_COVER_TOP / top, 1.0, HAIR_COVER_MAX))
        return cover

    def avatar(self, choice: tuple[str, ...], gaze=None) -> np.ndarray:
        """(size, size, 4) uint8 RGBA (premultiplied-free, straight alpha) of the parts in `choice`
        (one part id per slot, in parts.SLOTS order) and of the look's, the pupils looking toward gaze
        (x, y) in [-1, 1] (None: straight ahead)."""
        return self._avatar(choice, quantize_gaze(gaze))

    def has_pupils(self, part_id: str) -> bool:
        """`has_pupils` of a part, read from its SVG once per composer (it was read on every frame: 2 ms of
        a live frame)."""
        known = self._pupils.get(part_id)
        if known is None:
            known = self._pupils[part_id] = has_pupils(self._parts[part_id])
        return known

    def _layers(self, choice: tuple[str, ...]) -> list[tuple[str, str]]:
        """(part id, layer) to blend, back to front."""
        if self.look is None:
            return [(part_id, "") for part_id in choice]
        chosen = {self._parts[part_id].slot: part_id for part_id in choice}
        chosen.update(self.look.parts())
        return [(chosen[slot], layer) for slot, layer in draw_order(self.look) if slot in chosen]

    # Memory, not speed, sets these bounds (a render's caches grew with the clip's length): an avatar is
    # size * size * 4 bytes (1 MB at 512), and consecutive frames mostly repeat one, so a few dozen suffice.
    @lru_cache(maxsize=32)
    def _avatar(self, choice: tuple[str, ...], gaze: tuple[float, float]) -> np.ndarray:
        layers = self._layers(choice)
        region = self._gaze_region(choice) if gaze != (0.0, 0.0) else None
        if region is not None:
            # Only the eyes' boxes differ from the avatar looking ahead: they alone are blended again, every
            # layer cut to them, in the same order and arithmetic (the same pixels as blending it all: 7 ms a
            # new gaze at 512 px, most frames' gaze is new).
            out = self._avatar(choice, (0.0, 0.0)).copy()
            part = np.zeros((region[0].stop - region[0].start, region[1].stop - region[1].start, 4), np.float32)
            self._blend_layers(part, layers, gaze, region)
            out[region] = _rounded(part)
            return out
        if self.look is None:
            out = np.zeros((self.size, self.size, 4), np.float32)
        else:  # the layers behind the features (hair, face, fringe) change with the face part only: cached
            n = next((i for i, (pid, _) in enumerate(layers) if self._parts[pid].slot not in _BASE_SLOTS), len(layers))
            out = self._base(tuple(layers[:n])).copy()
            layers = layers[n:]
        self._blend_layers(out, layers, gaze)
        return _rounded(out)

    @lru_cache(maxsize=16)
    def _base(self, layers: tuple[tuple[str, str], ...]) -> np.ndarray:
        out = np.zeros((self.size, self.size, 4), np.float32)
        self._blend_layers(out, list(layers), (0.0, 0.0))
        out.setflags(write=False)
        return out

    def _gaze_region(self, choice: tuple[str, ...]) -> tuple[slice, slice] | None:
        """The canvas box holding every eye of `choice` looking anywhere (the union of their sprites' boxes);
        None when no part of it has pupils."""
        boxes = [b.box for b in (self._pupil_sprites(p, "") for p in choice if self.has_pupils(p)) if b is not None]
        if not boxes:
            return None
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        x1, y1 = max(b[2] for b in boxes), max(b[3] for b in boxes)
        return slice(y0, y1), slice(x0, x1)

    def _blend_layers(self, out: np.ndarray, layers: list[tuple[str, str]], gaze: tuple[float, float],
                      region: tuple[slice, slice] | None = None) -> None:
        """Alpha-blend the (part id, layer) layers over `out` ((size, size, 4) float32, or the canvas box
        `region` of it), in order."""
        oy, ox = (region[0].start, region[1].start) if region is not None else (0, 0)
        for part_id, layer_name in layers:
            layer, box = self._layer(part_id, gaze if self.has_pupils(part_id) else (0.0, 0.0), layer_name)
            if box is None:
                continue
            if region is not None:                                    # the layer cut to the region
                y0, y1 = max(box[0].start, region[0].start), min(box[0].stop, region[0].stop)
                x0, x1 = max(box[1].start, region[1].start), min(box[1].stop, region[1].stop)
                if y0 >= y1 or x0 >= x1:
                    continue
                layer = layer[y0 - box[0].start:y1 - box[0].start, x0 - box[1].start:x1 - box[1].start]
                box = (slice(y0, y1), slice(x0, x1))
            box = (slice(box[0].start - oy, box[0].stop - oy), slice(box[1].start - ox, box[1].stop - ox))
            # Over, in the part's own bounding box: dst + (src - dst) * a, with src's alpha taken as opaque
            # (255 * a + dst_alpha * (1 - a)), in place (a third of the time the textbook form took).
            dst = out[box]
            src = layer.astype(np.float32)
            a = src[..., 3:] * np.float32(1 / 255.0)
            src[..., 3] = 255.0
            src -= dst
            src *= a
            dst += src

    @lru_cache(maxsize=2048)
    def _layer(self, part_id: str, gaze: tuple[float, float], layer_name: str = ""
               ) -> tuple[np.ndarray, tuple[slice, slice] | None]:
        """A part's RGBA layer cut to the bounding box of its visible pixels, and that box on the canvas
        (None when it has none). Only the cut is kept: an eye's is a few kB where the canvas is 1 MB. An eye
        looking elsewhere is composed from its pupil sprites (`_pupils_moved`), not drawn again."""
        if gaze != (0.0, 0.0):
            sprites = self._pupil_sprites(part_id, layer_name)
            if sprites is None:
                return np.zeros((0, 0, 4), np.uint8), None
            layer, y0, x0 = self._pupils_moved(sprites, gaze), sprites.box[1], sprites.box[0]
        else:
            hair = self.look.hair_colour if self.look is not None else None
            layer, y0, x0 = render_part_layer(self.style, self._parts[part_id], self.skin, self.size, gaze,
                                              layer_name, hair, self._view), 0, 0
        ys, xs = np.nonzero(layer[..., 3])
        if len(ys) == 0:
            return layer[:0, :0], None
        box = (slice(int(ys.min()), int(ys.max()) + 1), slice(int(xs.min()), int(xs.max()) + 1))
        cut = layer[box].copy()
        cut.setflags(write=False)
        return cut, (slice(box[0].start + y0, box[0].stop + y0), slice(box[1].start + x0, box[1].stop + x0))

    def _pixels_per_unit(self, slot: str) -> float:
        """Output pixels per unit of a part of the slot (parts are drawn 100 units to an eye's width)."""
        side = self._view[2] if self._view is not None else float(self.style.canvas[0])
        return self.style.placement(slot).scale * self.size / side

    @lru_cache(maxsize=128)
    def _pupil_sprites(self, part_id: str, layer_name: str = "") -> "_PupilSprites | None":
        """The pieces an eye looking anywhere is composed from: what is drawn under and over its pupils and
        the pupils' clip, in the box of the eye looking ahead (and _PUPIL_BOX_PAD pixels for anti-aliasing:
        a pupil moves inside its eye's clip, so that box bounds it), and the pupils unclipped, in that box
        grown by their furthest travel. None: the part draws nothing."""
        ahead = self._layer(part_id, (0.0, 0.0), layer_name)[1]
        if ahead is None:
            return None
        part = self._parts[part_id]
        hair = self.look.hair_colour if self.look is not None else None
        w, h = self.size, round(self.size * self.style.canvas[1] / self.style.canvas[0])
        box = (max(ahead[1].start - _PUPIL_BOX_PAD, 0), max(ahead[0].start - _PUPIL_BOX_PAD, 0),
               min(ahead[1].stop + _PUPIL_BOX_PAD, w), min(ahead[0].stop + _PUPIL_BOX_PAD, h))
        unit = self._pixels_per_unit(part.slot)
        margin = (int(np.ceil(PUPIL_TRAVEL[0] * unit)) + 2, int(np.ceil(PUPIL_TRAVEL[1] * unit)) + 2)
        grown = (box[0] - margin[0], box[1] - margin[1], box[2] + margin[0], box[3] + margin[1])

        def piece(name: str, pixels, scale: int = 1) -> np.ndarray:
            return _premultiplied(render_part_layer(self.style, part, self.skin, self.size * scale, None, layer_name,
                                                    hair, self._view, tuple(v * scale for v in pixels), piece=name))

        return _PupilSprites(box, margin, unit, piece("under", box), piece("over", box),
                             piece("clip", box)[..., 3:] / 255.0, piece("pupil", grown, _PUPIL_SUPERSAMPLE))

    @staticmethod
    def _pupils_moved(sprites: "_PupilSprites", gaze: tuple[float, float]) -> np.ndarray:
        """The eye with its pupils moved toward gaze, (box height, box width, 4) uint8 straight-alpha RGBA: the
        pupils shifted by gaze times PUPIL_TRAVEL (sub-pixel, bilinear, premultiplied), masked by their clip,
        between the pieces under and over them (what cairo draws, within a few levels at anti-aliased edges)."""
        bw, bh = sprites.box[2] - sprites.box[0], sprites.box[3] - sprites.box[1]
        k = _PUPIL_SUPERSAMPLE
        dx = (gaze[0] * PUPIL_TRAVEL[0] * sprites.unit - sprites.margin[0]) * k
        dy = (gaze[1] * PUPIL_TRAVEL[1] * sprites.unit - sprites.margin[1]) * k
        pupil = cv2.warpAffine(sprites.pupil, np.float32([[1, 0, dx], [0, 1, dy]]), (bw * k, bh * k),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        pupil = cv2.resize(pupil, (bw, bh), interpolation=cv2.INTER_AREA) * sprites.clip
        out = pupil + sprites.under * (1.0 - pupil[..., 3:] / 255.0)
        out = sprites.over + out * (1.0 - sprites.over[..., 3:] / 255.0)
        return _straight(out)


@dataclass(frozen=True)
class _PupilSprites:
    """An eye's pieces for moving its pupils (see AvatarComposer._pupil_sprites): box (x0, y0, x1, y1) output
    pixels; margin (x, y) pixels the unclipped pupils' picture extends beyond it; unit output pixels per part
    unit; under, over and pupil premultiplied float32 RGBA, clip (h, w, 1) coverage in [0, 1]."""

    box: tuple[int, int, int, int]
    margin: tuple[int, int]
    unit: float
    under: np.ndarray
    over: np.ndarray
    clip: np.ndarray
    pupil: np.ndarray


def _rounded(canvas: np.ndarray) -> np.ndarray:
    """A float canvas in [0, 255] to uint8, rounded half to even as numpy's round (OpenCV's saturating
    conversion: one pass, where round() then astype() took two and a float copy)."""
    return cv2.convertScaleAbs(np.ascontiguousarray(canvas))


def _premultiplied(rgba: np.ndarray) -> np.ndarray:
    """uint8 straight-alpha RGBA -> float32 premultiplied (0..255 in every channel)."""
    out = rgba.astype(np.float32)
    out[..., :3] *= out[..., 3:] / 255.0
    return out


def _straight(premultiplied: np.ndarray) -> np.ndarray:
    """float32 premultiplied RGBA (0..255) -> uint8 straight-alpha RGBA, 0 where transparent."""
    a = premultiplied[..., 3:]
    rgb = np.where(a > 0, premultiplied[..., :3] * 255.0 / np.maximum(a, 1e-6), 0.0)
    out = np.empty(premultiplied.shape, np.uint8)
    out[..., :3] = np.clip(np.rint(rgb), 0, 255)
    out[..., 3:] = np.clip(np.rint(a), 0, 255)
    return out


def hair_crown(part) -> float | None:
    """How high a hair part reaches over the middle of the head (x within +-40 units): the median over
    those columns of the topmost drawn pixel, in the part's units (a bun on top barely moves it). None:
    it draws nothing there."""
    w = window_frame(part.slot)
    size = 2 * round(w.half)                                   # about one pixel per unit
    alpha = render_rgba(part, size)[..., 3] > 0
    u = 2 * w.half / size
    x0 = round((-40 - (w.cx - w.half)) / u)
    cols = alpha[:, x0:x0 + round(80 / u)]
    tops = [np.argmax(c) for c in cols.T if c.any()]
    if not tops:
        return None
    return float(w.cy - w.half + np.median(tops) * u)


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


def avatar_placement(pose: HeadPose | None, reference: HeadPose | None, s: int
                     ) -> tuple[tuple[float, float], float, float]:
    """Where the `avatar` layout puts an (s, s) avatar in an (s, s) picture: centre (x, y) pixels, scale
    and roll radians, following the head's roll, and its scale and position relative to the clip's
    typical pose (`reference`), within bounds; centred and upright without a pose."""
    if pose is None or reference is None:
        return (s / 2, s / 2), 0.85, 0.0
    scale = float(np.clip(pose.iod / max(reference.iod, 1e-6), *_SCALE_RANGE))
    shift = (np.array(pose.centre) - np.array(reference.centre)) / max(reference.iod, 1e-6)
    shift = np.clip(shift * 0.25, -_SHIFT_LIMIT, _SHIFT_LIMIT) * s
    return (s / 2 + float(shift[0]), s / 2 + float(shift[1])), 0.85 * scale, pose.roll


@lru_cache(maxsize=4)
def _background(s: int) -> np.ndarray:
    """An (s, s, 3) picture of BACKGROUND, to copy (filling one per frame cost a 512 px frame 1.2 ms)."""
    frame = np.empty((s, s, 3), np.uint8)
    frame[:] = BACKGROUND
    frame.setflags(write=False)
    return frame


def avatar_frame(avatar: np.ndarray, pose: HeadPose | None, reference: HeadPose | None,
                 opacity: float = 1.0) -> np.ndarray:
    """The `avatar` layout: (S, S, 3) uint8, the avatar placed by `avatar_placement` on BACKGROUND."""
    s = avatar.shape[0]
    frame = _background(s).copy()
    centre, scale, roll = avatar_placement(pose, reference, s)
    _blend(frame, _warp(avatar, centre, scale, roll, s, s), opacity)
    return frame


def avatar_rgba_frame(avatar: np.ndarray | None, pose: HeadPose | None, reference: HeadPose | None,
                      opacity: float = 1.0, size: int | None = None) -> np.ndarray:
    """The `avatar` layout on a transparent background: (S, S, 4) uint8 straight-alpha RGBA, alpha 0
    wherever the avatar is not drawn (all of it when avatar is None: then S is `size`). Warped
    premultiplied, so the edges keep their colour instead of fading through black."""
    if avatar is None:
        return np.zeros((size, size, 4), np.uint8)
    s = avatar.shape[0]
    centre, scale, roll = avatar_placement(pose, reference, s)
    warped = _warp(_premultiplied(avatar), centre, scale, roll, s, s)
    if opacity < 1.0:
        warped *= opacity                 # premultiplied: fading scales colour and alpha alike
    return _straight(warped)


def overlay_frame(frame: np.ndarray, avatars: list[tuple],
                  face_cover: float = OVERLAY_FACE_COVER, opacity: float = 1.0) -> np.ndarray:
    """The `overlay` layout: each avatar drawn over its face in the original (H, W, 3) uint8 frame.

    face_cover: avatar width in inter-ocular distances (a drawn head is about 3 of them wide); an avatar
    with hair needs its composer's `AvatarComposer.face_cover` so that the drawn hair hides the real hair.
    """
    out = frame.copy()
    h, w = frame.shape[:2]
    for avatar, pose, *own_cover in avatars:          # (avatar, pose[, its own face_cover])
        scale = (own_cover[0] if own_cover else face_cover) * pose.iod / avatar.shape[0]
        _blend(out, _warp(avatar, pose.centre, scale, pose.roll, w, h), opacity)
    return out


def side_by_side_frame(frame: np.ndarray, avatar_rgb: np.ndarray) -> np.ndarray:
    """The `side-by-side` layout: the original frame, then the avatar frame scaled to its height."""
    h = frame.shape[0]
    right = cv2.resize(avatar_rgb, (h, h), interpolation=cv2.INTER_AREA)
    return np.concatenate([frame, right], 1)
