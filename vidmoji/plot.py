"""Drawing for `vidmoji plot-embeddings`: the per-frame diagnostic picture and the clip's summary picture.

- `EmbeddingFigure` draws one video frame: per part slot (rows) and embedder (columns) a panel with the face
  part's embedding (pink) and the chosen avatar part's embedding (purple) as graphs over their dimensions,
  the cosine similarity and the chosen part's label as the panel's title; beside the panels the aligned
  face crop with its label map and the composed avatar (both given as RGB images).
- `summary_figure` draws the whole clip: per slot the similarity over time and the frame-to-frame change of
  the face embedding (`embedding_change`), with each series' median in the legend.

Speed: a frame is one restore of a pre-rendered background plus the few artists that change (blitting),
never a full matplotlib redraw; the two images are pasted into the output with OpenCV, not drawn as
matplotlib images (resampling a 306x306 image through Agg costs more than the whole rest of the frame).
This module is a leaf: numpy, matplotlib (Agg canvas, no pyplot), cv2 and vidmoji.parts only.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from vidmoji.parts import INDEXED_SLOTS as SLOTS

FACE_COLOR = "#ff5fa2"      # pink: the face part's embedding
PART_COLOR = "#7b2cbf"      # purple: the chosen avatar part's embedding
BACKGROUND = "#ffffff"
_BACKGROUND_RGB = (255, 255, 255)
TEXT_COLOR = "#222222"

# Embeddings longer than this are shown as a fixed random projection to this many dimensions (ResNet50's
# 2048): a graph of 2048 points is unreadable at panel size, and, unlike the first 64 coordinates, a random
# projection keeps inner products on average, so how well the pink and purple graphs agree still reflects
# the cosine similarity of the full vectors. Gaussian directions scaled by 1/sqrt(D) are orthonormal to
# about 1/sqrt(D) (0.02 at 2048) and keep the per-coordinate scale |x|/sqrt(D) of the original, without a
# QR factorisation (which takes up to a second on a busy machine with threaded BLAS).
MAX_PLOTTED_DIMS = 64
PROJECTION_SEED = 0

# 80 dpi makes 1 pt = 1.11 px: small text stays legible at 1280x720 and the figure is sized in pixels.
DPI = 80
FONT_SIZE = 9
SMALL_FONT_SIZE = 8

# Fixed layout in pixels (the figure is laid out once, by hand: constrained/tight layout would cost time
# and could move panels between frames).
HEADER_PX = 26          # caption and legend line at the top
TITLE_PX = 16           # above each panel: chosen part's label (left) and similarity (right)
SIMILARITY_PX = 80      # the similarity's share of the title strip
XTICKS_PX = 22          # below the bottom row: x tick labels and axis label
LEFT_PX = 78            # slot name and y tick labels
COLUMN_GAP_PX = 46      # y tick labels of the next embedder column
ROW_GAP_PX = 6
IMAGE_LABEL_PX = 16     # "face crop" / "avatar" above each image
MARGIN_PX = 8


def embedding_change(embeddings: np.ndarray) -> np.ndarray:
    """Frame-to-frame change of one part's face embedding.

    embeddings: (T, D) float, a row of NaN where the frame has no face. Pass the vectors the matcher
    compares (centred, if it centres), since cosine is taken as given.
    Returns (T,) float64: 1 - cosine(e[t], e[t-1]), in [0, 2]; NaN at t = 0, where either row has a NaN,
    and where either row is all zeros (no direction to compare).
    """
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"embeddings must be (T, D), got shape {e.shape}")
    out = np.full(e.shape[0], np.nan)
    if e.shape[0] < 2:
        return out
    norms = np.linalg.norm(e, axis=1)
    prev, cur = e[:-1], e[1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("td,td->t", prev, cur) / (norms[:-1] * norms[1:])
    # A zero norm gives inf/NaN above; NaN rows propagate NaN through the sums.
    cos[~np.isfinite(cos)] = np.nan
    out[1:] = np.clip(1.0 - cos, 0.0, 2.0)
    return out


def _nice_ceil(x: float) -> float:
    """The smallest of 1, 2, 5 x 10^k that is >= x (x > 0): y limits that only change in visible steps."""
    k = math.floor(math.log10(x))
    return next(m * 10.0**k for m in (1.0, 2.0, 5.0, 10.0) if m * 10.0**k >= x)


@functools.lru_cache(maxsize=None)
def _projection(dim: int) -> np.ndarray:
    """(dim, MAX_PLOTTED_DIMS) float32, N(0, 1/dim) entries: the same (read-only) matrix for every panel and
    run with this dim."""
    g = np.random.default_rng(PROJECTION_SEED).standard_normal((dim, MAX_PLOTTED_DIMS)) / np.sqrt(dim)
    g = g.astype(np.float32)
    g.flags.writeable = False
    return g


def _pixel_rect_to_figure(x: float, y: float, w: float, h: float, width: int, height: int) -> list[float]:
    """A rectangle in top-left pixel coordinates -> matplotlib's [left, bottom, width, height] fractions."""
    return [x / width, 1.0 - (y + h) / height, w / width, h / height]


