"""What a process loads once and reuses from render to render: the embedder, a style's indexes, the face
models (detector, mesh, iris) and the avatar composer with its drawn layers.

A batch worker (vidmoji.batch) renders clip after clip in one process; without this each clip loaded
every model again and drew every avatar layer again. Entries are keyed by what makes them differ
(device, embedder and its weights file, style and its folder, the composer's skin, size and look), and
few are kept (the last LRU_SIZE of each kind), so a worker that switches styles does not grow.

`LOADS` counts what was really loaded (not served from here) in this process, per kind, and `LOAD_S` the
seconds it took: a batch's manifest records their change over each clip, so a worker's second clip shows
that it loaded nothing (tests/test_batch.py).

`bound_heap()` makes glibc's malloc return large blocks to the system when they are freed (see there).
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from collections import Counter, OrderedDict
from pathlib import Path

import torch

LRU_SIZE = 2
LOADS: Counter = Counter()
LOAD_S: Counter = Counter()
_caches: dict[str, OrderedDict] = {}
_lock = threading.Lock()


def _cached(kind: str, key: tuple, load):
    """The `kind` entry for `key`, loaded with `load()` (and counted) when it is not held."""
    with _lock:
        cache = _caches.setdefault(kind, OrderedDict())
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
    start = time.perf_counter()
    value = load()
    with _lock:
        LOADS[kind] += 1
        LOAD_S[kind] += time.perf_counter() - start
        cache[key] = value
        while len(cache) > LRU_SIZE:
            cache.popitem(last=False)
    return value


def _file_key(path: Path | str | None) -> tuple:
    if path is None:
        return (None,)
    p = Path(path)
    try:
        st = p.stat()
        return (str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return (str(p),)


def embedder(name: str, device: torch.device, weights: Path | None = None):
    """vidmoji.embed.registry.load_embedder, once per (name, device, weights file)."""
    from vidmoji.embed.registry import load_embedder
    return _cached("embedder", (name, str(device), _file_key(weights)),
                   lambda: load_embedder(name, device, weights))


def indexes(style, embedder_, device: torch.device, log=print) -> dict:
    """vidmoji.avatar.index.load_indexes, once per (style, embedder, stored index folder): the folder is
    looked up each time (its templates' fingerprint, a few ms), so edited templates are never served a
    stale index; one that is missing or stale is rebuilt by load_indexes, as before."""
    from vidmoji.avatar.index import current_index_dir, load_indexes
    current = current_index_dir(style, embedder_)
    return _cached("indexes", (style, embedder_.name, embedder_.fingerprint(), str(device), str(current)),
                   lambda: load_indexes(style, embedder_, device, log=log))


def face_models(device: torch.device, max_faces: int, small_faces: str):
    """(FaceLocator, EyeRefiner), once per (device, max_faces, small_faces); the locator's tracking state
    is reset, so a reused one starts each clip as a new one would."""
    from vidmoji.face.iris import EyeRefiner
    from vidmoji.face.locate import FaceLocator
    locator, refiner = _cached("face", (str(device), max_faces, small_faces),
                               lambda: (FaceLocator(device, max_faces=max_faces, small_faces=small_faces),
                                        EyeRefiner(device)))
    locator.reset()
    return locator, refiner


def composer(style, skin: str, size: int, look=None):
    """An AvatarComposer, once per (style, skin, size, look): its drawn layers and avatars (bounded caches)
    serve the next clip of the same subject and style."""
    from vidmoji.avatar.compose import AvatarComposer
    return _cached("composer", (style, skin, size, look), lambda: AvatarComposer(style, skin, size, look=look))


def loads() -> dict[str, int]:
    """What this process has loaded so far, per kind (a copy)."""
    from vidmoji.identity import _segmenter   # the person segmenter has its own per-process cache
    with _lock:
        return {**LOADS, "segmenter": _segmenter.cache_info().misses}


def clear() -> None:
    """Forget every held entry (the next render loads again)."""
    with _lock:
        for cache in _caches.values():
            cache.clear()


# --- memory -------------------------------------------------------------------------------------------------
M_MMAP_THRESHOLD = -3          # glibc's mallopt parameters
M_TRIM_THRESHOLD = -1
MMAP_THRESHOLD = 4 * 2**20
# Fixing the mmap threshold also fixes glibc's trim threshold at its default, 128 kB: every free at the top of the
# heap gave the pages back, and the next batch's activations page-faulted them in again. Pass 1 trims the heap after
# each batch itself (trim_heap).
TRIM_THRESHOLD = 64 * 2**20
# The most bytes one activation of a face network takes on the CPU (the face networks size their CPU batches by it;
# a GPU has its own caching allocator): under the mmap threshold, so that it comes from the heap and its memory is
# reused by the next layer and batch. A block over the threshold is a fresh mapping each time, every page of it
# faulted in: at 16 faces a batch the mesh's 96x96 feature maps are 9.4 MB, and pass 1 of a 1280x720 render took
# twice the time it takes with the default heap (liveportrait__s32: 6.4-6.7 s against 3.6-4.6 s).
ACTIVATION_BYTES = MMAP_THRESHOLD * 7 // 8


def activation_batch(item_bytes: int) -> int:
    """Items a face network takes at once on the CPU when one item's largest activation is `item_bytes`: as many as
    stay within ACTIVATION_BYTES, at least one."""
    return max(1, ACTIVATION_BYTES // item_bytes)


_bounded = False
_libc = None


def bound_heap() -> None:
    """Fix glibc malloc's mmap threshold at 4 MB and its trim threshold at 64 MB (Linux with glibc only; elsewhere
    nothing happens).

    By default glibc raises the threshold to the size of each large block freed (up to 32 MB), after which
    blocks that size come from the heap, which cannot shrink past live small objects above them: a 1080p
    render's frames and float copies (6-25 MB each) then left hundreds of MB resident that nothing used
    (measured: a loop resizing 16 1080p frames one at a time grew 370 MB with the default, 95 MB with the
    threshold fixed). With it fixed, every block of 4 MB or more is its own mapping, returned when freed."""
    global _bounded, _libc
    if _bounded or not sys.platform.startswith("linux"):
        return
    _bounded = True
    try:
        libc = ctypes.CDLL(None)
        mallopt, libc.malloc_trim.argtypes = libc.mallopt, [ctypes.c_size_t]
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    _libc = libc


def trim_heap() -> None:
    """Give the free memory inside malloc's heaps back to the system (glibc's malloc_trim; elsewhere
    nothing). Pass 1 calls it after each batch: freed frames and float copies under the mmap threshold
    otherwise stay resident as holes between live objects (about 90 MB at 1080p)."""
    if _libc is not None:
        _libc.malloc_trim(0)


def status_mb(field: str = "VmRSS") -> float | None:
    """A memory figure of /proc/self/status in MB (VmRSS: resident now; VmHWM: peak resident); None where
    /proc is not there."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float | None:
    """This process's resident memory now (VmRSS), in MB; None where /proc is not there."""
    return status_mb("VmRSS")
