"""MediaPipe's 468-point face mesh (`face_landmark.tflite`, Apache-2.0, see weights/NOTICE) as a torch
module, with the rotated-ROI cropping and the ROI rules of MediaPipe's face mesh graphs.

An ROI is a row (cx, cy, width, height, angle): centre and size in frame pixels, and the rotation in
radians of the ROI's x axis from the image's x axis (y down, so a positive angle turns clockwise on
screen). MediaPipe's face ROIs are square: width == height.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vidmoji.face.attention import load_lip_parting
from vidmoji.face.detector import BlazeBlock, TFConv2d, load_network
from vidmoji.face.sampling import crop_affine
from vidmoji.models import activation_batch

NUM_POINTS = 468
INPUT_SIZE = 192
# MediaPipe enlarges the face box 1.5 times into the mesh ROI (face_detection_front_detection_to_roi and
# face_landmark_landmarks_to_roi graphs).
ROI_SCALE = 1.5
# The eye-corner landmarks whose line sets the ROI rotation (subject's right outer, left outer).
ROTATION_POINTS = (33, 263)
# ROIs cropped and meshed at once. On a GPU 16, to bound the memory of the float crops on large frames. On the CPU
# as many as keep the networks' largest activation (16 channels at 96x96, the mesh's and the lips path's first
# layers) within models.ACTIVATION_BYTES, 6 faces: see there.
CROP_CHUNK = 16
CPU_CROP_CHUNK = activation_batch(16 * (INPUT_SIZE // 2) ** 2 * 4)
# A crop whose ROI is this close to the one its own mesh implies is not meshed a second time: centre within
# this fraction of the ROI's size, size within this ratio (log), angle within this many radians (~2 deg).
# Measured: a second pass for 4% of the frames of liveportrait__d0 (still), 29% of d18, 62% of s32 (moving).
REFINE_SHIFT, REFINE_SCALE, REFINE_ANGLE = 0.03, 0.03, 0.035


class FaceMeshNet(nn.Module):
    """MediaPipe's face landmark network: 192x192 RGB in [0, 1] -> 468 points and a face-presence logit.

    forward(x (N,3,192,192)) -> (points (N,468,3): x, y in input pixels, z in the same pixel scale,
    relative depth; presence_logit (N,)).
    """

    def __init__(self):
        super().__init__()
        self.stem = TFConv2d(3, 16, 3, 2)
        self.stem_act = nn.PReLU(16)
        widths = [(16, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1),
                  (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 128, 1), (128, 128, 2), (128, 128, 1),
                  (128, 128, 1)]
        self.trunk = nn.Sequential(*[BlazeBlock(i, o, s, prelu=True) for i, o, s in widths])
        # Landmark branch: 6x6 -> 3x3, narrowed to 32 channels, then a 3x3 "valid" conv to 1404 values.
        self.points_blocks = nn.Sequential(BlazeBlock(128, 128, 2, prelu=True),
                                           BlazeBlock(128, 128, prelu=True), BlazeBlock(128, 128, prelu=True))
        self.points_narrow = nn.Conv2d(128, 32, 1)
        self.points_narrow_act = nn.PReLU(32)
        self.points_block = BlazeBlock(32, 32, prelu=True)
        self.points_out = nn.Conv2d(32, NUM_POINTS * 3, 3)
        # Face-presence branch, the same shape with a single output.
        self.presence_block = BlazeBlock(128, 128, 2, prelu=True)
        self.presence_narrow = nn.Conv2d(128, 32, 1)
        self.presence_narrow_act = nn.PReLU(32)
        self.presence_block32 = BlazeBlock(32, 32, prelu=True)
        self.presence_out = nn.Conv2d(32, 1, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(self.stem_act(self.stem(x)))
        p = self.points_narrow_act(self.points_narrow(self.points_blocks(features)))
        points = self.points_out(self.points_block(p)).reshape(-1, NUM_POINTS, 3)
        q = self.presence_narrow_act(self.presence_narrow(self.presence_block(features)))
        presence = self.presence_out(self.presence_block32(q)).reshape(-1)
        return points, presence


def _normalize_angle(angle: torch.Tensor) -> torch.Tensor:
    """Wrap radians into [-pi, pi)."""
    return angle - 2 * math.pi * torch.floor((angle + math.pi) / (2 * math.pi))


def _roi(boxes: torch.Tensor, start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """MediaPipe's DetectionsToRects + RectTransformation (square_long, scale 1.5): the box centre, the
    long side scaled, rotated so that start -> end points along the ROI's x axis."""
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = (boxes[:, 2:] - boxes[:, :2]).max(dim=1).values * ROI_SCALE
    d = end - start
    angle = _normalize_angle(torch.atan2(d[:, 1], d[:, 0]))
    return torch.stack([centre[:, 0], centre[:, 1], size, size, angle], dim=1)


