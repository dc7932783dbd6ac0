"""FAISS indexes of a style's parts: per embedder and slot, inner product on L2-normalised vectors
(= cosine similarity), plus a small colour index of the style's skin palette.

On disk, `indexes/<style>/<embedder>/`: `<slot>.faiss` and `meta.json` (part ids, files, tags, dimension,
the raw vectors' file, and a fingerprint of the templates, the window definitions and the embedder's
weights). A stale index (fingerprint differs) is rebuilt by `load_indexes`; a corrupt one is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import faiss
import numpy as np
import torch

import vidmoji
from vidmoji import parts
from vidmoji.avatar.templates import Part, Style, render_label_window, render_rgba
from vidmoji.embed.base import Embedder, embed_slot
from vidmoji.errors import VidmojiError
from vidmoji.video import write_bytes_atomic

# The repository's indexes/ folder; VIDMOJI_INDEXES points elsewhere (a read-only install, a test).
INDEXES_ROOT = Path(os.environ.get("VIDMOJI_INDEXES", Path(vidmoji.__file__).resolve().parent.parent / "indexes"))
FORMAT_VERSION = 1


class IndexError_(VidmojiError):
    """An index cannot be used: corrupt, or built for something else."""


@dataclass(frozen=True)
class PartIndex:
    """The parts of one slot of one style, searchable by cosine similarity.

    vectors: (P, D) float32 centred embeddings (not normalised), row i = part_ids[i].
    """

    slot: str
    part_ids: tuple[str, ...]
    tags: tuple[tuple[str, ...], ...]
    vectors: np.ndarray
    index: faiss.Index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(B, D) float32 centred embeddings -> (sims (B, k) float32 cosine, rows (B, k) int64)."""
        k = min(k, len(self.part_ids))
        if len(queries) == 0:
            return np.zeros((0, k), np.float32), np.zeros((0, k), np.int64)
        q = np.ascontiguousarray(queries, dtype=np.float32).copy()
        faiss.normalize_L2(q)
        return self.index.search(q, k)


def _fingerprint(style: Style, embedder: Embedder) -> str:
    h = hashlib.sha256()
    h.update(f"v{FORMAT_VERSION}".encode())
    h.update((Path(parts.__file__)).read_bytes())
    h.update(Path(style.root, "style.json").read_bytes())
    for part in style.parts:
        h.update(part.id.encode())
        h.update(Path(part.path).read_bytes())
    h.update(embedder.fingerprint().encode())
    return h.hexdigest()[:20]


def part_windows(part: Part, kind: str) -> torch.Tensor:
    """The window an embedder of `kind` sees for a drawn part: (C, S, S) label or (3, 224, 224) RGB."""
    if kind == "label":
        return torch.from_numpy(render_label_window(part, parts.WINDOW_SIZE))
    rgba = render_rgba(part, parts.RGB_CROP).astype(np.float32) / 255.0
    # RGB crops of real faces are photos without transparency: composite drawn parts on mid grey.
    rgb = rgba[..., :3] * rgba[..., 3:] + 0.5 * (1 - rgba[..., 3:])
    return torch.from_numpy(rgb.transpose(2, 0, 1).copy())


def embed_parts(style: Style, embedder: Embedder, slot: str, device: torch.device) -> np.ndarray:
    """(P, D) float32 embeddings of the slot's parts, in style order."""
    slot_parts = [p for p in style.parts if p.slot == slot]
    windows = torch.stack([part_windows(p, embedder.kind) for p in slot_parts]).to(device)
    with torch.inference_mode():
        return embed_slot(embedder, slot, windows).float().cpu().numpy()


def _flat_index(vectors: np.ndarray) -> faiss.Index:
    v = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    faiss.normalize_L2(v)
    index = faiss.IndexFlatIP(v.shape[1])
    index.add(v)
    return index


def index_dir(style: Style, embedder_name: str, root: Path | None = None) -> Path:
    """Where a style's index for one embedder lives."""
    return Path(root or INDEXES_ROOT) / style.name / embedder_name


