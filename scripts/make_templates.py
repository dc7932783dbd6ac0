"""Generate the built-in avatar styles (flat, line, cute) as SVG part templates.

    python scripts/make_templates.py [--out templates]

Original artwork for vidmoji (CC0-1.0). Every style draws the same parametric shapes (an eye of a given
opening, a mouth of a given gap and corner curvature, a brow at a given height and tilt...) in its own
colours and line work, so the same state lands on the same label-map geometry in every style: the shape
targets come from `vidmoji.parts` and are shared; only the look differs. Each part is drawn in its slot's
local frame (see `parts.WindowFrame`) with the SVG viewBox set to the slot's window, so rasterising a part
as a square image gives exactly its label-map window.

Running it twice gives byte-identical files (no randomness, fixed float formatting).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing the package
from vidmoji import parts  # noqa: E402
from vidmoji.avatar.templates import shade_colour as shade  # noqa: E402

AUTHOR = "vidmoji contributors"
LICENCE = "CC0-1.0"
CANVAS = 512
SAMPLES = 48  # points per drawn curve: dense enough that straight segments read as curves at 512 px

# --- geometry helpers -------------------------------------------------------------------------------------


def num(v: float) -> str:
    """A coordinate with at most two decimals and no negative zero."""
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def path_d(points: list[tuple[float, float]], closed: bool = True) -> str:
    """SVG path data through points (straight segments), closed with Z when asked."""
    head, *rest = points
    d = f"M{num(head[0])} {num(head[1])}" + "".join(f"L{num(x)} {num(y)}" for x, y in rest)
    return d + ("Z" if closed else "")


def ts(n: int = SAMPLES) -> list[float]:
    """n + 1 samples of t in [-1, 1]."""
    return [-1.0 + 2.0 * i / n for i in range(n + 1)]


def bump(t: float, p: float) -> float:
    """(1 - t^2)^p: 0 at the corners (t = +-1), 1 in the middle; p < 1 gives fuller, rounder ends."""
    return max(0.0, 1.0 - t * t) ** p


def attrs(**kw: object) -> str:
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{v}"' for k, v in kw.items() if v is not None)


def el(tag: str, cls: str, **kw: object) -> str:
    return f'<{tag} class="{cls}"{attrs(**kw)}/>'


def svg_doc(slot: str, body: list[str], defs: list[str] | None = None) -> str:
    """A part file: the viewBox is the slot's window in part units."""
    w = parts.WINDOW_FRAMES[slot]
    x0, y0, side = w.cx - w.half, w.cy - w.half, 2 * w.half
    lines = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{num(x0)} {num(y0)} {num(side)} {num(side)}"'
             f' width="{num(side)}" height="{num(side)}">']
    if defs:
        lines += ["<defs>", *defs, "</defs>"]
    lines += body
    lines.append("</svg>")
    return "\n".join(lines) + "\n"


def mirrored(body: list[str]) -> list[str]:
    """Wrap a right-side drawing so it becomes the left side's (x -> -x in the part frame)."""
    return ['<g transform="scale(-1 1)">', *body, "</g>"]


# --- the three looks --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    x: float
    y: float
    scale: float  # canvas pixels per part unit


