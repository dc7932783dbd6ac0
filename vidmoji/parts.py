"""The one source of truth for face parts: slots, label ids, mesh index sets, the canonical crop and the
part windows.

Everything that names a part, a label id, a landmark index or a window size imports it from here, on the
face side (parse, windows) and on the avatar side (templates, rendering, compose) alike.

Left and right are always the SUBJECT's own: the subject's left eye is on the image's right in a frontal
view.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- label ids: the 19 CelebAMask-HQ classes used by face-parsing.PyTorch (BiSeNet) -------------------
LABEL_NAMES: tuple[str, ...] = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
    "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)
LABEL_IDS: dict[str, int] = {name: i for i, name in enumerate(LABEL_NAMES)}
NUM_LABELS = len(LABEL_NAMES)

# A colour per label id, for drawing label maps over frames (RGB).
LABEL_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0), (255, 204, 153), (0, 102, 255), (0, 153, 255), (0, 204, 102), (0, 255, 128),
    (204, 204, 0), (153, 102, 51), (153, 102, 51), (255, 255, 0), (255, 102, 0), (102, 0, 51),
    (255, 0, 102), (204, 0, 153), (255, 153, 102), (255, 255, 153), (102, 102, 153), (102, 51, 0),
    (0, 102, 102),
)

# --- part slots -----------------------------------------------------------------------------------------
SLOTS: tuple[str, ...] = ("face", "eye_left", "eye_right", "brow_left", "brow_right", "nose", "mouth")

# Identity slots: chosen once per subject (a clip or a photo), not per frame, from what the person looks like
# (vidmoji.identity). A style may leave any of them out; an avatar then simply goes without. `hair` is
# matched through a label window and the FAISS index like the per-frame slots; glasses and facial hair are
# picked by their tags. Hair, glasses and facial hair take the hair palette's colour where a part marks
# shapes `data-hair="fill"` (and `data-hair-stroke="shade"`).
IDENTITY_SLOTS: tuple[str, ...] = ("hair", "glasses", "facial_hair")
ALL_SLOTS: tuple[str, ...] = SLOTS + IDENTITY_SLOTS
# Slots with a label window, an embedder and a FAISS index.
INDEXED_SLOTS: tuple[str, ...] = SLOTS + ("hair",)
# Painting order of an avatar's layers, back to front. A hair part draws in two layers: its elements under
# `data-layer="back"` go behind the face, those under `data-layer="front"` (fringes) over the forehead but
# under the eyes and brows, so that expressions always show.
LAYER_ORDER: tuple[tuple[str, str], ...] = (
    ("hair", "back"), ("face", ""), ("hair", "front"), ("nose", ""), ("mouth", ""), ("facial_hair", ""),
    ("eye_left", ""), ("eye_right", ""), ("brow_left", ""), ("brow_right", ""), ("glasses", ""),
)
# The words of ../shared/media/labels/identity.json, which the timeline's "identity" uses.
SKIN_TONES: tuple[str, ...] = ("light", "medium-light", "medium", "medium-dark", "dark")
HAIR_LENGTHS: tuple[str, ...] = ("bald", "short", "medium", "long", "tied")
HAIR_COLOURS: tuple[str, ...] = ("black", "dark_brown", "brown", "auburn", "blond", "grey")
FACIAL_HAIR: tuple[str, ...] = ("none", "stubble", "moustache", "beard")

# The label classes that make up each slot's window, one window channel per entry (in this order).
SLOT_CHANNELS: dict[str, tuple[str, ...]] = {
    "face": ("skin",),
    "eye_left": ("l_eye",),
    "eye_right": ("r_eye",),
    "brow_left": ("l_brow",),
    "brow_right": ("r_brow",),
    "nose": ("nose",),
    "mouth": ("u_lip", "l_lip", "mouth"),
    "hair": ("hair",),
    "glasses": ("eye_g",),
    "facial_hair": ("hair",),
}

# Slots that share one embedder: the subject's left eye/brow is mirrored into the right one's frame.
EMBED_GROUP: dict[str, str] = {
    "face": "face", "eye_left": "eye", "eye_right": "eye", "brow_left": "brow", "brow_right": "brow",
    "nose": "nose", "mouth": "mouth", "hair": "hair",
}
MIRRORED_SLOTS = frozenset({"eye_left", "brow_left"})

# --- The refined mesh: MediaPipe's 468 points, then each iris's centre and four edge points (its 478-point
# numbering; vidmoji.face.iris finds them) ---------------------------------------------------------------
MESH_POINTS = 478
IRIS_RIGHT = (468, 469, 470, 471, 472)   # the subject's right iris, centre first
IRIS_LEFT = (473, 474, 475, 476, 477)

# --- MediaPipe 468-point mesh index sets (ordered polygons, from face_mesh_connections.py) --------------
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
EYE_RIGHT = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
EYE_LEFT = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
BROW_RIGHT = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
BROW_LEFT = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
# Each brow's upper contour (outer to inner) and the lower contour point under each of them.
BROW_RIGHT_UPPER, BROW_RIGHT_LOWER = (70, 63, 105, 66, 107), (46, 53, 52, 65, 55)
BROW_LEFT_UPPER, BROW_LEFT_LOWER = (300, 293, 334, 296, 336), (276, 283, 282, 295, 285)
NOSE = (168, 417, 465, 357, 279, 358, 327, 326, 2, 97, 98, 129, 49, 128, 245, 193)
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
UPPER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291,
             308, 415, 310, 311, 312, 13, 82, 81, 80, 191, 78)
LOWER_LIP = (291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61,
             78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)

# Named single landmarks.
EYE_RIGHT_CORNERS = (33, 133)    # outer, inner
EYE_LEFT_CORNERS = (263, 362)    # outer, inner
EYE_RIGHT_LIDS = ((160, 144), (159, 145), (158, 153))   # (upper, lower) pairs
EYE_LEFT_LIDS = ((387, 373), (386, 374), (385, 380))
MOUTH_CORNERS = (61, 291)        # subject's right, subject's left
INNER_LIP_MID = (13, 14)         # upper, lower
NOSE_TIP = 4
NOSE_ALAE = (129, 358)
FACE_SIDES = (234, 454)

# Polygons painted into the full label map, in painting order (later ones cover earlier ones).
PARSE_POLYGONS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("skin", FACE_OVAL),
    ("nose", NOSE),
    ("r_brow", BROW_RIGHT),
    ("l_brow", BROW_LEFT),
    ("r_eye", EYE_RIGHT),
    ("l_eye", EYE_LEFT),
    ("u_lip", UPPER_LIP),
    ("l_lip", LOWER_LIP),
    ("mouth", LIPS_INNER),
)

# --- the canonical aligned crop -------------------------------------------------------------------------
CROP_SIZE = 306
# Where the subject's right eye centre, left eye centre and mouth centre land in the crop (x, y pixels).
CANONICAL_EYE_RIGHT = (108.0, 128.0)
CANONICAL_EYE_LEFT = (198.0, 128.0)
CANONICAL_MOUTH = (153.0, 222.0)

# --- part windows ---------------------------------------------------------------------------------------
WINDOW_SIZE = 32
RGB_CROP = 224                # side of the RGB part crops that pixel embedders (resnet50) see
WINDOW_SUPERSAMPLE = 4        # windows are rasterised this many times larger, then area-downsampled
WINDOW_BLUR_SIGMA = 1.0       # pixels at WINDOW_SIZE: a line 1-2 px off still overlaps its twin


@dataclass(frozen=True)
class WindowFrame:
    """Where a slot's window sits in the part's own frame.

    Every part, real or drawn, is expressed in a local frame of "units": the reference length of the slot
    (eye: the eye-corner distance; brow: the same side's eye-corner distance; mouth: the mouth-corner
    distance; nose: the alar width; face: the face width) is 100 units and the anchor is the origin, x to
    the subject's left in the image (to the right), y down. The window covers
    [cx - half, cx + half] x [cy - half, cy + half] units.
    """

    cx: float
    cy: float
    half: float


WINDOW_FRAMES: dict[str, WindowFrame] = {
    "eye_left": WindowFrame(0.0, 0.0, 75.0),
    "eye_right": WindowFrame(0.0, 0.0, 75.0),
    # Brows are anchored on their eye so that raising them moves them inside the window.
    "brow_left": WindowFrame(0.0, -70.0, 80.0),
    "brow_right": WindowFrame(0.0, -70.0, 80.0),
    "mouth": WindowFrame(0.0, 0.0, 75.0),
    "nose": WindowFrame(0.0, -20.0, 90.0),
    "face": WindowFrame(0.0, 0.0, 80.0),
    # Hair is drawn and measured in the face's frame (face width 100, origin the face oval's centre, the
    # face shape spans about -50..50 x -60..60): a large window, so that hair to the shoulders and below
    # still falls inside it.
    "hair": WindowFrame(0.0, 15.0, 150.0),
}

# The canonical shape targets that calibrated face geometry is mapped onto, in part units. Templates of
# every style draw their states on the same scale, which is what makes a drawn part and a real part land
# near each other in embedding space.
OPEN_EYE_HEIGHT = 42.0        # lid-to-lid opening of the subject's own resting open eye
NEUTRAL_BROW_Y = -62.0        # brow centre line above the eye anchor at rest
NEUTRAL_BROW_ARCH = 8.0       # the neutral brow's middle rises this much above its ends
BROW_THICKNESS = 14.0         # a brow band's thickness; a subject's own brows are redrawn at it
BROW_DEAD_BAND = 4.0          # brow moves smaller than this (units, per point) from the resting brow are dropped
REST_SAG_QUANTILE = 0.2       # the resting mouth curve is this quantile of a clip's sag (smiles raise the median)
UPPER_LIP_THICKNESS = 9.0     # at the middle, at rest; a subject's own lips are scaled to these
LOWER_LIP_THICKNESS = 14.0
CLOSED_EYE_HEIGHT = 4.0       # a shut eye: a collapsed eye region (drawn as a line this wide)
RESIDUAL_EYE_GAP = 0.65       # share of the open opening an iris-refined contour keeps on a shut eye, at most
# Calibrated openness from the opening relative to the subject's open eye: steep between shut and nearly
# open (where the lid covers the iris), flat around the open eye (whose opening wanders +-10% as people
# look about and talk), so a still open eye stays open. Knots (relative opening, openness); beyond the last
# knot the openness grows WIDE_EYE_GAIN times as fast as the opening (a stare).
EYE_OPENNESS_KNOTS = ((RESIDUAL_EYE_GAP, 0.0), (0.85, 0.75), (1.0, 1.0))
WIDE_EYE_GAIN = 1.0
# Blinks and winks are one decision over both eyes: a wink is one eye below WINK_SHUT while the other is
# above WINK_OPEN and WINK_GAP more open, for WINK_MIN_S or longer; it is then drawn shut. Anything less
# moves both eyes together (their mean). Once shown, a wink holds while the gap stays above WINK_GAP_HOLD. Past FAR_EYE_YAW degrees of yaw the far eye, foreshortened and
# half hidden, follows the near one.
WINK_SHUT = 0.5
WINK_OPEN = 0.65
WINK_GAP = 0.45
WINK_MIN_S = 0.15
WINK_GAP_HOLD = 0.25
FAR_EYE_YAW = 20
# A still eye's openness wanders by about 0.1 as people talk; changes smaller than this are held, so the
# eye parts do not dither between wide, open and half. A blink moves it by 0.5 or more at once.
EYE_DEAD_BAND = 0.15
# Gaze: the iris centre's offset from the subject's straight-ahead (the clip's median), in eye units (eye
# width 100), divided by this, is the gaze in [-1, 1]. Looks to the side measured 15-27 units on the
# project's clips, straight-ahead within 10, so a side look reads beyond 0.25.
GAZE_SCALE = 52.0
GAZE_DEAD_BAND = 0.04
REST_GAP_CAP = 0.03           # cap on the resting lip gap, as a share of the inter-ocular distance