def build_indexes(style: Style, embedder: Embedder, device: torch.device,
                  root: Path | None = None) -> Path:
    """Embed every part of the style and write its indexes; returns the directory written.

    The metadata is written last, so an interrupted build leaves an index that reads as stale.
    """
    out = index_dir(style, embedder.name, root)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexError_(f"cannot write indexes to {out}: {exc.strerror}") from None
    meta = {"format": FORMAT_VERSION, "style": style.name, "embedder": embedder.name,
            "fingerprint": _fingerprint(style, embedder), "slots": {}}
    for slot in parts.SLOTS:
        vectors = embed_parts(style, embedder, slot, device)
        index = _flat_index(vectors)
        write_bytes_atomic(out / f"{slot}.faiss", faiss.serialize_index(index).tobytes())
        write_bytes_atomic(out / f"{slot}.npy", _npy_bytes(vectors))
        slot_parts = [p for p in style.parts if p.slot == slot]
        meta["slots"][slot] = {
            "dim": int(vectors.shape[1]),
            "parts": [{"id": p.id, "file": Path(p.path).name, "tags": list(p.tags)} for p in slot_parts],
        }
    write_bytes_atomic(out / "meta.json", json.dumps(meta, indent=1).encode())
    return out


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def index_is_current(style: Style, embedder: Embedder, root: Path | None = None) -> bool:
    """True when the stored index exists and was built from these templates and weights."""
    meta_path = index_dir(style, embedder.name, root) / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
        return meta.get("format") == FORMAT_VERSION and meta.get("fingerprint") == _fingerprint(style, embedder)
    except (OSError, ValueError):
        return False


def read_indexes(style: Style, embedder_name: str, root: Path | None = None) -> dict[str, PartIndex]:
    """Read a stored index set; anything unreadable or inconsistent raises IndexError_."""
    d = index_dir(style, embedder_name, root)
    try:
        meta = json.loads((d / "meta.json").read_text())
        out = {}
        for slot in parts.SLOTS:
            info = meta["slots"][slot]
            index = faiss.deserialize_index(np.fromfile(d / f"{slot}.faiss", dtype=np.uint8))
            vectors = np.load(d / f"{slot}.npy", allow_pickle=False)
            ids = tuple(p["id"] for p in info["parts"])
            if index.ntotal != len(ids) or index.d != info["dim"] or vectors.shape != (len(ids), info["dim"]):
                raise ValueError(f"{slot} holds {index.ntotal} vectors of {index.d} dims, meta says "
                                 f"{len(ids)} of {info['dim']}")
            out[slot] = PartIndex(slot, ids, tuple(tuple(p["tags"]) for p in info["parts"]), vectors, index)
        return out
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexError_(f"the {embedder_name} index of style {style.name!r} in {d} is corrupt "
                          f"({exc}); rebuild it with `vidmoji index --style {style.name} "
                          f"--embedder {embedder_name}`") from None


def load_indexes(style: Style, embedder: Embedder, device: torch.device, root: Path | None = None,
                 log=print) -> dict[str, PartIndex]:
    """The style's indexes for the embedder, rebuilt first (with a message) when missing or stale."""
    if not index_is_current(style, embedder, root):
        log(f"index of style {style.name!r} for embedder {embedder.name!r} is missing or stale: rebuilding")
        build_indexes(style, embedder, device, root)
    return read_indexes(style, embedder.name, root)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(..., 3) RGB in [0, 255] -> (..., 3) float32 CIE Lab (D65), for perceptual colour distances."""
    arr = np.asarray(rgb, dtype=np.float32).reshape(-1, 1, 3) / 255.0
    return cv2.cvtColor(arr, cv2.COLOR_RGB2Lab).reshape(np.shape(rgb)).astype(np.float32)


@dataclass(frozen=True)
class SkinIndex:
    """The style's skin palette as a FAISS L2 index in Lab space."""

    names: tuple[str, ...]
    colours: tuple[str, ...]
    index: faiss.Index

    def nearest(self, rgb: np.ndarray) -> list[int]:
        """(B, 3) RGB in [0, 255] -> the palette entry nearest each colour."""
        _, rows = self.index.search(np.ascontiguousarray(rgb_to_lab(rgb).reshape(-1, 3)), 1)
        return [int(r) for r in rows[:, 0]]


def skin_index(style: Style) -> SkinIndex:
    """A colour index over the style's palette (tiny: built in memory each time)."""
    names = tuple(name for name, _ in style.palette)
    colours = tuple(colour for _, colour in style.palette)
    rgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colours], dtype=np.float32)
    index = faiss.IndexFlatL2(3)
    index.add(np.ascontiguousarray(rgb_to_lab(rgb)))
    return SkinIndex(names, colours, index)