@dataclass(frozen=True)
class Look:
    """What differs between styles: colours, line work, proportions on the canvas. Shapes are shared."""

    name: str
    title: str
    description: str
    palette: dict[str, str]
    default_skin: str
    face: Placement
    eye_right: Placement
    eye_left: Placement
    nose: Placement
    mouth: Placement
    ink: str                 # outline / dark colour
    line_px: float           # outline width on the canvas, pixels (0: no outlines)
    eye_fill: str
    iris: str | None         # None: the whole eye is dark (cute)
    pupil: str
    eye_roundness: float     # exponent of the lid curves; < 1 is fuller
    lashes: bool
    brow: str
    brow_thickness: float    # units
    upper_lip: str
    lower_lip: str
    inner_mouth: str
    tongue: str
    teeth: str
    lip_outline: bool
    lip_scale: float         # lip thickness relative to the shared targets (styles differ a little)
    cupid_bow: float
    nose_style: str          # "shade" | "lines" | "dot"
    blush: str | None

    def width(self, placement: Placement, px: float | None = None) -> float:
        """A canvas width in pixels as part units for the slot drawn at `placement`."""
        return (self.line_px if px is None else px) / placement.scale

    def placements(self) -> dict[str, Placement]:
        return {
            "face": self.face, "eye_left": self.eye_left, "eye_right": self.eye_right,
            "brow_left": self.eye_left, "brow_right": self.eye_right, "nose": self.nose, "mouth": self.mouth,
        }


SKIN_TONES = {
    "light": "#F6D5C3", "medium-light": "#E3B08C", "medium": "#C68A5E",
    "medium-dark": "#8E5B3C", "dark": "#5B3A26",
}

LOOKS = (
    Look(
        name="flat", title="Flat",
        description="Flat colours and no gradients: the classic yellow emoji look, with a skin palette.",
        palette={"classic": "#FFC83D", **SKIN_TONES}, default_skin="classic",
        face=Placement(256, 264, 3.25), eye_right=Placement(180, 236, 0.92), eye_left=Placement(332, 236, 0.92),
        nose=Placement(256, 302, 0.42), mouth=Placement(256, 354, 1.2),
        ink="#3B2614", line_px=2.5, eye_fill="#FFFFFF", iris="#7B4B2A", pupil="#24160C",
        eye_roundness=0.75, lashes=False, brow="#4E2F18", brow_thickness=15.0,
        upper_lip="#C24E3A", lower_lip="#D8654E", inner_mouth="#5A1A1A", tongue="#E07078",
        teeth="#FFFFFF", lip_outline=False, lip_scale=1.04, cupid_bow=0.25, nose_style="shade", blush=None,
    ),
    Look(
        name="line", title="Line art",
        description="Black ink outlines on paper (or a skin tone): drawn like a pen sketch.",
        palette={"paper": "#FFFFFF", **SKIN_TONES}, default_skin="paper",
        face=Placement(256, 264, 3.25), eye_right=Placement(180, 238, 0.92), eye_left=Placement(332, 238, 0.92),
        nose=Placement(256, 304, 0.5), mouth=Placement(256, 358, 1.15),
        ink="#1A1A1A", line_px=3.2, eye_fill="#FFFFFF", iris="#FFFFFF", pupil="#1A1A1A",
        eye_roundness=0.9, lashes=False, brow="#1A1A1A", brow_thickness=14.0,
        upper_lip="#FFFFFF", lower_lip="#FFFFFF", inner_mouth="#1A1A1A", tongue="#FFFFFF",
        teeth="#FFFFFF", lip_outline=True, lip_scale=1.0, cupid_bow=0.3, nose_style="lines", blush=None,
    ),
    Look(
        name="cute", title="Cute",
        description="Rounded kawaii: big glossy eyes with highlights, blushing cheeks, soft colours.",
        palette={"peach": "#FFE3D3", **SKIN_TONES}, default_skin="peach",
        face=Placement(256, 264, 3.5), eye_right=Placement(176, 262, 1.05), eye_left=Placement(336, 262, 1.05),
        nose=Placement(256, 314, 0.3), mouth=Placement(256, 362, 0.85),
        ink="#3B2B3F", line_px=0.0, eye_fill="#3B2B3F", iris=None, pupil="#3B2B3F",
        eye_roundness=0.45, lashes=True, brow="#634036", brow_thickness=13.0,
        upper_lip="#F59AA8", lower_lip="#F38A9C", inner_mouth="#A8324F", tongue="#FF8FA3",
        teeth="#FFFFFF", lip_outline=False, lip_scale=0.96, cupid_bow=0.0, nose_style="dot", blush="#FF8FA3",
    ),
)


