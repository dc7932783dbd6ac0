"""Expressions as people see them: blinks and winks decided over both eyes, head pose taken out of the
measures, gaze, and the timeline scored against the hand-labelled frames of
../shared/media/labels/hand_expressions.json (issue 10)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import MEDIA, labels, needs_media
from vidmoji import parts
from vidmoji.evaluate import binary_state, frame_states, hand_agreement, phantom_wink_share
from vidmoji.face.windows import frontalize, head_angles, paired_eyes

HAND_CLIPS = ("liveportrait__d0", "liveportrait__d14", "liveportrait__d19", "liveportrait__d3", "liveportrait__s32")


# --- the eye-pair decision on its own ----------------------------------------------------------------------
def _pair(right, left, yaw=0.0, fps=30.0):
    t = len(right)
    out = paired_eyes({"right": torch.tensor(right, dtype=torch.float32),
                       "left": torch.tensor(left, dtype=torch.float32)},
                      torch.full((t,), float(yaw)), fps)
    return out["right"].numpy(), out["left"].numpy(), out["wink"].numpy()


def test_a_brief_one_eye_dip_moves_both_eyes_together():
    right = [1.0] * 10
    left = [1.0] * 4 + [0.3, 0.3] + [1.0] * 4          # two frames: too short for a wink
    r, l, wink = _pair(right, left)
    assert not wink.any()
    np.testing.assert_allclose(r, l)


def test_a_clear_wink_shows_and_a_three_frame_blink_is_kept():
    right = [1.0] * 3 + [0.0] * 8 + [1.0] * 3 + [0.05] * 3 + [1.0] * 3
    left = [1.0] * 3 + [0.95] * 8 + [1.0] * 3 + [0.05] * 3 + [1.0] * 3
    r, l, wink = _pair(right, left)
    assert wink[3:11].all() and not wink[11:].any()
    assert (r[3:11] == 0).all() and (l[3:11] >= parts.WINK_OPEN).all()
    assert (r[14:17] < 0.2).all() and (l[14:17] < 0.2).all(), "the blink of three frames was dropped"


def test_past_the_yaw_limit_the_far_eye_follows_the_near_one():
    right = [0.2] * 10                                  # foreshortened far eye
    left = [1.0] * 10
    r, l, wink = _pair(right, left, yaw=-(parts.FAR_EYE_YAW + 5))
    assert not wink.any() and (r > 0.9).all() and (l > 0.9).all()


def test_past_the_yaw_limit_a_wink_of_the_near_eye_still_shows():
    """The far eye's closure is no evidence (foreshortened lids read shut), but its openness is: the near
    eye shut while the far one reads open is a wink, not a blink."""
    right = [1.0] * 10                                  # far eye (head turned toward the image's left), open
    left = [1.0] * 2 + [0.0] * 6 + [1.0] * 2            # near eye winks
    r, l, wink = _pair(right, left, yaw=-(parts.FAR_EYE_YAW + 5))
    assert wink[2:8].all() and (l[2:8] == 0).all() and (r[2:8] >= parts.WINK_OPEN).all()


def test_one_lid_reopening_late_after_a_blink_is_not_a_wink():
    right = [1.0] * 3 + [0.0] * 4 + [0.0] * 8 + [1.0] * 3   # the right lid stays down after the blink
    left = [1.0] * 3 + [0.0] * 4 + [1.0] * 8 + [1.0] * 3
    r, l, wink = _pair(right, left)
    assert not wink.any()
    assert (r[3:7] < 0.2).all() and (l[3:7] < 0.2).all(), "the blink itself must show"


def test_the_lid_on_its_way_down_and_up_is_not_the_wink():
    """A wink is drawn from the first to the last frame its eye is near its bottom: the frame before, with the
    lid halfway down (iris showing), moves both eyes together, as does the frame the lid is halfway up."""
    right = [1.0] * 3 + [0.3] + [0.0] * 8 + [0.35] + [1.0] * 3
    left = [1.0] * 16
    r, l, wink = _pair(right, left)
    assert wink[4:12].all() and (r[4:12] == 0).all()
    assert not wink[3] and not wink[12], "the lid's way down or up was drawn as the wink"
    assert r[3] == l[3] and r[12] == l[12]


def _blink_pair(right, left, fps=30.0):
    t = len(right)
    out = paired_eyes({"right": torch.tensor(right, dtype=torch.float32),
                       "left": torch.tensor(left, dtype=torch.float32)}, torch.zeros(t), fps, blinks=True)
    return out["right"].numpy(), out["left"].numpy()


def test_a_shallow_two_frame_blink_of_both_eyes_is_drawn_shut():
    """Behind glasses, on a turned head or when the mesh lags the lid, a blink keeps part of the opening:
    both eyes dipping together far below their level and back within BLINK_MAX_S are drawn shut."""
    from vidmoji.face.windows import BLINK_DROP
    dip = 1.0 - BLINK_DROP - 0.1                        # well above a shut eye's 0
    right = [1.0] * 20 + [dip] * 2 + [1.0] * 20
    left = [0.95] * 20 + [dip] * 2 + [0.95] * 20
    r, l = _blink_pair(right, left)
    assert (r[20:22] == 0).all() and (l[20:22] == 0).all()
    assert (r[:20] > 0.9).all() and (r[22:] > 0.9).all(), "the frames around the blink stay open"


def test_a_long_look_down_and_a_one_eye_dip_are_not_blinks():
    """Looking down at notes lowers both eyes for longer than a blink; one eye dipping is no blink."""
    from vidmoji.face.windows import BLINK_MAX_S
    long = int(BLINK_MAX_S * 30) + 6
    right = [1.0] * 20 + [0.4] * long + [1.0] * 20
    r, l = _blink_pair(right, right)
    assert (r[20:20 + long] > 0.3).all() and (l[20:20 + long] > 0.3).all()
    one = [1.0] * 20 + [0.4] * 2 + [1.0] * 20
    r, l = _blink_pair(one, [1.0] * 42)
    assert (r > 0.3).all() and (l > 0.3).all()


def test_a_long_narrowing_that_stops_short_of_shut_is_drawn_half_open():
    """Looking down lowers both lids with the irises to about 0.6 of the open opening for seconds, inside the
    range a shut eye's contour keeps (openness 0): drawn half open (the irises show). A blink at the same
    opening is short and stays shut, and a long closure that collapses the lids stays shut too."""
    from vidmoji.face.windows import BLINK_MAX_S, NARROW_OPENNESS

    def drawn(rel, n):
        t = 40 + n
        openness = torch.tensor([1.0] * 20 + [0.0] * n + [1.0] * 20)
        relative = torch.tensor([1.0] * 20 + [rel] * n + [1.0] * 20)
        out = paired_eyes({"right": openness, "left": openness.clone()}, torch.zeros(t), 30.0, blinks=True,
                          relative={"right": relative, "left": relative.clone()})
        return out["right"][20:20 + n].numpy(), out["left"][20:20 + n].numpy()

    long = int(BLINK_MAX_S * 30) + 10
    r, l = drawn(0.6, long)
    assert (r >= NARROW_OPENNESS).all() and (l >= NARROW_OPENNESS).all()
    r, l = drawn(0.6, 4)
    assert (r == 0).all() and (l == 0).all(), "a short blink at the same opening must stay shut"
    r, l = drawn(0.3, long)
    assert (r == 0).all() and (l == 0).all(), "a long closure with collapsed lids must stay shut"


def test_a_blink_the_lids_hardly_show_is_drawn_shut_when_the_eyes_lose_their_contrast():
    """Behind glasses or on a small face a blink moves the mesh's lids little, but hides the iris and the white
    of the eye: a short, shallow dip of both eyes with both eyes' contrast halved is a blink; the same dip with
    the contrast kept, the contrast lost without any dip of the lids, or lost for longer than a blink are not."""
    from vidmoji.face.windows import BLINK_CONTRAST, BLINK_CONTRAST_DROP, BLINK_DROP, BLINK_MAX_S, blink_frames
    dip = 1.0 - (BLINK_CONTRAST_DROP + BLINK_DROP) / 2          # more than the contrast rule asks, less than BLINK_DROP

    def blinks(n, lids, seen):
        eye = torch.tensor([1.0] * 20 + [lids] * n + [1.0] * 20)
        contrast = torch.tensor([[40.0, 36.0]] * 20 + [[40.0 * seen, 36.0 * seen]] * n + [[40.0, 36.0]] * 20)
        return blink_frames(eye, eye.clone(), 30.0, contrast=contrast)[20:20 + n]

    low = BLINK_CONTRAST - 0.2
    assert blinks(2, dip, low).all(), "a shallow dip with the eyes' contrast lost must be a blink"
    assert not blinks(2, dip, 1.0).any(), "without the contrast lost, a shallow dip is the eyes' wander"
    assert not blinks(2, 1.0, low).any(), "the contrast lost without the lids moving is no blink"
    long = int(BLINK_MAX_S * 30) + 4
    assert not blinks(long, dip, low).any(), "longer than a blink is no blink"
    flat = torch.tensor([1.0] * 20 + [dip] * 2 + [1.0] * 20)      # an eye region of one tone: nothing to lose
    assert not blink_frames(flat, flat.clone(), 30.0, contrast=torch.full((42, 2), 1e-6)).any()
    eye = torch.tensor([1.0] * 30 + [dip] * 2)                  # live: the level from the frames before
    contrast = torch.tensor([[40.0, 36.0]] * 30 + [[40.0 * low, 36.0 * low]] * 2)
    assert blink_frames(eye, eye.clone(), 30.0, True, contrast)[-2:].all()


def test_small_wander_is_held_but_a_blink_is_not():
    wander = [1.0, 1.08, 0.95, 1.05, 0.93, 1.02]
    r, l, _ = _pair(wander, wander)
    assert np.ptp(r) == 0.0, "a still eye's wander changed the drawn eye"
    r, _, _ = _pair(wander + [0.1, 0.1, 0.1], wander + [0.1, 0.1, 0.1])
    assert (r[-3:] < 0.2).all()


# --- head pose ---------------------------------------------------------------------------------------------
@needs_media
def test_frontalize_removes_yaw_and_keeps_distances(face_tracks):
    track = face_tracks("liveportrait__d3")
    mesh = torch.from_numpy(track.mesh[track.has_face])
    before = head_angles(mesh)["yaw"]
    assert before.abs().max() > 10, "d3 turns its head: the test needs a turned face"
    front = frontalize(mesh)
    after = head_angles(front)["yaw"]
    assert after.abs().max() < 1.0
    d = lambda m: (m[:, 33] - m[:, 263]).norm(dim=-1)  # noqa: E731 - eye corner to eye corner, in 3-D
    torch.testing.assert_close(d(front), d(mesh[..., :3].float()), rtol=1e-4, atol=1e-3)


@needs_media
def test_unturned_removes_only_the_yaw(face_tracks):
    """Brows and mouth are measured with the yaw taken out and the nod kept."""
    from vidmoji.face.windows import unturned
    track = face_tracks("liveportrait__s32")                      # turned about 20 degrees most of the clip
    mesh = torch.from_numpy(track.mesh[track.has_face])
    before = head_angles(mesh)
    assert before["yaw"].abs().median() > 10, "s32 turns its head: the test needs a turned face"
    after = head_angles(unturned(mesh))
    assert after["yaw"].abs().max() < 1.0
    assert (after["pitch"] - before["pitch"]).abs().median() < 3.0, "the nod must stay"
    d = lambda m: (m[:, 61] - m[:, 291]).norm(dim=-1)  # noqa: E731 - mouth corner to corner, in 3-D
    torch.testing.assert_close(d(unturned(mesh)), d(mesh[..., :3].float()), rtol=1e-4, atol=1e-3)


def test_a_clip_that_never_rests_gets_the_population_mouth():
    """A resting mouth curve far outside people's range (a smile held through the whole clip) is replaced by
    the population's; one inside it is the subject's own."""
    from vidmoji.face.windows import REST_SAG_MEAN, REST_SAG_SD, Calibration
    n = 60
    base = {"eye_right": torch.full((n,), 30.0), "eye_left": torch.full((n,), 30.0),
            "brow_right": torch.full((n,), -68.0), "brow_left": torch.full((n,), -68.0),
            "brow_shape_right": torch.zeros(n, 5), "brow_shape_left": torch.zeros(n, 5),
            "lip_gap": torch.full((n,), 0.02), "lip_upper": torch.full((n,), 9.0), "lip_lower": torch.full((n,), 14.0)}
    resting = REST_SAG_MEAN + 1.0 * REST_SAG_SD
    own = Calibration.from_measures({**base, "lip_sag": torch.full((n,), resting),
                                     "lip_sag_level": torch.full((n,), resting)})
    assert own.mouth_sag == pytest.approx(resting, abs=1e-4)
    smiling = REST_SAG_MEAN + 4.0 * REST_SAG_SD
    prior = Calibration.from_measures({**base, "lip_sag": torch.full((n,), smiling + 0.5),
                                       "lip_sag_level": torch.full((n,), smiling)})
    assert prior.mouth_sag == pytest.approx(REST_SAG_MEAN + 0.5, abs=1e-4)


# --- against the labels -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def choices(face_tracks):
    """(track, PartChoices, indexes) of each hand-labelled clip, flat style, ae embedder."""
    from vidmoji.avatar.index import load_indexes
    from vidmoji.avatar.templates import load_style
    from vidmoji.embed.registry import load_embedder
    from vidmoji.pipeline import choose_parts
    cpu = torch.device("cpu")
    embedder = load_embedder("ae", cpu)
    indexes = load_indexes(load_style("flat"), embedder, cpu, log=lambda m: None)
    cache = {}

    def get(name):
        if name not in cache:
            track = face_tracks(name)
            cache[name] = (track, choose_parts(track, embedder, indexes, "viterbi", cpu), indexes)
        return cache[name]
    return get


def _states(track, choices, indexes) -> list[dict | None]:
    out = []
    for i in range(len(track.pts)):
        if choices.rows["mouth"][i] < 0:
            out.append(None)
            continue
        tags = {s: indexes[s].tags[int(choices.rows[s][i])] for s in parts.SLOTS}
        out.append(frame_states(tags, {"eye_right": choices.gaze[i, 0], "eye_left": choices.gaze[i, 1]}))
    return out


@needs_media
def test_hand_labelled_frames(choices):
    """Balanced agreement with the 100 hand-labelled frames (unsure keys left out). The issue's goal is
    0.95 for eyes and mouth, 0.85 for gaze and smile, 0.8 for brows; these floors are what is measured
    today (see docs/agreement.md), so a regression fails."""
    hand = json.loads((MEDIA / "labels" / "hand_expressions.json").read_text())["frames"]
    predicted = {}
    for name in HAND_CLIPS:
        for i, s in enumerate(_states(*choices(name))):
            if s is not None:
                predicted[(name, i)] = s
    got = hand_agreement(hand, predicted)
    floors = {"eye_left": 0.99, "eye_right": 0.99, "mouth": 0.98, "gaze_h": 0.9, "smile": 0.92, "brows": 0.78}
    low = {k: round(a.balanced, 3) for k, a in got.items() if not a.balanced >= floors[k]}
    assert not low, f"below the floor: {low} (floors {floors})"


@needs_media
@pytest.mark.parametrize("name", ("liveportrait__d0", "liveportrait__d3", "liveportrait__d9", "liveportrait__d14",
                                  "liveportrait__d18", "liveportrait__d19", "liveportrait__s32"))
def test_no_phantom_winks(choices, name):
    """The issue's goal, on every labelled clip: one eye shut and the other open on under 0.5% of the frames
    where the labels see no wink (and are sure of both eyes)."""
    track, ch, idx = choices(name)
    states = _states(track, ch, idx)
    eyes = {s: [f[s] if f else None for f in states] for s in ("eye_left", "eye_right")}
    share = phantom_wink_share(labels(name), eyes)
    assert share < 0.005, f"{name}: one eye shut and the other open on {share:.1%} of no-wink frames"


@needs_media
def test_d3_phantom_winks_are_only_where_the_labels_disagree(choices):
    """d3's one-eye frames outside its labelled winks: only 18-20, the end of its first wink, where the
    tracker labels see both eyes shut and the hand labels (frame 18) and the frames themselves show the right
    eye open; the lid's way down into the second wink (frame 28, both eyes open by hand) is no wink."""
    track, ch, idx = choices("liveportrait__d3")
    lab = labels("liveportrait__d3")
    states = _states(track, ch, idx)
    phantom = [i for i, f in enumerate(states) if f is not None and lab["eye_left"][i] is not None
               and lab["eye_left"][i] == lab["eye_right"][i] and f["eye_left"] != f["eye_right"]]
    assert set(phantom) <= {18, 19, 20}, f"d3: one eye shut and the other open on frames {phantom}"


