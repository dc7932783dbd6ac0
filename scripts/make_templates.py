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
from vidmoji.avatar.templates import DEFAULT_HAIR_PALETTE, window_frame  # noqa: E402

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
    w = window_frame(slot)
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
    hair_own: tuple[tuple[str, str], ...] = ()   # the style's own cartoon hair colours (name, "#RRGGBB")
    default_hair: str = "dark_brown"
    hair_ink: str | None = None   # a fixed outline colour for hair (line art); None: a shade of the hair colour
    hair_line_px: float = 2.5
    frame: str = "#2E2A28"        # glasses frame colour
    frame_px: float = 3.6
    lens: str = "#D8ECFF"

    def width(self, placement: Placement, px: float | None = None) -> float:
        """A canvas width in pixels as part units for the slot drawn at `placement`."""
        return (self.line_px if px is None else px) / placement.scale

    def placements(self) -> dict[str, Placement]:
        return {
            "face": self.face, "eye_left": self.eye_left, "eye_right": self.eye_right,
            "brow_left": self.eye_left, "brow_right": self.eye_right, "nose": self.nose, "mouth": self.mouth,
            # identity slots are drawn in the face's frame
            "hair": self.face, "glasses": self.face, "facial_hair": self.face,
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
        hair_own=(("chestnut", "#8A4B22"),), default_hair="chestnut", hair_line_px=2.5, frame="#2E2A28",
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
        hair_own=(("ink", "#1A1A1A"), ("paper", "#FFFFFF")), default_hair="ink", hair_ink="#1A1A1A",
        hair_line_px=3.2, frame="#1A1A1A", frame_px=3.6, lens="#FFFFFF",
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
        hair_own=(("cocoa", "#6B4A3A"), ("pink", "#F4A3C0"), ("lilac", "#B79CE0")), default_hair="cocoa",
        hair_line_px=2.0, frame="#7A4E8C", frame_px=4.0, lens="#E8F0FF",
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


# --- identity parts: hair, glasses, facial hair ---------------------------------------------------------
# All drawn in the face's frame (face width 100 units, origin the face centre, y down), the frame of the face
# parts, and placed with the face's placement, so they sit on every face shape of the style.

HAIR_TOP = -104.0         # the crown of a full head of hair (real hair masks reach -115..-130 above a face)
HAIR_WIDE = 67.0          # half width of the hair at the temples
TEMPLE_Y = -25.0          # where the dome of the hair is widest
FRINGE_END = (54.0, -37.0)  # where a fringe meets the hair at the temples (outside every face shape)
FRINGE_LOW = -40.0        # a fringe never reaches below this: the brows (about -26, raised -33) stay clear


def _polar(points: list[tuple[float, float]], angles: list[float]) -> list[float]:
    """The radius of a star-shaped outline (around the origin) at each polar angle."""
    pts = sorted((math.atan2(y, x), math.hypot(x, y)) for x, y in points)
    phis = [p for p, _ in pts]
    out = []
    for a in angles:
        i = next((k for k, p in enumerate(phis) if p >= a), len(phis))
        (p0, r0), (p1, r1) = pts[(i - 1) % len(pts)], pts[i % len(pts)]
        if p1 < p0:
            p1 += 2 * math.pi
        aa = a if a >= p0 else a + 2 * math.pi
        out.append(r0 + (r1 - r0) * ((aa - p0) / (p1 - p0) if p1 != p0 else 0.0))
    return out


def face_core(margin: float = 1.5, n: int = 192) -> list[tuple[float, float]]:
    """The outline shared by every face shape (the smallest radius of any, per angle), shrunk by margin:
    hair drawn up to it meets every face without a gap, and hides nothing of it."""
    angles = [-math.pi + 2 * math.pi * i / n for i in range(n)]
    radii = [min(rs) - margin for rs in zip(*(_polar(face_outline(f), angles) for f in FACES))]
    return [(r * math.cos(a), r * math.sin(a)) for a, r in zip(angles, radii)]


CORE = face_core()


def core_x(y: float) -> float:
    """Half width of the face core at height y (its right side)."""
    right = sorted((py, px) for px, py in CORE if px >= 0)
    for (y0, x0), (y1, x1) in zip(right, right[1:]):
        if y0 <= y <= y1:
            return x0 + (x1 - x0) * (y - y0) / (y1 - y0) if y1 != y0 else max(x0, x1)
    return 0.0


def core_arc(y: float) -> list[tuple[float, float]]:
    """The face core's upper outline above height y, from its right side over the top to its left side."""
    x = core_x(y)
    upper = sorted(((px, py) for px, py in CORE if py < y), key=lambda p: -math.atan2(p[1], p[0]) % (2 * math.pi))
    return [(x, y)] + upper + [(-x, y)]


def dome(top: float, wide: float, bottom: float, bumps: int = 0, bump: float = 0.0,
         centre: float = TEMPLE_Y) -> list[tuple[float, float]]:
    """The outer outline of a head of hair from its left end at `bottom` over the crown to its right end:
    a superellipse above the temples (`centre`); below them (short hair) the sides curl in to meet the
    face core at `bottom`; `bumps` scallops (curls) of depth `bump` along it."""
    n = SAMPLES * 2
    pts = []
    for i in range(n + 1):
        a = math.pi + math.pi * i / n
        c, s = math.cos(a), math.sin(a)
        r = 1.0 + (bump * (0.5 + 0.5 * math.cos(bumps * 2 * (a - math.pi))) / wide if bumps else 0.0)
        x = wide * r * math.copysign(abs(c) ** (2 / 2.4), c)
        y = centre + (centre - top) * r * math.copysign(abs(s) ** (2 / 2.4), s)
        pts.append((x, y))
    if bottom > centre:  # the sides: down from the temples, curling in to the face
        xc = core_x(bottom)
        side = smooth([pts[-1], (wide - 0.5, centre + 0.45 * (bottom - centre)),
                       (wide - 0.35 * (wide - xc), bottom - 1.5), (xc, bottom)], 6)[1:]
        pts = [(-x, y) for x, y in side[::-1]] + pts + side
    return pts


def dome_x(outline: list[tuple[float, float]], y: float) -> float:
    """Where a dome's right side crosses height y (above its widest point)."""
    right = [(px, py) for px, py in outline if px > 0]
    for (x0, y0), (x1, y1) in zip(right, right[1:]):
        if (y0 - y) * (y1 - y) <= 0 and y0 != y1:
            return x0 + (x1 - x0) * (y - y0) / (y1 - y0)
    return max(px for px, _ in right)


def wavy(y0: float, y1: float, x0: float, x1: float, amp: float, period: float, n: int = SAMPLES) -> list:
    """A side of hanging hair from (x0, y0) to (x1, y1), waving by amp with the given period (units)."""
    pts = []
    for i in range(n + 1):
        t = i / n
        y = y0 + (y1 - y0) * t
        pts.append((x0 + (x1 - x0) * t + amp * math.sin(2 * math.pi * (y - y0) / period) * min(1.0, t * 4), y))
    return pts


@dataclass(frozen=True)
class HairStyle:
    name: str
    tags: tuple[str, ...]
    back: tuple[str, ...]     # back-layer pieces (see `hair_back`)
    front: str | None         # the fringe: None (bald) or a `fringe` kind
    top: float = HAIR_TOP
    wide: float = HAIR_WIDE
    bottom: float = -12.0     # where the hair's sides end (units; the window's bottom is 165)
    flare: float = 0.0        # how much wider the ends are than the temples
    inner: float = 20.0       # below this, hanging hair's inner edge drops straight down
    bumps: int = 0
    wave: float = 0.0

    def length_tag(self) -> str:
        return self.tags[0]


HAIRS = (
    HairStyle("bald", ("bald", "bald"), (), None),
    HairStyle("cropped", ("short", "cropped"), ("dome",), "hairline", top=-96.0, wide=62.0, bottom=-14.0),
    HairStyle("side_part", ("short", "side_part"), ("dome",), "side_sweep", top=-106.0, wide=65.0, bottom=-6.0),
    HairStyle("curly", ("short", "curly"), ("dome",), "curls", top=-110.0, wide=69.0, bottom=-2.0, bumps=9),
    HairStyle("afro", ("short", "afro"), ("dome",), "curls", top=-122.0, wide=81.0, bottom=4.0, bumps=13),
    HairStyle("bob", ("medium", "bob"), ("dome",), "bangs", top=-106.0, wide=68.0, bottom=44.0, inner=14.0),
    HairStyle("shoulder", ("medium", "shoulder"), ("dome",), "middle_part", top=-106.0, wide=67.0, bottom=88.0,
              flare=8.0, inner=18.0),
    HairStyle("long_straight", ("long", "straight"), ("dome",), "middle_part", top=-106.0, wide=67.0,
              bottom=165.0, flare=8.0),
    HairStyle("long_wavy", ("long", "wavy"), ("dome",), "side_sweep", top=-108.0, wide=69.0, bottom=165.0,
              flare=14.0, wave=5.0),
    HairStyle("long_bangs", ("long", "bangs"), ("dome",), "bangs", top=-106.0, wide=67.0, bottom=165.0, flare=6.0),
    HairStyle("bun", ("tied", "bun"), ("dome", "bun"), "hairline", top=-98.0, wide=61.0, bottom=-4.0),
    HairStyle("ponytail", ("tied", "ponytail"), ("dome", "ponytail"), "hairline", top=-98.0, wide=61.0, bottom=-4.0),
)


def smooth(points: list[tuple[float, float]], n: int = 8) -> list[tuple[float, float]]:
    """A Catmull-Rom curve through the points (n samples per segment), ends included."""
    pts = [points[0], *points, points[-1]]
    out = [points[0]]
    for i in range(1, len(pts) - 2):
        p0, p1, p2, p3 = pts[i - 1], pts[i], pts[i + 1], pts[i + 2]
        for k in range(1, n + 1):
            t = k / n
            out.append(tuple(0.5 * (2 * b + (-a + c) * t + (2 * a - 5 * b + 4 * c - d) * t * t
                                    + (-a + 3 * b - 3 * c + d) * t ** 3) for a, b, c, d in zip(p0, p1, p2, p3)))
    return out


def fringe(kind: str, ex: float = FRINGE_END[0]) -> list[tuple[float, float]]:
    """The lower edge of a fringe, from its left end to its right end (x from -ex to ex, at the temples)."""
    ey = FRINGE_END[1]
    if kind == "hairline":  # hair brushed back: a forehead shows, the hairline dipping a little in the middle
        return smooth([(-ex, ey), (-44, -50), (-26, -58), (0, -55), (26, -58), (44, -50), (ex, ey)])
    if kind == "side_sweep":  # parted on the subject's right, swept across the forehead
        return smooth([(-ex, ey), (-40, -50), (-24, -60), (-6, -52), (18, -45), (40, -41), (ex, ey)])
    if kind == "bangs":  # cut straight across
        return smooth([(-ex, ey), (-48, -41), (-24, -42.5), (0, -43), (24, -42.5), (48, -41), (ex, ey)])
    if kind == "middle_part":  # curtains parted in the middle
        return smooth([(-ex, ey), (-40, -46), (-16, -57), (0, -62), (16, -57), (40, -46), (ex, ey)])
    if kind == "curls":  # a row of curls along the hairline
        n = 7
        pts = []
        for i in range(SAMPLES + 1):
            t = -1.0 + 2.0 * i / SAMPLES
            y = -52.0 + 4.0 * (1 - t * t) + 6.0 * abs(math.sin(math.pi * n * (t + 1) / 2))
            pts.append((ex * t, y if abs(t) < 0.9 else ey + (y - ey) * (1 - abs(t)) / 0.1))
        return pts
    raise ValueError(kind)


def hair_back(hair: HairStyle) -> list[list[tuple[float, float]]]:
    """The closed outlines of the back layer: the hair around the face (its inner edge on the face core),
    then any bun or ponytail."""
    shapes = []
    if "dome" in hair.back:
        if hair.bottom <= hair.inner:  # short: ends beside the face, above the ears
            outer = dome(hair.top, hair.wide, hair.bottom, hair.bumps, 4.0)
            shapes.append(outer + core_arc(hair.bottom))
        else:  # hanging: sides down to `bottom`, apart from the face below `inner`
            crown = dome(hair.top, hair.wide, TEMPLE_Y, hair.bumps, 4.0)
            xi = core_x(hair.inner)
            span = hair.bottom - TEMPLE_Y
            right = wavy(TEMPLE_Y, hair.bottom, hair.wide, hair.wide + hair.flare, hair.wave, 36.0)
            inner_right = wavy(hair.inner, hair.bottom, xi, xi + hair.flare * (hair.bottom - hair.inner) / span,
                               hair.wave, 36.0)
            # rounded tips: a half circle from the outer side's end to the inner side's
            r = (right[-1][0] - inner_right[-1][0]) / 2
            cx = inner_right[-1][0] + r
            right = [(x, y) for x, y in right if y <= hair.bottom - r]
            inner_right = [(x, y) for x, y in inner_right if y <= hair.bottom - r]
            tip_r = [(cx + r * math.cos(math.pi * k / 12), hair.bottom - r + r * math.sin(math.pi * k / 12))
                     for k in range(1, 12)]
            left = [(-x, y) for x, y in right]
            inner_left = [(-x, y) for x, y in inner_right]
            outline = (left[::-1] + crown[1:-1] + right + tip_r + inner_right[::-1] + core_arc(hair.inner)
                       + inner_left + [(-x, y) for x, y in tip_r[::-1]])
            shapes.append(outline)
    if "bun" in hair.back:
        shapes.append([(16 * math.cos(a), hair.top - 13 + 15 * math.sin(a))
                       for a in (2 * math.pi * i / SAMPLES for i in range(SAMPLES))])
    if "ponytail" in hair.back:  # gathered at the back, falling beside the neck on the subject's left
        shapes.append(smooth([(38, -62), (62, -44), (74, -6), (72, 40), (62, 86), (54, 112), (50, 84),
                              (54, 40), (52, 0), (40, -30)]))
    return shapes


def hair_front(hair: HairStyle) -> list[tuple[float, float]] | None:
    """The closed outline of the front layer: from the fringe's edge up to the crown, along the back
    layer's own outline (so that the two read as one head of hair)."""
    if hair.front is None:
        return None
    crown = dome(hair.top, hair.wide, TEMPLE_Y, hair.bumps, 4.0)
    end_y = FRINGE_END[1]
    edge = fringe(hair.front, dome_x(crown, end_y) - 0.5)
    return edge + [(x, y) for x, y in crown[::-1] if y < end_y]


def strands(hair: HairStyle) -> list[str]:
    """Path data of a few strands running from the crown to the fringe."""
    if hair.front is None:
        return []
    edge = fringe(hair.front, FRINGE_END[0])
    out = []
    pulled = hair.length_tag() == "tied"   # pulled back: strands run from the hairline to the crown
    for t in ((0.2, 0.35, 0.5, 0.65, 0.8) if pulled else (0.25, 0.45, 0.65)):
        x, y = edge[round(t * (len(edge) - 1))]
        sx, sy = (x * 0.15, hair.top + 4) if pulled else (x * 0.45, hair.top + 16)
        out.append(f"M{num(sx)} {num(sy)}Q{num(x * 0.9)} {num((sy + y) / 2 - 4)} {num(x)} {num(y - 3)}")
    return out


def draw_hair(look: Look, hair: HairStyle, colour: str) -> list[str]:
    """A hair part: a back group (behind the face) and a front group (the fringe), painted from the hair
    palette at compose time (`data-hair`)."""
    lw = look.width(look.face, look.hair_line_px)
    if look.hair_ink:
        outline = dict(stroke=look.hair_ink, stroke_width=num(lw), stroke_linejoin="round")
    else:
        outline = dict(stroke=shade(colour, 0.7), stroke_width=num(lw), stroke_linejoin="round",
                       data_hair_stroke="shade")
    fill = dict(fill=colour, data_hair="fill")
    back = [el("path", "hair", d=path_d(s), **fill, **outline) for s in hair_back(hair)]
    if "bun" in hair.back:   # the tie at the bun's base
        back.append(el("path", "deco", d=f"M-9 {num(hair.top - 1)}Q0 {num(hair.top + 2)} 9 {num(hair.top - 1)}",
                       fill="none", **{k: v for k, v in outline.items() if k != "stroke_linejoin"}))
    front = []
    shape = hair_front(hair)
    if shape is not None:
        front.append(el("path", "hair", d=path_d(shape), **fill, **outline))
        strand = dict(outline, stroke_width=num(lw * 0.7), stroke_linecap="round")
        strand.pop("stroke_linejoin")
        front += [el("path", "deco", d=d, fill="none", **strand) for d in strands(hair)]
        if look.name == "cute":  # a glossy highlight
            front.append(el("ellipse", "deco", cx="-22", cy=num(hair.top + 22), rx="14", ry="6", fill="#FFFFFF",
                            opacity="0.35", transform=f"rotate(-20 -22 {num(hair.top + 22)})"))
    return ['<g data-layer="back">', *back, "</g>", '<g data-layer="front">', *front, "</g>"]


def face_units(look: Look, placement: Placement) -> tuple[float, float]:
    """A slot's anchor in the face's frame (units)."""
    return ((placement.x - look.face.x) / look.face.scale, (placement.y - look.face.y) / look.face.scale)


@dataclass(frozen=True)
class GlassesShape:
    name: str
    tags: tuple[str, ...]


GLASSES = (GlassesShape("round", ("round",)), GlassesShape("rectangular", ("rectangular",)),
           GlassesShape("aviator", ("aviator",)))


def lens_outline(shape: str, rx: float, ry: float) -> list[tuple[float, float]]:
    """A lens around the origin (the subject's right eye; +x towards the nose)."""
    n = SAMPLES * 2
    pts = []
    for i in range(n):
        a = 2 * math.pi * i / n
        c, s = math.cos(a), math.sin(a)
        if shape == "round":
            pts.append((rx * c, rx * s))
        elif shape == "rectangular":  # a rounded rectangle (superellipse)
            pts.append((rx * math.copysign(abs(c) ** 0.4, c), ry * 0.85 * math.copysign(abs(s) ** 0.4, s)))
        else:  # aviator: a teardrop, deeper on the outer side
            drop = 1.0 + 0.35 * max(0.0, s) * max(0.0, -c)
            pts.append((rx * c, ry * (s if s < 0 else s * drop) - 1.0))
    return pts


def draw_glasses(look: Look, shape: GlassesShape) -> list[str]:
    """Glasses over both eyes (their centres from the style's placements), frame in the style's colour."""
    ex, ey = face_units(look, look.eye_right)
    eye_half = 50.0 * look.eye_right.scale / look.face.scale
    rx, ry = eye_half + 4.5, eye_half * 0.85
    lw = look.width(look.face, look.frame_px)
    frame = dict(stroke=look.frame, stroke_width=num(lw), stroke_linejoin="round")
    body = []
    for side in (-1, 1):   # the subject's right eye (image left), then the left one
        pts = [(ex * -side + x * -side, ey + y) for x, y in lens_outline(shape.name, rx, ry)]
        body.append(el("path", "eye_g", d=path_d(pts), fill=look.lens, fill_opacity="0.3", **frame))
        # the arm, from the lens's outer edge to the side of the head
        body.append(el("path", "eye_g", d=f"M{num(side * (abs(ex) + rx))} {num(ey - ry * 0.4)}L{num(side * 49)} {num(ey - ry * 0.6)}",
                       fill="none", stroke=look.frame, stroke_width=num(lw), stroke_linecap="round"))
        if look.name == "cute":  # a glint on each lens
            gx, gy = ex * -side - rx * 0.45, ey - ry * 0.35
            body.append(el("path", "deco", d=f"M{num(gx)} {num(gy + 4)}Q{num(gx)} {num(gy)} {num(gx + 4)} {num(gy - 1)}",
                           fill="none", stroke="#FFFFFF", stroke_width=num(lw * 0.8), stroke_linecap="round"))
    inner = abs(ex) - rx
    body.append(el("path", "eye_g", d=f"M{num(-inner)} {num(ey - 2)}Q0 {num(ey - 7)} {num(inner)} {num(ey - 2)}",
                   fill="none", stroke=look.frame, stroke_width=num(lw), stroke_linecap="round"))
    return body


@dataclass(frozen=True)
class FacialHairShape:
    name: str
    tags: tuple[str, ...]


FACIAL_HAIRS = (FacialHairShape("stubble", ("stubble",)), FacialHairShape("moustache", ("moustache",)),
                FacialHairShape("beard", ("beard",)))


def draw_facial_hair(look: Look, shape: FacialHairShape, colour: str) -> tuple[list[str], list[str]]:
    """Stubble, a moustache or a beard around the style's mouth, painted in the hair colour."""
    _, my = face_units(look, look.mouth)
    _, ny = face_units(look, look.nose)
    nose_bottom = ny + 14.0 * look.nose.scale / look.face.scale
    mw = 50.0 * look.mouth.scale / look.face.scale          # half the mouth's width
    lw = look.width(look.face, look.hair_line_px)
    fill = dict(fill=colour, data_hair="fill")
    if look.hair_ink:
        outline = dict(stroke=look.hair_ink, stroke_width=num(lw), stroke_linejoin="round")
    else:
        outline = dict(stroke=shade(colour, 0.7), stroke_width=num(lw), stroke_linejoin="round",
                       data_hair_stroke="shade")
    top, low = nose_bottom + 1.5, my - 3.0
    moustache = smooth([(-mw - 4, my + 3), (-mw + 2, low - 1), (-mw * 0.4, top + 1), (0, top + 2.5),
                        (mw * 0.4, top + 1), (mw - 2, low - 1), (mw + 4, my + 3), (mw * 0.5, low + 0.5),
                        (0, low - 1), (-mw * 0.5, low + 0.5), (-mw - 4, my + 3)], 6)
    mouth_hole = [(0 + (mw + 4) * math.cos(a), my + 2 + 9 * math.sin(a))
                  for a in (-2 * math.pi * i / SAMPLES for i in range(SAMPLES))]   # opposite winding
    if shape.name == "moustache":
        return [], [el("path", "hair", d=path_d(moustache), **fill, **outline)]
    if shape.name == "beard":
        outer = smooth([(-45, -26), (-51, -24), (-54, 4), (-46, 40), (-26, 66), (0, 74), (26, 66), (46, 40),
                        (54, 4), (51, -24), (45, -26), (44, 0), (34, 18), (mw + 5, nose_bottom + 4),
                        (0, nose_bottom + 6), (-mw - 5, nose_bottom + 4), (-34, 18), (-44, 0), (-45, -26)], 6)
        d = path_d(outer) + path_d(mouth_hole)
        return [], [el("path", "hair", d=d, fill_rule="evenodd", **fill, **outline),
                    el("path", "hair", d=path_d(moustache), **fill, **outline)]
    # stubble: a light, speckled shadow on the lower face, inside every face shape
    below = [(x, y) for x, y in CORE if y > 2]
    below.sort(key=lambda p: -p[0])
    region = below + smooth([(-core_x(2), 2), (-32, 16), (-mw - 4, nose_bottom + 4), (0, nose_bottom + 5),
                             (mw + 4, nose_bottom + 4), (32, 16), (core_x(2), 2)], 6)
    d = path_d(region) + path_d(mouth_hole)
    body = [el("path", "hair", d=d, fill_rule="evenodd", opacity="0.28", **fill)]
    dots = []
    for i in range(70):   # a fixed speckle (golden-angle spiral), clipped to the region
        r, a = 0.5 + 0.5 * ((i * 0.618034) % 1.0), i * 2.39996
        x, y = 40.0 * r * math.cos(a), 28.0 + 26.0 * r * math.sin(a)
        inside = y > 8 and abs(x) < core_x(min(y, 50.0)) - 2 and not ((x / (mw + 5)) ** 2 + ((y - my - 2) / 10) ** 2 < 1)
        if inside:
            dots.append(f'<circle class="deco" cx="{num(x)}" cy="{num(y)}" r="0.7"/>')
    body.append(f'<g class="deco" fill="{shade(colour, 0.6)}" data-hair="shade" opacity="0.6">' + "".join(dots) + "</g>")
    return [], body


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
    "hair": {
        "first tag (length)": "bald | short | medium | long | tied (parts.HAIR_LENGTHS)",
        "second tag": "the cut: cropped, side_part, curly, afro, bob, shoulder, straight, wavy, bangs, bun, ponytail",
        "layers": ('<g data-layer="back"> is drawn behind the face, <g data-layer="front"> (the fringe) over '
                   "the forehead, under the eyes and brows"),
        "colour": 'shapes marked data-hair="fill" take the hair colour, data-hair-stroke="shade" a darker shade',
    },
    "glasses": {"first tag": "round | rectangular | aviator: the frame's shape"},
    "facial_hair": {"first tag": "stubble | moustache | beard (parts.FACIAL_HAIR), in the hair colour"},
}

# The hair palette every style shares (real hair colours: the words of parts.HAIR_COLOURS); a style adds its
# own cartoon colours.
HAIR_PALETTE = DEFAULT_HAIR_PALETTE


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
    colour = hair_palette(look)[look.default_hair]
    for hair in HAIRS:
        out.append(("hair", hair.name, hair.tags, svg_doc("hair", draw_hair(look, hair, colour))))
    for glasses in GLASSES:
        out.append(("glasses", glasses.name, glasses.tags, svg_doc("glasses", draw_glasses(look, glasses))))
    for beard in FACIAL_HAIRS:
        defs, body = draw_facial_hair(look, beard, colour)
        out.append(("facial_hair", beard.name, beard.tags, svg_doc("facial_hair", body, defs)))
    return out


def hair_palette(look: Look) -> dict[str, str]:
    return {**HAIR_PALETTE, **dict(look.hair_own)}


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
    order = {slot: i for i, slot in enumerate(parts.ALL_SLOTS)}
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
        "hair_palette": hair_palette(look),
        "default_hair_colour": look.default_hair,
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