# --- eyes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EyeState:
    name: str
    tags: tuple[str, ...]
    opening: float = 0.0         # lid-to-lid at the middle, units; 0: closed (a lid line)
    upper_share: float = 0.6     # share of the opening above the corner line
    gaze: tuple[float, float] = (0.0, 0.0)   # pupil direction in the image (+x: subject's left)
    lid_sag: float = 7.0         # closed eyes: how far the lid line sags (negative: arched up, happy)


EYES = (
    EyeState("open", ("open",), parts.OPEN_EYE_HEIGHT),
    EyeState("open_look_left", ("open", "look_left"), parts.OPEN_EYE_HEIGHT, gaze=(1.0, 0.0)),
    EyeState("open_look_right", ("open", "look_right"), parts.OPEN_EYE_HEIGHT, gaze=(-1.0, 0.0)),
    EyeState("open_look_up", ("open", "look_up"), parts.OPEN_EYE_HEIGHT, gaze=(0.0, -1.0)),
    EyeState("wide", ("wide",), 58.0),
    EyeState("half", ("half",), 20.0, upper_share=0.35),
    EyeState("squint", ("half", "squint"), 24.0, upper_share=0.7),
    EyeState("closed", ("closed",)),
    EyeState("closed_happy", ("closed", "happy"), lid_sag=-10.0),
)


def eye_lids(state: EyeState, look: Look) -> tuple[list, list]:
    """Upper lid (left to right) and lower lid (left to right) of an open eye, corners at (+-50, 0)."""
    up = state.opening * state.upper_share
    lo = state.opening - up
    upper = [(50 * t, -up * bump(t, look.eye_roundness)) for t in ts()]
    lower = [(50 * t, lo * bump(t, look.eye_roundness)) for t in ts()]
    return upper, lower


def draw_eye_right(look: Look, state: EyeState, pid: str) -> tuple[list[str], list[str]]:
    """The subject's right eye (image left; its outer corner at -x). Returns (defs, body)."""
    cls = "r_eye"
    lw = look.width(look.eye_right)
    ink = look.ink
    lash_lines: list[str] = []
    if look.lashes:  # two short lashes at the outer corner
        for (x0, y0), (x1, y1) in (((-47, -5), (-60, -13)), ((-42, -10), (-52, -21))):
            lash_lines.append(el("path", "deco", d=f"M{x0} {y0}L{x1} {y1}", fill="none", stroke=ink,
                                 stroke_width=num(look.width(look.eye_right, 2.6)), stroke_linecap="round"))
    if state.opening == 0:
        lid = [(50 * t, state.lid_sag * bump(t, 1.0)) for t in ts()]
        width = look.width(look.eye_right, 5.0 if look.name != "line" else 3.6)
        body = [el("path", cls, d=path_d(lid, closed=False), fill="none", stroke=ink, stroke_width=num(width),
                   stroke_linecap="round")]
        return [], body + lash_lines
    upper, lower = eye_lids(state, look)
    outline = upper + lower[::-1][1:-1]
    clip_id = f"{pid}-clip"
    defs = [f'<clipPath id="{clip_id}"><path d="{path_d(outline)}"/></clipPath>']
    body = [el("path", cls, d=path_d(outline), fill=look.eye_fill,
               stroke=ink if look.line_px else None, stroke_width=num(lw) if look.line_px else None,
               stroke_linejoin="round" if look.line_px else None)]
    gx, gy = state.gaze
    cx, cy = 15.0 * gx, 7.0 * gy + (state.upper_share - 0.6) * -state.opening * 0.5
    clip = f"url(#{clip_id})"
    # The iris, pupil and highlights are one layer that follows the gaze: moved by the inner group's
    # translate (set by vidmoji.avatar.templates from the measured gaze), clipped by the eye's opening
    # on the outer group, so the clip stays put while the pupil moves.
    if look.iris is not None:
        pupil = [el("circle", "deco", cx=num(cx), cy=num(cy), r="17", fill=look.iris,
                    stroke=ink if look.name == "line" else None,
                    stroke_width=num(look.width(look.eye_right, 2.4)) if look.name == "line" else None),
                 el("circle", "deco", cx=num(cx), cy=num(cy), r="8", fill=look.pupil),
                 el("circle", "deco", cx=num(cx - 5), cy=num(cy - 6), r="3.5", fill="#FFFFFF")]
    else:  # glossy dark eye: highlights follow the gaze
        pupil = [el("circle", "deco", cx=num(cx - 12), cy=num(cy - 7), r="9", fill="#FFFFFF"),
                 el("circle", "deco", cx=num(cx + 10), cy=num(cy + 7), r="4.5", fill="#FFFFFF"),
                 el("ellipse", "deco", cx=num(cx + 2), cy=num(state.opening * 0.25), rx="26",
                    ry=num(state.opening * 0.22), fill="#6E5A86", opacity="0.45")]
    body.append(f'<g class="deco" data-layer="pupil" clip-path="{clip}"><g data-gaze="1" transform="translate(0 0)">'
                + "".join(pupil) + "</g></g>")
    # The upper lid line is the stroke that makes an eye read as an eye in every look.
    lid_px = {"flat": 4.0, "line": 5.0, "cute": 3.0}[look.name]
    body.append(el("path", "deco", d=path_d(upper, closed=False), fill="none", stroke=ink,
                   stroke_width=num(look.width(look.eye_right, lid_px)), stroke_linecap="round"))
    return defs, body + lash_lines


