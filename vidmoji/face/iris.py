"""MediaPipe's iris landmark model (`iris_landmark.tflite`, Apache-2.0, see weights/NOTICE) as a torch
module, and `EyeRefiner`, which uses it to refine the eye contours of the 468-point mesh.

The 468-point mesh barely closes an eye: a shut eye keeps most of its open lid opening. MediaPipe's iris
model, run on a 64x64 crop of each eye, places the lids where they are (71 eye-region points) and finds
the iris (5 points). MediaPipe's iris tracking graphs crop each eye from the mesh's eye corners and write
the refined points back into the mesh; `EyeRefiner.refine` does the same, for every eye of a batch at once.

Conventions follow mesh.py: points in frame pixels, x right, y down; z a relative depth in x's pixel scale.
Left and right are the SUBJECT's own (the subject's left eye is on the image's right in a frontal view).
The model was trained on the subject's right eye; the left eye's crop is mirrored before it goes in and
its points are mirrored back (MediaPipe's IS_RIGHT_EYE flip: MediaPipe names eyes by image side).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vidmoji import parts
from vidmoji.face.detector import TFConv2d, _shortcut, load_network
from vidmoji.face.mesh import CROP_CHUNK
from vidmoji.face.sampling import crop_affine, sample_frames
from vidmoji.models import activation_batch

INPUT_SIZE = 64
NUM_EYE_POINTS = 71
NUM_IRIS_POINTS = 5
# Eye crops through the network at once on the CPU: as many as keep its largest activation (64 channels at 32x32,
# the stem's) within models.ACTIVATION_BYTES, 14 eyes (on a GPU all of a call's at once).
EYE_CHUNK = activation_batch(64 * (INPUT_SIZE // 2) ** 2 * 4)
# MediaPipe's iris ROI: a square around the eye corners' bounding box, its long side scaled 2.3 times
# (iris_landmark_landmarks_to_roi graph: RectTransformation, square_long, scale 2.3).
ROI_SCALE = 2.3
# Eye corners (start, end) of each eye's ROI; start -> end sets the ROI's x axis, as MediaPipe's
# iris_landmark_left_and_right graphs do. Index 0 is the subject's right eye (not mirrored), 1 the
# subject's left eye (mirrored).
EYE_CORNERS = ((33, 133), (362, 263))
EYE_MIRRORED = (False, True)

# Mesh indices of the 71 eye points of each eye, in the model's output order: MediaPipe's
# kEyeLandmarkIndicesInFaceLandmarks (mediapipe/graphs/iris_tracking/calculators/
# update_face_landmarks_calculator.cc; the same table as the eye refinements of
# mediapipe/modules/face_landmark/tensors_to_face_landmarks_with_attention.pbtxt).
# Row 0: the subject's right eye, row 1: the subject's left eye.
EYE_MESH_INDICES: tuple[tuple[int, ...], tuple[int, ...]] = (
    (
        # eye lower contour (corner to corner)
        33, 7, 163, 144, 145, 153, 154, 155, 133,
        # eye upper contour, without the corners
        246, 161, 160, 159, 158, 157, 173,
        # halo x2 lower contour, upper contour
        130, 25, 110, 24, 23, 22, 26, 112, 243,
        247, 30, 29, 27, 28, 56, 190,
        # halo x3 lower contour, upper contour
        226, 31, 228, 229, 230, 231, 232, 233, 244,
        113, 225, 224, 223, 222, 221, 189,
        # halo x4 upper contour (the brow's inner contour)
        35, 124, 46, 53, 52, 65,
        # halo x5 lower contour, upper contour (the brow's outer contour)
        143, 111, 117, 118, 119, 120, 121, 128, 245,
        156, 70, 63, 105, 66, 107, 55, 193,
    ),
    (
        263, 249, 390, 373, 374, 380, 381, 382, 362,
        466, 388, 387, 386, 385, 384, 398,
        359, 255, 339, 254, 253, 252, 256, 341, 463,
        467, 260, 259, 257, 258, 286, 414,
        446, 261, 448, 449, 450, 451, 452, 453, 464,
        342, 445, 444, 443, 442, 441, 413,
        265, 353, 276, 283, 282, 295,
        372, 340, 346, 347, 348, 349, 350, 357, 465,
        383, 300, 293, 334, 296, 336, 285, 417,
    ),
)
# The first 16 of the 71: the lid contour itself (lower lid corner to corner, then the upper lid).
NUM_LID_POINTS = 16
# Of the 71, the brow's ten points are left to the face mesh. The iris model's crop is centred on the eye
# and a raised brow leaves it: on liveportrait__d9 its brows read 18 units *lower* on a brow raise than at
# rest, where the mesh's read 22 units higher, as they are. (MediaPipe's refined mesh takes them all.)
_KEPT_FROM_MESH = frozenset(parts.BROW_RIGHT + parts.BROW_LEFT)


# --- the network -----------------------------------------------------------------------------------------
class IrisBlock(nn.Module):
    """The model's residual block: a narrowing convolution (1x1, or 2x2 stride 2 when the block halves
    the resolution), PReLU, depthwise 3x3, 1x1 widening, plus the shortcut (2x2 max pooling and zero
    channels appended where needed), then PReLU."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.stride, self.out_ch = stride, out_ch
        self.narrow = nn.Conv2d(in_ch, mid_ch, stride, stride)     # 1x1, or 2x2 stride 2 ("valid")
        self.narrow_act = nn.PReLU(mid_ch)
        self.dw = TFConv2d(mid_ch, mid_ch, 3, groups=mid_ch)
        self.widen = nn.Conv2d(mid_ch, out_ch, 1)
        self.act = nn.PReLU(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.widen(self.dw(self.narrow_act(self.narrow(x))))
        return self.act(h + _shortcut(x, self.stride, self.out_ch))


def _branch() -> nn.Sequential:
    """One of the two heads' trunks, 8x8x128 -> 2x2x128."""
    return nn.Sequential(IrisBlock(128, 64, 128), IrisBlock(128, 64, 128), IrisBlock(128, 64, 128, 2),
                         IrisBlock(128, 64, 128), IrisBlock(128, 64, 128), IrisBlock(128, 64, 128, 2),
                         IrisBlock(128, 64, 128), IrisBlock(128, 64, 128))


class IrisLandmarkNet(nn.Module):
    """MediaPipe's iris landmark network: a 64x64 RGB eye crop in [0, 1] -> 71 eye points and 5 iris
    points.

    forward(x (N,3,64,64)) -> (eye (N,71,3), iris (N,5,3)): x, y in input pixels, z a relative depth
    in the same pixel scale.

    A shared trunk (64x64 -> 8x8) splits into two branches of the same shape, one per output. The layers
    are registered in the order the original Keras model created them (the converter relies on it): trunk,
    eye-contour branch, iris branch, then the two output convolutions.
    """

    def __init__(self):
        super().__init__()
        self.stem = TFConv2d(3, 64, 3, 2)
        self.stem_act = nn.PReLU(64)
        self.trunk = nn.Sequential(
            *[IrisBlock(64, 32, 64) for _ in range(4)],              # 32x32
            IrisBlock(64, 64, 128, 2),
            *[IrisBlock(128, 64, 128) for _ in range(4)],            # 16x16
            IrisBlock(128, 64, 128, 2),                              # -> 8x8
        )
        self.eye_branch = _branch()
        self.iris_branch = _branch()
        self.eye_out = nn.Conv2d(128, NUM_EYE_POINTS * 3, 2)      # 2x2 "valid" -> 1x1
        self.iris_out = nn.Conv2d(128, NUM_IRIS_POINTS * 3, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(self.stem_act(self.stem(x)))
        eye = self.eye_out(self.eye_branch(features)).reshape(-1, NUM_EYE_POINTS, 3)
        iris = self.iris_out(self.iris_branch(features)).reshape(-1, NUM_IRIS_POINTS, 3)
        return eye, iris


# --- eye ROIs, crops and refinement ----------------------------------------------------------------------
def eye_rois(mesh: torch.Tensor) -> torch.Tensor:
    """MediaPipe's iris ROIs from meshes (F,468,3) in frame pixels -> (F,2,5) rows (cx, cy, width,
    height, angle), eye 0 the subject's right, 1 the subject's left (see mesh.py for the ROI layout).

    The centre is the midpoint of the eye corners, the side 2.3 times the long side of the corners'
    bounding box, the rotation that of the corner line (start -> end of EYE_CORNERS)."""
    corners = mesh[:, [list(pair) for pair in EYE_CORNERS], :2]      # (F,2,2 corners,2)
    start, end = corners[:, :, 0], corners[:, :, 1]
    centre = (start + end) / 2
    size = (end - start).abs().max(dim=-1).values * ROI_SCALE
    d = end - start
    angle = torch.atan2(d[..., 1], d[..., 0])
    angle = angle - 2 * math.pi * torch.floor((angle + math.pi) / (2 * math.pi))
    return torch.stack([centre[..., 0], centre[..., 1], size, size, angle], dim=-1)


def _roi_axes(rois: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The crop axes of eye ROIs (..., 2, 5) (the last-but-one dimension: the two eyes): the centre and
    the crop's x and y axes in frame pixels per crop width ([-0.5, 0.5] across the crop), the x axis
    reversed for the mirrored eye. Returns (cx, cy, ax, ay, bx, by), each (..., 2)."""
    cx, cy, w, h, angle = rois.unbind(dim=-1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    sign = torch.tensor([-1.0 if m else 1.0 for m in EYE_MIRRORED], device=rois.device, dtype=rois.dtype)
    return cx, cy, sign * w * cos, sign * w * sin, -h * sin, h * cos


def crop_eyes(frames: torch.Tensor, frame_index: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """Both eyes' rotated 64x64 crops, the subject's left eye mirrored: frames uint8 (N,H,W,3),
    frame_index (F,) long, rois (F,2,5) from `eye_rois` -> float (F,2,3,64,64) in [0, 1]. Outside the
    frame the edge pixels repeat (MediaPipe's BORDER_REPLICATE)."""
    f = rois.shape[0]
    h, w = frames.shape[1:3]
    cx, cy, ax, ay, bx, by = (c.reshape(-1) for c in _roi_axes(rois.float()))
    # affine_grid: output coordinates in [-1, 1] (half a crop per unit) -> input coordinates in [-1, 1]
    # (half the frame per unit).
    theta = torch.stack([torch.stack([ax / w, bx / w, 2 * cx / w - 1], dim=1),
                         torch.stack([ay / h, by / h, 2 * cy / h - 1], dim=1)], dim=1)
    if frames.device.type == "cpu":      # a warp per eye (see crop_affine)
        eyes = frame_index.repeat_interleave(2)
        out = [crop_affine(frames, idx, th, INPUT_SIZE, INPUT_SIZE).div_(255.0)
               for idx, th in zip(eyes.split(2 * CROP_CHUNK), theta.split(2 * CROP_CHUNK))]
        crops = torch.cat(out) if out else theta.new_zeros((0, 3, INPUT_SIZE, INPUT_SIZE))
        return crops.reshape(f, 2, 3, INPUT_SIZE, INPUT_SIZE)
    grid = F.affine_grid(theta, [2 * f, 3, INPUT_SIZE, INPUT_SIZE], align_corners=False)
    # Both eyes of a face side by side in one 64x128 sampling grid, so each frame is read once per face.
    grid = grid.reshape(f, 2, INPUT_SIZE, INPUT_SIZE, 2).transpose(1, 2).reshape(f, INPUT_SIZE, 2 * INPUT_SIZE, 2)
    out = []
    for idx, g in zip(frame_index.split(CROP_CHUNK), grid.split(CROP_CHUNK)):
        out.append(sample_frames(frames, idx, g, "border").div_(255.0))
    crops = torch.cat(out) if out else grid.new_zeros((0, 3, INPUT_SIZE, 2 * INPUT_SIZE))
    return crops.reshape(f, 3, INPUT_SIZE, 2, INPUT_SIZE).permute(0, 3, 1, 2, 4)


def project(points: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """Model outputs (F,2,P,3) in 64x64 input pixels -> frame pixels (F,2,P,3) (z scaled like x), for
    the eye ROIs (F,2,5) the crops came from."""
    cx, cy, ax, ay, bx, by = (c[..., None] for c in _roi_axes(rois))
    u = points[..., 0] / INPUT_SIZE - 0.5
    v = points[..., 1] / INPUT_SIZE - 0.5
    z = points[..., 2] / INPUT_SIZE * rois[..., 2:3]
    return torch.stack([cx + u * ax + v * bx, cy + u * ay + v * by, z], dim=-1)


# skip_still: the plain mesh's lids may move this far (RMS, in eye widths) beyond a similarity transform and
# the iris model's last eyes are moved with them instead of running it again.
STILL_EYE_RESIDUAL = 0.01


class EyeRefiner:
    """Refines the eye contours of 468-point meshes with MediaPipe's iris model, batched on the device.

    `refine(frames, frame_index, mesh)` crops both eyes of every face (one batch for the network), writes
    the refined eye-region points of each eye into the mesh at MediaPipe's indices (EYE_MESH_INDICES), all
    71 but the brow's (see _KEPT_FROM_MESH), and returns the 5 iris points of each eye.
    """

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.net = load_network(IrisLandmarkNet(), "iris_landmark.pt", self.device)
        self._index = torch.tensor(EYE_MESH_INDICES, device=self.device)        # (2,71)
        self._written = torch.tensor([i not in _KEPT_FROM_MESH for i in sum(EYE_MESH_INDICES, ())],
                                     device=self.device)                          # (142,) bool
        # skip_still (live, one face a frame): see `_still_moved`.
        self.skip_still = False
        self._written_of_eye = [self._index[e][self._written.reshape(2, -1)[e]] for e in range(2)]
        self._last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None   # lids, refined, iris
        self._skipped = False         # the last call moved the eyes before it instead of running the model

    @torch.inference_mode()
    def refine(self, frames: torch.Tensor, frame_index: torch.Tensor,
               mesh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames: uint8 (N,H,W,3) RGB; frame_index (F,) long: the frame of each face; mesh (F,468,3) in
        frame pixels. Returns (mesh_refined (F,468,3), iris (F,2,5,3)), both in frame pixels; eye 0 is the
        subject's right, 1 the subject's left; iris point 0 is the centre, 1-4 the edge points.

        x and y of the refined points come from the iris model. z is kept from the mesh, and the iris
        points get the mean z of their eye's lid contour: the iris model's z has its own origin per
        crop, so MediaPipe's attention mesh does the same (LandmarksRefinementCalculator: z_refinement
        none for the eye contours, assign_average of the lid contour for the irises).
        """
        frames = frames.to(self.device)
        frame_index, mesh = frame_index.to(self.device), mesh.to(self.device).float()
        f = mesh.shape[0]
        if f == 0:
            self.reset()
            return mesh.clone(), mesh.new_zeros((0, 2, NUM_IRIS_POINTS, 3))
        if not (self.skip_still and f == 1):
            return self._refine(frames, frame_index, mesh)
        lids = mesh[0, self._index[:, :NUM_LID_POINTS], :2]                          # (2,16,2)
        moved = self._still_moved(mesh, lids)
        self._skipped = moved is not None
        if moved is not None:
            return moved
        refined, iris = self._refine(frames, frame_index, mesh)
        self._last = (lids, refined[0], iris[0])
        return refined, iris

    @property
    def skipped(self) -> bool:
        """skip_still: whether the last call moved the eyes of the frame before instead of running the model."""
        return self._skipped

    def reset(self) -> None:
        """Forget the last eyes (skip_still): the next face is another."""
        self._last, self._skipped = None, False

    def _still_moved(self, mesh: torch.Tensor, lids_now: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """skip_still: when the plain mesh's lids (`lids_now`, (2,16,2)) moved only rigidly (a similarity
        transform within STILL_EYE_RESIDUAL of the eye's width) since the last frame the iris model ran on, and
        that was the frame before, the refined eyes and irises of that frame, moved with the lids; else None
        (run it). The model then runs on every other frame at least: a look, or a lid the plain mesh barely sees
        move, shows a frame late at most (measured on d14: the eye aspect ratio within 0.012 and the iris
        centre within 0.021 eye widths of the model's at the median, 39% of the frames skipped; every blink
        shown)."""
        if self._last is None or self._skipped:
            return None
        lids_then, refined_then, iris_then = self._last
        refined, iris = mesh[0].clone(), iris_then.clone()
        for eye in range(2):
            move = _similarity(lids_then[eye], lids_now[eye])
            fit, now = move(lids_then[eye].double()), lids_now[eye].double()
            width = (now[0] - now[8]).norm().clamp_min(1e-6)
            if float((fit - now).norm(dim=1).pow(2).mean().sqrt() / width) > STILL_EYE_RESIDUAL:
                return None
            index = self._written_of_eye[eye]
            refined[index, :2] = move(refined_then[index, :2])
            iris[eye, :, :2] = move(iris_then[eye, :, :2])
        iris[..., 2] = _lid_z(self._index, mesh)[0, :, None]
        return refined[None], iris[None]

    def _refine(self, frames: torch.Tensor, frame_index: torch.Tensor,
                mesh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = mesh.shape[0]
        rois = eye_rois(mesh)                                                    # (F,2,5)
        crops = crop_eyes(frames, frame_index, rois).reshape(2 * f, 3, INPUT_SIZE, INPUT_SIZE)
        chunks = crops.split(EYE_CHUNK) if crops.device.type == "cpu" and len(crops) else [crops]
        outputs = [self.net(chunk) for chunk in chunks]
        eye, iris = torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])
        eye = project(eye.reshape(f, 2, NUM_EYE_POINTS, 3), rois)
        iris = project(iris.reshape(f, 2, NUM_IRIS_POINTS, 3), rois)

        refined = mesh.clone()
        index = self._index.reshape(-1)[self._written]                           # (122,)
        refined[:, index, :2] = eye[..., :2].reshape(f, -1, 2)[:, self._written]
        lid_z = _lid_z(self._index, mesh)                                        # (F,2)
        iris = torch.cat([iris[..., :2], lid_z[..., None, None].expand(f, 2, NUM_IRIS_POINTS, 1)], dim=-1)
        return refined, iris


def _lid_z(index: torch.Tensor, mesh: torch.Tensor) -> torch.Tensor:
    """(F,2) the mean z of each eye's lid contour in (F,468,3) meshes (the irises' z: see EyeRefiner.refine);
    index: EYE_MESH_INDICES as a (2,71) tensor."""
    return mesh[:, index[:, :NUM_LID_POINTS], 2].mean(dim=-1)


def _similarity(a: torch.Tensor, b: torch.Tensor):
    """The least-squares similarity transform (rotation, uniform scale, shift; Umeyama) taking the (P,2) points
    a to b, as a function of (Q,2) points (computed in double, returned in their dtype)."""
    a64, b64 = a.double(), b.double()
    ca, cb = a64.mean(0), b64.mean(0)
    u, sv, vt = torch.linalg.svd((b64 - cb).T @ (a64 - ca))
    d = torch.sign(torch.det(u @ vt))
    rot = u @ torch.diag(torch.stack([torch.ones((), dtype=d.dtype), d])) @ vt
    scale = (sv[0] + d * sv[1]) / (a64 - ca).pow(2).sum()
    return lambda points: ((points.double() - ca) @ rot.T * scale + cb).to(points.dtype)
