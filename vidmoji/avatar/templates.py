"""Avatar styles as data: load a style's SVG part templates, render their pictures and their label maps.

A style is a folder `templates/<style>/` holding `style.json` and one SVG per part, grouped by slot. Every
part is drawn in its slot's local frame (`parts.WindowFrame`: reference length 100 units, anchor at the
origin) with the viewBox set to the slot's window, so rasterising a part as a square image gives exactly
its label-map window, on the same scale as the windows cut from real faces.

Every drawn element carries `class="<label name>"` (a `parts.LABEL_NAMES` entry) or `class="deco"`. The
label map paints each class element in its class and drops decorations, under one rule for every style:
closed shapes are regions and are always filled (whatever their drawn fill or opacity), open paths are
lines and are redrawn at one canonical width (`LABEL_LINE_WIDTH`). An element may say which it is with
`data-label="region"` or `data-label="line"`.

Skin colour: elements marked `data-skin="fill"` take the chosen skin colour as fill, `data-skin="shade"` a
darker shade of it; `data-skin-stroke="fill" | "shade"` does the same for the stroke. Hair colour:
`data-hair="fill" | "shade"` and `data-hair-stroke="fill" | "shade"` do the same with the hair colour (a
name of the style's `hair_palette` or "#RRGGBB").

Identity slots (`parts.IDENTITY_SLOTS`: hair, glasses, facial hair) are optional: a style without them loads
and renders, its avatars simply go without. They are drawn in the face's frame, placed like the face unless
style.json says otherwise. A hair part holds two top-level groups, `<g data-layer="back">` (drawn behind the
face) and `<g data-layer="front">` (the fringe, drawn over the forehead but under the eyes and brows); the
avatar's layers are painted in `parts.LAYER_ORDER`. What one subject looks like is a `Look`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cairosvg
import cairosvg.parser
import cairosvg.surface
import cv2
import numpy as np

from vidmoji import parts, resources
from vidmoji.errors import VidmojiError

TEMPLATES_ROOT = resources.templates_root()  # the shipped styles (checkout's templates/, or the package's)
SVG_NS = "http://www.w3.org/2000/svg"
LABEL_LINE_WIDTH = parts.CLOSED_EYE_HEIGHT  # units: every line-class element's width (a shut eye's lid)
LABEL_SUPERSAMPLE = parts.WINDOW_SUPERSAMPLE
LABEL_BLUR_SIGMA = parts.WINDOW_BLUR_SIGMA
SHADE_FACTOR = 0.82         # `data-skin="shade"`: the skin colour times this
_CLOSED_TAGS = frozenset({"circle", "ellipse", "rect", "polygon"})
_OPEN_TAGS = frozenset({"line", "polyline"})
_DRAWABLE = _CLOSED_TAGS | _OPEN_TAGS | {"path", "g", "use", "text", "image"}
# The hair colours of a style that names none (the words of parts.HAIR_COLOURS).
DEFAULT_HAIR_PALETTE = {
    "black": "#2A2422", "dark_brown": "#4A2F20", "brown": "#7A4E2D", "auburn": "#93391C", "blond": "#E2B968",
    "grey": "#A8A6A3",
}
DEFAULT_HAIR_COLOUR = "dark_brown"
# Hair layers (see parts.LAYER_ORDER); "" draws a part whole.
HAIR_LAYERS = ("back", "front")

ET.register_namespace("", SVG_NS)


class StyleError(VidmojiError, ValueError):
    """A style that does not exist or whose files are inconsistent."""


@dataclass(frozen=True)
class Placement:
    """Where a slot's anchor sits on the canvas (x, y pixels) and its scale (canvas pixels per part unit)."""

    x: float
    y: float
    scale: float


@dataclass(frozen=True)
class Part:
    """One part template. `tags[0]` is its state (eyes, brows, mouths) or shape (nose, face)."""

    id: str
    slot: str
    path: Path
    tags: tuple[str, ...]

    @property
    def state(self) -> str:
        """The first tag: open/half/... for eyes, neutral/raised/lowered for brows, the shape otherwise."""
        return self.tags[0]

    @property
    def classes(self) -> tuple[str, ...]:
        """The label classes the part's SVG draws, in the slot's channel order."""
        present = {e.get("class") for e in _parse(_svg_bytes(self.path)).iter()}
        return tuple(c for c in parts.SLOT_CHANNELS[self.slot] if c in present)