class _TextSprite:
    """A per-frame text in its own fixed pixel box, with the box's rendered pixels cached per string.

    Rendering text is most of an Agg frame's cost (glyph rasterising and layout, about 1 ms a text), yet a
    panel's title changes only when the chosen part does and a similarity string recurs often. The text is
    clipped to its box and nothing else ever draws into the box, so the box's pixels depend on the string
    alone: a cached box pasted into the frame is identical to drawing the text again.
    """

    def __init__(self, fig: Figure, box: tuple[int, int, int, int], ha: str, animated: bool, cap: int):
        x, y, w, h = box
        self.box = box
        fig_w, fig_h = round(fig.bbox.width), round(fig.bbox.height)
        # Baseline 4 px above the box's bottom: room for descenders. Display coordinates have their origin at
        # the bottom left.
        self.text = fig.text((x if ha == "left" else x + w) / fig_w, (fig_h - y - h + 4) / fig_h, "",
                             ha=ha, va="baseline", fontsize=FONT_SIZE, color=TEXT_COLOR, animated=animated,
                             parse_math=False)
        self.text.set_clip_box(Bbox.from_bounds(x, fig_h - y - h, w, h))
        self.text.set_clip_on(True)
        self._cap = cap
        self._cache: dict[str, np.ndarray] = {}

    def cached(self) -> np.ndarray | None:
        """The box's pixels (h, w, 3) for the current string, or None when it has to be drawn."""
        patch = self._cache.pop(self.text.get_text(), None)
        if patch is not None:
            self._cache[self.text.get_text()] = patch   # most recently used last
        return patch

    def store(self, frame: np.ndarray) -> None:
        """Keep the box's pixels of a frame (H, W, 3) in which the current string was drawn."""
        x, y, w, h = self.box
        self._cache[self.text.get_text()] = frame[y:y + h, x:x + w].copy()
        if len(self._cache) > self._cap:
            del self._cache[next(iter(self._cache))]

    def paste(self, out: np.ndarray, patch: np.ndarray) -> None:
        x, y, w, h = self.box
        out[y:y + h, x:x + w] = patch

    def clear(self) -> None:
        self._cache.clear()


class _Panel:
    """One slot x embedder panel: its axes, the two lines and the texts that change each frame."""

    def __init__(self, fig: Figure, ax, box: tuple[int, int, int, int], dim: int, animated: bool):
        self.ax = ax
        self.dim = dim
        self.projection = _projection(dim) if dim > MAX_PLOTTED_DIMS else None
        n = min(dim, MAX_PLOTTED_DIMS)
        x = np.arange(n)
        zeros = np.zeros(n)
        # Purple first so the face's pink graph stays on top where they coincide. No antialiasing: it is
        # slower and would blend the two colours into shades the eye (and the tests) cannot attribute.
        # zorder 3, above the spines (2.5): blitting draws the lines after the whole background anyway, and
        # a full redraw must stack them the same way to give the same picture.
        style = dict(lw=1.5, ms=4.5, mew=0, antialiased=False, animated=animated, visible=False, zorder=3)
        self.part_line, = ax.plot(x, zeros, color=PART_COLOR, marker="s", **style)
        self.face_line, = ax.plot(x, zeros, color=FACE_COLOR, marker="o", **style)
        self.no_face = ax.text(0.5, 0.5, "no face", transform=ax.transAxes, ha="center", va="center",
                               fontsize=FONT_SIZE + 2, color="#999999", animated=animated, visible=False)
        # The title strip above the axes, ending a pixel short of the axes' top spine: the chosen part's
        # label on the left, the similarity on the right. Parts per slot are tens, similarity strings (2
        # decimals: the exact values are in --data) at most 201: the caps hold them all at a few MB, so after
        # a clip's first seconds a frame draws no panel text at all.
        px, py, pw, _ = box
        strip_y = py - TITLE_PX
        self.title = _TextSprite(fig, (px, strip_y, pw - SIMILARITY_PX, TITLE_PX - 1), "left", animated, 64)
        self.sim = _TextSprite(fig, (px + pw - SIMILARITY_PX, strip_y, SIMILARITY_PX, TITLE_PX - 1), "right",
                               animated, 512)
        self.half_range: float | None = None   # current y limits are +-half_range
        self.fixed = False                      # True: half_range was given, never grows

    def shown(self, v: np.ndarray | None, what: str) -> np.ndarray | None:
        """The plotted values of one embedding: (D,) -> (min(D, 64),) float32, or None."""
        if v is None:
            return None
        v = np.asarray(v, dtype=np.float32)
        if v.shape != (self.dim,):
            raise ValueError(f"{what} embedding must have shape ({self.dim},), got {v.shape}")
        return v if self.projection is None else v @ self.projection


