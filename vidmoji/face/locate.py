"""Face location for images and video: detection + the 468-point mesh, batched on the torch device.

`FaceLocator(frames)` detects and meshes every frame independently. `FaceLocator.track(frames)` follows
faces through a video as MediaPipe's face mesh graph does: each face's crop comes from its mesh, and the
detector runs only every `detect_every` frames or when a mesh loses its face (presence < 0.5), so the
per-frame cost is dominated by the mesh.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from vidmoji.face.detector import FaceDetector
from vidmoji.face.mesh import FaceMesh
from vidmoji.parts import EYE_LEFT, EYE_RIGHT, FACE_SIDES, INNER_LIP_MID, NOSE_TIP

# A face the tracker is following counts as the same face as another when their boxes overlap this much.
SAME_FACE_IOU = 0.5


@dataclass(frozen=True)
class Face:
    """One face in one frame, all in frame pixels, as tensors on the locator's device.

    box (4,) xyxy: the bounding box of the mesh's points; keypoints (6,2): MediaPipe's detection keypoints
    (subject's right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion) taken from
    the mesh, so they are the same kind of point in detected and tracked frames; score (): the mesh's
    face-presence probability; mesh (468,3): x, y and relative depth z (in x's pixel scale, negative towards
    the camera).
    """

    box: torch.Tensor
    keypoints: torch.Tensor
    score: torch.Tensor
    mesh: torch.Tensor

    def cpu(self) -> Face:
        """The same face with its tensors on the CPU (`.numpy()` them from there)."""
        return Face(*(getattr(self, f.name).cpu() for f in fields(self)))


def _keypoints_from_mesh(mesh: torch.Tensor) -> torch.Tensor:
    """(F,468,3) -> (F,6,2): eye centres as the means of the eye contours, the nose tip, the mouth
    centre between the inner lips, and the face sides at ear height for the tragions."""
    xy = mesh[..., :2]
    return torch.stack([xy[:, list(EYE_RIGHT)].mean(1), xy[:, list(EYE_LEFT)].mean(1), xy[:, NOSE_TIP],
                        xy[:, list(INNER_LIP_MID)].mean(1), xy[:, FACE_SIDES[0]], xy[:, FACE_SIDES[1]]], dim=1)


def _boxes(mesh: torch.Tensor) -> torch.Tensor:
    xy = mesh[..., :2]
    return torch.cat([xy.min(dim=1).values, xy.max(dim=1).values], dim=1)


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of xyxy boxes (A,4) x (B,4) -> (A,B)."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(dim=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(dim=1)
    return inter / (area_a[:, None] + area_b[None] - inter).clamp(min=1e-9)


class FaceLocator:
    """Detection and face mesh together.

    Args:
        device: torch device.
        max_faces: at most this many faces per frame (the best-scoring ones); 1 suits a selfie clip.
        detect_every: in `track`, run the detector at least every this many frames (to pick up faces
            that enter the picture); lost faces trigger it at once.
        min_presence: meshes whose face-presence probability is lower are dropped (MediaPipe's 0.5).
        **detector_options: passed to FaceDetector (min_score, full_range, min_face, small_faces).
    """

    def __init__(self, device: torch.device | str, max_faces: int = 1, detect_every: int = 16,
                 min_presence: float = 0.5, **detector_options):
        self.device = torch.device(device)
        self.max_faces = max_faces
        self.detect_every = detect_every
        self.min_presence = min_presence
        self.detector = FaceDetector(self.device, **detector_options)
        self.mesh = FaceMesh(self.device)
        self.reset()

    def reset(self) -> None:
        """Forget the tracked faces (call between videos)."""
        self._rois: torch.Tensor | None = None    # (S,5) ROIs for the next frame
        self._frame_count = 0

    @torch.inference_mode()
    def __call__(self, frames: torch.Tensor) -> list[list[Face]]:
        """Detect and mesh each frame on its own. frames: uint8 (N,H,W,3) RGB -> faces per frame,
        best first."""
        frames = frames.to(self.device)
        index, rois = self._detect(frames, torch.arange(frames.shape[0], device=self.device))
        return self._collect(frames.shape[0], *self._mesh_refined(frames, index, rois))

    @torch.inference_mode()
    def track(self, frames: torch.Tensor) -> list[list[Face]]:
        """Follow faces through consecutive video frames, batch after batch (state kept between calls).

        frames: uint8 (N,H,W,3) RGB, the next N frames of the video -> faces per frame, best first.

        Within a batch every frame's mesh is seeded with the ROIs of the latest confirmed detection (one
        whose own mesh finds a face) in the batch or, before the first, of the previous batch's last mesh;
        where the first pass's own points imply a different crop, a second pass re-centres it (MediaPipe's
        landmarks-to-ROI rule, applied to the frame itself rather than the next one, so the batch needs no
        frame-by-frame loop). Frames where a seeded face is lost are detected again.
        """
        frames = frames.to(self.device)
        n = frames.shape[0]
        scheduled = [i for i in range(n) if (self._frame_count + i) % self.detect_every == 0]
        if self._rois is None and 0 not in scheduled:
            scheduled.insert(0, 0)
        det_index, det_rois = self._detect(frames, torch.tensor(scheduled, device=self.device, dtype=torch.long))
        # Detections are meshed in their own frame first; one whose mesh finds no face there is a false
        # positive and seeds nothing (else every later frame of the batch would lose it and be detected again).
        points, presence, index = self._mesh_refined(frames, det_index, det_rois)
        confirmed = presence >= self.min_presence
        confirmed_rois = FaceMesh.roi_from_mesh(points[confirmed]) if confirmed.any() else det_rois[:0]
        confirmed_index = index[confirmed]

        # Seeds: every other frame takes the ROIs of the latest confirmed detection before it, or of the
        # previous batch's last meshes.
        seed_index, seed_rois = [], []
        current = self._rois
        for i in range(n):
            found = confirmed_rois[confirmed_index == i]
            if len(found):
                current = found
                continue
            if current is not None and len(current):
                seed_index.append(torch.full((len(current),), i, device=self.device, dtype=torch.long))
                seed_rois.append(current)
        if seed_rois:
            s_points, s_presence, s_index = self._mesh_refined(frames, torch.cat(seed_index), torch.cat(seed_rois))
            points = torch.cat([points, s_points])
            presence = torch.cat([presence, s_presence])
            index = torch.cat([index, s_index])

        # Frames that lost a face and were not already detected: detect them and mesh those detections.
        lost = torch.unique(index[presence < self.min_presence]).tolist()
        retry = sorted(set(lost) - set(scheduled) | (set(range(n)) - set(index.tolist()) - set(scheduled)))
        if retry:
            r_index, r_rois = self._detect(frames, torch.tensor(retry, device=self.device, dtype=torch.long))
            r_points, r_presence, r_index = self._mesh_refined(frames, r_index, r_rois)
            points = torch.cat([points, r_points])
            presence = torch.cat([presence, r_presence])
            index = torch.cat([index, r_index])

        faces = self._collect(n, points, presence, index)
        last = faces[-1] if faces else []
        self._rois = FaceMesh.roi_from_mesh(torch.stack([f.mesh for f in last])) if last else None
        self._frame_count += n
        return faces

    def _detect(self, frames: torch.Tensor, which: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Detect faces in frames[which]; returns frame index (K,) and ROIs (K,5) of the best max_faces
        of each frame."""
        if len(which) == 0:
            return which, torch.zeros((0, 5), device=self.device)
        detections = self.detector.detect(frames[which])
        index, rois = [], []
        for i, det in zip(which.tolist(), detections):
            k = min(len(det), self.max_faces)
            if k:
                rois.append(FaceMesh.roi_from_detection(det.boxes[:k], det.keypoints[:k]))
                index.append(torch.full((k,), i, device=self.device, dtype=torch.long))
        if not rois:
            return which[:0], torch.zeros((0, 5), device=self.device)
        return torch.cat(index), torch.cat(rois)

    def _mesh_refined(self, frames: torch.Tensor, index: torch.Tensor,
                      rois: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mesh the ROIs, a face whose first crop was off meshed again on the crop its own points imply
        (FaceMesh.run's min_presence). Returns points (F,468,3), presence (F,), frame index (F,)."""
        if len(index) == 0:
            return torch.zeros((0, 468, 3), device=self.device), torch.zeros(0, device=self.device), index
        points, presence = self.mesh.run(frames, index, rois, min_presence=self.min_presence)
        return points, presence, index

    def _collect(self, n: int, points: torch.Tensor, presence: torch.Tensor,
                 index: torch.Tensor) -> list[list[Face]]:
        """Group meshes by frame: keep faces with enough presence, drop duplicates of a better face,
        at most max_faces, best first."""
        keep = presence >= self.min_presence
        points, presence, index = points[keep], presence[keep], index[keep]
        boxes, keypoints = _boxes(points), _keypoints_from_mesh(points)
        faces: list[list[Face]] = []
        for i in range(n):
            mine = torch.nonzero(index == i).flatten()
            mine = mine[presence[mine].argsort(descending=True)]
            chosen: list[int] = []
            for j in mine.tolist():
                if len(chosen) == self.max_faces:
                    break
                if chosen and _iou(boxes[j:j + 1], boxes[chosen]).max() > SAME_FACE_IOU:
                    continue
                chosen.append(j)
            faces.append([Face(boxes[j], keypoints[j], presence[j], points[j]) for j in chosen])
        return faces