# --- brows ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrowState:
    name: str
    tags: tuple[str, ...]
    base: float = parts.NEUTRAL_BROW_Y   # mean height of the centre line, units
    arch: float = 8.0                    # how much the middle rises above the ends
    tilt: float = 0.0                    # inner end raised by this much (negative: lowered, frowning)


EXTRA_RAISE, EXTRA_LOWER = 18.0, 10.0
BROWS = (
    BrowState("neutral", ("neutral",)),
    BrowState("neutral_flat", ("neutral", "flat"), arch=2.0),
    BrowState("neutral_arched", ("neutral", "arched"), arch=18.0),
    BrowState("raised", ("raised",), base=parts.NEUTRAL_BROW_Y - EXTRA_RAISE, arch=12.0),
    BrowState("raised_worried", ("raised", "worried"), base=parts.NEUTRAL_BROW_Y - 12.0, arch=4.0, tilt=12.0),
    BrowState("lowered", ("lowered",), base=parts.NEUTRAL_BROW_Y + EXTRA_LOWER, arch=4.0),
    BrowState("lowered_angry", ("lowered", "angry"), base=parts.NEUTRAL_BROW_Y + 6.0, arch=2.0, tilt=-12.0),
)


def draw_brow_right(look: Look, state: BrowState) -> list[str]:
    """The subject's right brow (image left; its inner end at +x): a band ~136 units long (mesh brows run longer still)."""
    centre = []
    for t in ts():
        x = 2.0 + 68.0 * t
        y = state.base + state.arch * (t * t - 1.0 / 3.0) - state.tilt * t / 2.0
        # Thicker at the inner end, rounded at both ends.
        half = look.brow_thickness / 2.0 * (0.6 + 0.4 * (t + 1.0) / 2.0) * (1.0 - abs(t) ** 6) ** 0.5
        centre.append((x, y, half))
    top = [(x, y - h) for x, y, h in centre]
    bottom = [(x, y + h) for x, y, h in centre[::-1]]
    return [el("path", "r_brow", d=path_d(top + bottom), fill=look.brow)]