@dataclass(frozen=True)
class Style:
    """A loaded style: its metadata, where each slot sits on the canvas, its skin palette and its parts."""

    name: str
    title: str
    author: str
    licence: str
    description: str
    root: Path
    canvas: tuple[int, int]                       # (width, height) pixels
    placements: tuple[tuple[str, Placement], ...]  # (slot, placement), in parts.ALL_SLOTS order
    palette: tuple[tuple[str, str], ...]           # (name, "#RRGGBB")
    default_skin: str
    parts: tuple[Part, ...]
    hair_palette: tuple[tuple[str, str], ...] = tuple(DEFAULT_HAIR_PALETTE.items())
    default_hair_colour: str = DEFAULT_HAIR_COLOUR

    def placement(self, slot: str) -> Placement:
        """Where the slot's anchor sits on the canvas."""
        return dict(self.placements)[slot]

    def colour(self, skin: str) -> str:
        """A palette name or a "#RRGGBB" colour -> "#RRGGBB"."""
        palette = dict(self.palette)
        if skin in palette:
            return palette[skin]
        if re.fullmatch(r"#[0-9a-fA-F]{6}", skin):
            return skin
        raise StyleError(f"style {self.name!r} has no skin {skin!r}; palette: {', '.join(palette)}")

    def hair_colour(self, name: str | None = None) -> str:
        """A hair palette name or a "#RRGGBB" colour -> "#RRGGBB" (None: the style's default hair colour).
        The words of parts.HAIR_COLOURS always resolve: from the style's palette, else the shared one."""
        palette = {**DEFAULT_HAIR_PALETTE, **dict(self.hair_palette)}
        name = self.default_hair_colour if name is None else name
        if name in palette:
            return palette[name]
        if re.fullmatch(r"#[0-9a-fA-F]{6}", name):
            return name
        raise StyleError(f"style {self.name!r} has no hair colour {name!r}; hair palette: {', '.join(palette)}")

    def part(self, part_id: str) -> Part:
        """The part with this id; StyleError when there is none."""
        for p in self.parts:
            if p.id == part_id:
                return p
        raise StyleError(f"style {self.name!r} has no part {part_id!r}")

    def parts_in(self, slot: str) -> tuple[Part, ...]:
        """The slot's parts, in style.json order."""
        return tuple(p for p in self.parts if p.slot == slot)


# --- loading ----------------------------------------------------------------------------------------------


def list_styles(templates_dir: Path | str | None = None) -> list[str]:
    """Names of the styles under templates_dir (default: the shipped styles), sorted."""
    root = Path(templates_dir) if templates_dir is not None else TEMPLATES_ROOT
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir() if (d / "style.json").is_file())