class EmbeddingFigure:
    """The diagnostic frame: per slot and embedder the face part's embedding against the chosen part's.

    Layout (pixels, top-left origin): a header line (caption, colour key), then the panel grid (rows =
    slots, columns = embedders), and on the right the aligned face crop above the composed avatar, each
    letterboxed into a square. Embeddings longer than 64 dimensions are drawn as a fixed random
    projection to 64 (see MAX_PLOTTED_DIMS). A part label too long for its panel is cut.

    Y limits are symmetric, +-h per panel. With `ylim` given (ylim[embedder][slot] = h) they are fixed;
    otherwise h starts at the first embedding seen and only grows, in 1-2-5 steps, when a value leaves
    it: a growth re-renders the static background once, every other frame only blits. A frame's picture
    therefore depends only on its own data and the panel limits reached so far (deterministic for a
    given sequence of frames).

    blit=False renders every frame with a full `canvas.draw()` and no text cache instead; it exists for
    the benchmark's comparison.
    """

    def __init__(self, slots: tuple[str, ...], embedders: tuple[str, ...], dims: dict[str, dict[str, int]],
                 width: int = 1280, height: int = 720, *, ylim: dict[str, dict[str, float]] | None = None,
                 blit: bool = True, title: str = ""):
        if not slots or not embedders:
            raise ValueError("EmbeddingFigure needs at least one slot and one embedder")
        unknown = [s for s in slots if s not in SLOTS]
        if unknown:
            raise ValueError(f"unknown part slots {unknown}; known: {', '.join(SLOTS)}")
        self.slots = tuple(slots)
        self.embedders = tuple(embedders)
        self.width, self.height = int(width), int(height)
        self._blit = blit

        # +1e-3 px: width/DPI*DPI may round to just under the integer, and Agg truncates the canvas size.
        self._fig = Figure(figsize=((self.width + 1e-3) / DPI, (self.height + 1e-3) / DPI), dpi=DPI,
                           facecolor=BACKGROUND)
        self._canvas = FigureCanvasAgg(self._fig)

        # Right column: two squares as large as the height allows, at most 30 % of the width.
        side = int(min(0.3 * self.width,
                       (self.height - HEADER_PX - 2 * IMAGE_LABEL_PX - MARGIN_PX) / 2))
        if side < 16:
            raise ValueError(f"figure {self.width}x{self.height} is too small")
        img_x = self.width - MARGIN_PX - side
        self._image_boxes = []   # (x, y, side) of the crop's and the avatar's squares, top-left pixels
        y = HEADER_PX
        for name, missing in (("face crop + labels", "no face"), ("avatar", "no avatar")):
            self._fig.text(img_x / self.width, 1.0 - (y + IMAGE_LABEL_PX - 3) / self.height, name,
                           fontsize=FONT_SIZE, color=TEXT_COLOR)
            y += IMAGE_LABEL_PX
            # A framed placeholder that shows when the image is None; a given image is pasted over it.
            ax = self._fig.add_axes(_pixel_rect_to_figure(img_x, y, side, side, self.width, self.height))
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.5, 0.5, missing, transform=ax.transAxes, ha="center", va="center",
                    fontsize=FONT_SIZE + 2, color="#999999")
            self._image_boxes.append((img_x, y, side))
            y += side

        # Panel grid to the left of the images, on whole pixels so the title strips are exact boxes.
        n_rows, n_cols = len(self.slots), len(self.embedders)
        panel_w = (img_x - MARGIN_PX - LEFT_PX - (n_cols - 1) * COLUMN_GAP_PX) // n_cols
        grid_h = self.height - HEADER_PX - XTICKS_PX - n_rows * TITLE_PX - (n_rows - 1) * ROW_GAP_PX
        panel_h = grid_h // n_rows
        if panel_w < SIMILARITY_PX + 40 or panel_h < 20:
            raise ValueError(f"figure {self.width}x{self.height} is too small for "
                             f"{n_rows} slots x {n_cols} embedders")
        self._panels: dict[str, dict[str, _Panel]] = {e: {} for e in self.embedders}
        for c, e in enumerate(self.embedders):
            x = LEFT_PX + c * (panel_w + COLUMN_GAP_PX)
            first_ax = None
            for r, s in enumerate(self.slots):
                y = HEADER_PX + TITLE_PX + r * (panel_h + TITLE_PX + ROW_GAP_PX)
                dim = int(dims[e][s])
                rect = _pixel_rect_to_figure(x, y, panel_w, panel_h, self.width, self.height)
                ax = self._fig.add_axes(rect, sharex=first_ax)
                first_ax = first_ax or ax
                ax.tick_params(labelsize=SMALL_FONT_SIZE, length=2, pad=1)
                ax.axhline(0.0, color="#dddddd", lw=0.8, zorder=0)
                n = min(dim, MAX_PLOTTED_DIMS)
                ax.set_xlim(-0.5, n - 0.5)
                if c == 0:
                    ax.set_ylabel(s, fontsize=FONT_SIZE, color=TEXT_COLOR, labelpad=2)
                if r < n_rows - 1:
                    ax.tick_params(labelbottom=False)
                else:
                    xlabel = (f"{e}: dimension" if dim <= MAX_PLOTTED_DIMS
                              else f"{e}: random projection, {n} of {dim} dims")
                    ax.set_xlabel(xlabel, fontsize=SMALL_FONT_SIZE, color=TEXT_COLOR, labelpad=1)
                panel = _Panel(self._fig, ax, (x, y, panel_w, panel_h), dim, animated=blit)
                if ylim is not None:
                    panel.half_range = float(ylim[e][s])
                    panel.fixed = True
                    ax.set_ylim(-panel.half_range, panel.half_range)
                else:
                    ax.set_ylim(-1.0, 1.0)
                self._panels[e][s] = panel

        # Labels and captions are plain text (parse_math=False: a "$" in a tag must not start mathtext).
        # Header: the caption changes per frame (and never repeats, so it is drawn, not cached); the colour
        # key is words, not coloured swatches, so that pink pixels appear exactly where a face embedding is.
        # A static title (the clip's name) goes into the background; only the short caption after it is
        # drawn per frame (text costs per glyph).
        caption_x = MARGIN_PX
        if title:
            static = self._fig.text(MARGIN_PX / self.width, 1.0 - (HEADER_PX - 7) / self.height, title,
                                    fontsize=FONT_SIZE + 1, color=TEXT_COLOR, parse_math=False)
            caption_x = static.get_window_extent(self._canvas.get_renderer()).x1 + 2 * MARGIN_PX
        self._caption = self._fig.text(caption_x / self.width, 1.0 - (HEADER_PX - 7) / self.height, "",
                                       fontsize=FONT_SIZE + 1, color=TEXT_COLOR, animated=blit,
                                       parse_math=False)
        self._fig.text((img_x - MARGIN_PX) / self.width, 1.0 - (HEADER_PX - 7) / self.height,
                       "pink: face part   purple: chosen avatar part", ha="right",
                       fontsize=FONT_SIZE, color=TEXT_COLOR)

        panels = [self._panels[e][s] for e in self.embedders for s in self.slots]
        self._drawn = [self._caption] + [a for p in panels for a in (p.part_line, p.face_line, p.no_face)]
        self._sprites = [t for p in panels for t in (p.title, p.sim)]
        self._background = None
        self._refresh_background()

    def _refresh_background(self) -> None:
        """Render everything static (animated artists are skipped) and keep it for blitting."""
        self._canvas.draw()
        if self._blit:
            self._background = self._canvas.copy_from_bbox(self._fig.bbox)
            for sprite in self._sprites:
                sprite.clear()

    def draw(self, face: dict[str, dict[str, np.ndarray | None]],
             part: dict[str, dict[str, np.ndarray | None]],
             similarity: dict[str, dict[str, float]], labels: dict[str, dict[str, str]],
             crop: np.ndarray | None, avatar: np.ndarray | None, caption: str = "") -> np.ndarray:
        """Draw one frame.

        face[embedder][slot], part[embedder][slot]: (D,) float embeddings of the face part and of the chosen
        avatar part, or None (no face in this frame / no part chosen): that graph is hidden, and with no
        face the panel says "no face". Every panel must be present in both.
        similarity[embedder][slot]: cosine similarity shown in the panel's title; labels[embedder][slot]:
        the chosen part's "id [tags]". A panel missing from these, or a NaN similarity, shows nothing.
        crop, avatar: (H, W, 3) uint8 RGB of any size (letterboxed into their squares), or None.
        caption: the header text, e.g. "frame 12  t=0.40 s".
        Returns (height, width, 3) uint8 RGB.
        """
        regrow = False
        for e in self.embedders:
            for s in self.slots:
                p = self._panels[e][s]
                f = p.shown(face[e][s], f"face[{e!r}][{s!r}]")
                q = p.shown(part[e][s], f"part[{e!r}][{s!r}]")
                regrow |= self._fit_ylim(p, f, q)
                for line, values in ((p.face_line, f), (p.part_line, q)):
                    line.set_visible(values is not None)
                    if values is not None:
                        line.set_ydata(values)
                p.no_face.set_visible(f is None)
                sim = similarity.get(e, {}).get(s)
                p.sim.text.set_text("" if sim is None or not np.isfinite(sim) else f"cos {sim:.2f}")
                p.title.text.set_text(labels.get(e, {}).get(s, ""))
        self._caption.set_text(caption)

        if not self._blit:
            self._canvas.draw()
            out = _rgb(self._canvas)
        else:
            if regrow:
                self._refresh_background()
            self._canvas.restore_region(self._background)
            for a in self._drawn:
                self._fig.draw_artist(a)
            hits, misses = [], []
            for sprite in self._sprites:
                patch = sprite.cached()
                if patch is None:
                    self._fig.draw_artist(sprite.text)
                    misses.append(sprite)
                else:
                    hits.append((sprite, patch))
            out = _rgb(self._canvas)
            for sprite in misses:
                sprite.store(out)
            for sprite, patch in hits:
                sprite.paste(out, patch)
        for image, (x, y, side) in zip((crop, avatar), self._image_boxes):
            if image is not None:
                _paste_letterboxed(out, image, x, y, side)
        return out

    @staticmethod
    def _fit_ylim(p: _Panel, *values: np.ndarray | None) -> bool:
        """Grow the panel's +-limit to fit the values (never shrink); True when the limits changed."""
        if p.fixed:
            return False
        peaks = [float(np.nanmax(np.abs(v))) for v in values if v is not None and np.isfinite(v).any()]
        if not peaks or (p.half_range is not None and max(peaks) <= p.half_range):
            return False
        # 5 % headroom so that a marker at the peak is not cut by the axes frame.
        p.half_range = _nice_ceil(max(max(peaks), 1e-6) * 1.05)
        p.ax.set_ylim(-p.half_range, p.half_range)
        return True