# --- mouths -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MouthState:
    name: str
    tags: tuple[str, ...]
    curve: float = 2.0        # how far the lips' meeting line sags in the middle (+: smile, -: frown)
    gap: float = 0.0          # inner-mouth opening at the middle, units
    upper_share: float = 0.45  # share of the gap above the meeting line
    roundness: float = 0.75    # exponent of the inner-mouth curves; smaller is rounder
    upper_lip: float = 9.0     # lip thickness in the middle, units (the mesh's lips: thin upper, fuller lower)
    lower_lip: float = 14.0
    lip_fullness: float = 0.6
    skew: float = 0.0          # asymmetric corner (smirk)
    teeth: bool = False
    tongue: bool = False


MOUTHS = (
    MouthState("closed", ("closed",)),
    MouthState("slightly_open", ("slightly_open",), gap=10.0, upper_share=0.5, roundness=0.8),
    MouthState("open", ("open",), gap=30.0, upper_share=0.4, roundness=0.7, teeth=True),
    MouthState("wide_open", ("wide_open",), curve=0.0, gap=54.0, upper_share=0.35, roundness=0.6,
               teeth=True, tongue=True),
    MouthState("round", ("round",), curve=0.0, gap=48.0, upper_share=0.45, roundness=0.5, upper_lip=12.0,
               lower_lip=15.0, lip_fullness=0.4),
    MouthState("smile", ("smile",), curve=12.0),
    MouthState("smile_slight", ("smile", "slight"), curve=6.0),
    MouthState("smile_open_slight", ("smile_open", "slight", "smile"), curve=6.0, gap=14.0, upper_share=0.4,
               roundness=0.8, teeth=True),
    MouthState("grin", ("smile_open", "grin", "smile"), curve=9.0, gap=22.0, upper_share=0.4, roundness=0.7,
               teeth=True),
    MouthState("smile_open", ("smile_open", "smile"), curve=12.0, gap=22.0, upper_share=0.1, roundness=0.8,
               teeth=True),
    MouthState("smile_teeth", ("smile_open", "teeth", "smile"), curve=14.0, gap=14.0, upper_share=0.2,
               roundness=0.6, teeth=True),
    MouthState("laugh", ("smile_open", "laugh", "smile"), curve=14.0, gap=40.0, upper_share=0.1, roundness=0.7,
               teeth=True, tongue=True),
    MouthState("frown", ("frown",), curve=-10.0),
    MouthState("frown_open", ("frown", "open"), curve=-10.0, gap=18.0, upper_share=0.6, roundness=0.8),
    MouthState("pout", ("pout",), curve=0.0, upper_lip=15.0, lower_lip=21.0, lip_fullness=0.35),
    MouthState("smirk", ("smirk",), curve=7.0, skew=0.9),
)


