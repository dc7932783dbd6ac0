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
darker shade of it; `data-skin-stroke="fill" | "shade"` does the same for the stroke.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cairosvg
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
    placements: tuple[tuple[str, Placement], ...]  # (slot, placement), in parts.SLOTS order
    palette: tuple[tuple[str, str], ...]           # (name, "#RRGGBB")
    default_skin: str
    parts: tuple[Part, ...]

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
        placements = tuple((slot, Placement(**meta["placements"][slot])) for slot in parts.SLOTS)
        style_parts = tuple(
            Part(id=p["id"], slot=p["slot"], path=folder / p["file"], tags=tuple(p["tags"])) for p in meta["parts"]
        )
        style = Style(
            name=meta["name"], title=meta["title"], author=meta["author"], licence=meta["licence"],
            description=meta.get("description", ""), root=folder, canvas=tuple(meta["canvas"]),
            placements=placements, palette=tuple(meta["palette"].items()), default_skin=meta["default_skin"],
            parts=style_parts,
        )
    except (KeyError, TypeError, ValueError) as e:
        raise StyleError(f"{folder / 'style.json'}: malformed ({type(e).__name__}: {e})") from None
    for p in style.parts:
        if p.slot not in parts.SLOTS or not p.path.is_file() or not p.tags:
            raise StyleError(f"{folder / 'style.json'}: part {p.id!r} has a bad slot, file or tags")
    if len({p.id for p in style.parts}) != len(style.parts):
        raise StyleError(f"{folder / 'style.json'}: duplicate part ids")
    if style.canvas[0] != style.canvas[1]:
        raise StyleError(f"{folder / 'style.json'}: the canvas must be square, not {style.canvas}")
    missing = [slot for slot in parts.SLOTS if not style.parts_in(slot)]
    if missing:
        raise StyleError(f"{folder / 'style.json'}: no parts for {', '.join(missing)}")
    style.colour(style.default_skin)
    return style


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
    """An SVG document -> (height, width, 4) uint8 RGBA (straight alpha)."""
    png = cairosvg.svg2png(bytestring=svg, output_width=width, output_height=height)
    bgra = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    if bgra.ndim == 2:
        bgra = cv2.cvtColor(bgra, cv2.COLOR_GRAY2BGRA)
    elif bgra.shape[2] == 3:
        bgra = cv2.cvtColor(bgra, cv2.COLOR_BGR2BGRA)
    return cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)


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


def _part_group(style: Style, part: Part, skin: str, gaze: tuple[float, float] = (0.0, 0.0),
                prefix: str | None = None) -> tuple[list[ET.Element], ET.Element]:
    """The part's defs and a <g> holding its drawing, placed on the canvas and painted in `skin`.

    Ids are prefixed with the slot (or `prefix`) so that parts composed together never share one. gaze: (x, y) in
    [-1, 1] (x toward the image's right, y down) moves the part's pupil layer (an element with
    `data-gaze`, +1 or -1 for a drawing mirrored in x) by PUPIL_TRAVEL, inside the eye's clip.
    """
    colour = style.colour(skin)
    paints = {"fill": colour, "shade": shade_colour(colour)}
    root = _parse(_svg_bytes(part.path))
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
    p = style.placement(part.slot)
    group = ET.Element(f"{{{SVG_NS}}}g", {"transform": f"translate({p.x} {p.y}) scale({p.scale})",
                                          "data-part": part.id})
    defs: list[ET.Element] = []
    for child in root:
        (defs.extend(child) if _local(child.tag) == "defs" else group.append(child))
    return defs, group


def _canvas_svg(style: Style, groups: list[tuple[list[ET.Element], ET.Element]]) -> str:
    w, h = style.canvas
    svg = ET.Element(f"{{{SVG_NS}}}svg", {"viewBox": f"0 0 {w} {h}", "width": str(w), "height": str(h)})
    defs = ET.SubElement(svg, f"{{{SVG_NS}}}defs")
    for d, g in groups:
        defs.extend(d)
        svg.append(g)
    return ET.tostring(svg, encoding="unicode")


def compose_svg(style: Style, choice: dict[str, str], skin: str, gaze=None) -> str:
    """The avatar as one SVG document on the style's canvas.

    choice: slot -> part id (slots left out are not drawn); skin: a palette name or "#RRGGBB"; gaze:
    (x, y) where the pupils look, or None for straight ahead. Parts are drawn in parts.SLOTS order (the
    face shape first).
    """
    g = quantize_gaze(gaze)
    groups = [_part_group(style, style.part(choice[slot]), skin, g) for slot in parts.SLOTS if slot in choice]
    return _canvas_svg(style, groups)


@functools.lru_cache(maxsize=2048)
def _layer(style: Style, part_id: str, skin: str, size: int, gaze: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    svg = _canvas_svg(style, [_part_group(style, style.part(part_id), skin, gaze)]).encode()
    w, h = style.canvas
    out = _rasterise(svg, size, round(size * h / w))
    out.setflags(write=False)
    return out


def has_pupils(part: Part) -> bool:
    """Whether the part has a pupil layer that follows the gaze."""
    return b"data-gaze" in _svg_bytes(part.path)


def render_part_layer(style: Style, part: Part, skin: str, size: int, gaze=None) -> np.ndarray:
    """One part alone, placed on the full canvas: (size * h / w, size, 4) uint8 RGBA, transparent elsewhere
    (square canvases give (size, size, 4)); read-only, cached per (style, part, skin, size, gaze). gaze:
    (x, y) for an eye's pupils (see `quantize_gaze`). Composing an avatar is alpha-blending the layers of
    its parts in parts.SLOTS order."""
    return _layer(style, part.id, skin, size, quantize_gaze(gaze) if has_pupils(part) else (0.0, 0.0))


def animated_svg(style: Style, skin: str, times: list[float], duration: float,
                 shown: list[tuple[str, ...] | None], heads: list[tuple[float, float, float, float, float]]) -> str:
    """The avatar as one animated SVG document: every part the clip uses is drawn once, as a <g> whose
    visibility CSS keyframes switch on and off over time, inside a head <g> whose transform and opacity
    follow the head.

    times: each frame's start (seconds, from 0); duration: the loop's length; shown: each frame's part ids
    (one per slot, None: nothing shown); heads: each frame's (x, y, scale, roll degrees, opacity): where
    the avatar's centre sits on the canvas, its scale and clockwise roll. The first frame is also drawn
    without CSS animation (what a static SVG renderer shows). The animations read two CSS custom
    properties: `--vidmoji-t` (a number of seconds: the time shown when paused, default 0) and
    `--vidmoji-play` (`running` or `paused`), so a page can show any moment of it.
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
        groups.append(g)
    svg = ET.Element(f"{{{SVG_NS}}}svg", {"viewBox": f"0 0 {w} {h}", "width": str(w), "height": str(h)})
    ET.SubElement(svg, f"{{{SVG_NS}}}style").text = "\n".join(rules)
    defs = ET.SubElement(svg, f"{{{SVG_NS}}}defs")
    defs.extend(svg_defs)
    x, y, scale, roll, opacity = heads[0]
    head = ET.SubElement(svg, f"{{{SVG_NS}}}g", {
        "class": "vm vm-head", "opacity": f"{opacity if shown[0] is not None else 0.0:.3f}",
        "transform": f"translate({x:.2f} {y:.2f}) rotate({roll:.2f}) scale({scale:.4f}) "
                     f"translate({-w / 2:g} {-h / 2:g})"})
    head.extend(groups)
    return ET.tostring(svg, encoding="unicode")