@needs_media
def test_a_speaker_reading_notes_keeps_open_eyes_and_a_long_closure_stays_shut(choices, tmp_path):
    """d3 reads its notes from about frame 65 to 101, lids lowered to 0.58-0.66 of the open eye with the irises
    showing (hand-labelled open at 80 and 100; the tracker says shut): drawn half open over the clip and live
    (the online stages, from the frames so far). From 110 to 160 it looks further down with the eyes shut (the
    lids at 0.25-0.32): drawn shut by both."""
    track, ch, idx = choices("liveportrait__d3")
    states = _states(track, ch, idx)
    for i in range(75, 101):
        assert states[i]["eye_left"] == states[i]["eye_right"] == "open", (i, states[i])
    shut = [i for i in range(110, 161) if states[i]["eye_left"] == states[i]["eye_right"] == "closed"]
    assert len(shut) >= 45, f"the long closure drawn open on {sorted(set(range(110, 161)) - set(shut))}"
    from vidmoji.live import LiveOptions, live_media
    tl = tmp_path / "live.json"
    live_media(LiveOptions(source=str(MEDIA / "video" / "liveportrait__d3.mp4"), output=str(tmp_path / "live.mp4"),
                           timeline=tl, size=128, device="cpu", show_status=False))
    frames = json.loads(tl.read_text())["frames"]
    eye = lambda i: {binary_state(s, frames[i]["parts"][s]["tags"]) for s in ("eye_left", "eye_right")}  # noqa: E731
    assert all(eye(i) == {"open"} for i in range(75, 101)), [sorted(eye(i)) for i in range(75, 101)]
    assert sum(eye(i) == {"closed"} for i in range(110, 161)) >= 45


