"""Smoothers on synthetic but realistic similarity sequences: noise of ~0.01 on the top-1, real changes
of 0.05-0.3 lasting several frames, blinks of 3 frames at 30 fps."""

from __future__ import annotations

import numpy as np
import pytest

from vidmoji.smooth import (
    DEFAULT_SWITCH_COST,
    HysteresisSmoother,
    NoSmoother,
    ViterbiSmoother,
    candidate_scores,
    count_switches,
    face_segments,
    make_smoother,
)

FPS = 30.0
N_PARTS = 12
K = 5


def still_face(n: int, rng: np.random.Generator, noise: float = 0.01, gap: float = 0.01) -> np.ndarray:
    """Dense similarities (n, N_PARTS) of a still face: parts 3 and 7 near 0.80, `gap` apart (less than
    the noise, so the top-1 alternates), the rest lower, all with per-frame noise."""
    base = rng.uniform(0.4, 0.7, N_PARTS)
    base[3], base[7] = 0.80, 0.80 - gap
    return base + rng.normal(0.0, noise, (n, N_PARTS))


def top_k(dense: np.ndarray, k: int = K, no_face: slice | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What the matcher hands over: per frame the k best part ids and their similarities, best first."""
    ids = np.argsort(-dense, axis=1)[:, :k].astype(np.int64)
    sims = np.take_along_axis(dense, ids, axis=1).astype(np.float32)
    if no_face is not None:
        ids[no_face] = -1
        sims[no_face] = 0.0
    return ids, sims


def times(n: int) -> np.ndarray:
    return np.arange(n) / FPS


@pytest.mark.parametrize("seed", range(5))
def test_noisy_still_face_does_not_flicker(seed):
    rng = np.random.default_rng(seed)
    ids, sims = top_k(still_face(300, rng))
    raw = NoSmoother().smooth(ids, sims)
    assert count_switches(raw, times(300)) > 5  # the input really flickers
    chosen = ViterbiSmoother().smooth(ids, sims)
    assert len(set(chosen.tolist())) == 1 and chosen[0] in (3, 7)
    assert count_switches(chosen, times(300)) == 0.0
    assert count_switches(HysteresisSmoother().smooth(ids, sims), times(300)) < 0.5


def test_exact_tie_on_a_still_face_stays_below_the_flicker_limit():
    # With equal means only the noise's random walk decides; a rare switch is allowed, flicker is not.
    for seed in range(5):
        rng = np.random.default_rng(seed)
        ids, sims = top_k(still_face(300, rng, gap=0.0))
        assert count_switches(ViterbiSmoother().smooth(ids, sims), times(300)) < 0.5


@pytest.mark.parametrize("seed", range(5))
def test_step_change_shows_within_two_frames(seed):
    rng = np.random.default_rng(seed)
    dense = still_face(120, rng)
    dense[:, 7] -= 0.05  # part 3 is clearly best ...
    dense[50:, 9] = dense[50:, 3] + 0.1  # ... until part 9 wins by 0.1 from frame 50 on
    ids, sims = top_k(dense)
    for smoother in (ViterbiSmoother(), ViterbiSmoother(window=15), HysteresisSmoother()):
        chosen = smoother.smooth(ids, sims)
        first = int(np.flatnonzero(chosen == 9)[0])
        assert first in (50, 51), type(smoother).__name__
        assert np.all(chosen[first:] == 9) and np.all(chosen[:first] == 3)


@pytest.mark.parametrize("seed", range(5))
def test_three_frame_blink_is_shown(seed):
    rng = np.random.default_rng(seed)
    dense = still_face(90, rng)
    dense[:, 7] -= 0.05
    dense[40:43, 11] = dense[40:43, 3] + 0.4  # closed eye wins by 0.4 (the measured scale) for 3 frames
    ids, sims = top_k(dense)
    for smoother in (ViterbiSmoother(), ViterbiSmoother(window=15), HysteresisSmoother()):
        chosen = smoother.smooth(ids, sims)
        assert np.all(chosen[40:43] == 11), type(smoother).__name__
        assert np.all(np.delete(chosen, range(40, 43)) == 3)


@pytest.mark.parametrize("seed", range(5))
def test_single_frame_outlier_is_not_shown(seed):
    rng = np.random.default_rng(seed)
    dense = still_face(90, rng, noise=0.005)
    dense[:, 7] -= 0.05
    dense[45, 11] = dense[45, 3] + 0.03
    ids, sims = top_k(dense)
    assert NoSmoother().smooth(ids, sims)[45] == 11
    for smoother in (ViterbiSmoother(), ViterbiSmoother(window=15), HysteresisSmoother()):
        assert np.all(smoother.smooth(ids, sims) == 3), type(smoother).__name__


def test_no_face_frames_give_minus_one_and_break_segments():
    rng = np.random.default_rng(3)
    dense = still_face(36, rng, noise=0.002)
    dense[:, 7] -= 0.05
    dense[33:36, 7] = dense[33:36, 3] + 0.03  # after the gap part 7 leads by 0.03 for 3 frames
    ids, sims = top_k(dense, no_face=slice(20, 33))
    assert face_segments(ids) == [(0, 20), (33, 36)]
    for smoother in (ViterbiSmoother(), HysteresisSmoother(), NoSmoother()):
        chosen = smoother.smooth(ids, sims)
        assert np.all(chosen[20:33] == -1)
        assert np.all(chosen[:20] == 3)
        # A fresh segment starts from its own evidence: 3 frames x 0.03 would not pay for a switch from
        # part 3 if the chain ran through the gap.
        assert np.all(chosen[33:36] == 7), type(smoother).__name__
    assert 3 * 0.03 < DEFAULT_SWITCH_COST


def test_windowed_viterbi_equals_whole_clip():
    rng = np.random.default_rng(4)
    n = 2000
    dense = still_face(n, rng)
    # Changes of 0.05-0.3, each lasting 3-40 frames, every 60 frames.
    for start in range(30, n - 60, 60):
        part = int(rng.integers(0, N_PARTS))
        length = int(rng.integers(3, 40))
        dense[start : start + length, part] = dense[start : start + length, 3] + rng.uniform(0.05, 0.3)
    ids, sims = top_k(dense)
    whole = ViterbiSmoother().smooth(ids, sims)
    assert count_switches(whole, times(n)) > 0.5  # there is something to follow
    for window in (30, 47, 64):
        np.testing.assert_array_equal(ViterbiSmoother(window=window).smooth(ids, sims), whole)


def test_parts_outside_top_k_get_a_pessimistic_fill():
    ids = np.array([[4, 2], [2, 9], [4, -1]], dtype=np.int64)
    sims = np.array([[0.9, 0.8], [0.7, 0.6], [0.5, -1.0]], dtype=np.float32)
    states, scores = candidate_scores(ids, sims, fill_margin=0.05)
    assert states.tolist() == [2, 4, 9]
    np.testing.assert_allclose(
        scores,
        [[0.8, 0.9, 0.75], [0.7, 0.55, 0.6], [0.45, 0.5, 0.45]],
        atol=1e-6,
    )


def test_hysteresis_switches_only_past_its_margin():
    n = 40
    dense = np.full((n, 4), 0.5)
    dense[:, 0] = 0.8
    dense[10:20, 1] = 0.83  # leads by 0.03 for 10 frames: below the margin, kept on part 0
    dense[25:, 2] = 0.86  # leads by 0.06: switches on its first frame and stays
    ids, sims = top_k(dense, k=3)
    chosen = HysteresisSmoother(margin=0.04).smooth(ids, sims)
    assert np.all(chosen[:25] == 0) and np.all(chosen[25:] == 2)
    # Once on part 2, part 0 at 0.8 does not win back, however long it trails.
    assert np.all(HysteresisSmoother(margin=0.04).smooth(ids[25:], sims[25:]) == 2)


def test_no_smoother_is_per_frame_argmax():
    ids = np.array([[5, 6], [6, 5], [-1, -1], [6, -1]], dtype=np.int64)
    sims = np.array([[0.9, 0.1], [0.3, 0.2], [0.0, 0.0], [0.4, 0.0]], dtype=np.float32)
    assert NoSmoother().smooth(ids, sims).tolist() == [5, 6, -1, 6]


def test_make_smoother_and_errors():
    assert isinstance(make_smoother("viterbi", switch_cost=0.2, window=30), ViterbiSmoother)
    assert isinstance(make_smoother("hysteresis", margin=0.1), HysteresisSmoother)
    assert isinstance(make_smoother("none"), NoSmoother)
    with pytest.raises(ValueError, match="viterbi, hysteresis, none"):
        make_smoother("kalman")
    with pytest.raises(ValueError):
        ViterbiSmoother().smooth(np.zeros((3, 2), np.int64), np.zeros((3, 3), np.float32))


def test_empty_and_all_no_face_inputs():
    empty_ids, empty_sims = np.zeros((0, 3), np.int64), np.zeros((0, 3), np.float32)
    none_ids, none_sims = np.full((5, 3), -1, np.int64), np.zeros((5, 3), np.float32)
    for smoother in (ViterbiSmoother(), ViterbiSmoother(window=2), HysteresisSmoother(), NoSmoother()):
        assert smoother.smooth(empty_ids, empty_sims).shape == (0,)
        assert smoother.smooth(none_ids, none_sims).tolist() == [-1] * 5


def test_count_switches_per_second():
    chosen = np.array([1, 1, 2, 2, -1, -1, 3, 3, 1, 1, 1])
    pts = np.arange(11) / 10.0  # 1.0 s span
    # 1 -> 2 and 3 -> 1 are switches; 2 -> gap -> 3 is not.
    assert count_switches(chosen, pts) == pytest.approx(2.0)
    assert count_switches(np.array([4]), np.array([0.0])) == 0.0


def _online(ids: np.ndarray, sims: np.ndarray, lag: int, **kwargs) -> np.ndarray:
    """FixedLagViterbi over a whole sequence, each decision put back at its own frame (the last `lag` frames
    flushed with no-face frames, as live does at the end)."""
    from vidmoji.smooth import FixedLagViterbi
    f = FixedLagViterbi(N_PARTS, lag, **kwargs)
    out = [f.push(i, s) for i, s in zip(ids, sims)]
    out += [f.push(np.full(K, -1), np.zeros(K)) for _ in range(lag)]
    return np.array(out[lag:])


@pytest.mark.parametrize("lag", [0, 1, 2])
def test_fixed_lag_viterbi_is_still_on_a_still_face_and_follows_real_changes(lag):
    rng = np.random.default_rng(lag)
    dense = still_face(300, rng)
    dense[100:104, 5] += 0.6            # a blink of 4 frames
    dense[200:, 9] += 0.5               # a lasting change
    ids, sims = top_k(dense, no_face=slice(150, 153))
    online = _online(ids, sims, lag)
    whole = ViterbiSmoother().smooth(ids, sims)
    assert np.all(online[150:153] == -1) and np.all(online[:150] >= 0)
    # A near tie (0.01 apart) settles on the better part at most once, then stays.
    assert count_switches(online[:100], times(100)) <= 1 / times(100)[-1]
    assert np.all(online[60:100] == whole[60:100])
    # The blink and the lasting change both show, late by at most two frames (a switch's cost to overcome).
    assert np.all(online[102:104] == 5) and np.all(online[202:] == 9)
    # (after the gap at 150 a new segment settles its near tie again)
    assert (online[60:] == whole[60:]).mean() >= 0.9


@pytest.mark.parametrize("lag", [0, 2])
def test_fixed_lag_viterbi_on_an_exact_tie_stays_below_the_flicker_limit(lag):
    rng = np.random.default_rng(3)
    ids, sims = top_k(still_face(900, rng, gap=0.0))
    assert count_switches(_online(ids, sims, lag), times(900)) < 0.5


def test_fixed_lag_viterbi_without_switch_cost_is_each_frames_best():
    rng = np.random.default_rng(7)
    ids, sims = top_k(still_face(200, rng), no_face=slice(50, 60))
    assert np.array_equal(_online(ids, sims, 0, switch_cost=0.0, end_margin=0.0), NoSmoother().smooth(ids, sims))
