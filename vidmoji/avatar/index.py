"""FAISS indexes of a style's parts: per embedder and slot, inner product on L2-normalised vectors
(= cosine similarity), plus a small colour index of the style's skin palette.

On disk, `<root>/<style>/<embedder>/`: `<slot>.faiss` and `meta.json` (part ids, files, tags, dimension,
the raw vectors' file, and a fingerprint of the templates, the window definitions and the embedder's
weights). A stale index (fingerprint differs) is rebuilt by `load_indexes`; a corrupt one is refused.

Where (see `index_locations`): the shipped styles' indexes come with vidmoji (the checkout's indexes/, or the
installed package's copy). An index that has to be built on the user's machine (the user's own `--templates`
style, a stale shipped index in an installed or read-only copy) goes to the user's cache folder, never into
site-packages; in a source checkout the shipped styles' indexes are rebuilt in place, in indexes/.
VIDMOJI_INDEXES names one folder to use instead of all of these.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import torch

from vidmoji import parts, resources
from vidmoji.avatar.templates import Part, Style, render_label_window, render_rgba
from vidmoji.embed.base import Embedder, embed_slot
from vidmoji.errors import VidmojiError
from vidmoji.video import write_bytes_atomic

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


def _is_shipped(style: Style) -> bool:
    """True for a style of the shipped templates folder (not one of the user's `--templates`)."""
    return Path(style.root).resolve().parent == resources.templates_root().resolve()


def index_locations(style: Style, embedder_name: str) -> tuple[tuple[Path, ...], Path]:
    """(the folders the style's index for one embedder is read from, in order; the folder it is built into).

    VIDMOJI_INDEXES: that folder only. A shipped style: its shipped index, rebuilt in place in a writable
    source checkout, else into the user's cache folder (read after the shipped one). The user's own style:
    the cache folder, under the style's name and a hash of its folder (two styles of one name don't clash).
    """
    override = resources.indexes_override()
    if override is not None:
        d = override / style.name / embedder_name
        return (d,), d
    cache = resources.cache_indexes_root()
    if not _is_shipped(style):
        key = hashlib.sha256(str(Path(style.root).resolve()).encode()).hexdigest()[:10]
        d = cache / f"{style.name}-{key}" / embedder_name
        return (d,), d
    shipped_root = resources.shipped_indexes_root()
    shipped = shipped_root / style.name / embedder_name
    if resources.checkout_root() is not None and resources.is_writable_dir(shipped_root):
        return (shipped,), shipped
    built = cache / style.name / embedder_name
    return (shipped, built), built


def index_dir(style: Style, embedder_name: str, root: Path | None = None) -> Path:
    """Where a style's index for one embedder is built: `root/<style>/<embedder>` when root is given, else
    where `index_locations` says."""
    if root is not None:
        return Path(root) / style.name / embedder_name
    return index_locations(style, embedder_name)[1]


def _read_dirs(style: Style, embedder_name: str, root: Path | None) -> tuple[Path, ...]:
    if root is not None:
        return (Path(root) / style.name / embedder_name,)
    return index_locations(style, embedder_name)[0]


def _can_index(style: Style, embedder: Embedder, slot: str, device: torch.device) -> bool:
    """Per-frame slots always; an identity slot (hair) when the style draws it and the embedder has a model
    for its label windows (a style or weights without hair simply go without a hair index)."""
    if slot in parts.SLOTS:
        return True
    if not style.parts_in(slot) or embedder.kind != "label":
        return False
    try:
        embed_slot(embedder, slot, torch.zeros((1, len(parts.SLOT_CHANNELS[slot]), parts.WINDOW_SIZE,
                                                   parts.WINDOW_SIZE), device=device))
    except Exception:  # noqa: BLE001 - weights without the group
        return False
    return True


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
    for slot in parts.INDEXED_SLOTS:
        if not _can_index(style, embedder, slot, device):
            continue
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


def _is_current(d: Path, fingerprint: str) -> bool:
    try:
        meta = json.loads((d / "meta.json").read_text())
        return meta.get("format") == FORMAT_VERSION and meta.get("fingerprint") == fingerprint
    except (OSError, ValueError):
        return False


def current_index_dir(style: Style, embedder: Embedder, root: Path | None = None) -> Path | None:
    """The first stored index of the style built from these templates and weights, or None."""
    fingerprint = _fingerprint(style, embedder)
    return next((d for d in _read_dirs(style, embedder.name, root) if _is_current(d, fingerprint)), None)


def index_is_current(style: Style, embedder: Embedder, root: Path | None = None) -> bool:
    """True when a stored index exists and was built from these templates and weights."""
    return current_index_dir(style, embedder, root) is not None


def read_indexes(style: Style, embedder_name: str, root: Path | None = None) -> dict[str, PartIndex]:
    """Read a stored index set (without root: the first of `index_locations` that has one); anything
    unreadable or inconsistent raises IndexError_."""
    dirs = _read_dirs(style, embedder_name, root)
    return _read_dir(style, embedder_name, next((d for d in dirs if (d / "meta.json").exists()), dirs[-1]))


def _read_dir(style: Style, embedder_name: str, d: Path) -> dict[str, PartIndex]:
    try:
        meta = json.loads((d / "meta.json").read_text())
        out = {}
        for slot in parts.INDEXED_SLOTS:
            if slot not in parts.SLOTS and slot not in meta["slots"]:     # optional slots (hair)
                continue
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
    current = current_index_dir(style, embedder, root)
    if current is None:
        out = index_dir(style, embedder.name, root)
        log(f"index of style {style.name!r} for embedder {embedder.name!r} is missing or stale: "
            f"rebuilding it in {out}")
        current = build_indexes(style, embedder, device, root)
    return _read_dir(style, embedder.name, current)
