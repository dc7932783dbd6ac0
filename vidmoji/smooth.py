"""Choosing one part per frame from per-frame candidates, so a still face does not flicker and a real
change (a blink, a mouth opening) still shows at once.

Input for one part slot over T frames: `ids (T, k) int64` candidate part indices (-1: no face / no
candidate) and `sims (T, k) float32` their cosine similarities. Output: `chosen (T,) int64`, -1 where the
frame has no face. Frames without a face split the clip into segments, each smoothed on its own.

Similarity scale the defaults are tuned for (cosine similarity of centred embeddings): frame-to-frame noise
moves the top-1 by about 0.01; a real change moves the new best ahead by 0.05-0.3 for several frames; a blink
lasts 3-6 frames at 30 fps.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

# Cost of changing part, in similarity units. A change that is undone later costs two switches (0.6), so
# it shows when its summed lead over the frames it lasts exceeds 0.6. Measured with the ae embedder: a shut
# eye's closed part leads the best open part by about 0.4 per frame, so blinks of two frames and more show
# (0.8); neighbouring variants (an arched against a raised brow, a squint against an open eye) trade leads
# of 0.05-0.1 as the mesh jitters, and at 0.1 per switch they flickered 1-4 times a second on faces the
# labels call still; at 0.3 that falls under 0.5. A lasting change costs one switch, which Viterbi over the
# whole clip places where the change starts.
DEFAULT_SWITCH_COST = 0.3
# A part outside a frame's top-k has an unknown similarity below the k-th best. Assume it sits the smallest
# real change (0.05) lower, so the path does not keep riding a part that has left the candidates.
DEFAULT_FILL_MARGIN = 0.05
# Hysteresis margin: above noise (~0.01) and the single-frame outliers to ignore (~0.03), below the smallest
# real change (0.05), so real changes switch on their first frame.
DEFAULT_HYSTERESIS_MARGIN = 0.04
# Online (FixedLagViterbi): the state a path ends in changes only when another's path is this much cheaper
# (in summed similarity). Two parts in an exact tie swap the lead as the noise's sum wanders: on the
# synthetic still faces of tests/test_smooth.py that is 0.1-1.5 switches/s with no margin, 0-0.4 at 0.05,
# 0-0.1 at 0.1; each 0.05 delays a real change of lead L by 0.05 / L frames, and on the labelled clips
# (bench/bench_live.py) 0.1 cost up to 0.013 of agreement against no margin at lag 0.
DEFAULT_END_MARGIN = 0.05


class Smoother(Protocol):
    def smooth(self, ids: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """ids (T, k) int64, sims (T, k) float -> chosen (T,) int64 part ids, -1 where no face."""
        ...


def _check_inputs(ids: np.ndarray, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids)
    sims = np.asarray(sims, dtype=np.float64)
    if ids.ndim != 2 or ids.shape != sims.shape or ids.shape[1] == 0:
        raise ValueError(f"ids and sims must both be (T, k) with k >= 1; got {ids.shape} and {sims.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got {ids.dtype}")
    return ids.astype(np.int64, copy=False), sims


def face_segments(ids: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) frame ranges where a face has at least one candidate. ids: (T, k) int64."""
    face = (ids >= 0).any(axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], face.astype(np.int8), [0]))))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def candidate_scores(ids: np.ndarray, sims: np.ndarray, fill_margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Dense similarity of every candidate part at every frame of one face segment.

    ids, sims: (n, k), every row with at least one id >= 0. Returns states (S,) int64, the sorted part ids
    seen in the segment, and scores (n, S) float64: the similarity where the part is in the frame's
    top-k, else the frame's k-th best (lowest listed) similarity minus `fill_margin`.
    """
    valid = ids >= 0
    states = np.unique(ids[valid])
    fill = np.where(valid, sims, np.inf).min(axis=1) - fill_margin
    scores = np.repeat(fill[:, None], len(states), axis=1)
    rows = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)[valid]
    cols = np.searchsorted(states, ids[valid])
    np.maximum.at(scores, (rows, cols), sims[valid])
    return states, scores


def _smooth_by_segment(ids, sims, fill_margin: float, choose) -> np.ndarray:
    """Run `choose(scores (n, S)) -> column (n,)` on each face segment; -1 elsewhere."""
    ids, sims = _check_inputs(ids, sims)
    chosen = np.full(len(ids), -1, dtype=np.int64)
    for start, end in face_segments(ids):
        states, scores = candidate_scores(ids[start:end], sims[start:end], fill_margin)
        chosen[start:end] = states[choose(scores)]
    return chosen


class ViterbiSmoother:
    """The part sequence with the least total cost: -similarity per frame plus `switch_cost` per change.

    switch_cost: cost of one change of part, in similarity units (see DEFAULT_SWITCH_COST).
    fill_margin: how far below a frame's k-th best a part outside its top-k is assumed to be.
    window: None decides each segment from the whole segment. An int W decides frames with a fixed
    look-ahead of at least W frames (between W and 2W - 1), holding only 2W frames of back-pointers, for
    long clips and streaming; it equals the whole-clip answer whenever W frames of look-ahead suffice to
    settle each change (W of about a second is plenty for the default switch cost).

    Cost is O(T * S) time for T frames and S candidate parts: each step takes the better of staying and
    of switching from the best previous state, never the S x S transition table.
    """

    def __init__(
        self,
        switch_cost: float = DEFAULT_SWITCH_COST,
        fill_margin: float = DEFAULT_FILL_MARGIN,
        window: int | None = None,
    ):
        if switch_cost < 0 or fill_margin < 0:
            raise ValueError("switch_cost and fill_margin must be >= 0")
        if window is not None and window < 1:
            raise ValueError(f"window must be None or >= 1, got {window}")
        self.switch_cost = switch_cost
        self.fill_margin = fill_margin
        self.window = window

    def smooth(self, ids: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """ids (T, k) int64, sims (T, k) float -> chosen (T,) int64 part ids, -1 where no face."""
        return _smooth_by_segment(ids, sims, self.fill_margin, self._path)

    def _path(self, scores: np.ndarray) -> np.ndarray:
        """Least-cost column per frame for scores (n, S) similarities."""
        n, _ = scores.shape
        cost = -scores
        # Back-pointers in a ring of `span` frames: stayed[u % span, s] says whether the best path into
        # state s at frame u came from s itself; otherwise it came from best_prev[u % span].
        span = n if self.window is None else min(n, 2 * self.window)
        stayed = np.ones((span, cost.shape[1]), dtype=bool)
        best_prev = np.zeros(span, dtype=np.int64)
        path = np.empty(n, dtype=np.int64)
        total = cost[0].copy()
        committed = 0
        for t in range(1, n):
            total, stayed[t % span], best_prev[t % span] = viterbi_step(total, cost[t], self.switch_cost)
            if self.window is not None and t + 1 - committed == 2 * self.window:
                keep = committed + self.window
                path[committed:keep] = self._backtrack(total, t, committed, stayed, best_prev)[: self.window]
                committed = keep
        path[committed:] = self._backtrack(total, n - 1, committed, stayed, best_prev)
        return path

    @staticmethod
    def _backtrack(total, t, start, stayed, best_prev) -> np.ndarray:
        """Best path over frames start..t (inclusive), ending in the cheapest state at t."""
        span = len(best_prev)
        out = np.empty(t - start + 1, dtype=np.int64)
        state = int(total.argmin())
        for u in range(t, start, -1):
            out[u - start] = state
            if not stayed[u % span, state]:
                state = int(best_prev[u % span])
        out[0] = state
        return out


def viterbi_step(total: np.ndarray, cost: np.ndarray, switch_cost: float) -> tuple[np.ndarray, np.ndarray, int]:
    """One frame of the least-cost recursion: total (S,) path costs up to the previous frame, cost (S,) this
    frame's -similarity. Returns the new totals, stay (S,) bool (the best path into each state came from
    itself) and the state every other path switched from."""
    j = int(total.argmin())
    switch = total[j] + switch_cost
    stay = total <= switch
    return np.where(stay, total, switch) + cost, stay, j


class FixedLagViterbi:
    """The Viterbi smoother online, one frame at a time, deciding each frame `lag` frames after it arrives.

    The states are all `n_parts` parts of a slot (a part outside a frame's top-k scores the k-th best minus
    fill_margin, as in `candidate_scores`); `push(ids (k,), sims (k,))` takes one frame's candidates (all -1:
    no face, which ends the segment) and returns the part decided for the frame `lag` frames back (-1: no
    face, or still inside the first `lag` frames of the stream). lag 0 is the forward decision: the state
    whose best path ends cheapest now, kept until another's ends `end_margin` cheaper. The whole-clip `ViterbiSmoother` is the same recursion with the
    whole segment as look-ahead.
    """

    def __init__(self, n_parts: int, lag: int = 0, switch_cost: float = DEFAULT_SWITCH_COST,
                 fill_margin: float = DEFAULT_FILL_MARGIN, end_margin: float = DEFAULT_END_MARGIN):
        if lag < 0 or n_parts < 1:
            raise ValueError(f"lag must be >= 0 and n_parts >= 1, got {lag} and {n_parts}")
        self.n_parts, self.lag = n_parts, lag
        self.switch_cost, self.fill_margin = switch_cost, fill_margin
        self.end_margin = end_margin
        self._total: np.ndarray | None = None
        self._end: int | None = None
        # The last lag + 1 frames: whether each had a face, the state its path ended in, the back-pointers.
        self._face: list[bool] = []
        self._ends: list[int | None] = []
        self._stayed: list[np.ndarray] = []
        self._prev: list[int] = []

    def push(self, ids: np.ndarray, sims: np.ndarray) -> int:
        ids = np.asarray(ids, np.int64)
        valid = ids >= 0
        if not valid.any():
            self._total = None
            self._remember(False, np.ones(self.n_parts, bool), 0)
        else:
            cost = np.full(self.n_parts, -(float(np.min(np.asarray(sims)[valid])) - self.fill_margin))
            np.minimum.at(cost, ids[valid], -np.asarray(sims, np.float64)[valid])
            if self._total is None:
                self._total, stay, j = cost, np.ones(self.n_parts, bool), 0
            else:
                self._total, stay, j = viterbi_step(self._total, cost, self.switch_cost)
            self._remember(True, stay, j)
        if self._total is not None:
            # The path to follow ends in the state it ended in before, unless another's ends clearly cheaper:
            # two parts whose totals cross back and forth (a near tie) would otherwise take turns.
            best = int(self._total.argmin())
            if self._end is None or self._total[self._end] - self._total[best] > self.end_margin:
                self._end = best
        else:
            self._end = None
        self._ends[-1] = self._end
        if len(self._face) <= self.lag or not self._face[0]:
            return -1
        # Back along the path ending at the latest remembered frame of the oldest frame's segment.
        end = self._face.index(False) - 1 if False in self._face else len(self._face) - 1
        state = self._ends[end]
        for u in range(end, 0, -1):
            if not self._stayed[u][state]:
                state = self._prev[u]
        return state

    def _remember(self, face: bool, stay: np.ndarray, j: int) -> None:
        self._face.append(face)
        self._ends.append(None)
        self._stayed.append(stay)
        self._prev.append(j)
        if len(self._face) > self.lag + 1:
            del self._face[0], self._ends[0], self._stayed[0], self._prev[0]


class HysteresisSmoother:
    """Online: keep the current part until another candidate beats it by more than `margin`.

    margin: lead in similarity a challenger needs (see DEFAULT_HYSTERESIS_MARGIN). The current part's
    similarity, when it is outside a frame's top-k, is the k-th best minus `fill_margin`. Each segment
    starts at its first frame's best candidate. Needs no look-ahead.
    """

    def __init__(self, margin: float = DEFAULT_HYSTERESIS_MARGIN, fill_margin: float = DEFAULT_FILL_MARGIN):
        if margin < 0 or fill_margin < 0:
            raise ValueError("margin and fill_margin must be >= 0")
        self.margin = margin
        self.fill_margin = fill_margin

    def smooth(self, ids: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """ids (T, k) int64, sims (T, k) float -> chosen (T,) int64 part ids, -1 where no face."""
        return _smooth_by_segment(ids, sims, self.fill_margin, self._path)

    def _path(self, scores: np.ndarray) -> np.ndarray:
        best = scores.argmax(axis=1)
        lead = scores[np.arange(len(scores)), best]
        path = np.empty(len(scores), dtype=np.int64)
        current = int(best[0])
        for t in range(len(scores)):
            if lead[t] > scores[t, current] + self.margin:
                current = int(best[t])
            path[t] = current
        return path


class NoSmoother:
    """Each frame's best candidate on its own (the unsmoothed baseline)."""

    def smooth(self, ids: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """ids (T, k) int64, sims (T, k) float -> chosen (T,) int64 part ids, -1 where no face."""
        ids, sims = _check_inputs(ids, sims)
        best = np.where(ids >= 0, sims, -np.inf).argmax(axis=1)
        # A row without candidates is all -1, so whatever column argmax picks there reads -1.
        return ids[np.arange(len(ids)), best]


SMOOTHERS = {"viterbi": ViterbiSmoother, "hysteresis": HysteresisSmoother, "none": NoSmoother}


def make_smoother(name: str, **kwargs) -> Smoother:
    """The smoother called `name` (viterbi | hysteresis | none), built with `kwargs`.

    Raises ValueError for an unknown name, listing the choices.
    """
    try:
        cls = SMOOTHERS[name]
    except KeyError:
        raise ValueError(f"unknown smoother {name!r}; choose one of: {', '.join(SMOOTHERS)}") from None
    return cls(**kwargs)


def count_switches(chosen: np.ndarray, pts_s: np.ndarray) -> float:
    """Part changes per second between consecutive face frames.

    chosen: (T,) int64 part ids, -1 where no face (a gap is not a switch). pts_s: (T,) float64 seconds.
    Returns switches / (pts_s[-1] - pts_s[0]); 0.0 when the span is empty.
    """
    chosen = np.asarray(chosen)
    pts_s = np.asarray(pts_s, dtype=np.float64)
    if chosen.shape != pts_s.shape or chosen.ndim != 1:
        raise ValueError(f"chosen and pts_s must both be (T,); got {chosen.shape} and {pts_s.shape}")
    if len(chosen) < 2 or pts_s[-1] <= pts_s[0]:
        return 0.0
    both = (chosen[1:] >= 0) & (chosen[:-1] >= 0)
    switches = int(np.count_nonzero(both & (chosen[1:] != chosen[:-1])))
    return switches / float(pts_s[-1] - pts_s[0])