def _rgb(canvas: FigureCanvasAgg) -> np.ndarray:
    """The canvas as a new (H, W, 3) uint8 RGB array. cv2 drops the alpha channel some 50x faster than
    numpy's strided copy (0.06 vs 4 ms at 1280x720), a sixth of the whole frame's budget."""
    return cv2.cvtColor(np.asarray(canvas.buffer_rgba()), cv2.COLOR_RGBA2RGB)


def _paste_letterboxed(out: np.ndarray, image: np.ndarray, x: int, y: int, side: int) -> None:
    """Paste an (H, W, 3) uint8 RGB image into out[y:y+side, x:x+side], scaled to fit with its aspect ratio
    kept; the rest of the square is cleared to the background (it covers the "no face" placeholder)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"images must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    scale = side / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # INTER_AREA when shrinking keeps thin label-map outlines visible; linear when enlarging.
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(image), (nw, nh), interpolation=interp)
    square = out[y:y + side, x:x + side]
    square[:] = _BACKGROUND_RGB
    ox, oy = (side - nw) // 2, (side - nh) // 2
    square[oy:oy + nh, ox:ox + nw] = resized


# Embedder series in the summary: colours and line styles away from the pink/purple of the frame panels.
_SERIES_STYLES = (("#1f77b4", "-"), ("#ff7f0e", "--"), ("#2ca02c", "-."), ("#555555", ":"),
                  ("#17becf", "-"), ("#bcbd22", "--"))


def _median_label(name: str, values: np.ndarray) -> str:
    finite = values[np.isfinite(values)]
    return f"{name}: median {np.median(finite):.3f}" if finite.size else f"{name}: no data"


def summary_figure(times: np.ndarray, similarity: dict[str, dict[str, np.ndarray]],
                   change: dict[str, dict[str, np.ndarray]],
                   width: int = 1600, height: int = 900) -> np.ndarray:
    """The clip's summary picture (`<stem>_embeddings.png`).

    times: (T,) seconds. similarity[embedder][slot]: (T,) cosine similarity of the chosen part, NaN where
    no face. change[embedder][slot]: (T,) `embedding_change` of the face embedding. Slots are drawn in the
    order they first appear in `similarity` (one pair of axes per slot: similarity on top, change below),
    embedders as colour + line style, each series' median (over frames with a face) in the legend.
    Returns (height, width, 3) uint8 RGB.
    """
    times = np.asarray(times, dtype=np.float64)
    embedders = list(similarity)
    if not embedders:
        raise ValueError("summary_figure needs at least one embedder")
    slots = list(dict.fromkeys(s for e in embedders for s in similarity[e]))
    fig = Figure(figsize=((width + 1e-3) / DPI, (height + 1e-3) / DPI), dpi=DPI, facecolor=BACKGROUND)
    canvas = FigureCanvasAgg(fig)
    # Legends sit outside on the right, so the curves are never hidden behind them.
    fig.subplots_adjust(left=0.07, right=0.80, top=0.95, bottom=0.06)
    fig.suptitle("per part: similarity of the chosen part (top) and frame-to-frame change of the face "
                 "embedding, 1 - cos (bottom)", fontsize=FONT_SIZE + 1)
    outer = fig.add_gridspec(len(slots), 1, hspace=0.35)
    first = None
    for r, s in enumerate(slots):
        inner = outer[r].subgridspec(2, 1, hspace=0.08)
        ax_sim = fig.add_subplot(inner[0], sharex=first)
        first = first or ax_sim
        ax_chg = fig.add_subplot(inner[1], sharex=first)
        for i, e in enumerate(embedders):
            color, style = _SERIES_STYLES[i % len(_SERIES_STYLES)]
            for ax, series in ((ax_sim, similarity[e].get(s)), (ax_chg, change.get(e, {}).get(s))):
                if series is None:
                    continue
                series = np.asarray(series, dtype=np.float64)
                if series.shape != times.shape:
                    raise ValueError(f"series for {e}/{s} has shape {series.shape}, times {times.shape}")
                ax.plot(times, series, color=color, ls=style, lw=1.0, label=_median_label(e, series))
        ax_sim.set_ylabel(f"{s}\nsimilarity", fontsize=SMALL_FONT_SIZE)
        ax_chg.set_ylabel("change", fontsize=SMALL_FONT_SIZE)
        ax_chg.set_ylim(bottom=0.0)
        for ax in (ax_sim, ax_chg):
            ax.tick_params(labelsize=SMALL_FONT_SIZE, length=2, pad=1)
            ax.grid(True, color="#eeeeee", lw=0.6)
            if ax.get_lines():
                ax.legend(loc="center left", bbox_to_anchor=(1.005, 0.5), fontsize=SMALL_FONT_SIZE,
                          frameon=False, handlelength=2.5)
            if ax is not ax_chg or r < len(slots) - 1:
                ax.tick_params(labelbottom=False)
    ax_chg.set_xlabel("time (s)", fontsize=FONT_SIZE)
    canvas.draw()
    return _rgb(canvas)
