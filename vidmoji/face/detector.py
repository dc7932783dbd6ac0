"""BlazeFace face detection (MediaPipe's short-range and full-range models) as torch modules.

The networks are re-implementations of MediaPipe's `face_detection_short_range.tflite` and
`face_detection_full_range.tflite` (Apache-2.0, see weights/NOTICE); `scripts/convert_mediapipe.py` fills
them from the .tflite files. Everything here runs on the torch device in batches: letterboxing, the
networks, anchor decoding and MediaPipe's weighted non-maximum suppression.

Keypoint order (MediaPipe's): the subject's right eye, left eye, nose tip, mouth centre, right ear tragion,
left ear tragion. The subject's right eye is on the image's left in a frontal view.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidmoji.errors import VidmojiError
from vidmoji.models import activation_batch

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

NUM_KEYPOINTS = 6
# MediaPipe clips raw scores to +-100 before the sigmoid (tensors_to_detections_calculator).
RAW_SCORE_LIMIT = 100.0
# MediaPipe's face detection graphs blend overlapping detections whose IoU exceeds this.
MIN_SUPPRESSION_THRESHOLD = 0.3
# The full-range model finds faces down to about this height in its input; smaller ones need a larger
# input.
FULL_RANGE_MIN_FACE = 20.0
# Frames converted to float at once while resizing: at most RESIZE_CHUNK, and at most RESIZE_BYTES of float
# copies (one 1920x1080 frame is 25 MB as float; 8 of them and the resize's temporaries were the peak of a
# 1080p render).
RESIZE_CHUNK = 8
RESIZE_BYTES = 32 * 2**20
# Images per detector call: at most NET_CHUNK, and at most NET_BYTES of the first layer's activations
# (32 channels at half the input's size; the small-faces pass at 1920x1080 is 480x800, 12 MB an image at
# that layer, and several layers' activations are alive at once). On the CPU models.ACTIVATION_BYTES, under the
# heap's mmap threshold, so the activations' memory is reused (3 full-range images a call, 7 short-range).
NET_CHUNK = 8
NET_BYTES = 24 * 2**20


# --- building blocks --------------------------------------------------------------------------------------
class TFConv2d(nn.Conv2d):
    """A Conv2d with TensorFlow's "SAME" padding.

    TFLite pads stride-2 convolutions asymmetrically (more on the right and bottom), which torch's symmetric
    `padding` cannot express. Stride-1 layers with odd kernels pad symmetrically, so torch's own padding is
    used there. The stride-2 padding assumes even input sizes, which holds for every layer of these models.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(in_ch, out_ch, kernel, stride, padding=kernel // 2 if stride == 1 else 0,
                         groups=groups)
        total = max(kernel - stride, 0)
        self.tf_pad = (total // 2, total - total // 2) * 2 if stride > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tf_pad is not None:
            x = F.pad(x, self.tf_pad)
        return super().forward(x)


def _shortcut(x: torch.Tensor, stride: int, out_ch: int) -> torch.Tensor:
    """The residual path of a block: 2x2 max pooling when the block downsamples, zero channels appended
    when it widens (TFLite's channel PAD)."""
    if stride == 2:
        x = F.max_pool2d(x, 2)
    if out_ch > x.shape[1]:
        x = F.pad(x, (0, 0, 0, 0, 0, out_ch - x.shape[1]))
    return x


class BlazeBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 with a residual, then ReLU or PReLU (BlazeFace's single block)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, prelu: bool = False):
        super().__init__()
        self.stride, self.out_ch = stride, out_ch
        self.dw = TFConv2d(in_ch, in_ch, 3, stride, groups=in_ch)
        self.pw = nn.Conv2d(in_ch, out_ch, 1)
        self.act = nn.PReLU(out_ch) if prelu else nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pw(self.dw(x)) + _shortcut(x, self.stride, self.out_ch))


class BottleneckBlock(nn.Module):
    """Two depthwise/pointwise pairs through a narrow middle, with a residual (full-range detector)."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.stride, self.out_ch = stride, out_ch
        self.dw1 = TFConv2d(in_ch, in_ch, 3, stride, groups=in_ch)
        self.pw1 = nn.Conv2d(in_ch, mid_ch, 1)
        self.dw2 = TFConv2d(mid_ch, mid_ch, 3, 1, groups=mid_ch)
        self.pw2 = nn.Conv2d(mid_ch, out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pw2(self.dw2(F.relu(self.pw1(self.dw1(x)))))
        return F.relu(h + _shortcut(x, self.stride, self.out_ch))


def _flatten_head(x: torch.Tensor, values: int) -> torch.Tensor:
    """(N, A*values, H, W) -> (N, H*W*A, values) in TFLite's NHWC anchor order."""
    return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1, values)


