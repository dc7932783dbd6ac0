"""The frame's path, top to bottom: decode, locate, align, parse, embed, match, smooth, compose, encode.

`render_media` (the product), `parse_media` (what the parser sees), `plot_media` (the embedding
diagnostic) and `build_style_indexes` are the library calls behind the CLI's commands.

A render makes two passes over the clip. The first decodes, locates the faces and keeps their meshes
(a few kB per frame). Between the passes the whole clip is known, so each part is calibrated to the
subject's own baseline and the choice of parts is smoothed over time (Viterbi). The second pass composes
and encodes; it decodes again only when the layout shows the original frames.

The per-frame stages are shared with `vidmoji live` (vidmoji/live.py), which runs them one frame at a time:
`FaceStage` (locate, mesh, iris), `part_candidates` (calibrated windows, embed, FAISS, eyes paired),
`FrameComposer` (layout, hold and fade) and `timeline_entry`. What render does with the whole clip as
look-ahead (calibration, the eyes' wink decision, Viterbi), live does causally (OnlineCalibration,
OnlineEyes, FixedLagViterbi).
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import torch

from vidmoji import models, parts
from vidmoji.avatar.compose import (AvatarComposer, HeadPose, avatar_frame, avatar_rgba_frame, head_pose,
                                    overlay_frame, side_by_side_frame)
from vidmoji.avatar.index import PartIndex, build_indexes, load_indexes
from vidmoji.avatar.templates import Look, Style, compose_svg, list_styles, load_style
from vidmoji.device import choose_device
from vidmoji.embed.base import Embedder, embed_slot
from vidmoji.embed.registry import load_embedder
from vidmoji.errors import VidmojiError
from vidmoji.face.align import alignment_matrices, invert_affine, transform_points, warp_crops
from vidmoji.face.detector import frozen_network
from vidmoji.face.iris import INPUT_SIZE as IRIS_INPUT
from vidmoji.face.iris import EyeRefiner
from vidmoji.face.locate import FaceLocator
from vidmoji.face.mesh import INPUT_SIZE as MESH_INPUT
from vidmoji.face.parse import colorize, mesh_label_map
from vidmoji.identity import (DEFAULT_IDENTITY, Identity, IdentityOverrides, IdentitySampler, apply_overrides, check_overrides,
                              choose_hair,
                              identity_notes, identity_timeline, measure_identity, persona_json, read_persona)
from vidmoji.face.windows import (Calibration, calibrated_mesh, eye_contrast, eye_sequence, head_angles, measure,
                                  part_rgb_crops, part_windows)
from vidmoji.face.windows import gaze as gaze_of
from vidmoji.match import SlotMatches, match_windows
from vidmoji.progress import Progress, log
from vidmoji.smooth import DEFAULT_FILL_MARGIN, count_switches, make_smoother
from vidmoji.video import (IMAGE_SUFFIXES, FrameBatch, FrameReader, VideoInfo, VideoWriter, check_writable, probe,
                           write_bytes_atomic, write_image_atomic, write_text_atomic)

BATCH = 32
# Frames held at once are bounded in bytes, not only in count: 32 frames are 25 MB at 512x512 but 199 MB at
# 1920x1080. A batch holds at most BATCH_BYTES (8 frames at 1080p, 16 at 720p; always a divisor or a
# multiple of the locator's 16-frame detection schedule), and the decoder keeps at most BATCH_BYTES of
# batches ready ahead (one at 1080p: pass 1 is far slower than decoding anyway). Pass 1 holds three batches
# at most (the one being located, one ready, one being decoded): 150 MB at 1080p.
BATCH_BYTES = 64 * 2**20
# Candidates per slot and frame handed to the smoother: every part of a slot in the shipped styles (at most 16,
# the mouth), so the smoother weighs each part's real similarity. With the top 5 only, a part outside them was
# assumed just under the fifth (smooth.DEFAULT_FILL_MARGIN): a shut eye's part on an open eye's frame scores
# -0.85, but was taken for 0.55-0.60, so d14's eyes stayed shut through the open frames between its one-frame
# blinks at 204, 207 and 211 (hand-labelled open at 210). A style with more parts than this still gets the
# fill rule for the rest.
TOP_K = 64
# A frame without a face holds the last avatar for this long, then fades out over _FADE_S.
_HOLD_S = 1.0
_FADE_S = 0.5
# A clip needs a face in at least this many frames (or in all of a shorter one) to be rendered.
_MIN_FACE_FRAMES = 3


class NoFaceError(VidmojiError):
    """No face was found anywhere in the input."""


def _require_a_face(track: "FaceTrack", source: Path) -> None:
    """An input without a face has nothing to show: it is an error, and nothing is written. A clip counts as
    without a face when one is found in fewer than _MIN_FACE_FRAMES frames (all of a shorter clip's): a
    detection in one or two frames of a long clip is a false one (a crowd at night, a pattern), and an
    avatar flashing up for a frame shows nothing anyway."""
    found, total = int(track.has_face.sum()), len(track.has_face)
    if found < min(_MIN_FACE_FRAMES, total) or found == 0:
        detail = f" (a face-like detection in only {found} of {total} frames)" if found else ""
        raise NoFaceError(f"no face found in {source}{detail}")


# --- pass 1: faces ----------------------------------------------------------------------------------------
@dataclass
class FaceTrack:
    """The faces of a whole clip, main face followed across frames.

    pts: (T,) float64 seconds; has_face: (T,) bool; mesh: (T, 478, 3) float32 frame pixels of the main
    face (NaN where none; the 468 mesh points, then the irises); others: per frame the (478, 3)
    meshes of the other faces; rgb_embeddings: {slot: (F, D)} for the F frames with a face, in order, when
    an RGB embedder ran in pass 1; eye_contrast: (T, 2) `windows.eye_contrast` of the main face (None for a
    track made without it).
    """

    pts: np.ndarray
    has_face: np.ndarray
    mesh: np.ndarray
    others: list[list[np.ndarray]]
    width: int
    height: int
    rgb_embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    heads: list = field(default_factory=list)       # identity.HeadSample: frontal views for identity
    sample_s: float = 0.0                           # seconds pass 1 spent sampling those views
    # overlay: per frame, the person each of `others` is (an id kept across frames), and views of each of
    # the first OTHER_PEOPLE people for their own identity
    other_ids: list[list[int]] = field(default_factory=list)
    other_heads: dict[int, list] = field(default_factory=dict)
    # (T, 2) windows.eye_contrast of the main face's right and left eye (NaN where none), for the blinks
    eye_contrast: np.ndarray | None = None


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / max(union, 1e-6)


def _mesh_box(mesh: np.ndarray) -> np.ndarray:
    return np.concatenate([mesh[:, :2].min(0), mesh[:, :2].max(0)])


def pick_main_face(meshes: list[np.ndarray], previous_box: np.ndarray | None) -> int | None:
    """The most prominent face, kept across frames: the one overlapping the previous main face when it is
    at least 40% as large as the largest, else the largest."""
    if not meshes:
        return None
    boxes = [_mesh_box(m) for m in meshes]
    areas = np.array([(b[2] - b[0]) * (b[3] - b[1]) for b in boxes])
    if previous_box is not None:
        ious = np.array([_box_iou(b, previous_box) for b in boxes])
        best = int(ious.argmax())
        if ious[best] > 0.3 and areas[best] >= 0.4 * areas.max():
            return best
    return int(areas.argmax())


def refined_meshes(frames: torch.Tensor, faces: list[list], refiner: EyeRefiner) -> list[list[torch.Tensor]]:
    """Per frame, the (478, 3) meshes of its faces: the 468 mesh points with the eye contours refined by the
    iris model (the plain mesh barely closes an eye), then the iris points, as MediaPipe's refined mesh
    numbers them (parts.IRIS_RIGHT: 468-472, parts.IRIS_LEFT: 473-477, centre first); all faces of the
    batch go through the iris model at once."""
    index = [i for i, ff in enumerate(faces) for _ in ff]
    if not index:
        refiner.reset()             # no face: the eyes of the frames before are no longer the last (skip_still)
        return [[] for _ in faces]
    mesh = torch.stack([f.mesh for ff in faces for f in ff]).float()
    refined, iris = refiner.refine(frames, torch.tensor(index, device=frames.device), mesh)
    refined = torch.cat([refined, iris.reshape(len(index), 2 * iris.shape[2], 3)], dim=1)
    out: list[list[torch.Tensor]] = [[] for _ in faces]
    for i, m in zip(index, refined):
        out[i].append(m)
    return out


@dataclass
class FaceFrames:
    """What stage 1 found in N consecutive frames: has_face (N,) bool; mesh (N, 478, 3) float32 of the main
    face (NaN where none); others: per frame the meshes of the
    other faces; rgb: {slot: (F, D)} RGB embeddings of the F frames with a face, when an RGB embedder ran;
    eye_contrast: (N, 2) `windows.eye_contrast` of the main face (NaN where none)."""

    has_face: np.ndarray
    mesh: np.ndarray
    others: list[list[np.ndarray]]
    rgb: dict[str, np.ndarray]
    eye_contrast: np.ndarray


class FaceStage:
    """Stage 1 of the frame path: locate and mesh up to max_faces faces per frame on the device (the
    tracker's state carried from call to call), refine the eyes and irises, follow the main face (and embed its RGB
    part crops for an RGB embedder). `render` feeds it batches of a whole
    clip, `live` one frame at a time. small_faces: "all" looks for faces down to 48 px in every detection
    (every face matters: overlay), "fallback" only where no larger face is seen (only the main face
    matters)."""

    def __init__(self, device: torch.device, rgb_embedder: Embedder | None = None, max_faces: int = 4,
                 small_faces: str = "fallback", detect_every: int = 16, reuse: bool = False):
        self.device = device
        self.rgb_embedder = rgb_embedder
        if reuse:  # the process's models (vidmoji.models), their tracking state reset
            self.locator, self.refiner = models.face_models(device, max_faces, small_faces)
            self.locator.detect_every = detect_every
        else:
            self.locator = FaceLocator(device, max_faces=max_faces, small_faces=small_faces,
                                       detect_every=detect_every)
            self.refiner = EyeRefiner(device)
        self._previous_box = None

    def freeze(self) -> "FaceStage":
        """Run the detector's, the mesh's and the iris model's networks traced and frozen (`frozen_network`):
        a third cheaper one face at a time (live), the same results."""
        self.locator.detector.freeze()
        mesh, crop = self.locator.mesh, torch.zeros((1, 3, MESH_INPUT, MESH_INPUT), device=self.device)
        with torch.no_grad():
            points = mesh.net(crop)[0]
        mesh.net = frozen_network(mesh.net, crop)
        mesh.lips = frozen_network(mesh.lips, (crop, points))
        self.refiner.net = frozen_network(
            self.refiner.net, torch.zeros((2, 3, IRIS_INPUT, IRIS_INPUT), device=self.device))
        return self

    def run(self, frames_np: np.ndarray) -> FaceFrames:
        """frames_np: (N, H, W, 3) uint8 RGB, the next frames of the stream."""
        frames = torch.from_numpy(frames_np).to(self.device)
        faces = refined_meshes(frames, self.locator.track(frames), self.refiner)
        n = len(frames_np)
        meshes = np.full((n, parts.MESH_POINTS, 3), np.nan, np.float32)
        has_face = np.zeros(n, bool)
        others: list[list[np.ndarray]] = []
        main_idx, main_mesh = [], []
        for i, frame_faces in enumerate(faces):
            face_meshes = [m.float().cpu().numpy() for m in frame_faces]
            k = pick_main_face(face_meshes, self._previous_box)
            if k is None:
                others.append([])
                continue
            self._previous_box = _mesh_box(face_meshes[k])
            meshes[i], has_face[i] = face_meshes[k], True
            others.append([m for j, m in enumerate(face_meshes) if j != k])
            main_idx.append(i)
            main_mesh.append(frame_faces[k])
        rgb: dict[str, np.ndarray] = {}
        contrast = np.full((n, 2), np.nan, np.float32)
        if main_idx:
            index = torch.tensor(main_idx, device=self.device)
            stacked = torch.stack(main_mesh).to(self.device)
            contrast[main_idx] = eye_contrast(frames, index, stacked).numpy()
            if self.rgb_embedder is not None:
                crops = part_rgb_crops(frames, index, stacked)
                rgb = {slot: embed_slot(self.rgb_embedder, slot, crops[slot]).float().cpu().numpy()
                       for slot in parts.SLOTS}
        return FaceFrames(has_face, meshes, others, rgb, contrast)


def frame_reader(source: Path, info: VideoInfo | None = None) -> FrameReader:
    """A FrameReader of `source` with batches and a decode queue bounded in bytes (see BATCH_BYTES)."""
    info = info or probe(source)
    frame_bytes = max(1, info.width * info.height * 3)
    size = max(1, min(BATCH, BATCH_BYTES // frame_bytes))
    size = size - size % 16 if size >= 16 else 1 << (size.bit_length() - 1)   # 32, 16, 8, 4, 2 or 1
    return FrameReader(source, batch_size=size, max_queue=max(1, min(4, BATCH_BYTES // (size * frame_bytes))))


def track_faces(source: Path, device: torch.device, rgb_embedder: Embedder | None = None,
                progress: Progress | None = None, max_faces: int = 4, small_faces: str = "fallback",
                follow_others: bool = False) -> FaceTrack:
    """Pass 1: the face stage over the whole clip, in batches (see FaceStage), keeping a bounded spread of
    frontal views of the main face for its identity (vidmoji.identity.IdentitySampler); with
    follow_others (overlay), the other faces are followed too, each person with views of their own."""
    stage = FaceStage(device, rgb_embedder, max_faces, small_faces, reuse=True)
    pts, found = [], []
    heads = IdentitySampler()
    people = OtherPeople() if follow_others else None
    with frame_reader(source) as reader:
        info = reader.info
        for batch in reader:
            found.append(stage.run(batch.frames))
            _offer_views(heads, batch, found[-1])
            if people is not None:
                people.offer(batch, found[-1].others)
            pts.append(batch.pts_s)
            models.trim_heap()
            if progress:
                progress.advance(len(batch.pts_s))
    rgb = {s: np.concatenate([f.rgb[s] for f in found if s in f.rgb]) for s in parts.SLOTS
           if any(s in f.rgb for f in found)}
    others = [o for f in found for o in f.others]
    return FaceTrack(np.concatenate(pts), np.concatenate([f.has_face for f in found]),
                     np.concatenate([f.mesh for f in found]), others, info.width, info.height, rgb,
                     heads.samples, heads.seconds + (people.seconds if people else 0.0),
                     people.ids if people else [[-1] * len(o) for o in others],
                     people.views() if people else {}, np.concatenate([f.eye_contrast for f in found]))


# Overlay: how many of the other people get an identity of their own (the rest wear the default look), how
# many views each keeps, and how long (seconds) a person may be unseen and still be the same person.
OTHER_PEOPLE = 8
OTHER_VIEWS = 6
OTHER_GAP_S = 1.0


class OtherPeople:
    """The faces other than the main one, followed across frames: a face is the person last seen at the
    most overlapping place (box IoU above 0.3, within OTHER_GAP_S), else a new person. The first
    OTHER_PEOPLE people each get an IdentitySampler, so that each is drawn with their own skin, hair and
    glasses rather than the main face's."""

    def __init__(self):
        self.ids: list[list[int]] = []                  # per frame, the person of each other face
        self._last: dict[int, tuple[np.ndarray, float]] = {}   # person -> (box, seconds last seen)
        self._samplers: dict[int, IdentitySampler] = {}
        self._next = 0

    @property
    def seconds(self) -> float:
        """Time spent sampling views, for the render's stage times."""
        return sum(s.seconds for s in self._samplers.values())

    def offer(self, batch: FrameBatch, others: list[list[np.ndarray]]) -> None:
        flat = [m for meshes in others for m in meshes]
        yaws = iter(head_angles(torch.from_numpy(np.stack(flat)))["yaw"].numpy() if flat else ())  # once a batch
        for i, meshes in enumerate(others):
            ids = self._assign(meshes, float(batch.pts_s[i]))
            self.ids.append(ids)
            for person, mesh in zip(ids, meshes):
                yaw = float(next(yaws))
                if person < OTHER_PEOPLE:
                    sampler = self._samplers.setdefault(person, IdentitySampler(limit=OTHER_VIEWS))
                    sampler.offer(batch.index + i, batch.frames[i], mesh, yaw)

    def _assign(self, meshes: list[np.ndarray], t: float) -> list[int]:
        boxes = [_mesh_box(m) for m in meshes]
        live = {p: box for p, (box, seen) in self._last.items() if t - seen <= OTHER_GAP_S}
        pairs = sorted(((_box_iou(b, box), k, p) for k, b in enumerate(boxes) for p, box in live.items()),
                       reverse=True)
        ids: list[int | None] = [None] * len(boxes)
        taken = set()
        for iou, k, p in pairs:
            if iou <= 0.3:
                break
            if ids[k] is None and p not in taken:
                ids[k] = p
                taken.add(p)
        for k, b in enumerate(boxes):
            if ids[k] is None:
                ids[k], self._next = self._next, self._next + 1
            self._last[ids[k]] = (b, t)
        return ids

    def views(self) -> dict[int, list]:
        return {p: s.samples for p, s in self._samplers.items() if s.samples}


def _offer_views(heads: IdentitySampler, batch: FrameBatch, found: FaceFrames) -> None:
    """Offer the batch's main faces to the identity sampler, with their yaw (turned heads are not kept)."""
    index = np.flatnonzero(found.has_face)
    if not len(index):
        return
    yaws = head_angles(torch.from_numpy(found.mesh[index]))["yaw"].numpy()
    for i, yaw in zip(index, yaws):
        heads.offer(batch.index + int(i), batch.frames[i], found.mesh[i], float(yaw))


# --- between the passes: calibrate, embed, match, smooth -----------------------------------------------
@dataclass(frozen=True)
class PartChoices:
    """The chosen part of every slot for every frame.

    rows: {slot: (T,) int64 row in the slot's PartIndex, -1 where no face}; matches: {slot: SlotMatches
    over the frames with a face}; similarity: {slot: (T,) float32 cosine of the chosen part, NaN where
    no face}; calibration: the subject's baseline used; gaze: (T, 2, 2) float32 (eye 0 the subject's
    right, 1 the left; x, y in [-1, 1], x toward the image's right, y down), NaN where no face.
    """

    rows: dict[str, np.ndarray]
    matches: dict[str, SlotMatches]
    similarity: dict[str, np.ndarray]
    calibration: Calibration
    gaze: np.ndarray | None = None


def track_fps(track: FaceTrack) -> float:
    """The clip's frame rate from its timestamps (25 for a single frame)."""
    steps = np.diff(track.pts)
    steps = steps[steps > 0]
    return float(1.0 / np.median(steps)) if len(steps) else 25.0


def face_windows(meshes: np.ndarray, calibration: Calibration, device: torch.device,
                 batch_size: int = 256, eyes: dict[str, torch.Tensor] | None = None,
                 measures: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Calibrated part windows of (F, 478, 3) meshes, computed in batches on the device; eyes: the
    openness to draw each eye at (`eye_sequence`), else each frame's own; measures: `measure` of the
    meshes, when the caller has them."""
    chunks: dict[str, list[torch.Tensor]] = {s: [] for s in parts.SLOTS}
    for i in range(0, len(meshes), batch_size):
        part_eyes = {k: v[i:i + batch_size] for k, v in eyes.items()} if eyes is not None else None
        part_meas = {k: v[i:i + batch_size].to(device) for k, v in measures.items()} if measures is not None else None
        w = part_windows(torch.from_numpy(meshes[i:i + batch_size]).to(device), calibration, part_eyes, part_meas)
        for slot in parts.SLOTS:
            chunks[slot].append(w[slot])
    return {s: torch.cat(c) if c else torch.zeros((0, len(parts.SLOT_CHANNELS[s]), parts.WINDOW_SIZE,
                                                  parts.WINDOW_SIZE), device=device)
            for s, c in chunks.items()}


def choose_parts(track: FaceTrack, embedder: Embedder, indexes: dict[str, PartIndex], smooth: str,
                 device: torch.device, k: int = TOP_K) -> PartChoices:
    """Calibrate, embed and match the main face of every frame, then smooth each slot over time."""
    present = np.flatnonzero(track.has_face)
    mesh = track.mesh[present]
    mesh_t = torch.from_numpy(mesh)
    meas = measure(mesh_t)                         # once, for the baseline, the eyes, the gaze and the windows
    calibration = subject_calibration(track, meas)
    contrast = None if track.eye_contrast is None else torch.from_numpy(track.eye_contrast[present])
    eyes = eye_sequence(mesh_t, calibration, track_fps(track), meas, contrast)
    gaze = np.full((len(track.pts), 2, 2), np.nan, np.float32)
    gaze[present] = gaze_of(meas, calibration).numpy()
    matches, candidates = part_candidates(mesh, calibration, eyes, embedder, indexes, device,
                                          track.rgb_embeddings, k, measures=meas)
    smoother = make_smoother(smooth)
    t = len(track.pts)
    rows_out, sim_out = {}, {}
    for slot in parts.SLOTS:
        m = matches[slot]
        rows, part_sims = candidates[slot]
        ids = np.full((t, rows.shape[1]), -1, np.int64)
        sims = np.zeros((t, rows.shape[1]), np.float32)
        ids[present], sims[present] = rows, part_sims
        chosen = smoother.smooth(ids, sims)
        rows_out[slot] = chosen
        sim_out[slot] = chosen_similarity(m.embeddings, indexes[slot], chosen[present], present, t)
    return PartChoices(rows_out, matches, sim_out, calibration, gaze)


def part_candidates(mesh: np.ndarray, calibration: Calibration, eyes: dict[str, torch.Tensor], embedder: Embedder,
                    indexes: dict[str, PartIndex], device: torch.device,
                    rgb_embeddings: dict[str, np.ndarray] | None = None, k: int = TOP_K,
                    measures: dict[str, torch.Tensor] | None = None
                    ) -> tuple[dict[str, SlotMatches], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The frame path's matching stage for F face frames: calibrated windows, embeddings, FAISS top-k, and
    both eyes' states chosen together where they move together.

    mesh: (F, 478, 3) of the main face; eyes: the openness to draw (`eye_sequence` over a clip,
    `OnlineEyes` live); rgb_embeddings: {slot: (F, D)} for an RGB embedder; measures: `measure(mesh)`
    when the caller has it (live). Returns the SlotMatches and
    per slot the candidates (rows (F, k'), sims (F, k')) the smoother chooses from."""
    if embedder.kind == "label":
        matches = match_windows(embedder, indexes, face_windows(mesh, calibration, device, eyes=eyes,
                                                                measures=measures), k)
    else:
        matches = {}
        for slot in parts.SLOTS:
            emb = (rgb_embeddings or {}).get(slot, np.zeros((0, 1), np.float32))
            sims, rows = indexes[slot].search(emb, k)
            matches[slot] = SlotMatches(emb, sims, rows)
    candidates = {s: (matches[s].rows, matches[s].sims) for s in parts.SLOTS}
    candidates.update(paired_eye_candidates(indexes, candidates, ~eyes["wink"].numpy()))
    return matches, candidates


def paired_eye_candidates(indexes: dict[str, PartIndex], candidates: dict[str, tuple[np.ndarray, np.ndarray]],
                          together: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both eyes choose one state together on the frames where they move together.

    candidates: {slot: (rows (F, k), sims (F, k))} from the matcher; together: (F,) bool, the frames
    without a wink. Returns new (rows (F, S), sims (F, S)) for eye_right and eye_left over the S states
    both slots have (an eye part's id after its slot: `open`, `half`, ...): on `together` frames both get
    the mean of the two eyes' similarities to each state, elsewhere each keeps its own. A state outside a
    frame's top-k scores that frame's k-th best less smooth.DEFAULT_FILL_MARGIN. A style whose eye slots
    share no state keeps its candidates.
    """
    names = {s: [pid.split(".", 1)[-1] for pid in indexes[s].part_ids] for s in ("eye_right", "eye_left")}
    shared = sorted(set(names["eye_right"]) & set(names["eye_left"]))
    if not shared:
        return {}
    col = {n: j for j, n in enumerate(shared)}
    dense = {}
    for slot in ("eye_right", "eye_left"):
        rows, sims = candidates[slot]
        fill = sims.min(axis=1, initial=1.0) - DEFAULT_FILL_MARGIN
        d = np.repeat(fill[:, None], len(shared), axis=1).astype(np.float32)
        for j in range(rows.shape[1]):
            c = np.array([col.get(names[slot][r], -1) if r >= 0 else -1 for r in rows[:, j]])
            ok = c >= 0
            d[np.flatnonzero(ok), c[ok]] = np.maximum(d[np.flatnonzero(ok), c[ok]], sims[ok, j])
        dense[slot] = d
    joint = (dense["eye_right"] + dense["eye_left"]) / 2
    out = {}
    for slot in ("eye_right", "eye_left"):
        row_of = np.array([names[slot].index(n) for n in shared], np.int64)
        out[slot] = (np.tile(row_of, (len(joint), 1)), np.where(together[:, None], joint, dense[slot]))
    return out


def chosen_similarity(embeddings: np.ndarray, index: PartIndex, rows: np.ndarray, present: np.ndarray,
                      t: int) -> np.ndarray:
    """(T,) cosine similarity between each face embedding and the part finally chosen (NaN: no face)."""
    out = np.full(t, np.nan, np.float32)
    if len(rows):
        a = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        v = index.vectors[rows]
        b = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        out[present] = (a * b).sum(1)
    return out


def other_faces_choices(track: FaceTrack, embedder: Embedder, indexes: dict[str, PartIndex],
                        device: torch.device) -> list[list[tuple[str, ...]]]:
    """For overlay: every other face's parts, frame by frame (no subject baseline: population defaults)."""
    flat = [m for frame in track.others for m in frame]
    if not flat or embedder.kind != "label":
        return [[] for _ in track.others]
    matches = match_windows(embedder, indexes, face_windows(np.stack(flat), Calibration.default(), device), 1)
    ids = [tuple(indexes[s].part_ids[int(matches[s].rows[i, 0])] for s in parts.SLOTS) for i in range(len(flat))]
    out, i = [], 0
    for frame in track.others:
        out.append(ids[i:i + len(frame)])
        i += len(frame)
    return out


# --- the render -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RenderOptions:
    """Options of `render_media` (see `vidmoji render --help`)."""

    output: Path | None = None
    style: str = "flat"
    embedder: str = "ae"
    weights: Path | None = None
    size: int = 512
    layout: str = "avatar"
    smooth: str = "viterbi"
    timeline: Path | None = None
    templates: Path | None = None
    device: str = "auto"
    skin: str = "auto"
    persona: Path | None = None
    identity: IdentityOverrides = IdentityOverrides()
    show_progress: bool = True
    # Transparent outputs and stickers (see vidmoji.stickers): the format (else the output's suffix), a
    # messenger preset, the moment (seconds), how it loops, the frame rate and GIF dithering.
    format: str | None = None
    preset: str | None = None
    start: float = 0.0
    duration: float | None = None
    loop: str = "cut"
    fps: float | None = None
    dither: bool = False


@dataclass(frozen=True)
class RenderResult:
    """What a render did: frames, share with a face, part switches per second, wall time, paths."""

    frames: int
    face_share: float
    switches_per_s: float
    wall_s: float
    written: tuple[Path, ...]
    device: str
    stages: dict[str, float]

    @property
    def fps(self) -> float:
        return self.frames / max(self.wall_s, 1e-9)

    def summary(self) -> str:
        paths = "\n".join(f"  wrote {p}" for p in self.written)
        stages = ", ".join(f"{name} {s:.1f} s" for name, s in self.stages.items())
        return (f"{self.frames} frames, face in {self.face_share:.0%}, {self.switches_per_s:.2f} part switches/s, "
                f"{self.wall_s:.1f} s ({self.fps:.1f} fps on {self.device}; {stages})\n{paths}")


def _default_output(source: Path, is_image: bool, suffix: str) -> Path:
    return source.with_name(f"{source.stem}_{suffix}{'.png' if is_image else '.mp4'}")


def _output_size(layout: str, size: int, width: int, height: int) -> tuple[int, int]:
    if layout == "avatar":
        return size, size
    if layout == "overlay":
        return width, height
    return width + height, height


def _check_output(output: Path, is_image: bool) -> None:
    """A still image renders to an image file, a clip to a video file: say so before any work."""
    if is_image != (output.suffix.lower() in IMAGE_SUFFIXES):
        want = "an image (.png, .jpg, ...)" if is_image else "a video (.mp4, .mov, .mkv, ...)"
        raise VidmojiError(f"cannot write {output}: the input is {'an image' if is_image else 'a video'}, "
                           f"so the output must be {want}")


def _choice_ids(indexes: dict[str, PartIndex], rows: dict[str, np.ndarray], i: int) -> tuple[str, ...] | None:
    if rows[parts.SLOTS[0]][i] < 0:
        return None
    return tuple(indexes[s].part_ids[int(rows[s][i])] for s in parts.SLOTS)


@dataclass
class Prepared:
    """A clip between the passes: its faces tracked and its parts chosen, ready to compose in any format."""

    source: Path
    info: VideoInfo
    track: FaceTrack
    choices: PartChoices
    indexes: dict[str, PartIndex]
    style: Style
    skin: str
    embedder: Embedder
    device: torch.device
    stages: dict[str, float]
    identity: Identity = field(default_factory=lambda: DEFAULT_IDENTITY)
    look: Look | None = None
    hair_part: object = None                     # templates.Part: the style's hair chosen for the identity
    others: dict = field(default_factory=dict)   # overlay: person id -> (Identity, Look) of another face

    def timeline(self) -> dict:
        doc = timeline(self.track, self.choices, self.indexes, self.style, self.embedder)
        doc["identity"] = identity_timeline(self.identity, self.hair_part)
        return doc

    def composer(self, size: int) -> AvatarComposer:
        """The avatar composer of this subject: the style, skin and identity's look, at `size` pixels."""
        return models.composer(self.style, self.skin, size, self.look)

    def other_composers(self, size: int) -> dict[int, AvatarComposer]:
        """Overlay: the avatar composer of each other person measured in the clip (by person id)."""
        return {p: AvatarComposer(self.style, identity.skin, size, look=look)
                for p, (identity, look) in self.others.items()}


def prepare(source: Path, options: RenderOptions, start: float | None = None) -> Prepared:
    """Pass 1 and the choice of parts: probe, load the style and embedder, track the faces, match and
    smooth. start: perf_counter() of the run, for the stage times."""
    start = time.perf_counter() if start is None else start
    info = probe(source)
    style = load_style(options.style, options.templates)
    if options.skin != "auto":
        style.colour(options.skin)
    persona = read_persona(options.persona) if options.persona else None
    check_overrides(options.identity, style)
    device = choose_device(options.device)
    log(f"device: {device}")
    embedder = models.embedder(options.embedder, device, options.weights)
    indexes = models.indexes(style, embedder, device, log=log)

    stages = {"setup": time.perf_counter() - start}
    with Progress("faces", info.frame_count, enabled=options.show_progress) as progress:
        overlay = options.layout == "overlay"
        track = track_faces(source, device, embedder if embedder.kind == "rgb" else None, progress,
                            max_faces=8 if overlay else 4, small_faces="all" if overlay else "fallback",
                            follow_others=overlay)
    stages["faces"] = time.perf_counter() - start - sum(stages.values())
    _require_a_face(track, source)

    identity = subject_identity(track, device, persona, IdentityOverrides(**{**vars(options.identity),
                                                                             "skin": options.skin}))
    if persona is None and options.identity.glasses is None:
        for note in identity_notes(identity):
            log(note)
    look, hair_part = subject_look(identity, style, indexes, embedder, device)
    others = {}
    for person, views in track.other_heads.items():     # overlay: each other person as they are measured
        other = measure_identity(views, device)
        others[person] = (other, subject_look(other, style, indexes, embedder, device)[0])
    # identity: measuring the sampled views, plus what sampling them cost inside pass 1
    stages["identity"] = time.perf_counter() - start - sum(stages.values()) + track.sample_s
    stages["faces"] -= track.sample_s
    choices = choose_parts(track, embedder, indexes, options.smooth, device)
    return Prepared(source, info, track, choices, indexes, style, identity.skin, embedder, device, stages,
                    identity, look, hair_part, others)


def render_media(source: Path, options: RenderOptions) -> RenderResult:
    """Render the avatar video (or, for a still image, the avatar PNG and SVG) of `source`; a transparent
    format (`options.format`, or the output's suffix: see vidmoji.stickers) goes through
    vidmoji.stickers.write_transparent."""
    from vidmoji import stickers
    models.bound_heap()
    start = time.perf_counter()
    source = Path(source)
    info = probe(source)
    if options.layout not in ("avatar", "side-by-side", "overlay"):
        raise VidmojiError(f"unknown layout {options.layout!r}: choose avatar, side-by-side or overlay")
    plan = stickers.plan_output(source, info, options)
    output = plan.output if plan is not None else (
        Path(options.output) if options.output else _default_output(source, info.is_image, "avatar"))
    if plan is None:
        _check_output(output, info.is_image)
    for path in (output, options.timeline):
        if path is not None:
            check_writable(Path(path))
    prepared = prepare(source, options, start)
    stages, track, choices, indexes = prepared.stages, prepared.track, prepared.choices, prepared.indexes
    composer = prepared.composer(options.size)
    others = None
    if options.layout == "overlay":
        others = OtherAvatars(other_faces_choices(track, prepared.embedder, indexes, prepared.device),
                              track.other_ids, prepared.other_composers(options.size))
    stages["match"] = time.perf_counter() - start - sum(stages.values())

    written = []
    if plan is not None:
        written += stickers.write_transparent(prepared, plan, show_progress=options.show_progress)
    elif info.is_image:
        written += _write_image(output, track, choices, indexes, prepared.style, prepared.skin, composer, options,
                                source, others)
    else:
        with Progress("render", len(track.pts), enabled=options.show_progress) as progress:
            _write_video(source, output, info.fps, info.time_base, track, choices, indexes, composer,
                         options, others, progress)
        written.append(output)
    if options.timeline:
        write_text_atomic(options.timeline, json.dumps(prepared.timeline(), indent=1))
        written.append(Path(options.timeline))
    stages["compose"] = time.perf_counter() - start - sum(stages.values())
    switches = np.mean([count_switches(choices.rows[s], track.pts) for s in parts.SLOTS]) if len(track.pts) else 0.0
    return RenderResult(len(track.pts), float(track.has_face.mean()), float(switches),
                        time.perf_counter() - start, tuple(written), str(prepared.device), stages)


def subject_identity(track: FaceTrack, device: torch.device, persona: Identity | None = None,
                     overrides: IdentityOverrides = IdentityOverrides()) -> Identity:
    """Who the main face is: the persona when one is given, else measured from the clip's sampled views;
    then the attributes set by hand."""
    identity = persona if persona is not None else measure_identity(track.heads, device)
    return apply_overrides(identity, overrides)


def subject_look(identity: Identity, style: Style, indexes: dict[str, PartIndex], embedder: Embedder,
                 device: torch.device):
    """The style's drawing of an identity: (Look, the chosen hair part or None). The skin must be one of
    the style's palette names or "#RRGGBB"; hair colours the style lacks fall back to its default."""
    style.colour(identity.skin)
    hair = choose_hair(identity, style, indexes.get("hair"), embedder, device)
    glasses = style.parts_in("glasses") if identity.glasses else ()
    facial = [p for p in style.parts_in("facial_hair") if p.state == identity.facial_hair]
    style.hair_colour(identity.hair_colour)          # a colour set by hand that the style lacks: one line
    look = Look(hair=hair.id if hair is not None else None, hair_colour=identity.hair_colour,
                glasses=glasses[0].id if glasses else None, facial_hair=facial[0].id if facial else None)
    return look, hair


@dataclass
class OtherAvatars:
    """Overlay: every other face's parts per frame, the person each face is, and each measured person's
    composer (a person without one is drawn by the main composer)."""

    choices: list[list[tuple[str, ...]]]
    ids: list[list[int]]
    composers: dict[int, AvatarComposer]


def _other_avatars(track: FaceTrack, others: OtherAvatars | None, i: int) -> list:
    """Overlay: (part ids, HeadPose, composer or None) of every face of frame i but the main one."""
    if others is None:
        return []
    return [(c, head_pose(m), others.composers.get(p))
            for c, m, p in zip(others.choices[i], track.others[i], others.ids[i])]


def _write_image(output, track, choices, indexes, style, skin, composer, options, source, others) -> list[Path]:
    choice = _choice_ids(indexes, choices.rows, 0)
    avatar = composer.avatar(choice, _gaze_at(choices, 0))
    if options.layout == "avatar":
        svg_path = output.with_suffix(".svg")
        write_text_atomic(svg_path, compose_svg(style, dict(zip(parts.SLOTS, choice)), skin, _gaze_at(choices, 0),
                                                   composer.look))
        write_image_atomic(output, avatar)
        return [output, svg_path]
    with FrameReader(source, batch_size=1) as reader:
        frame = next(reader).frames[0]
    pose = head_pose(track.mesh[0])
    write_image_atomic(output, _layout_frame(frame, avatar, pose, pose, options.layout, composer,
                                             _other_avatars(track, others, 0), 1.0))
    return [output]


def _gaze_at(choices: PartChoices, i: int) -> tuple[float, float] | None:
    """Where the drawn pupils look at frame i: the mean gaze of both eyes (None: no face or no gaze)."""
    if choices.gaze is None or np.isnan(choices.gaze[i]).any():
        return None
    return tuple(float(v) for v in choices.gaze[i].mean(0))


def _layout_frame(frame, avatar, pose, reference, layout, composer, other_avatars, opacity) -> np.ndarray:
    """One output frame of the layout; `opacity` fades the main avatar only (other faces stay covered)."""
    if layout == "overlay":
        drawn = []
        for c, p, own in other_avatars:                  # each person in their own look (hair sets the cover)
            own = own or composer
            drawn.append((own.avatar(c), p, own.face_cover))
        out = overlay_frame(frame, drawn) if drawn else frame
        if avatar is not None and pose is not None:
            out = overlay_frame(out, [(avatar, pose)], face_cover=composer.face_cover, opacity=opacity)
        return out
    face = avatar_frame(avatar, pose, reference, opacity) if avatar is not None else avatar_frame(
        np.zeros((composer.size, composer.size, 4), np.uint8), None, None)
    return face if layout == "avatar" else side_by_side_frame(frame, face)


def fade_opacity(t: float, last_face_t: float) -> float:
    """The avatar's opacity at time t when the face was last seen at last_face_t: held for _HOLD_S, then
    faded out over _FADE_S (the same in render, stickers and live)."""
    return float(np.clip(1 - (t - last_face_t - _HOLD_S) / _FADE_S, 0.0, 1.0))


@dataclass(frozen=True)
class AvatarState:
    """What the avatar shows at one frame: its parts (one id per slot), where the pupils look, the head
    pose it follows and its opacity (a face lost for longer than _HOLD_S fades out)."""

    choice: tuple[str, ...]
    gaze: tuple[float, float] | None
    pose: HeadPose
    opacity: float


def avatar_states(track: FaceTrack, choices: PartChoices, indexes: dict[str, PartIndex]) -> list[AvatarState | None]:
    """Per frame, the main avatar's state; None before the first face and once it has faded out. A frame
    without a face holds the last avatar for _HOLD_S, then fades it out over _FADE_S."""
    out: list[AvatarState | None] = []
    last: AvatarState | None = None
    last_face_t = None
    for i, t in enumerate(track.pts):
        choice = _choice_ids(indexes, choices.rows, i)
        if choice is not None:
            last, last_face_t = AvatarState(choice, _gaze_at(choices, i), head_pose(track.mesh[i]), 1.0), t
            out.append(last)
            continue
        opacity = 0.0 if last is None else fade_opacity(t, last_face_t)
        out.append(AvatarState(last.choice, last.gaze, last.pose, opacity) if opacity > 0 else None)
    return out


def reference_pose(track: FaceTrack) -> HeadPose | None:
    """The clip's typical head pose (the median mesh's), which the avatar layout measures poses against."""
    present = np.flatnonzero(track.has_face)
    return head_pose(np.nanmedian(track.mesh[present], axis=0)) if len(present) else None


class FrameComposer:
    """The compose stage: each frame's chosen parts (None: no face) drawn in the layout, following the head
    relative to `reference` (the clip's median pose in a render, a running one live). A frame without a
    face holds the last avatar for _HOLD_S, then fades it out over _FADE_S."""

    def __init__(self, composer: AvatarComposer, layout: str, reference: HeadPose | None = None):
        self.composer, self.layout, self.reference = composer, layout, reference
        self._choice, self._pose, self._face_t, self._gaze = None, None, None, None

    def compose(self, frame: np.ndarray | None, t: float, choice: tuple[str, ...] | None, pose: HeadPose | None,
                gaze: tuple[float, float] | None, other_avatars: list = (), rgba: bool = False) -> np.ndarray:
        """The output picture of one frame: (H, W, 3) uint8 RGB; with rgba and the avatar layout, the avatar
        alone as (S, S, 4) RGBA on a transparent background. frame: the source frame (None for the
        avatar layout)."""
        opacity = 1.0
        if choice is not None:
            self._choice, self._pose, self._face_t, self._gaze = choice, pose, t, gaze
        elif self._face_t is not None:
            opacity = fade_opacity(t, self._face_t)
        avatar = self.composer.avatar(self._choice, self._gaze) if self._choice is not None and opacity > 0 else None
        if rgba and self.layout == "avatar":
            return avatar_rgba_frame(avatar, self._pose, self.reference, opacity, self.composer.size)
        return _layout_frame(frame, avatar, self._pose, self.reference, self.layout, self.composer,
                             list(other_avatars), opacity)


def _write_video(source, output, fps, time_base, track, choices, indexes, composer, options, others,
                 progress) -> None:
    width, height = _output_size(options.layout, options.size, track.width, track.height)
    stage = FrameComposer(composer, options.layout, reference_pose(track))
    with VideoWriter(output, width, height, fps, time_base, audio_from=source) as writer:
        for i, frame in _frames_again(source, len(track.pts), options.layout != "avatar"):
            choice = _choice_ids(indexes, choices.rows, i)
            pose = head_pose(track.mesh[i]) if choice is not None else None
            writer.write(stage.compose(frame, float(track.pts[i]), choice, pose, _gaze_at(choices, i),
                                       _other_avatars(track, others, i)), float(track.pts[i]))
            progress.advance(1)


def _frames_again(source: Path, count: int, decode: bool) -> Iterator[tuple[int, np.ndarray | None]]:
    """(index, frame) for the `count` frames of pass 1; frames decoded again only when `decode`."""
    if not decode:
        yield from ((i, None) for i in range(count))
        return
    seen, last = 0, None
    with frame_reader(source) as reader:
        for batch in reader:
            for j, frame in enumerate(batch.frames):
                if batch.index + j < count:
                    yield batch.index + j, frame
            seen = batch.index + len(batch.frames)
            last = batch.frames[-1]
    # A damaged file may decode a few frames fewer the second time (frame-threaded error concealment):
    # the last decoded frame stands in for them.
    for i in range(seen, count):
        yield i, last


def _batches_again(source: Path, count: int) -> Iterator[FrameBatch]:
    """The frames of pass 1 decoded again, in batches, never more than its `count` (a damaged file may
    decode a frame more or fewer the second time)."""
    with frame_reader(source) as reader:
        for batch in reader:
            n = min(len(batch.pts_s), count - batch.index)
            if n <= 0:
                return
            yield batch if n == len(batch.pts_s) else FrameBatch(batch.frames[:n], batch.pts_s[:n], batch.index)


def timeline_entry(t: float, rows: dict[str, int] | None, similarity: dict[str, float], gaze: np.ndarray | None,
                   indexes: dict[str, PartIndex]) -> dict:
    """One frame of a timeline: time, face found, and per slot the chosen part id, its tags and the
    similarity; each eye also its gaze [x, y]. rows: {slot: row} (None: no face); gaze: (2, 2) or None."""
    entry = {"t": round(float(t), 6), "face": rows is not None}
    if rows is not None:
        entry["parts"] = {s: {"id": indexes[s].part_ids[int(rows[s])], "tags": list(indexes[s].tags[int(rows[s])]),
                              "similarity": round(float(similarity[s]), 4)} for s in parts.SLOTS}
        if gaze is not None:
            for e, slot in enumerate(("eye_right", "eye_left")):
                entry["parts"][slot]["gaze"] = [round(float(v), 3) for v in gaze[e]]
    return entry


def timeline_document(frames: list[dict], calibration: Calibration, style: Style, embedder: Embedder) -> dict:
    """A timeline file: style, embedder, the subject's baseline and the frames (`timeline_entry`)."""
    cal = calibration
    return {"style": style.name, "embedder": embedder.name,
            "calibration": {"eye_open": cal.eye_open, "brow_rest": cal.brow_rest, "brow_shape": cal.brow_shape,
                            "rest_gap": cal.rest_gap, "lips": list(cal.lips), "mouth_sag": cal.mouth_sag},
            "frames": frames}


def timeline(track: FaceTrack, choices: PartChoices, indexes: dict[str, PartIndex], style: Style,
             embedder: Embedder) -> dict:
    """Per frame: time, face found, and per slot the chosen part id, its tags and the similarity; each eye
    also its gaze [x, y] in [-1, 1] (x toward the image's right, y down)."""
    frames = []
    for i, t in enumerate(track.pts):
        rows = {s: choices.rows[s][i] for s in parts.SLOTS} if track.has_face[i] else None
        frames.append(timeline_entry(t, rows, {s: choices.similarity[s][i] for s in parts.SLOTS},
                                     choices.gaze[i] if choices.gaze is not None else None, indexes))
    return timeline_document(frames, choices.calibration, style, embedder)


# --- identify ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IdentifyResult:
    identity: Identity
    written: tuple[Path, ...]
    wall_s: float

    def summary(self) -> str:
        i = self.identity
        return (f"skin {i.skin}, hair {i.hair_length} {i.hair_colour}, glasses {'yes' if i.glasses else 'no'}, "
                f"facial hair {i.facial_hair} ({self.wall_s:.1f} s)\n" + "\n".join(f"  wrote {p}" for p in self.written))


def identify_media(source: Path, output: Path | None, device: str = "auto",
                   overrides: IdentityOverrides = IdentityOverrides(), show_progress: bool = True) -> IdentifyResult:
    """Measure who the face of a clip or photo is and write it as a persona file (`--persona` of render)."""
    models.bound_heap()
    start = time.perf_counter()
    source = Path(source)
    info = probe(source)
    output = Path(output) if output else source.with_name(f"{source.stem}_persona.json")
    if output.suffix.lower() != ".json":
        raise VidmojiError(f"cannot write {output}: a persona is a .json file")
    check_writable(output)
    check_overrides(overrides)
    dev = choose_device(device)
    with Progress("faces", info.frame_count, enabled=show_progress) as progress:
        track = track_faces(source, dev, None, progress)
    _require_a_face(track, source)
    identity = subject_identity(track, dev, None, overrides)
    if overrides.glasses is None:
        for note in identity_notes(identity):
            log(note)
    write_text_atomic(output, json.dumps(persona_json(identity, source.name), indent=1))
    return IdentifyResult(identity, (output,), time.perf_counter() - start)


# --- parse ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParseOptions:
    """Options of `parse_media`."""

    parser: str = "mesh"
    parser_weights: Path | None = None
    device: str = "auto"
    show_progress: bool = True


@dataclass(frozen=True)
class ParseResult:
    frames: int
    faces: int
    written: Path

    def summary(self) -> str:
        return f"{self.frames} frame(s), {self.faces} face(s) parsed\n  wrote {self.written}"


def draw_parse(frames: torch.Tensor, faces: list[list[torch.Tensor]], parser=None) -> tuple[np.ndarray, int]:
    """Frames (N, H, W, 3) uint8 on the device with each face's label map (half transparent) and mesh
    points drawn over them. Returns (N, H, W, 3) uint8 numpy and the number of faces drawn."""
    out = frames.cpu().numpy().copy()
    index = [i for i, ff in enumerate(faces) for _ in ff]
    if not index:
        return out, 0
    mesh = torch.stack([m for ff in faces for m in ff]).float()
    matrices = alignment_matrices(mesh)
    if parser is None:
        labels = mesh_label_map(transform_points(matrices, mesh))
    else:
        labels = parser.parse(warp_crops(frames, torch.tensor(index, device=frames.device), matrices))
    colours = colorize(labels).cpu().numpy()
    mask = (labels > 0).cpu().numpy().astype(np.uint8)
    inverse = invert_affine(matrices).cpu().numpy()
    h, w = out.shape[1:3]
    for j, i in enumerate(index):
        col = cv2.warpAffine(colours[j], inverse[j], (w, h), flags=cv2.INTER_NEAREST)
        m = cv2.warpAffine(mask[j], inverse[j], (w, h), flags=cv2.INTER_NEAREST).astype(bool)
        out[i][m] = (0.5 * out[i][m] + 0.5 * col[m]).astype(np.uint8)
        r = max(1, int(round(w / 500)))
        for x, y in mesh[j, :, :2].cpu().numpy():
            cv2.circle(out[i], (int(round(x)), int(round(y))), r, (255, 255, 255), -1, cv2.LINE_AA)
    return out, len(index)


def subject_calibration(track: FaceTrack, measures: dict[str, torch.Tensor] | None = None) -> Calibration:
    """The main face's baseline over the whole clip (population values for fewer than 15 face frames);
    measures: `measure` of its face frames' meshes when the caller has them."""
    mesh = track.mesh[track.has_face]
    if len(mesh) < 15:
        return Calibration.default()
    return Calibration.from_measures(measure(torch.from_numpy(mesh)) if measures is None else measures)


def parse_media(source: Path, output: Path, options: ParseOptions) -> ParseResult:
    """Write `source` (image or clip) with the mesh and the label map of every face drawn over it.

    The main face is drawn from its calibrated geometry (each eye's opening relative to the subject's own
    open eye, as the embedders see it); other faces as the mesh found them.
    """
    source, output = Path(source), Path(output)
    info = probe(source)
    to_video = output.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".webp")
    if not to_video and not info.is_image:
        raise VidmojiError(f"{source} is a video: write it to a video file (e.g. -o parsed.mp4)")
    check_writable(output)
    device = choose_device(options.device)
    log(f"device: {device}")
    parser = None
    if options.parser == "bisenet":
        from vidmoji.face.bisenet import BiSeNetParser
        parser = BiSeNetParser(options.parser_weights, device)
    with Progress("faces", info.frame_count, enabled=options.show_progress) as progress:
        track = track_faces(source, device, progress=progress, max_faces=8, small_faces="all")
    _require_a_face(track, source)
    main = np.full_like(track.mesh, np.nan)
    if track.has_face.any():
        main[track.has_face] = calibrated_mesh(torch.from_numpy(track.mesh[track.has_face]),
                                               subject_calibration(track)).numpy()
    total_faces = 0
    writer = VideoWriter(output, info.width, info.height, info.fps or 25.0, info.time_base,
                         audio_from=source) if to_video else None
    try:
        with Progress("parse", len(track.pts), enabled=options.show_progress) as progress:
            for batch in _batches_again(source, len(track.pts)):
                frames = torch.from_numpy(batch.frames).to(device)
                idx = range(batch.index, batch.index + len(batch.pts_s))
                faces = [([main[i]] if track.has_face[i] else []) + track.others[i] for i in idx]
                faces = [[torch.from_numpy(m).to(device) for m in ff] for ff in faces]
                drawn, n = draw_parse(frames, faces, parser)
                total_faces += n
                for img, t in zip(drawn, batch.pts_s):
                    if writer is not None:
                        writer.write(img, float(t))
                    else:
                        write_image_atomic(output, img)
                progress.advance(len(drawn))
        if writer is not None:
            writer.close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return ParseResult(len(track.pts), total_faces, output)


# --- indexes ----------------------------------------------------------------------------------------------
def build_style_indexes(style: str | None, embedder_name: str, weights: Path | None, templates: Path | None,
                        device_name: str) -> Iterator[str]:
    """Build the FAISS indexes of one style (or all when style is None); yields one line per index built."""
    device = choose_device(device_name)
    log(f"device: {device}")
    embedder = load_embedder(embedder_name, device, weights)
    names = [style] if style else list_styles(templates)
    for name in names:
        s = load_style(name, templates)
        out = build_indexes(s, embedder, device)
        counts = ", ".join(f"{slot} {sum(p.slot == slot for p in s.parts)}" for slot in parts.INDEXED_SLOTS
                           if any(p.slot == slot for p in s.parts))
        yield f"indexed style {name!r} with {embedder.name} ({counts}): wrote {out}"


# --- the embedding diagnostic -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PlotOptions:
    """Options of `plot_media` (see `vidmoji plot-embeddings --help`)."""

    output: Path | None = None
    embedders: tuple[str, ...] = ("ae",)
    style: str = "flat"
    slots: tuple[str, ...] = ("eye_right", "eye_left", "mouth", "brow_right")
    data: Path | None = None
    weights: Path | None = None
    templates: Path | None = None
    device: str = "auto"
    width: int = 1280
    height: int = 720
    skin: str = "auto"
    persona: Path | None = None
    identity: IdentityOverrides = IdentityOverrides()
    show_progress: bool = True


@dataclass(frozen=True)
class PlotResult:
    """What a diagnostic run wrote, and per embedder and slot the median similarity and median
    frame-to-frame change of the face embedding."""

    frames: int
    wall_s: float
    written: tuple[Path, ...]
    stability: dict[str, dict[str, tuple[float, float]]]

    def summary(self) -> str:
        lines = [f"{self.frames} frames in {self.wall_s:.1f} s ({self.frames / max(self.wall_s, 1e-9):.1f} fps)"]
        for emb, slots in self.stability.items():
            for slot, (sim, change) in slots.items():
                lines.append(f"  {emb:8s} {slot:10s} median similarity {sim:.3f}, median change {change:.4f}")
        lines += [f"  wrote {p}" for p in self.written]
        return "\n".join(lines)


def aligned_overlays(frames: np.ndarray, frame_index: list[int], mesh: torch.Tensor) -> np.ndarray:
    """Aligned crops of faces with their mesh label map blended over them (half transparent), for display.

    frames: (N, H, W, 3) uint8 RGB (host memory); frame_index: the frame of each face; mesh (F, 468, 3)
    frame pixels on the device. Returns (F, CROP_SIZE, CROP_SIZE, 3) uint8 RGB. The label maps are
    rasterised on the device; the crops are cut with OpenCV in uint8 (a picture only, several times faster
    than sampling float frames), with the same frame-to-crop transforms.
    """
    size = parts.CROP_SIZE
    matrices = alignment_matrices(mesh)
    labels = mesh_label_map(transform_points(matrices, mesh)).to(torch.uint8).cpu().numpy()
    # The transforms map continuous coordinates with pixel centres at i + 0.5; OpenCV's centres are at i.
    m = matrices.double().cpu().numpy()
    m[:, :, 2] += m[:, :, :2].sum(axis=2) * 0.5 - 0.5
    palette = np.asarray(parts.LABEL_COLORS, np.uint8)
    out = np.empty((len(frame_index), size, size, 3), np.uint8)
    for k, i in enumerate(frame_index):
        crop = cv2.warpAffine(frames[i], m[k], (size, size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        mixed = cv2.addWeighted(crop, 0.5, palette[labels[k]], 0.5, 0.0)
        np.copyto(crop, mixed, where=(labels[k] > 0)[..., None])
        out[k] = crop
    return out


def plot_media(source: Path, options: PlotOptions) -> PlotResult:
    """Write the embedding diagnostic video of `source`, its summary picture and optionally its data."""
    from vidmoji.plot import EmbeddingFigure, embedding_change, summary_figure
    models.bound_heap()
    start = time.perf_counter()
    source = Path(source)
    info = probe(source)
    unknown = [s for s in options.slots if s not in parts.INDEXED_SLOTS]
    if unknown or not options.slots:
        raise VidmojiError(f"unknown part slot(s) {', '.join(unknown) or '(none given)'}: choose from "
                           f"{', '.join(parts.INDEXED_SLOTS)}")
    output = Path(options.output) if options.output else source.with_name(f"{source.stem}_embeddings.mp4")
    if output.suffix.lower() in IMAGE_SUFFIXES:
        raise VidmojiError(f"cannot write {output}: the diagnostic is a video (.mp4); its summary picture "
                           f"is written beside it as .png")
    picture = output.with_suffix(".png")
    for path in (output, picture, options.data):
        if path is not None:
            check_writable(Path(path))
    style = load_style(options.style, options.templates)
    persona = read_persona(options.persona) if options.persona else None
    check_overrides(options.identity, style)
    device = choose_device(options.device)
    log(f"device: {device}")
    # --weights belongs to resnet50 when it is compared with a shipped embedder, else to the one asked for.
    owner = "resnet50" if "resnet50" in options.embedders else options.embedders[0]
    embedders = {name: models.embedder(name, device, options.weights if name == owner else None)
                 for name in options.embedders}
    rgb = [e for e in embedders.values() if e.kind == "rgb"]
    indexes = {name: models.indexes(style, e, device, log=log) for name, e in embedders.items()}

    with Progress("faces", info.frame_count, enabled=options.show_progress) as progress:
        track = track_faces(source, device, rgb[0] if rgb else None, progress)
    _require_a_face(track, source)
    choices = {name: choose_parts(track, e, indexes[name], "viterbi", device) for name, e in embedders.items()}
    first = next(iter(choices.values()))
    identity = subject_identity(track, device, persona, IdentityOverrides(**{**vars(options.identity),
                                                                             "skin": options.skin}))
    look, _ = subject_look(identity, style, indexes[next(iter(embedders))], next(iter(embedders.values())), device)
    composer = AvatarComposer(style, identity.skin, 256, look=look)
    present = np.flatnonzero(track.has_face)
    row_of = np.full(len(track.pts), -1)
    row_of[present] = np.arange(len(present))
    values = _plot_values(track, choices, indexes, tuple(s for s in options.slots if s in parts.SLOTS), row_of)
    if "hair" in options.slots:
        for name, e in embedders.items():
            values[name]["hair"] = _hair_values(track, identity, style, indexes[name], e, device)

    dims = {name: {s: values[name][s]["face"].shape[1] for s in options.slots} for name in embedders}
    # One fixed scale per panel for the whole clip, so a frame's graph reads the same at any point.
    ylim = {n: {s: float(np.nan_to_num(np.nanmax(np.abs(np.stack([values[n][s]["face"], values[n][s]["part"]]))),
                                       nan=1.0) * 1.1 or 1.0) for s in options.slots} for n in embedders}
    figure = EmbeddingFigure(options.slots, tuple(embedders), dims, options.width, options.height, ylim=ylim,
                             title=source.name)
    written = [output]
    with VideoWriter(output, options.width, options.height, info.fps or 25.0, info.time_base,
                     audio_from=source) as writer, \
            Progress("plot", len(track.pts), enabled=options.show_progress) as progress:
        for batch in _batches_again(source, len(track.pts)):
            idx = np.arange(batch.index, batch.index + len(batch.pts_s))
            with_face = [j for j, i in enumerate(idx) if track.has_face[i]]
            crops = {}
            if with_face:
                mesh = calibrated_mesh(torch.from_numpy(track.mesh[idx[with_face]]), first.calibration).to(device)
                crops = dict(zip(with_face, aligned_overlays(batch.frames, with_face, mesh)))
            for j, i in enumerate(idx):
                face, part, sim, lab = ({n: {} for n in embedders} for _ in range(4))
                for name in embedders:
                    for s in options.slots:
                        v = values[name][s]
                        has = bool(track.has_face[i])
                        face[name][s] = v["face"][i] if has else None
                        part[name][s] = v["part"][i] if has else None
                        sim[name][s] = float(v["similarity"][i])
                        r = int(v["row"][i])
                        lab[name][s] = (f"{indexes[name][s].part_ids[r]} [{', '.join(indexes[name][s].tags[r])}]"
                                        if r >= 0 else "")
                choice = _choice_ids(indexes[next(iter(embedders))], first.rows, i)
                avatar = (avatar_frame(composer.avatar(choice, _gaze_at(first, i)), None, None)
                          if choice is not None else None)
                writer.write(figure.draw(face, part, sim, lab, crops.get(j), avatar,
                                         f"frame {i}  t={track.pts[i]:.2f} s"), float(track.pts[i]))
                progress.advance(1)

    change = {n: {s: embedding_change(values[n][s]["face"]) for s in options.slots} for n in embedders}
    similarity = {n: {s: values[n][s]["similarity"] for s in options.slots} for n in embedders}
    write_image_atomic(picture, summary_figure(track.pts, similarity, change))
    written.append(picture)
    if options.data:
        arrays = {"t": track.pts, "face_found": track.has_face}
        for n in embedders:
            for s in options.slots:
                for key in ("face", "part", "similarity", "row"):
                    arrays[f"{n}/{s}/{key}"] = values[n][s][key]
        _save_npz_atomic(Path(options.data), arrays)
        written.append(Path(options.data))
    stability = {n: {s: (float(np.nanmedian(similarity[n][s])) if track.has_face.any() else float("nan"),
                         float(np.nanmedian(change[n][s])) if track.has_face.sum() > 1 else float("nan"))
                     for s in options.slots} for n in embedders}
    return PlotResult(len(track.pts), time.perf_counter() - start, tuple(written), stability)


def _hair_values(track: FaceTrack, identity: Identity, style: Style, indexes: dict[str, PartIndex],
                 embedder: Embedder, device: torch.device) -> dict[str, np.ndarray]:
    """The hair panel's values: one embedding per clip (identity is per subject), shown on every frame with
    a face beside the chosen hair part's, as _plot_values gives them for the per-frame slots."""
    from vidmoji.avatar.index import _can_index
    index = indexes.get("hair")
    if index is None or identity.hair_window is None or not _can_index(style, embedder, "hair", device):
        raise VidmojiError(f"no hair to plot: the style {style.name!r} with {embedder.name} has no hair index, "
                           f"or the subject is bald")
    query = embed_slot(embedder, "hair", torch.from_numpy(identity.hair_window)[None].to(device)).float().cpu().numpy()
    part = choose_hair(identity, style, index, embedder, device)
    row = index.part_ids.index(part.id)
    vec = index.vectors[row]
    sim = float(query[0] @ vec / max(np.linalg.norm(query[0]) * np.linalg.norm(vec), 1e-9))
    n, d = len(track.pts), query.shape[1]
    face = np.full((n, d), np.nan, np.float32)
    chosen = np.full((n, d), np.nan, np.float32)
    face[track.has_face], chosen[track.has_face] = query[0], vec
    return {"face": face, "part": chosen, "similarity": np.where(track.has_face, sim, np.nan).astype(np.float32),
            "row": np.where(track.has_face, row, -1)}


def _plot_values(track: FaceTrack, choices: dict[str, PartChoices], indexes: dict[str, dict[str, PartIndex]],
                 slots: tuple[str, ...], row_of: np.ndarray) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Per embedder and slot, (T, D) face embeddings and chosen-part embeddings (NaN rows where no face),
    (T,) similarity and (T,) chosen row (-1 where no face): exactly what the video shows."""
    out = {}
    has = track.has_face
    for name, ch in choices.items():
        out[name] = {}
        for s in slots:
            emb = ch.matches[s].embeddings
            d = emb.shape[1] if emb.ndim == 2 and emb.shape[0] else indexes[name][s].vectors.shape[1]
            face = np.full((len(track.pts), d), np.nan, np.float32)
            part = np.full((len(track.pts), d), np.nan, np.float32)
            rows = ch.rows[s]
            face[has] = emb[row_of[has]]
            part[has] = indexes[name][s].vectors[rows[has]]
            out[name][s] = {"face": face, "part": part, "similarity": ch.similarity[s], "row": rows}
    return out


def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue())