@needs_media
@pytest.mark.parametrize("name,shut,frames", [
    ("liveportrait__d3", "eye_left", range(5, 18)),
    ("liveportrait__d3", "eye_right", range(29, 48)),
])
def test_real_winks_show(choices, name, shut, frames):
    track, ch, idx = choices(name)
    states = _states(track, ch, idx)
    other = "eye_right" if shut == "eye_left" else "eye_left"
    shown = sum(states[i][shut] == "closed" and states[i][other] == "open" for i in frames)
    assert shown >= 0.7 * len(frames), f"{name}: the wink shows on {shown} of {len(frames)} frames"


@needs_media
def test_d19_squint_winks_show(choices):
    """d19's one-eye squints, labelled winks by the tracker: at least three of its four show."""
    from vidmoji.evaluate import winks_shown
    track, ch, idx = choices("liveportrait__d19")
    states = _states(track, ch, idx)
    shown, total = winks_shown(labels("liveportrait__d19"), {s: [f[s] if f else None for f in states]
                                                             for s in ("eye_left", "eye_right")})
    assert total == 4 and shown >= 3


@needs_media
def test_s32_blinks_at_yaw_show(choices):
    """s32 blinks with the head turned 20-25 degrees: the far eye's lids read shut, the near one's keep 60-70%
    of the opening. Each of the labels' certain blinks shows both eyes shut on a third of its frames at
    least (the first one did on none of the hand-labelled frames before the blink rule)."""
    track, ch, idx = choices("liveportrait__s32")
    states = _states(track, ch, idx)
    blinks = [e for e in labels("liveportrait__s32")["events"] if e["label"] == "blink" and e["certain"]]
    assert len(blinks) >= 3
    for e in blinks:
        span = range(e["start_frame"], e["end_frame"] + 1)
        shut = sum(states[i]["eye_left"] == states[i]["eye_right"] == "closed" for i in span)
        assert shut * 3 >= len(span), f"s32 blink {e['start_frame']}-{e['end_frame']}: shut on {shut} frames"