def draw_mouth(look: Look, state: MouthState, pid: str) -> tuple[list[str], list[str]]:
    """A mouth with its corners at (+-50, 0): upper lip, lower lip and (when open) the inner mouth."""
    def meet(t: float) -> float:
        return state.curve * bump(t, 1.0) * (1.0 + state.skew * t)

    up_gap = state.gap * state.upper_share
    lo_gap = state.gap - up_gap
    inner_up = [(50 * t, meet(t) - up_gap * bump(t, state.roundness)) for t in ts()]
    inner_lo = [(50 * t, meet(t) + lo_gap * bump(t, state.roundness)) for t in ts()]
    bow = [1.0 - look.cupid_bow * math.exp(-((t / 0.14) ** 2)) for t in ts()]
    thick_up, thick_lo = state.upper_lip * look.lip_scale, state.lower_lip * look.lip_scale
    outer_up = [(x, y - thick_up * bump(t, state.lip_fullness) * b)
                for (x, y), t, b in zip(inner_up, ts(), bow)]
    outer_lo = [(x, y + thick_lo * bump(t, state.lip_fullness)) for (x, y), t in zip(inner_lo, ts())]

    outline = {}
    if look.lip_outline:
        outline = dict(stroke=look.ink, stroke_width=num(look.width(look.mouth)), stroke_linejoin="round")
    body = [
        el("path", "u_lip", d=path_d(outer_up + inner_up[::-1][1:-1]), fill=look.upper_lip, **outline),
        el("path", "l_lip", d=path_d(outer_lo + inner_lo[::-1][1:-1]), fill=look.lower_lip, **outline),
    ]
    defs: list[str] = []
    if state.gap > 0:
        inner = inner_up + inner_lo[::-1][1:-1]
        clip_id = f"{pid}-clip"
        defs.append(f'<clipPath id="{clip_id}"><path d="{path_d(inner)}"/></clipPath>')
        body.append(el("path", "mouth", d=path_d(inner), fill=look.inner_mouth, **outline))
        clip = f"url(#{clip_id})"
        stroke = dict(stroke=look.ink, stroke_width=num(look.width(look.mouth, 2.0))) if look.lip_outline else {}
        if state.teeth:
            teeth_h = min(12.0, state.gap * 0.45)
            band = [(x, y + teeth_h * bump(t, 0.3)) for (x, y), t in zip(inner_up, ts())]
            body.append(el("path", "deco", d=path_d(inner_up + band[::-1]), fill=look.teeth, clip_path=clip,
                           **stroke))
        if state.tongue:
            low = max(y for _, y in inner_lo)
            body.append(el("ellipse", "deco", cx="0", cy=num(low), rx="30", ry=num(state.gap * 0.32),
                           fill=look.tongue, clip_path=clip, **stroke))
    elif look.lip_outline or look.name == "flat":
        # The meeting line of closed lips, drawn so a closed mouth reads as a mouth.
        body.append(el("path", "deco", d=path_d(inner_up, closed=False), fill="none", stroke=look.ink,
                       stroke_width=num(look.width(look.mouth, 2.5)), stroke_linecap="round"))
    if look.lip_outline:  # the lips' outlines go on top of everything inside the mouth
        for region in (outer_up + inner_up[::-1], outer_lo + inner_lo[::-1]):
            body.append(el("path", "deco", d=path_d(region), fill="none", **outline))
    return defs, body


# --- noses ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoseShape:
    name: str
    tags: tuple[str, ...]
    length: float      # nose tip to top of the bridge, units
    bridge: float      # half width of the bridge at the top
    flare: float       # how early the sides widen towards the alae (higher: later, narrower nose)


NOSES = (
    NoseShape("button", ("button",), length=90.0, bridge=24.0, flare=1.5),
    NoseShape("straight", ("straight",), length=104.0, bridge=20.0, flare=1.1),
    NoseShape("wide", ("wide",), length=98.0, bridge=30.0, flare=1.8),
)


def draw_nose(look: Look, shape: NoseShape) -> list[str]:
    """The nose region from the bridge down to the alae (alar width 100 units, tip at the origin)."""
    n = SAMPLES // 2
    side = []
    for i in range(n + 1):
        s = i / n
        x = shape.bridge + (50.0 - shape.bridge) * s ** shape.flare
        side.append((x, -shape.length + (shape.length + 4.0) * s))
    base = [(44.0, 12.0), (30.0, 15.0), (15.0, 12.0), (0.0, 14.0)]
    right = side + base
    left = [(-x, y) for x, y in right[::-1]]
    region = right + left[1:]
    # The region is the label; the picture is drawn by decorations (a whole shaded nose reads as a tube).
    body = [el("path", "nose", d=path_d(region), fill="none")]
    ink_w = look.width(look.nose, {"flat": 2.2, "line": 3.0, "cute": 2.0}[look.name])
    if look.nose_style == "shade":
        tip = [(x, y) for x, y in right if y > -32]
        tip = tip + [(-x, y) for x, y in tip[::-1]][1:]
        body.append(el("path", "deco", d=path_d(tip), fill=shade(look.palette[look.default_skin]), opacity="0.6",
                       data_skin="shade"))
        for sx in (-1, 1):
            body.append(el("ellipse", "deco", cx=num(sx * 20), cy="7", rx="8", ry="4.5", fill=look.ink,
                           opacity="0.55"))
    elif look.nose_style == "lines":  # a bridge line on one side running into a hook under the tip
        hook = "M14 -70C16 -40 30 -10 26 4C22 14 6 14 -4 9"
        body.append(el("path", "deco", d=hook, fill="none", stroke=look.ink, stroke_width=num(ink_w),
                       stroke_linecap="round", stroke_linejoin="round"))
        body.append(el("path", "deco", d="M-30 6C-26 12 -18 13 -14 10", fill="none", stroke=look.ink,
                       stroke_width=num(ink_w), stroke_linecap="round"))
    else:
        body.append(el("ellipse", "deco", cx="0", cy="4", rx="22", ry="13", data_skin="shade",
                       fill=shade(look.palette[look.default_skin], 0.85)))
    return body


