"""MediaPipe's selfie (person) segmentation models (`selfie_segmentation.tflite` and
`selfie_segmentation_landscape.tflite`, Apache-2.0, see weights/NOTICE) as a torch module, and
`PersonSegmenter`, which gives the probability that each pixel of a frame shows a person.

The network is a MobileNetV3-small-like encoder (hard-swish, squeeze-and-excitation) with a three-stage
decoder that gates each skip connection by its global average, then a 2x2 stride-2 transposed
convolution and a sigmoid: 256x256 (general) or 144x256 (landscape, height x width) RGB in [0, 1] ->
a person probability per input pixel. The two models are the same graph with other weights (the
landscape one spells its global average pooling MEAN instead of AVERAGE_POOL_2D).

MediaPipe's graph (selfie_segmentation_cpu.binarypb, read from the mediapipe==0.10.21 wheel) stretches
the whole frame to the model input, no letterboxing (ImageToTensorCalculator keep_aspect_ratio false,
output range [0, 1]), runs the model, whose last op is already a sigmoid (TensorsToSegmentationCalculator
activation NONE), and resizes the mask back to the frame with bilinear interpolation. `PersonSegmenter`
does the same, batched on the device, with one difference: it shrinks frames with the antialiased
bilinear resize the detector uses (`resize_frames`) where MediaPipe's CPU path samples the frame with
OpenCV's INTER_LINEAR warp (no antialiasing, pixel corners rather than centres aligned).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidmoji.face.detector import NET_CHUNK, TFConv2d, load_network, resize_frames

# (height, width) of each model's input, and its weights file.
MODELS = {
    "general": ((256, 256), "selfie_segmentation.pt"),
    "landscape": ((144, 256), "selfie_segmentation_landscape.pt"),
}


# --- the network -----------------------------------------------------------------------------------------
def _global_mean(x: torch.Tensor) -> torch.Tensor:
    return x.mean(dim=(2, 3), keepdim=True)


class SqueezeExcite(nn.Module):
    """Channel gating: global average -> 1x1 narrowing + ReLU -> 1x1 widening + sigmoid (the gate)."""

    def __init__(self, ch: int, mid_ch: int):
        super().__init__()
        self.squeeze = nn.Conv2d(ch, mid_ch, 1)
        self.excite = nn.Conv2d(mid_ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.excite(F.relu(self.squeeze(_global_mean(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV3's block: 1x1 widening, depthwise kxk (stride 1 or 2), optional squeeze-and-excitation,
    1x1 narrowing (linear), plus the input when the shapes allow. `hswish` picks hard-swish over ReLU for
    the two activations."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int, kernel: int, stride: int, se_ch: int | None,
                 hswish: bool):
        super().__init__()
        self.widen = nn.Conv2d(in_ch, mid_ch, 1)
        self.dw = TFConv2d(mid_ch, mid_ch, kernel, stride, groups=mid_ch)
        self.se = SqueezeExcite(mid_ch, se_ch) if se_ch else None
        self.narrow = nn.Conv2d(mid_ch, out_ch, 1)
        self.act = F.hardswish if hswish else F.relu
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.dw(self.act(self.widen(x))))
        if self.se is not None:
            h = h * self.se(h)
        h = self.narrow(h)
        return h + x if self.residual else h


class DecoderStage(nn.Module):
    """One decoder step: the coarser features, 1x1-projected to the skip's width and upsampled 2x,
    are added to the skip connection gated by the global average of their sum; then a 1x1 convolution
    + ReLU and a residual depthwise 3x3 + ReLU refine the result."""

    def __init__(self, in_ch: int, skip_ch: int):
        super().__init__()
        self.project = nn.Conv2d(in_ch, skip_ch, 1)
        self.gate = SqueezeExcite(skip_ch, skip_ch)
        self.refine = nn.Conv2d(skip_ch, skip_ch, 1)
        self.dw = TFConv2d(skip_ch, skip_ch, 3, groups=skip_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # TFLite upsamples first and projects after; a 1x1 convolution commutes with bilinear
        # upsampling (its weights sum to one), so projecting at the coarse size gives the same result
        # for a quarter of the multiplications.
        up = F.interpolate(self.project(x), scale_factor=2, mode="bilinear", align_corners=False)
        h = skip * self.gate(skip + up) + up
        h = F.relu(self.refine(h))
        return h + F.relu(self.dw(h))


class SelfieSegmentationNet(nn.Module):
    """MediaPipe's selfie segmentation network: RGB in [0, 1] (N,3,H,W), H and W multiples of 16
    (256x256 for the general model, 144x256 for the landscape one) -> person probability (N,1,H,W).

    The layers are registered in the order the original Keras model created them (the converter relies on
    it): stem, the eight encoder blocks, the head, the three decoder stages; the final transposed
    convolution is filled on its own.
    """

    def __init__(self):
        super().__init__()
        self.stem = TFConv2d(3, 16, 3, 2)                                        # 1/2, hard-swish
        self.blocks = nn.ModuleList([
            InvertedResidual(16, 16, 16, 3, 2, 8, hswish=False),                # 1/4 (skip)
            InvertedResidual(16, 72, 24, 3, 2, None, hswish=False),             # 1/8
            InvertedResidual(24, 88, 24, 3, 1, None, hswish=False),             # (skip)
            InvertedResidual(24, 96, 32, 5, 2, 24, hswish=True),                # 1/16
            InvertedResidual(32, 128, 32, 5, 1, 32, hswish=True),
            InvertedResidual(32, 128, 32, 5, 1, 32, hswish=True),
            InvertedResidual(32, 96, 32, 5, 1, 24, hswish=True),
            InvertedResidual(32, 96, 32, 5, 1, 24, hswish=True),
        ])
        # Head: 1x1 + ReLU, gated by a sigmoid of the 1x1-projected global average.
        self.head = nn.Conv2d(32, 128, 1)
        self.head_gate = nn.Conv2d(32, 128, 1)
        self.up8 = DecoderStage(128, 24)
        self.up4 = DecoderStage(24, 16)
        self.up2 = DecoderStage(16, 16)
        self.out = nn.ConvTranspose2d(16, 1, 2, 2)                               # 1/2 -> full size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = F.hardswish(self.stem(x))
        x4 = self.blocks[0](x2)
        x8 = self.blocks[2](self.blocks[1](x4))
        x16 = x8
        for block in self.blocks[3:]:
            x16 = block(x16)
        h = F.relu(self.head(x16)) * torch.sigmoid(self.head_gate(_global_mean(x16)))
        h = self.up2(self.up4(self.up8(h, x8), x4), x2)
        return torch.sigmoid(self.out(h))


# --- the segmenter ---------------------------------------------------------------------------------------
class PersonSegmenter:
    """Person probability masks with MediaPipe's selfie segmentation model, batched on the device.

    `segment(frames)` takes whole frames as MediaPipe's graph does; `segment_images(images)` takes float
    images already on the device (aligned face crops, for instance). Both stretch their input to the
    model's size, whatever its aspect ratio, and return masks at the input's own size.

    Args:
        device: torch device to run on.
        model: "general" (256x256, MediaPipe's model_selection 0) or "landscape" (144x256, model_selection
            1, cheaper, for 16:9 frames).
    """

    def __init__(self, device: torch.device | str, model: str = "general"):
        if model not in MODELS:
            raise ValueError(f"unknown selfie segmentation model {model!r}: use {' or '.join(MODELS)}")
        self.device = torch.device(device)
        self.input_size, filename = MODELS[model]
        self.net = load_network(SelfieSegmentationNet(), filename, self.device)

    @torch.inference_mode()
    def segment(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: uint8 (N,H,W,3) RGB -> (N,H,W) float32 person probability in [0, 1], on the device."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"expected uint8 frames (N,H,W,3), got {tuple(frames.shape)} {frames.dtype}")
        frames = frames.to(self.device)
        masks = [self._masks(resize_frames(chunk, *self.input_size), chunk.shape[1:3])
                 for chunk in frames.split(NET_CHUNK)]
        return torch.cat(masks) if masks else frames.new_zeros(frames.shape[:3], dtype=torch.float32)

    @torch.inference_mode()
    def segment_images(self, images: torch.Tensor) -> torch.Tensor:
        """images: float (N,3,S,T) RGB in [0, 1] -> (N,S,T) float32 person probability in [0, 1]."""
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(f"expected float images (N,3,H,W), got {tuple(images.shape)} {images.dtype}")
        images = images.to(self.device, torch.float32)
        masks = []
        for chunk in images.split(NET_CHUNK):
            if chunk.shape[-2:] != self.input_size:
                chunk = F.interpolate(chunk, size=self.input_size, mode="bilinear", align_corners=False,
                                      antialias=True)
            masks.append(self._masks(chunk, images.shape[-2:]))
        return torch.cat(masks) if masks else images.new_zeros((0, *images.shape[-2:]))

    def _masks(self, inputs: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Model-size inputs (n,3,h,w) -> masks (n,*size), resized back bilinearly (MediaPipe's
        TensorsToSegmentationCalculator)."""
        # channels_last helps the GPU's convolutions; on the CPU it made this network 5x slower (measured).
        fmt = torch.channels_last if inputs.device.type == "cuda" else torch.contiguous_format
        masks = self.net(inputs.contiguous(memory_format=fmt))
        if masks.shape[-2:] != tuple(size):
            masks = F.interpolate(masks, size=tuple(size), mode="bilinear", align_corners=False)
        return masks[:, 0].contiguous()