@needs_media
def test_s32_smiling_throughout_shows_its_smiles(choices):
    """s32 smiles through the whole clip, so its own lowest mouth curve is a smile; with the population's
    resting curve most of its hand-labelled smiles show (0.11 when the clip's own was trusted)."""
    hand = json.loads((MEDIA / "labels" / "hand_expressions.json").read_text())["frames"]
    states = _states(*choices("liveportrait__s32"))
    smiles = [f["frame"] for f in hand if f["clip"] == "liveportrait__s32" and f["smile"] == "yes"]
    shown = sum(states[i]["smile"] == "yes" for i in smiles)
    assert shown >= 0.6 * len(smiles), f"s32: {shown} of {len(smiles)} smiles shown"


@needs_media
def test_gaze_reads_the_hand_labelled_looks(choices):
    """Looks to the image's left read below -0.25, to its right above 0.25, ahead within them (d0 looks
    both ways), and both coordinates stay in [-1, 1]."""
    hand = json.loads((MEDIA / "labels" / "hand_expressions.json").read_text())["frames"]
    track, ch, _ = choices("liveportrait__d0")
    assert np.nanmax(np.abs(ch.gaze)) <= 1.0
    x = ch.gaze[:, :, 0].mean(1)
    for f in (f for f in hand if f["clip"] == "liveportrait__d0"):
        want = {"image_left": x[f["frame"]] < -0.25, "image_right": x[f["frame"]] > 0.25,
                "centre": abs(x[f["frame"]]) <= 0.25}.get(f["gaze_h"], True)
        assert want, f"frame {f['frame']}: labelled {f['gaze_h']}, gaze x {x[f['frame']]:.2f}"