# --- the networks -----------------------------------------------------------------------------------------
class BlazeFaceShort(nn.Module):
    """MediaPipe's short-range BlazeFace: 128x128 RGB in [-1, 1] -> 896 anchors.

    forward(x (N,3,128,128)) -> (regressors (N,896,16) in input pixels relative to the anchors,
    logits (N,896) raw face scores).
    """

    input_size = 128

    def __init__(self):
        super().__init__()
        self.stem = TFConv2d(3, 24, 5, 2)
        widths = [(24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2), (48, 56, 1),
                  (56, 64, 1), (64, 72, 1), (72, 80, 1), (80, 88, 1)]
        self.stage16 = nn.Sequential(*[BlazeBlock(i, o, s) for i, o, s in widths])
        self.stage8 = nn.Sequential(BlazeBlock(88, 96, 2), *[BlazeBlock(96, 96) for _ in range(4)])
        # Registered in TFLite's op order so the converter can fill them in sequence.
        self.classifier16 = nn.Conv2d(88, 2, 1)
        self.classifier8 = nn.Conv2d(96, 6, 1)
        self.regressor16 = nn.Conv2d(88, 32, 1)
        self.regressor8 = nn.Conv2d(96, 96, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x16 = self.stage16(F.relu(self.stem(x)))
        x8 = self.stage8(x16)
        logits = torch.cat([_flatten_head(self.classifier16(x16), 1),
                            _flatten_head(self.classifier8(x8), 1)], dim=1)
        boxes = torch.cat([_flatten_head(self.regressor16(x16), 16),
                           _flatten_head(self.regressor8(x8), 16)], dim=1)
        return boxes, logits[..., 0]


class BlazeFaceFull(nn.Module):
    """MediaPipe's full-range BlazeFace (dense): 192x192 RGB in [-1, 1] -> 2304 anchors.

    A bottleneck backbone with a feature pyramid back up to 48x48 (stride 4, one anchor per cell).
    forward(x (N,3,192,192)) -> (regressors (N,2304,16), logits (N,2304)).
    """

    input_size = 192

    def __init__(self):
        super().__init__()
        self.stem = TFConv2d(3, 32, 3, 2)
        self.stage48 = nn.Sequential(
            BottleneckBlock(32, 8, 32), BottleneckBlock(32, 8, 32), BottleneckBlock(32, 12, 48, 2),
            BottleneckBlock(48, 12, 48), BottleneckBlock(48, 16, 64))
        self.stage24 = nn.Sequential(
            BottleneckBlock(64, 24, 96, 2), BottleneckBlock(96, 32, 128), BottleneckBlock(128, 32, 128))
        self.stage12 = nn.Sequential(
            BottleneckBlock(128, 36, 144, 2), BottleneckBlock(144, 48, 192), BottleneckBlock(192, 64, 256))
        self.stage6 = nn.Sequential(BottleneckBlock(256, 96, 384, 2),
                                    *[BottleneckBlock(384, 96, 384) for _ in range(3)])
        # Feature pyramid: each level adds the upsampled coarser level to a lateral 1x1 projection.
        self.top12 = nn.Conv2d(384, 96, 1)
        self.lateral12 = nn.Conv2d(256, 96, 1)
        self.fuse12 = nn.Sequential(BottleneckBlock(96, 48, 96), BottleneckBlock(96, 48, 96))
        self.top24 = nn.Conv2d(96, 64, 1)
        self.lateral24 = nn.Conv2d(128, 64, 1)
        self.fuse24 = nn.Sequential(BottleneckBlock(64, 32, 64), BottleneckBlock(64, 32, 64))
        self.top48 = nn.Conv2d(64, 48, 1)
        self.lateral48 = nn.Conv2d(64, 48, 1)
        self.fuse48 = BottleneckBlock(48, 24, 48)
        self.classifier = nn.Conv2d(48, 1, 1)
        self.regressor = nn.Conv2d(48, 16, 1)

    @staticmethod
    def _merge(top: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        # Keras UpSampling2D(bilinear) = TF resize with half-pixel centres = torch align_corners=False.
        up = F.interpolate(F.relu(top), scale_factor=2, mode="bilinear", align_corners=False)
        return F.relu(lateral) + up

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c48 = self.stage48(F.relu(self.stem(x)))
        c24 = self.stage24(c48)
        c12 = self.stage12(c24)
        c6 = self.stage6(c12)
        p12 = self.fuse12(self._merge(self.top12(c6), self.lateral12(c12)))
        p24 = self.fuse24(self._merge(self.top24(p12), self.lateral24(c24)))
        p48 = self.fuse48(self._merge(self.top48(p24), self.lateral48(c48)))
        return _flatten_head(self.regressor(p48), 16), _flatten_head(self.classifier(p48), 1)[..., 0]


def ssd_anchors(height: int, width: int, strides: tuple[int, ...], per_cell: tuple[int, ...]) -> torch.Tensor:
    """Anchor centres (A, 2) as (x, y) in input pixels, in the networks' output order.

    MediaPipe's SsdAnchorsCalculator with fixed anchor size (so only centres matter): layers of equal
    stride share one grid, each cell holding `per_cell` anchors at its centre (offset 0.5). MediaPipe
    writes them in [0, 1] of a square input; pixels let the full-range network run on larger, non-square
    inputs.
    """
    anchors = []
    for stride, count in zip(strides, per_cell):
        ys = (torch.arange(height // stride, dtype=torch.float32) + 0.5) * stride
        xs = (torch.arange(width // stride, dtype=torch.float32) + 0.5) * stride
        y, x = torch.meshgrid(ys, xs, indexing="ij")
        grid = torch.stack([x, y], dim=-1).reshape(-1, 1, 2).expand(-1, count, 2)
        anchors.append(grid.reshape(-1, 2))
    return torch.cat(anchors)


# Short range: strides [8, 16, 16, 16] -> a 16x16 grid with 2 anchors and an 8x8 grid with 3 x 2 anchors.
SHORT_RANGE_ANCHORS = dict(strides=(8, 16), per_cell=(2, 6))
# Full range: one layer of stride 4, interpolated_scale_aspect_ratio 0 -> one anchor per 48x48 cell.
FULL_RANGE_ANCHORS = dict(strides=(4,), per_cell=(1,))


# --- results ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Detections:
    """The faces found in one frame, on the detector's device, best first.

    boxes (K,4) xyxy in frame pixels; keypoints (K,6,2) xy in frame pixels (MediaPipe order, see the
    module docstring); scores (K,) in [0, 1].
    """

    boxes: torch.Tensor
    keypoints: torch.Tensor
    scores: torch.Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def weighted_nms(boxes: torch.Tensor, keypoints: torch.Tensor, scores: torch.Tensor,
                 threshold: float = MIN_SUPPRESSION_THRESHOLD) -> Detections:
    """MediaPipe's weighted non-maximum suppression of one frame's candidates.

    The best remaining candidate and every remaining one overlapping it by IoU > `threshold` form a
    cluster; the cluster is replaced by the score-weighted mean of its boxes and keypoints, keeping the
    best score. boxes (K,4) xyxy, keypoints (K,6,2), scores (K,) -> Detections, best first.
    """
    order = scores.argsort(descending=True)
    boxes, keypoints, scores = boxes[order], keypoints[order], scores[order]
    areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    remaining = torch.ones_like(scores, dtype=torch.bool)
    out_boxes, out_points, out_scores = [], [], []
    # One iteration per output face, each vectorised over the candidates.
    while True:
        left = torch.nonzero(remaining)
        if len(left) == 0:
            break
        best = left[0, 0]
        lt = torch.maximum(boxes[best, :2], boxes[:, :2])
        rb = torch.minimum(boxes[best, 2:], boxes[:, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=1)
        iou = inter / (areas[best] + areas - inter).clamp(min=1e-9)
        cluster = remaining & (iou > threshold)
        cluster[best] = True
        weights = scores * cluster
        total = weights.sum()
        out_boxes.append((boxes * weights[:, None]).sum(0) / total)
        out_points.append((keypoints * weights[:, None, None]).sum(0) / total)
        out_scores.append(scores[best])
        remaining &= ~cluster
    if not out_scores:
        return Detections(boxes[:0], keypoints[:0], scores[:0])
    return Detections(torch.stack(out_boxes), torch.stack(out_points), torch.stack(out_scores))


# --- preprocessing ----------------------------------------------------------------------------------------
def resize_frames(frames: torch.Tensor, height: int, width: int, in_uint8: bool = False) -> torch.Tensor:
    """uint8 (N,H,W,3) -> float (N,3,height,width) in [0, 1], antialiased bilinear.

    Antialiasing matters here: a 1080p frame shrinks ten-fold for the detector, and plain bilinear sampling
    would alias away the detail of small faces.

    in_uint8 (the CPU only): resize the uint8 frames as they are (torch's uint8 kernel for channels-last
    images, the one torchvision's resize uses) and make only the small result float: within one level
    (1/255) of resizing in float, and 15 times faster on a 1280x720 frame (0.3 against 5 ms; 20 ms on a
    stream's first frame, which `vidmoji live` waited for). Render keeps the float resize: that level moved
    s32's first detection enough to lose a blink at its knife edge (frame 6, both eyes at 75% of open).
    """
    out = []
    in_uint8 = in_uint8 and frames.device.type == "cpu"
    per_frame = max(1, frames[0].numel() * (1 if in_uint8 else 4)) if len(frames) else 1
    for chunk in frames.split(max(1, min(RESIZE_CHUNK, RESIZE_BYTES // per_frame))):
        x = chunk.permute(0, 3, 1, 2)
        if not in_uint8:
            x = x.float().div_(255.0)
        if x.shape[-2:] != (height, width):
            x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
        out.append(x.float().div_(255.0) if in_uint8 else x)
    return torch.cat(out)


class FaceDetector:
    """Batched face detection on the torch device with MediaPipe's BlazeFace models.

    Each frame is searched up to three ways and the results merged with weighted NMS: the short-range
    model on the whole letterboxed frame (faces filling much of the frame), the full-range model on the
    whole letterboxed frame (faces down to about a tenth of the frame), and, when faces of `min_face`
    pixels would be under ~20 pixels in that 192-pixel input, the full-range model over the whole frame
    reduced only so far that they are not (the network is fully convolutional, so this costs about what
    tiles covering the frame would, without their overlap).

    Args:
        device: torch device to run on.
        min_score: detections scoring below this are dropped (MediaPipe's default 0.5).
        full_range: run the full-range model on the whole frame too (set False to find only faces that
            fill much of the frame, at the lowest cost).
        min_face: the smallest face height, in frame pixels, the detector should find; None turns the
            extra pass off. With the default 48, frames up to 460 pixels on the long side need no extra
            pass; a 1920x1080 frame gets one at 800x450.
        small_faces: "all" runs the extra pass on every frame; "fallback" only on frames where the
            whole-frame passes found no face (enough when only the most prominent face matters: a face
            those passes see is larger than any face only the extra pass sees). The extra pass is most of
            the detector's cost on a large frame (39 of 58 ms on a 1280x720 frame on the 2-core CPU).
    """

    def __init__(self, device: torch.device | str, min_score: float = 0.5, full_range: bool = True,
                 min_face: float | None = 48.0, small_faces: str = "all"):
        if small_faces not in ("all", "fallback"):
            raise ValueError(f"small_faces must be 'all' or 'fallback', not {small_faces!r}")
        self.device = torch.device(device)
        self.min_score = min_score
        self.full_range = full_range
        self.min_face = min_face
        self.small_faces = small_faces
        self.short = load_network(BlazeFaceShort(), "face_detection_short_range.pt", self.device)
        self.full = load_network(BlazeFaceFull(), "face_detection_full_range.pt", self.device)
        # The networks for the letterboxed passes, whose input size is fixed (`freeze` traces them); the
        # small-face pass's input varies with the frame and keeps `full`.
        self.letterboxed = {128: self.short, 192: self.full}
        self.resize_in_uint8 = False         # `freeze` sets it: see resize_frames
        self._anchors: dict[tuple, torch.Tensor] = {}

    def freeze(self) -> "FaceDetector":
        """Run the letterboxed passes' networks traced and frozen (`frozen_network`) and resize the frames
        for them in uint8 (`resize_frames`): a stream's first frame and every detection after a lost face,
        one frame at a time (live)."""
        self.letterboxed = {size: frozen_network(net, torch.zeros((1, 3, size, size), device=self.device))
                            for size, net in self.letterboxed.items()}
        self.resize_in_uint8 = True
        return self

    @torch.inference_mode()
    def detect(self, frames: torch.Tensor) -> list[Detections]:
        """frames: uint8 (N,H,W,3) RGB on the device -> one Detections per frame (frame pixels)."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"expected uint8 frames (N,H,W,3), got {tuple(frames.shape)} {frames.dtype}")
        frames = frames.to(self.device)
        n, h, w, _ = frames.shape
        passes = [(self.letterboxed[128], SHORT_RANGE_ANCHORS, *self._letterbox(frames, 128))]
        if self.full_range:
            passes.append((self.letterboxed[192], FULL_RANGE_ANCHORS, *self._letterbox(frames, 192)))
        found = [self._run(*p) for p in passes]
        if self.min_face is not None and max(h, w) / 192 * FULL_RANGE_MIN_FACE > self.min_face:
            which = torch.arange(n, device=self.device)
            if self.small_faces == "fallback":
                seen = torch.zeros(n, dtype=torch.bool, device=self.device)
                for *_, owner in found:
                    seen[owner] = True
                which = which[~seen]
            if len(which):
                boxes, points, scores, owner = self._run(
                    self.full, FULL_RANGE_ANCHORS, *self._reduced(frames[which], self.min_face / FULL_RANGE_MIN_FACE))
                found.append((boxes, points, scores, which[owner]))
        boxes, points, scores, owner = (torch.cat(parts) for parts in zip(*found))
        return [weighted_nms(boxes[owner == i], points[owner == i], scores[owner == i]) for i in range(n)]

    def _letterbox(self, frames: torch.Tensor, size: int) -> tuple[torch.Tensor, tuple[float, float, float]]:
        """The frames scaled to fit size x size, centred on black (MediaPipe's keep_aspect_ratio).

        Returns images (N,3,size,size) in [0,1] and (scale, x0, y0): input pixel (u, v) shows frame pixel
        (u * scale + x0, v * scale + y0).
        """
        n, h, w, _ = frames.shape
        new_h, new_w = min(size, round(h * size / max(h, w))), min(size, round(w * size / max(h, w)))
        top, left = (size - new_h) // 2, (size - new_w) // 2
        x = F.pad(resize_frames(frames, new_h, new_w, self.resize_in_uint8),
                  (left, size - new_w - left, top, size - new_h - top))
        # Rounding makes the two axes' scales differ by under a pixel's worth; their mean is exact enough.
        scale = (w / new_w + h / new_h) / 2
        return x, (scale, -left * scale, -top * scale)

    def _reduced(self, frames: torch.Tensor, scale: float) -> tuple[torch.Tensor, tuple[float, float, float]]:
        """The frames reduced by `scale` (frame pixels per input pixel), padded with black on the right and
        bottom to multiples of 32, the full-range network's total stride. Returns images and
        (scale, x0, y0) as `_letterbox` does."""
        n, h, w, _ = frames.shape
        rh, rw = round(h / scale), round(w / scale)
        ph, pw = -(-rh // 32) * 32, -(-rw // 32) * 32
        x = F.pad(resize_frames(frames, rh, rw, self.resize_in_uint8), (0, pw - rw, 0, ph - rh))
        return x, ((w / rw + h / rh) / 2, 0.0, 0.0)

    def _run(self, net: nn.Module, anchor_options: dict, images: torch.Tensor,
             view: tuple[float, float, float]):
        """Run a detector on [0,1] images and decode the candidates above min_score into frame pixels.

        Returns boxes (C,4) xyxy, keypoints (C,6,2), scores (C,), frame index (C,).
        """
        key = (images.shape[-2], images.shape[-1], *anchor_options.values())
        if key not in self._anchors:
            self._anchors[key] = ssd_anchors(images.shape[-2], images.shape[-1], **anchor_options).to(self.device)
        anchors = self._anchors[key]
        # Small chunks: on the CPU, large batches of large images run slower per image (cache misses).
        first_layer = 8 * images.shape[-2] * images.shape[-1] * 4
        chunk_size = min(NET_CHUNK, activation_batch(first_layer) if images.device.type == "cpu"
                         else max(1, NET_BYTES // first_layer))
        outputs = [net(chunk * 2.0 - 1.0) for chunk in images.split(chunk_size)]
        raw = torch.cat([o[0] for o in outputs])
        scores = torch.sigmoid(torch.cat([o[1] for o in outputs]).clamp(-RAW_SCORE_LIMIT, RAW_SCORE_LIMIT))
        b, a = torch.nonzero(scores >= self.min_score, as_tuple=True)
        # Offsets from the anchor centre, and absolute width and height, all in input pixels.
        raw = raw[b, a].reshape(-1, 2 + NUM_KEYPOINTS, 2)
        centre = raw[:, 0] + anchors[a]
        half = raw[:, 1] / 2
        points = raw[:, 2:] + anchors[a, None]
        valid = (half > 0).all(dim=1)
        boxes = torch.cat([centre - half, centre + half], dim=1)[valid]
        scale, x0, y0 = view
        offset = torch.tensor([x0, y0], device=self.device)
        boxes = boxes * scale + offset.repeat(2)
        points = points[valid] * scale + offset
        return boxes, points, scores[b, a][valid], b[valid]


def load_network(net: nn.Module, filename: str, device: torch.device) -> nn.Module:
    """Fill `net` from the converted state dict weights/<filename> and put it on `device` in eval mode."""
    path = WEIGHTS_DIR / filename
    if not path.exists():
        raise VidmojiError(f"{path} is missing: reinstall vidmoji (or run scripts/convert_mediapipe.py)")
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    # Channels-last weights make every convolution run in NHWC, which suits these depthwise-separable
    # networks: measured on the 2-core CPU, the mesh takes 4.4 instead of 7.9 ms per face at batch 32.
    return net.to(device, memory_format=torch.channels_last).eval()


def frozen_network(net: nn.Module, example: torch.Tensor | tuple[torch.Tensor, ...]) -> nn.Module:
    """`net` traced on an example input (on its device) and frozen with TorchScript: the same layers and
    results (bit for bit on the CPU), without the Python interpreter between them. That interpreter is about
    a third of these small networks' time when they run one face at a time (the 2-core CPU, one thread: the
    mesh 7.6 -> 5.2 ms per face, the iris model 11.5 -> 7.4 ms per pair of eyes) and nothing at batch 32,
    where tracing (0.2-0.6 s) would not pay; `vidmoji live` uses it. The network must take any batch size of
    the example's image size. A network of several inputs takes a tuple. Where tracing fails the eager network
    is returned."""
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.freeze(torch.jit.trace(net.eval(), example, check_trace=False))
    except Exception:  # noqa: BLE001 (an optimisation: the eager network is always right)
        return net