# --- face shapes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceShape:
    name: str
    tags: tuple[str, ...]
    half_height: float
    top: float          # superellipse exponent of the upper half (2: ellipse, higher: squarer)
    bottom: float       # of the lower half
    chin_taper: float   # narrowing of the lower half towards the chin


FACES = (
    FaceShape("round", ("round",), 54.0, 2.0, 2.0, 0.0),
    FaceShape("oval", ("oval",), 62.0, 2.1, 2.0, 0.1),
    FaceShape("square", ("square",), 58.0, 3.6, 3.6, 0.1),
    FaceShape("heart", ("heart",), 60.0, 2.6, 1.9, 0.22),
    FaceShape("long", ("long",), 67.0, 2.5, 2.4, 0.12),
)


def face_outline(shape: FaceShape) -> list[tuple[float, float]]:
    points = []
    n = SAMPLES * 4
    for i in range(n):
        a = 2.0 * math.pi * i / n
        c, s = math.cos(a), math.sin(a)
        e = shape.top if s < 0 else shape.bottom
        x = 50.0 * math.copysign(abs(c) ** (2.0 / e), c)
        y = shape.half_height * math.copysign(abs(s) ** (2.0 / e), s)
        if y > 0:
            x *= 1.0 - shape.chin_taper * (y / shape.half_height) ** 2
        points.append((x, y))
    return points


def draw_face(look: Look, shape: FaceShape) -> list[str]:
    outline = face_outline(shape)
    stroke = {"flat": shade(look.palette[look.default_skin]), "line": look.ink, "cute": shade(look.palette[look.default_skin], 0.9)}[look.name]
    width = look.width(look.face, {"flat": 3.0, "line": 3.6, "cute": 2.5}[look.name])
    body = [el("path", "skin", d=path_d(outline), fill=look.palette[look.default_skin], data_skin="fill",
               stroke=stroke, stroke_width=num(width), data_skin_stroke=None if look.name == "line" else "shade")]
    if look.blush:
        for sx in (-1, 1):
            body.append(el("ellipse", "deco", cx=num(sx * 31), cy="14", rx="9", ry="5", fill=look.blush,
                           opacity="0.5"))
    return body


# --- writing a style --------------------------------------------------------------------------------------

TAG_DOCS = {
    "eye": {
        "first tag (state)": "open | wide | half | closed: the lid opening (42 / 58 / ~20 / <= 4 units)",
        "look_left, look_right, look_up": "pupil direction, subject's own left/right (look_left: towards image right)",
        "squint": "half-open with the lower lid raised",
        "happy": "closed eye arched upwards",
    },
    "brow": {
        "first tag (state)": "neutral | raised | lowered: brow height (-62 / ~-80 / ~-52 units above the eye)",
        "flat, arched": "curvature", "worried": "inner end raised", "angry": "inner end lowered",
    },
    "mouth": {
        "first tag (state)": ("closed | slightly_open | open | wide_open | round | smile | smile_open | frown | "
                              "pout | smirk: inner gap 0 / ~10 / ~30 / ~54 / ~48 (rounded) units; smile/frown: "
                              "lip line sagging / rising ~12 units in the middle"),
        "teeth, laugh, open, slight, grin": "variants of the state (slight: a smile's curve of ~6 units)",
    },
    "nose": {"first tag": "button | straight | wide: shape"},
    "face": {"first tag": "round | oval | square | heart | long: shape"},
}