@pytest.mark.parametrize("style_name", ("flat", "line", "cute"))
def test_pupils_follow_the_gaze_inside_the_eye(style_name):
    """The drawn pupil layer moves with the gaze (toward the image's right for positive x, down for
    positive y) and stays clipped to the eye: nothing is drawn outside the straight-ahead eye's box."""
    from vidmoji.avatar.compose import AvatarComposer
    from vidmoji.avatar.templates import load_style
    style = load_style(style_name)
    composer = AvatarComposer(style, "medium", 256)
    choice = tuple(next(p.id for p in style.parts_in(s) if s not in ("eye_right", "eye_left") or
                        p.id.endswith(".open")) for s in parts.SLOTS)
    ahead = composer.avatar(choice, (0.0, 0.0)).astype(int)
    moved = {}
    for g in ((-0.6, 0.0), (0.6, 0.0), (0.0, 0.6)):
        img = composer.avatar(choice, g).astype(int)
        diff = np.abs(img - ahead).sum(-1) > 30
        assert diff.any(), f"{style_name}: the pupils did not move for gaze {g}"
        ys, xs = np.nonzero(diff)
        moved[g] = (xs.mean(), ys.mean())
        alpha_ahead = ahead[..., 3] > 0
        assert alpha_ahead[diff].all(), "the pupil layer left the avatar"
    # The changed pixels' centroid: the pupils' new place and the old one's ghost; a look right puts more
    # change on the right of each eye than a look left does.
    assert moved[(0.6, 0.0)][0] > moved[(-0.6, 0.0)][0]