def _roi_moved(old: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """(F,) bool: ROIs (F,5) whose mesh-implied ROI differs enough to be worth a second mesh pass."""
    size = old[:, 2].clamp(min=1e-6)
    shift = torch.hypot(new[:, 0] - old[:, 0], new[:, 1] - old[:, 1]) / size
    scale = torch.log(new[:, 2].clamp(min=1e-6) / size).abs()
    turn = torch.remainder(new[:, 4] - old[:, 4] + math.pi, 2 * math.pi) - math.pi
    return (shift > REFINE_SHIFT) | (scale > REFINE_SCALE) | (turn.abs() > REFINE_ANGLE)


def _to_frame(raw: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """Mesh points (F,468,3) in input pixels -> frame pixels: ROI units centred on the ROI centre, rotated and
    scaled into the frame (z in x's pixel scale)."""
    u = raw[..., 0] / INPUT_SIZE - 0.5
    v = raw[..., 1] / INPUT_SIZE - 0.5
    cx, cy, rw, rh, angle = (c[:, None] for c in rois.unbind(dim=1))
    cos, sin = torch.cos(angle), torch.sin(angle)
    x = cx + rw * u * cos - rh * v * sin
    y = cy + rw * u * sin + rh * v * cos
    z = raw[..., 2] / INPUT_SIZE * rw
    return torch.stack([x, y, z], dim=-1)


class FaceMesh:
    """The face mesh on rotated ROI crops, batched on the torch device: the plain mesh network (`net`), and the
    lips head of MediaPipe's mesh with attention (`lips`) on each face's final crop."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.net = load_network(FaceMeshNet(), "face_landmark.pt", self.device)
        # The plain mesh's inner lips parted as the lips head of MediaPipe's mesh with attention reads them
        # (attention.LipParting): the plain mesh's lips stay 0.01-0.03 of the inter-ocular distance apart when
        # closed and part too little when talking; the refined ones close.
        self.lips = load_lip_parting(self.device)

    @staticmethod
    def roi_from_detection(boxes: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        """ROIs (K,5) from detections: boxes (K,4) xyxy and keypoints (K,6,2) in frame pixels.

        The rotation follows the eye line (keypoint 0, the subject's right eye, to keypoint 1).
        """
        return _roi(boxes, keypoints[:, 0], keypoints[:, 1])

    @staticmethod
    def roi_from_mesh(mesh: torch.Tensor) -> torch.Tensor:
        """ROIs (F,5) for the next frame from meshes (F,468,3) in frame pixels: the landmarks' bounding box
        and the eye-corner line (points 33 -> 263)."""
        xy = mesh[..., :2]
        boxes = torch.cat([xy.min(dim=1).values, xy.max(dim=1).values], dim=1)
        return _roi(boxes, xy[:, ROTATION_POINTS[0]], xy[:, ROTATION_POINTS[1]])

    @torch.inference_mode()
    def crop(self, frames: torch.Tensor, frame_index: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
        """Rotated ROI crops: frames uint8 (N,H,W,3), frame_index (F,) long, rois (F,5) ->
        float (F,3,192,192) in [0, 1]. Outside the frame the edge pixels repeat (MediaPipe's
        BORDER_REPLICATE)."""
        h, w = frames.shape[1:3]
        cx, cy, rw, rh, angle = rois.float().unbind(dim=1)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # affine_grid maps output coordinates in [-1, 1] to input coordinates in [-1, 1]; the ROI's half
        # extent is 1 in output units, and input units are half the frame size.
        theta = torch.stack([
            torch.stack([rw * cos / w, -rh * sin / w, 2 * cx / w - 1], dim=1),
            torch.stack([rw * sin / h, rh * cos / h, 2 * cy / h - 1], dim=1),
        ], dim=1)
        out = [crop_affine(frames, idx, th, INPUT_SIZE, INPUT_SIZE).div_(255.0)
               for idx, th in zip(frame_index.split(CROP_CHUNK), theta.split(CROP_CHUNK))]
        return torch.cat(out) if out else frames.new_zeros((0, 3, INPUT_SIZE, INPUT_SIZE), dtype=torch.float32)

    @torch.inference_mode()
    def run(self, frames: torch.Tensor, frame_index: torch.Tensor, rois: torch.Tensor,
            min_presence: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mesh each ROI.

        frames: uint8 (N,H,W,3) RGB on the device; frame_index (F,) long: the frame of each ROI;
        rois (F,5). Returns points (F,468,3) in frame pixels (z: relative depth in the same pixel scale as
        x, negative towards the camera) and presence (F,): the probability that the crop shows a face.

        min_presence: when given, a face found (presence at least this) whose own points imply a crop off the
        given one (REFINE_SHIFT) is meshed again on that crop: MediaPipe's landmarks-to-ROI rule, applied to
        the frame itself rather than the next one. The lips head runs once per face, on the crop kept.
        """
        frames = frames.to(self.device)
        frame_index, rois = frame_index.to(self.device), rois.to(self.device).float()
        points, logits = [], []
        # Chunks bound the memory of the float crops, and on the CPU keep each activation on the heap (CPU_CROP_CHUNK).
        chunk = CPU_CROP_CHUNK if self.device.type == "cpu" else CROP_CHUNK
        for idx, r in zip(frame_index.split(chunk), rois.split(chunk)):
            x = self.crop(frames, idx, r)
            raw, logit = self.net(x)
            if min_presence is not None:
                good = torch.nonzero(torch.sigmoid(logit) >= min_presence).flatten()
                implied = FaceMesh.roi_from_mesh(_to_frame(raw[good], r[good]))
                moved = _roi_moved(r[good], implied)
                redo = good[moved]
                if len(redo):
                    r = r.clone()
                    r[redo] = implied[moved]
                    x[redo] = self.crop(frames, idx[redo], r[redo])
                    raw[redo], logit[redo] = self.net(x[redo])
            points.append(_to_frame(self.lips(x, raw), r))
            logits.append(logit)
        if not points:
            return rois.new_zeros((0, NUM_POINTS, 3)), rois.new_zeros(0)
        return torch.cat(points), torch.sigmoid(torch.cat(logits))