def style_parts(look: Look) -> list[tuple[str, str, tuple[str, ...], str]]:
    """(slot, name, tags, svg text) of every part of a style."""
    out = []
    for state in EYES:
        for slot in ("eye_right", "eye_left"):
            pid = f"{slot}-{state.name}"
            if slot == "eye_right":
                defs, body = draw_eye_right(look, state, pid)
            else:  # the mirror image of the right eye looking the opposite way: the gaze stays the same
                gaze = (-state.gaze[0], state.gaze[1])
                right = EyeState(state.name, state.tags, state.opening, state.upper_share, gaze, state.lid_sag)
                defs, body = draw_eye_right(look, right, pid)
                body = mirrored(body)
                body = [b.replace('class="r_eye"', 'class="l_eye"').replace('data-gaze="1"', 'data-gaze="-1"')
                        for b in body]
            out.append((slot, state.name, state.tags, svg_doc(slot, body, defs)))
    for state in BROWS:
        body = draw_brow_right(look, state)
        out.append(("brow_right", state.name, state.tags, svg_doc("brow_right", body)))
        left = [b.replace('class="r_brow"', 'class="l_brow"') for b in mirrored(body)]
        out.append(("brow_left", state.name, state.tags, svg_doc("brow_left", left)))
    for state in MOUTHS:
        defs, body = draw_mouth(look, state, f"mouth-{state.name}")
        out.append(("mouth", state.name, state.tags, svg_doc("mouth", body, defs)))
    for shape in NOSES:
        out.append(("nose", shape.name, shape.tags, svg_doc("nose", draw_nose(look, shape))))
    for shape in FACES:
        out.append(("face", shape.name, shape.tags, svg_doc("face", draw_face(look, shape))))
    return out


def write_style(look: Look, root: Path) -> int:
    folder = root / look.name
    if folder.exists():
        shutil.rmtree(folder)
    entries = []
    for slot, name, tags, text in style_parts(look):
        file = f"{slot}/{name}.svg"
        (folder / slot).mkdir(parents=True, exist_ok=True)
        (folder / file).write_text(text)
        entries.append({"id": f"{slot}.{name}", "slot": slot, "file": file, "tags": list(tags)})
    order = {slot: i for i, slot in enumerate(parts.SLOTS)}
    entries.sort(key=lambda e: order[e["slot"]])  # stable: keeps the drawing order within a slot
    meta = {
        "name": look.name,
        "title": look.title,
        "author": AUTHOR,
        "licence": LICENCE,
        "description": look.description,
        "canvas": [CANVAS, CANVAS],
        "placements": {slot: {"x": p.x, "y": p.y, "scale": p.scale} for slot, p in look.placements().items()},
        "palette": look.palette,
        "default_skin": look.default_skin,
        "tags": TAG_DOCS,
        "parts": entries,
    }
    head = json.dumps({k: v for k, v in meta.items() if k != "parts"}, indent=1)
    rows = ",\n".join("  " + json.dumps(e) for e in entries)  # one part a line: easy to read and diff
    (folder / "style.json").write_text(head[:-2] + ',\n "parts": [\n' + rows + "\n ]\n}\n")
    return len(entries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "templates")
    args = ap.parse_args()
    for look in LOOKS:
        n = write_style(look, args.out)
        print(f"{look.name}: {n} parts -> {args.out / look.name}")


if __name__ == "__main__":
    main()