# --- small faces --------------------------------------------------------------------------------------------
@needs_media
def test_d3_winks_show_on_a_60_px_face(face_tracks, tmp_path):
    """d3 scaled down until its face is 60 px wide across the cheeks (scale 0.21, as low-resolution talk
    footage): the winking side's cheek narrows the open eye and the small face's iris model reads it at
    0.56-0.65, around WINK_OPEN, so the left-eye wink (frames 5-17) broke into one-frame runs and showed as
    both eyes half-shut (hand-labelled left eye 0.60 at 60 px). Both real winks show, and the one-eye frames
    outside the labels' winks are only where the labels disagree (17-22, the first wink's end: a wink by hand,
    a blink by the tracker), the lid on its way into the second wink (28, which the full-size clip keeps out)
    and around the tracker's right-eye wink at 266-273 (1.3-2.0% of d3's no-wink frames, all in these places,
    while the scaled copy came out a little different on every run; it is the same file every time now)."""
    from vidmoji.avatar.index import load_indexes
    from vidmoji.avatar.templates import load_style
    from vidmoji.embed.registry import load_embedder
    from vidmoji.pipeline import choose_parts, track_faces
    from vidmoji.video import scaled_video
    name = "liveportrait__d3"
    full = face_tracks(name)
    sides = full.mesh[full.has_face][:, list(parts.FACE_SIDES), :2]
    scale = 60.0 / float(np.median(np.linalg.norm(sides[:, 1] - sides[:, 0], axis=-1)))
    cpu = torch.device("cpu")
    track = track_faces(scaled_video(MEDIA / "video" / f"{name}.mp4", scale, tmp_path / "small.mp4"), cpu)
    embedder = load_embedder("ae", cpu)
    indexes = load_indexes(load_style("flat"), embedder, cpu, log=lambda m: None)
    states = _states(track, choose_parts(track, embedder, indexes, "viterbi", cpu), indexes)
    for shut, other, frames in (("eye_left", "eye_right", range(5, 18)), ("eye_right", "eye_left", range(29, 48))):
        shown = sum(states[i] is not None and states[i][shut] == "closed" and states[i][other] == "open"
                    for i in frames)
        assert shown >= 0.7 * len(frames), f"60 px: the {shut} wink shows on {shown} of {len(frames)} frames"
    lab = labels(name)
    phantom = [i for i, f in enumerate(states) if f is not None and lab["eye_left"][i] is not None
               and lab["eye_left"][i] == lab["eye_right"][i] and f["eye_left"] != f["eye_right"]]
    # Those places with two frames either side (the scaled copy's tracking moves an edge frame in and out from
    # run to run); a one-eye frame anywhere else, or more of them than those places hold, is a phantom wink.
    places = set(range(15, 25)) | set(range(26, 31)) | set(range(260, 278))
    assert set(phantom) <= places and len(phantom) <= 12, f"60 px: one eye shut and the other open on frames {phantom}"