def load_style(name_or_dir: str | Path, templates_dir: Path | str | None = None) -> Style:
    """Load a style by name (a folder of templates_dir) or by the path of its folder.

    Raises StyleError, with a one-line message, for an unknown style or an inconsistent style.json.
    """
    root = Path(templates_dir) if templates_dir is not None else TEMPLATES_ROOT
    folder = Path(name_or_dir)
    if not (folder / "style.json").is_file():
        folder = root / str(name_or_dir)
    if not (folder / "style.json").is_file():
        available = ", ".join(list_styles(root)) or "none"
        raise StyleError(f"unknown style {str(name_or_dir)!r}; available styles: {available}")
    try:
        meta = json.loads((folder / "style.json").read_text())
        given = meta["placements"]
        placements = tuple((slot, Placement(**given.get(slot, given["face"]) if slot in parts.IDENTITY_SLOTS
                                            else given[slot])) for slot in parts.ALL_SLOTS)
        hair_palette = meta.get("hair_palette", DEFAULT_HAIR_PALETTE)
        if not isinstance(hair_palette, dict):
            raise TypeError("hair_palette must map names to colours")
        style_parts = tuple(
            Part(id=p["id"], slot=p["slot"], path=folder / p["file"], tags=tuple(p["tags"])) for p in meta["parts"]
        )
        style = Style(
            name=meta["name"], title=meta["title"], author=meta["author"], licence=meta["licence"],
            description=meta.get("description", ""), root=folder, canvas=tuple(meta["canvas"]),
            placements=placements, palette=tuple(meta["palette"].items()), default_skin=meta["default_skin"],
            parts=style_parts, hair_palette=tuple(hair_palette.items()),
            default_hair_colour=meta.get("default_hair_colour", next(iter(hair_palette), DEFAULT_HAIR_COLOUR)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise StyleError(f"{folder / 'style.json'}: malformed ({type(e).__name__}: {e})") from None
    for p in style.parts:
        if p.slot not in parts.ALL_SLOTS or not p.path.is_file() or not p.tags:
            raise StyleError(f"{folder / 'style.json'}: part {p.id!r} has a bad slot, file or tags")
    if len({p.id for p in style.parts}) != len(style.parts):
        raise StyleError(f"{folder / 'style.json'}: duplicate part ids")
    if style.canvas[0] != style.canvas[1]:
        raise StyleError(f"{folder / 'style.json'}: the canvas must be square, not {style.canvas}")
    missing = [slot for slot in parts.SLOTS if not style.parts_in(slot)]
    if missing:
        raise StyleError(f"{folder / 'style.json'}: no parts for {', '.join(missing)}")
    style.colour(style.default_skin)
    style.hair_colour()
    return style


def window_frame(slot: str) -> parts.WindowFrame:
    """The slot's window in its own frame; glasses and facial hair, drawn in the face's frame, use the
    face's window."""
    return parts.WINDOW_FRAMES.get(slot) or parts.WINDOW_FRAMES["face"]


# --- SVG handling -----------------------------------------------------------------------------------------


def _svg_bytes(path: Path) -> bytes:
    return Path(path).read_bytes()


def _parse(data: bytes) -> ET.Element:
    return ET.fromstring(data)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _rasterise(svg: bytes, width: int, height: int) -> np.ndarray:
    """An SVG document -> (height, width, 4) uint8 RGBA (straight alpha).

    Read straight from cairo's image surface, without the PNG that `cairosvg.svg2png` would encode and
    OpenCV decode again (a third of the time of a 512 px part), and un-premultiplied with the rounding
    cairo's PNG writer uses, so the pixels are exactly those of the PNG."""
    surface = cairosvg.surface.PNGSurface(cairosvg.parser.Tree(bytestring=svg), None, 96,
                                          output_width=width, output_height=height)
    image = surface.cairo
    image.flush()
    stride = image.get_stride()
    data = np.frombuffer(image.get_data(), np.uint8)[:height * stride]
    bgra = data.reshape(height, stride // 4, 4)[:, :width]            # premultiplied, native-endian ARGB32
    if sys.byteorder != "little":
        bgra = bgra[..., ::-1]
    alpha = bgra[..., 3]
    rgba = np.zeros((height, width, 4), np.uint8)
    rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
    if len(rows) == 0:
        return rgba
    # Only the drawn pixels' bounding box is un-premultiplied (a part covers a tenth of the canvas).
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    rgba[box + (3,)] = alpha[box]
    rgb = bgra[box + (slice(2, None, -1),)].astype(np.uint16)
    a = alpha[box][..., None].astype(np.uint16)
    # cairo's unpremultiply_data: (c * 255 + a / 2) / a in integers, 0 where transparent.
    rgba[box + (slice(0, 3),)] = np.where(a > 0, (rgb * 255 + a // 2) // np.maximum(a, 1), 0)
    return rgba


def _is_line(elem: ET.Element) -> bool:
    """Whether a class element is a line (stroked at the canonical width) rather than a region (filled)."""
    kind = elem.get("data-label")
    if kind in ("line", "region"):
        return kind == "line"
    tag = _local(elem.tag)
    if tag in _OPEN_TAGS:
        return True
    if tag == "path":
        subpaths = [s for s in re.split(r"(?=[Mm])", elem.get("d", "").strip()) if s.strip()]
        return not all(s.rstrip()[-1:] in ("Z", "z") for s in subpaths)
    return False


_PAINT_ATTRS = ("style", "fill", "stroke", "stroke-width", "opacity", "fill-opacity", "stroke-opacity",
                "filter", "mask", "stroke-dasharray", "clip-path")


def _label_svg(data: bytes, cls: str) -> bytes:
    """The part's SVG with only `cls` elements, painted solid white as regions or canonical lines."""
    root = _parse(data)

    def visit(parent: ET.Element) -> None:
        for child in list(parent):
            tag = _local(child.tag)
            c = child.get("class")
            if tag not in _DRAWABLE:
                continue
            if tag == "g" and c is None:
                for a in ("opacity", "style", "filter", "mask", "clip-path"):
                    child.attrib.pop(a, None)
                visit(child)
                continue
            if c != cls:
                parent.remove(child)
                continue
            for a in _PAINT_ATTRS:
                child.attrib.pop(a, None)
            if _is_line(child):
                child.attrib.update({"fill": "none", "stroke": "#FFFFFF", "stroke-width": str(LABEL_LINE_WIDTH),
                                     "stroke-linecap": "round", "stroke-linejoin": "round"})
            else:
                child.attrib.update({"fill": "#FFFFFF", "stroke": "none"})
            for g in child.iter():  # a class group paints all it holds
                if g is not child:
                    for a in _PAINT_ATTRS:
                        g.attrib.pop(a, None)
                    g.set("fill", "#FFFFFF")

    visit(root)
    return ET.tostring(root)


@functools.lru_cache(maxsize=4096)
def _label_coverage(digest: str, data: bytes, slot: str, size: int) -> np.ndarray:
    """(C, size, size) float32 coverage of each channel class, supersampled and area-downsampled."""
    big = size * LABEL_SUPERSAMPLE
    present = {e.get("class") for e in _parse(data).iter()}
    out = np.zeros((len(parts.SLOT_CHANNELS[slot]), size, size), np.float32)
    for i, cls in enumerate(parts.SLOT_CHANNELS[slot]):
        if cls in present:
            alpha = _rasterise(_label_svg(data, cls), big, big)[..., 3].astype(np.float32) / 255.0
            out[i] = cv2.resize(alpha, (size, size), interpolation=cv2.INTER_AREA)
    out.setflags(write=False)
    return out


def _coverage(part: Part, size: int) -> np.ndarray:
    data = _svg_bytes(part.path)
    return _label_coverage(_digest(data), data, part.slot, size)


# --- the picture and the label map of one part ------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _rgba(digest: str, data: bytes, size: int) -> np.ndarray:
    out = _rasterise(data, size, size)
    out.setflags(write=False)
    return out


def render_rgba(part: Part, size: int) -> np.ndarray:
    """The part's picture over its window: (size, size, 4) uint8 RGBA, read-only (cached by content)."""
    data = _svg_bytes(part.path)
    return _rgba(_digest(data), data, size)


def render_label_window(part: Part, size: int = parts.WINDOW_SIZE) -> np.ndarray:
    """The part's label-map window: (C, size, size) float32 in [0, 1], channels parts.SLOT_CHANNELS[slot].

    Each channel is the coverage of that class (rendered LABEL_SUPERSAMPLE times larger and area-averaged)
    blurred with a LABEL_BLUR_SIGMA-pixel Gaussian. Left-side slots are NOT mirrored here.
    """
    cov = _coverage(part, size)
    # The same blur as the face side's windows (vidmoji.face.raster.gaussian_blur): 3-sigma radius, edges
    # clamped.
    k = 2 * max(1, round(3 * LABEL_BLUR_SIGMA)) + 1
    return np.stack([cv2.GaussianBlur(c, (k, k), LABEL_BLUR_SIGMA, borderType=cv2.BORDER_REPLICATE)
                     for c in cov]).astype(np.float32)


def label_map(part: Part, size: int) -> np.ndarray:
    """The part's label map: (size, size) uint8 label ids (parts.LABEL_IDS), 0 where no class covers half
    a pixel; where classes overlap the later channel wins (the inner mouth over the lips)."""
    cov = _coverage(part, size)
    out = np.zeros((size, size), np.uint8)
    for cls, c in zip(parts.SLOT_CHANNELS[part.slot], cov):
        out[c >= 0.5] = parts.LABEL_IDS[cls]
    return out


# --- the composed avatar ----------------------------------------------------------------------------------


def shade_colour(colour: str, factor: float = SHADE_FACTOR) -> str:
    """"#RRGGBB" darkened: each channel times factor."""
    rgb = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{min(255, round(c * factor)):02X}" for c in rgb)


# How far a pupil moves (part units: an eye is 100 wide) at a gaze of 1 in x and in y.
PUPIL_TRAVEL = (30.0, 14.0)


def quantize_gaze(gaze) -> tuple[float, float]:
    """(x, y) gaze rounded to steps of 0.05: the drawn pupil moves by under a pixel per step at 512 px, and
    rendered layers are cached per step."""
    if gaze is None:
        return (0.0, 0.0)
    return tuple(round(float(np.clip(g, -1.0, 1.0)) * 20) / 20 for g in gaze[:2])


@dataclass(frozen=True)
class Look:
    """What one subject looks like beyond the per-frame parts: hair (a part id; None or a "bald" part: none),
    its colour (a hair palette name or "#RRGGBB"; None: the style's default), glasses and facial hair (part
    ids or None). Constant over a clip (or a persona), hashable."""

    hair: str | None = None
    hair_colour: str | None = None
    glasses: str | None = None
    facial_hair: str | None = None

    def parts(self) -> dict[str, str]:
        """slot -> part id of the identity parts it draws."""
        chosen = {"hair": self.hair, "glasses": self.glasses, "facial_hair": self.facial_hair}
        return {slot: pid for slot, pid in chosen.items() if pid is not None}


def draw_order(look: Look | None) -> tuple[tuple[str, str], ...]:
    """(slot, layer) pairs, back to front: parts.LAYER_ORDER with a look, the per-frame slots in
    parts.SLOTS order without one (as avatars were drawn before identity parts existed)."""
    if look is None:
        return tuple((slot, "") for slot in parts.SLOTS)
    return parts.LAYER_ORDER


# What a part with pupils is cut into so that a moved pupil is composed from pixels (see `_pupil_piece`).
PUPIL_PIECES = ("under", "pupil", "clip", "over")


def _pupil_piece(root: ET.Element, piece: str) -> None:
    """Keep one piece of a part's drawing around its pupil layer (the element whose child has `data-gaze`),
    in place: "under" what is drawn before the pupils, "over" what is drawn after them, "pupil" the pupils
    unclipped, "clip" the pupils' clip filled opaque white (its coverage). Defs stay."""
    if piece not in PUPIL_PIECES:
        raise ValueError(f"unknown pupil piece {piece!r}: one of {', '.join(PUPIL_PIECES)}")
    parents = {c: p for p in root.iter() for c in p}
    gaze = next((e for e in root.iter() if e.get("data-gaze") in ("1", "-1")), None)
    if gaze is None or gaze not in parents:
        raise StyleError(f"no pupil layer to cut a {piece!r} piece from")
    layer = parents[gaze]
    chain = [layer]
    while chain[-1] in parents:
        chain.append(parents[chain[-1]])
    for child, parent in zip(chain, chain[1:]):            # up from the pupil layer to the root
        k = list(parent).index(child)
        for j, other in enumerate(list(parent)):
            if other is child or _local(other.tag) == "defs":
                continue
            keep = (piece == "under" and j < k) or (piece == "over" and j > k)
            if not keep:
                parent.remove(other)
    if piece in ("under", "over"):
        parents[layer].remove(layer)
    elif piece == "pupil":
        layer.attrib.pop("clip-path", None)
    else:
        for child in list(layer):
            layer.remove(child)
        ET.SubElement(layer, f"{{{SVG_NS}}}rect", {"x": "-1000", "y": "-1000", "width": "2000", "height": "2000",
                                                   "fill": "#FFFFFF"})


def _part_group(style: Style, part: Part, skin: str, gaze: tuple[float, float] = (0.0, 0.0), layer: str = "",
                hair: str | None = None, prefix: str | None = None, piece: str = ""
                ) -> tuple[list[ET.Element], ET.Element]:
    """The part's defs and a <g> holding its drawing, placed on the canvas and painted in `skin`.

    Ids are prefixed with the slot (or `prefix`) so that parts composed together never share one. gaze: (x, y) in
    [-1, 1] (x toward the image's right, y down) moves the part's pupil layer (an element with
    `data-gaze`, +1 or -1 for a drawing mirrored in x) by PUPIL_TRAVEL, inside the eye's clip. layer:
    "back" or "front" keeps only that top-level `data-layer` group of a hair part ("": all of it). hair:
    "#RRGGBB" painted where the part says `data-hair` (None: the style's default hair colour). piece: one of
    PUPIL_PIECES of a part with pupils (see `_pupil_piece`; "": the whole part).
    """
    colour = style.colour(skin)
    paints = {"fill": colour, "shade": shade_colour(colour)}
    hair_rgb = hair or style.hair_colour()
    hair_paints = {"fill": hair_rgb, "shade": shade_colour(hair_rgb, HAIR_SHADE_FACTOR)}
    root = _parse(_svg_bytes(part.path))
    if layer:
        for child in list(root):
            if child.get("data-layer") in HAIR_LAYERS and child.get("data-layer") != layer:
                root.remove(child)
    prefix = prefix or part.slot + "--"
    for e in root.iter():
        if "id" in e.attrib:
            e.set("id", prefix + e.get("id"))
        for a, v in list(e.attrib.items()):
            if "url(#" in v:
                e.set(a, v.replace("url(#", "url(#" + prefix))
            elif _local(a) == "href" and v.startswith("#"):
                e.set(a, "#" + prefix + v[1:])
        if e.get("data-gaze") in ("1", "-1") and gaze != (0.0, 0.0):
            sign = float(e.get("data-gaze"))
            e.set("transform", f"translate({gaze[0] * PUPIL_TRAVEL[0] * sign:.2f} {gaze[1] * PUPIL_TRAVEL[1]:.2f})")
        if e.get("data-skin") in paints:
            e.set("fill", paints[e.get("data-skin")])
        if e.get("data-skin-stroke") in paints:
            e.set("stroke", paints[e.get("data-skin-stroke")])
        if e.get("data-hair") in hair_paints:
            e.set("fill", hair_paints[e.get("data-hair")])
        if e.get("data-hair-stroke") in hair_paints:
            e.set("stroke", hair_paints[e.get("data-hair-stroke")])
    if piece:
        _pupil_piece(root, piece)
    p = style.placement(part.slot)
    group = ET.Element(f"{{{SVG_NS}}}g", {"transform": f"translate({p.x} {p.y}) scale({p.scale})",
                                          "data-part": part.id})
    if layer:
        group.set("data-layer", layer)
    defs: list[ET.Element] = []
    for child in root:
        (defs.extend(child) if _local(child.tag) == "defs" else group.append(child))
    return defs, group


def _canvas_svg(style: Style, groups: list[tuple[list[ET.Element], ET.Element]],
                view: tuple[float, float, float] | None = None,
                crop: tuple[float, float, float, float] | None = None) -> str:
    """The groups on the style's canvas; view: (x, y, side) of a larger square of the canvas to show
    instead (room for hair), at the same output size; crop: (x, y, width, height) in canvas units, only that
    rectangle of it (see `_pixel_crop`)."""
    w, h = style.canvas
    box = f"0 0 {w} {h}" if view is None else f"{view[0]:g} {view[1]:g} {view[2]:g} {view[2]:g}"
    size = {"width": str(w), "height": str(h)}
    if crop is not None:
        box = " ".join(repr(float(v)) for v in crop)
        size = {"width": repr(float(crop[2])), "height": repr(float(crop[3]))}
    svg = ET.Element(f"{{{SVG_NS}}}svg", {"viewBox": box, **size})
    defs = ET.SubElement(svg, f"{{{SVG_NS}}}defs")
    for d, g in groups:
        defs.extend(d)
        svg.append(g)
    return ET.tostring(svg, encoding="unicode")


# Hair colours are shaded more deeply than skin: strands and outlines must read on black hair too.
HAIR_SHADE_FACTOR = 0.7
# Room left around drawn hair when an avatar is framed for it, canvas pixels.
HAIR_FRAME_PAD = 8


def part_extent(part: Part) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) of what the part draws, in its slot's units (None: it draws nothing)."""
    w = window_frame(part.slot)
    size = 2 * round(w.half)          # about one pixel per unit
    alpha = render_rgba(part, size)[..., 3]
    ys, xs = np.nonzero(alpha)
    if len(ys) == 0:
        return None
    u = 2 * w.half / size
    return (w.cx - w.half + xs.min() * u, w.cy - w.half + ys.min() * u,
            w.cx - w.half + (xs.max() + 1) * u, w.cy - w.half + (ys.max() + 1) * u)


def avatar_view(style: Style, look: Look | None) -> tuple[float, float, float] | None:
    """The square of the canvas an avatar with this look shows: (x, y, side) canvas pixels, grown evenly
    so that the hair's top and sides fit (its ends may leave at the bottom, as in a portrait); None when
    the canvas holds it all (or there is no hair)."""
    if look is None or look.hair is None:
        return None
    part = style.part(look.hair)
    extent = part_extent(part)
    if extent is None:
        return None
    p = style.placement(part.slot)
    w, _ = style.canvas
    left, top, right = p.x + extent[0] * p.scale, p.y + extent[1] * p.scale, p.x + extent[2] * p.scale
    margin = max(0.0, HAIR_FRAME_PAD - top, HAIR_FRAME_PAD - left, right - (w - HAIR_FRAME_PAD))
    if margin == 0:
        return None
    m = float(np.ceil(margin))
    return (-m, -m, w + 2 * m)


def compose_svg(style: Style, choice: dict[str, str], skin: str, gaze=None, look: Look | None = None) -> str:
    """The avatar as one SVG document on the style's canvas.

    choice: slot -> part id (slots left out are not drawn); skin: a palette name or "#RRGGBB"; gaze:
    (x, y) where the pupils look, or None for straight ahead; look: the subject's hair, glasses and facial
    hair (None: none, and the document is exactly what it was before identity parts). Parts are drawn in
    `draw_order(look)` (the face shape first, or the hair's back layer), framed by `avatar_view`.
    """
    g = quantize_gaze(gaze)
    if look is None:
        groups = [_part_group(style, style.part(choice[slot]), skin, g) for slot in parts.SLOTS if slot in choice]
        return _canvas_svg(style, groups)
    chosen = {**choice, **look.parts()}
    hair = style.hair_colour(look.hair_colour)
    groups = [_part_group(style, style.part(chosen[slot]), skin, g, layer, hair)
              for slot, layer in draw_order(look) if slot in chosen]
    return _canvas_svg(style, groups, avatar_view(style, look))


# Whole-canvas layers (1 MB each at 512 px): few kept here; AvatarComposer keeps each layer's visible cut.
@functools.lru_cache(maxsize=64)
def _layer(style: Style, part_id: str, skin: str, size: int, gaze: tuple[float, float] = (0.0, 0.0),
           layer: str = "", hair: str | None = None, view: tuple[float, float, float] | None = None,
           box: tuple[int, int, int, int] | None = None, piece: str = "") -> np.ndarray:
    w, h = style.canvas
    out_w, out_h = size, round(size * h / w)
    crop = None
    if box is not None:
        crop = _pixel_crop(style, view, out_w, out_h, box)
        out_w, out_h = box[2] - box[0], box[3] - box[1]
    group = _part_group(style, style.part(part_id), skin, gaze, layer, hair, piece=piece)
    out = _rasterise(_canvas_svg(style, [group], view, crop).encode(), out_w, out_h)
    out.setflags(write=False)
    return out


def _pixel_crop(style: Style, view: tuple[float, float, float] | None, out_w: int, out_h: int,
                box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """The rectangle of canvas units (x, y, width, height) that the pixels box (x0, y0, x1, y1) of an
    out_w x out_h rendering of the canvas (or of `view`) show: drawn alone at (x1 - x0, y1 - y0) pixels it
    gives exactly those pixels (the same scale and pixel grid; SVG's default xMidYMid meet fit)."""
    w, h = style.canvas
    vx, vy, vw, vh = (0.0, 0.0, float(w), float(h)) if view is None else (view[0], view[1], view[2], view[2])
    scale = min(out_w / vw, out_h / vh)
    tx, ty = (out_w - vw * scale) / 2, (out_h - vh * scale) / 2
    x0, y0, x1, y1 = box
    return (vx + (x0 - tx) / scale, vy + (y0 - ty) / scale, (x1 - x0) / scale, (y1 - y0) / scale)


def has_pupils(part: Part) -> bool:
    """Whether the part has a pupil layer that follows the gaze."""
    return b"data-gaze" in _svg_bytes(part.path)


def uses_hair_colour(part: Part) -> bool:
    """Whether the part paints anything in the hair colour."""
    return b"data-hair" in _svg_bytes(part.path)


def render_part_layer(style: Style, part: Part, skin: str, size: int, gaze=None, layer: str = "",
                      hair: str | None = None, view: tuple[float, float, float] | None = None,
                      box: tuple[int, int, int, int] | None = None, piece: str = "") -> np.ndarray:
    """One part alone, placed on the full canvas: (size * h / w, size, 4) uint8 RGBA, transparent elsewhere
    (square canvases give (size, size, 4)); read-only, cached per (style, part, skin, size, gaze, layer,
    hair, view). gaze: (x, y) for an eye's pupils (see `quantize_gaze`); layer: "back" or "front" for one
    layer of a hair part ("": the whole part); hair: a hair palette name or "#RRGGBB" (None: the style's
    default); view: `avatar_view`'s square of the canvas instead of the canvas; box: (x0, y0, x1, y1) pixels of
    that picture, only those drawn ((y1 - y0, x1 - x0, 4): a moved pupil redraws its eye's box, not the
    canvas); piece: one of PUPIL_PIECES of a part with pupils ("": the whole part). Composing an avatar is
    alpha-blending the layers of its parts in `draw_order`."""
    hair_rgb = style.hair_colour(hair) if uses_hair_colour(part) else None
    return _layer(style, part.id, skin, size, quantize_gaze(gaze) if has_pupils(part) else (0.0, 0.0),
                  layer, hair_rgb, view, box, piece)


def animated_svg(style: Style, skin: str, times: list[float], duration: float,
                 shown: list[tuple[str, ...] | None], heads: list[tuple[float, float, float, float, float]],
                 look: Look | None = None) -> str:
    """The avatar as one animated SVG document: every part the clip uses is drawn once, as a <g> whose
    visibility CSS keyframes switch on and off over time, inside a head <g> whose transform and opacity
    follow the head.

    times: each frame's start (seconds, from 0); duration: the loop's length; shown: each frame's part ids
    (one per slot, None: nothing shown); heads: each frame's (x, y, scale, roll degrees, opacity): where
    the avatar's centre sits on the canvas, its scale and clockwise roll. The first frame is also drawn
    without CSS animation (what a static SVG renderer shows). The animations read two CSS custom
    properties: `--vidmoji-t` (a number of seconds: the time shown when paused, default 0) and
    `--vidmoji-play` (`running` or `paused`), so a page can show any moment of it. look: the subject's
    hair, glasses and facial hair, drawn (unanimated) in their layers among the parts.
    """
    w, h = style.canvas
    duration = max(float(duration), 1e-3)
    used: list[str] = []
    for c in shown:
        for part_id in c or ():
            if part_id not in used:
                used.append(part_id)
    order = {slot: k for k, slot in enumerate(parts.SLOTS)}
    used.sort(key=lambda pid: order[style.part(pid).slot])
    pct = [f"{100.0 * t / duration:.4f}%" for t in times]
    rules = [".vm{animation-duration:%.4fs;animation-iteration-count:infinite;"
             "animation-delay:calc(-1s * var(--vidmoji-t, 0));animation-play-state:var(--vidmoji-play, running)}"
             % duration,
             ".vm-head{transform-box:view-box;transform-origin:0 0;animation-name:vm-head;"
             "animation-timing-function:linear}"]

    def head_css(x, y, scale, roll, opacity):
        return (f"transform:translate({x:.2f}px,{y:.2f}px) rotate({roll:.2f}deg) scale({scale:.4f}) "
                f"translate({-w / 2:g}px,{-h / 2:g}px);opacity:{opacity:.3f}")

    frames, last = [], None
    for p, head, c in zip(pct, heads, shown):
        css = head_css(*head) if c is not None else head_css(*head[:4], 0.0)
        if css != last:
            frames.append(f"{p}{{{css}}}")
            last = css
    frames.append(f"100%{{{last}}}")
    rules.append("@keyframes vm-head{" + "".join(frames) + "}")
    groups, svg_defs = [], []
    by_slot: dict[str, list[ET.Element]] = {}
    for k, part_id in enumerate(used):
        on = [c is not None and part_id in c for c in shown]
        keys, prev = [], None
        for p, v in zip(pct, on):
            if v != prev:
                keys.append(f"{p}{{visibility:{'visible' if v else 'hidden'}}}")
                prev = v
        keys.append(f"100%{{visibility:{'visible' if prev else 'hidden'}}}")
        rules.append(f".vm-p{k}{{animation-name:vm-p{k};animation-timing-function:steps(1,end)}}")
        rules.append(f"@keyframes vm-p{k}{{" + "".join(keys) + "}")
        d, g = _part_group(style, style.part(part_id), skin, prefix=part_id.replace(".", "-") + "--")
        g.set("class", f"vm vm-p{k}")
        if not on[0]:
            g.set("visibility", "hidden")
        svg_defs.extend(d)
        by_slot.setdefault(style.part(part_id).slot, []).append(g)
    identity = look.parts() if look is not None else {}
    hair_rgb = style.hair_colour(look.hair_colour) if look is not None else None
    for slot, layer in draw_order(look):
        if slot in identity:
            d, g = _part_group(style, style.part(identity[slot]), skin, layer=layer, hair=hair_rgb,
                               prefix=f"{slot}-{layer or 'all'}--")
            svg_defs.extend(d)
            groups.append(g)
        elif not layer:
            groups.extend(by_slot.get(slot, []))
    svg = ET.Element(f"{{{SVG_NS}}}svg", {"viewBox": f"0 0 {w} {h}", "width": str(w), "height": str(h)})
    ET.SubElement(svg, f"{{{SVG_NS}}}style").text = "\n".join(rules)
    defs = ET.SubElement(svg, f"{{{SVG_NS}}}defs")
    defs.extend(svg_defs)
    x, y, scale, roll, opacity = heads[0]
    head = ET.SubElement(svg, f"{{{SVG_NS}}}g", {
        "class": "vm vm-head", "opacity": f"{opacity if shown[0] is not None else 0.0:.3f}",
        "transform": f"translate({x:.2f} {y:.2f}) rotate({roll:.2f}) scale({scale:.4f}) "
                     f"translate({-w / 2:g} {-h / 2:g})"})
    view = avatar_view(style, look)
    if view is not None:        # framed as the composer frames it: the square that holds the hair
        frame = ET.SubElement(head, f"{{{SVG_NS}}}g", {
            "transform": f"scale({w / view[2]:.6f}) translate({-view[0]:g} {-view[1]:g})"})
        frame.extend(groups)
    else:
        head.extend(groups)
    return ET.tostring(svg, encoding="unicode")