@needs_media
def test_open_frames_between_one_frame_blinks_show_open(choices):
    """d14 blinks one frame at a time at 204, 207 and 211. Handed only each frame's five nearest parts, the
    smoother took the shut eye's part for just under the fifth on the open frames between (it scores -0.85
    there) and kept both eyes shut from 203 to 211 (hand-labelled open at 210). With every part's similarity,
    the open frames show open and each one-frame blink still shows shut."""
    track, c, indexes = choices("liveportrait__d14")
    states = _states(track, c, indexes)

    def both(i):
        return {states[i]["eye_left"], states[i]["eye_right"]}

    for i in (204, 207, 211):
        assert both(i) == {"closed"}, f"d14 blink at {i} drawn {both(i)}"
    for i in (205, 206, 208, 209, 210):
        assert both(i) == {"open"}, f"d14 frame {i}, open between blinks, drawn {both(i)}"


@needs_media
def test_d19_blink_behind_glasses_shows_on_a_90_px_face(face_tracks, tmp_path):
    """d19 wears glasses; at its blink (frames 99-100, hand-labelled shut at 99) the mesh's lids keep 0.8 of
    their opening, and with the face 90 px wide both eyes dip by only 0.21 of the openness, no more than its
    smiling squints at 87-89 and 118-124 (drawn half open, hand-labelled open at 122). The contrast over the
    eyes' middle falls to half (`eye_contrast`): render and live draw the blink shut, and render no other frame
    around it. Without the contrast the blink is drawn half open."""
    from dataclasses import replace

    from vidmoji.avatar.index import load_indexes
    from vidmoji.avatar.templates import load_style
    from vidmoji.embed.registry import load_embedder
    from vidmoji.live import LiveOptions, live_media
    from vidmoji.pipeline import choose_parts, track_faces
    from vidmoji.video import scaled_video
    name = "liveportrait__d19"
    full = face_tracks(name)
    sides = full.mesh[full.has_face][:, list(parts.FACE_SIDES), :2]
    scale = 90.0 / float(np.median(np.linalg.norm(sides[:, 1] - sides[:, 0], axis=-1)))
    cpu = torch.device("cpu")
    small = scaled_video(MEDIA / "video" / f"{name}.mp4", scale, tmp_path / "small.mp4")
    track = track_faces(small, cpu)
    embedder = load_embedder("ae", cpu)
    indexes = load_indexes(load_style("flat"), embedder, cpu, log=lambda m: None)

    def shut(states):
        return [i for i in range(80, 126) if states[i] is not None
                and states[i]["eye_left"] == "closed" and states[i]["eye_right"] == "closed"]

    rendered = shut(_states(track, choose_parts(track, embedder, indexes, "viterbi", cpu), indexes))
    assert 99 in rendered and set(rendered) <= {98, 99, 100, 101}, f"90 px: both eyes shut on {rendered}"
    blind = replace(track, eye_contrast=None)
    assert 99 not in shut(_states(blind, choose_parts(blind, embedder, indexes, "viterbi", cpu), indexes)), \
        "the lids alone drew the blink: the test no longer needs the contrast"
    tl = tmp_path / "live.json"
    live_media(LiveOptions(source=str(small), output=str(tmp_path / "live.mp4"), timeline=tl, size=128,
                           device="cpu", show_status=False))
    frames = json.loads(tl.read_text())["frames"]
    assert all(frames[99]["face"] and binary_state(s, frames[99]["parts"][s]["tags"]) == "closed"
               for s in ("eye_left", "eye_right")), "live: d19's blink at 99 not drawn shut"


@needs_media
def test_a_timeline_scores_the_same_against_the_hand_labels(choices):
    """bench_live scores render's and live's --timeline files against the hand labels
    (`timeline_hand_agreement`): the timeline of d3 (the clip where the tracker's labels and a person disagree
    most) must score exactly what its choices do, on all of its hand-labelled frames."""
    from vidmoji.avatar.templates import load_style
    from vidmoji.embed.registry import load_embedder
    from vidmoji.evaluate import timeline_hand_agreement
    from vidmoji.pipeline import timeline
    name = "liveportrait__d3"
    track, ch, idx = choices(name)
    hand = json.loads((MEDIA / "labels" / "hand_expressions.json").read_text())["frames"]
    doc = json.loads(json.dumps(timeline(track, ch, idx, load_style("flat"), load_embedder("ae", torch.device("cpu")))))
    got = timeline_hand_agreement(doc, name, hand)
    want = hand_agreement([f for f in hand if f["clip"] == name],
                          {(name, i): s for i, s in enumerate(_states(track, ch, idx)) if s is not None})
    assert {k: (a.frames, a.confusion) for k, a in got.items()} == {k: (a.frames, a.confusion) for k, a in want.items()}
    assert got["eye_left"].frames == 19 and got["gaze_h"].frames >= 12
