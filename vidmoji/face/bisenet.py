"""BiSeNet face parser: face-parsing.PyTorch's network (19 CelebAMask-HQ classes), loaded from its checkpoint.

The module tree and parameter names mirror face-parsing.PyTorch's `BiSeNet(n_classes=19)` exactly, so that
its public checkpoint `79999_iter.pth` (a plain state_dict) loads with `load_state_dict(strict=True)`:

    cp            context path: `resnet` (ResNet18 trunk returning the 1/8, 1/16 and 1/32 feature maps),
                  `arm16`/`arm32` (attention refinement), `conv_head16`/`conv_head32`, `conv_avg`
    ffm           feature fusion of the 1/8 ResNet features (standing in for the spatial path) and the
                  1/8 context features
    conv_out      main head (256 -> 256 -> 19)
    conv_out16    auxiliary head on the 1/8 context features (128 -> 64 -> 19)
    conv_out32    auxiliary head on the 1/16 context features (128 -> 64 -> 19)

Nothing is downloaded: every parameter comes from the given checkpoint. `BiSeNetParser.parse` decides the
side (subject's left/right) of brows, eyes and ears from their position in the aligned crop, not from the
checkpoint's l_/r_ classes, which it does not predict reliably (see `assign_sides`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vidmoji.errors import VidmojiError
from vidmoji.parts import CANONICAL_EYE_LEFT, CANONICAL_EYE_RIGHT, CROP_SIZE, LABEL_IDS, NUM_LABELS

# The side length the network was trained at, in pixels.
INPUT_SIZE = 512
# ImageNet normalisation used by face-parsing.PyTorch (RGB order).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The face's vertical midline in the canonical crop, in pixels: halfway between the canonical eye centres.
MIDLINE_X = (CANONICAL_EYE_RIGHT[0] + CANONICAL_EYE_LEFT[0]) / 2
# Label classes that come as a (subject's left, subject's right) pair.
SIDED_PAIRS: tuple[tuple[int, int], ...] = tuple(
    (LABEL_IDS[f"l_{part}"], LABEL_IDS[f"r_{part}"]) for part in ("brow", "eye", "ear")
)


class ParserWeightsError(VidmojiError):
    """The BiSeNet checkpoint is missing or does not fit the network."""


class ConvBNReLU(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> ReLU; submodules named `conv` and `bn` as in the checkpoint."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)


class BasicBlock(nn.Module):
    """ResNet basic block; a 1x1 conv + BN `downsample` shortcut when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if in_ch != out_ch or stride != 1:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = F.relu(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _stage(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    """Two basic blocks; the first one carries the stride and the channel change."""
    return nn.Sequential(BasicBlock(in_ch, out_ch, stride), BasicBlock(out_ch, out_ch, 1))


class ResNet18Trunk(nn.Module):
    """ResNet18 without pooling head and classifier.

    forward: (N,3,H,W) -> feat8 (N,128,H/8,W/8), feat16 (N,256,H/16,W/16), feat32 (N,512,H/32,W/32).
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, 1)
        self.layer2 = _stage(64, 128, 2)
        self.layer3 = _stage(128, 256, 2)
        self.layer4 = _stage(256, 512, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        feat8 = self.layer2(self.layer1(x))
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


def _global_pool(x: torch.Tensor) -> torch.Tensor:
    """(N,C,H,W) -> (N,C,1,1) spatial mean."""
    return x.mean(dim=(2, 3), keepdim=True)


class AttentionRefinement(nn.Module):
    """ConvBNReLU, then a channel gate from the pooled features: (N,in,H,W) -> (N,out,H,W)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_ch, out_ch, 3)
        self.conv_atten = nn.Conv2d(out_ch, out_ch, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        return feat * torch.sigmoid(self.bn_atten(self.conv_atten(_global_pool(feat))))


class ContextPath(nn.Module):
    """ResNet18 trunk with attention refinement and top-down fusion.

    forward: (N,3,H,W) -> feat8 (N,128,H/8) ResNet features, ctx8 (N,128,H/8) and ctx16 (N,128,H/16)
    context features (W scales as H).
    """

    def __init__(self) -> None:
        super().__init__()
        self.resnet = ResNet18Trunk()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128, 3)
        self.conv_head16 = ConvBNReLU(128, 128, 3)
        self.conv_avg = ConvBNReLU(512, 128, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        # The pooled global context is broadcast over the 1/32 map (nearest upsampling of a 1x1 map).
        sum32 = self.arm32(feat32) + self.conv_avg(_global_pool(feat32))
        ctx16 = self.conv_head32(F.interpolate(sum32, feat16.shape[2:], mode="nearest"))
        sum16 = self.arm16(feat16) + ctx16
        ctx8 = self.conv_head16(F.interpolate(sum16, feat8.shape[2:], mode="nearest"))
        return feat8, ctx8, ctx16


class FeatureFusion(nn.Module):
    """Concatenate, ConvBNReLU 1x1, then add a squeeze-excite gated copy: (N,in,H,W) x2 -> (N,out,H,W)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(in_ch, out_ch, 1)
        self.conv1 = nn.Conv2d(out_ch, out_ch // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_ch // 4, out_ch, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        atten = torch.sigmoid(self.conv2(F.relu(self.conv1(_global_pool(feat)))))
        return feat + feat * atten


class OutputHead(nn.Module):
    """ConvBNReLU 3x3 then a 1x1 classifier: (N,in,H,W) -> (N,n_classes,H,W) logits."""

    def __init__(self, in_ch: int, mid_ch: int, n_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_ch, mid_ch, 3)
        self.conv_out = nn.Conv2d(mid_ch, n_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """face-parsing.PyTorch's BiSeNet.

    forward: (N,3,H,W) ImageNet-normalised RGB (H, W multiples of 32) -> (main, aux16, aux32), each
    (N,n_classes,H,W) logits, bilinearly upsampled with align_corners=True.
    """

    def __init__(self, n_classes: int = NUM_LABELS) -> None:
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = OutputHead(256, 256, n_classes)
        self.conv_out16 = OutputHead(128, 64, n_classes)
        self.conv_out32 = OutputHead(128, 64, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        size = x.shape[2:]
        feat8, ctx8, ctx16 = self.cp(x)
        logits = (
            self.conv_out(self.ffm(feat8, ctx8)),
            self.conv_out16(ctx8),
            self.conv_out32(ctx16),
        )
        main, aux16, aux32 = (
            F.interpolate(t, size, mode="bilinear", align_corners=True) for t in logits
        )
        return main, aux16, aux32


def _one_line(exc: Exception, limit: int = 300) -> str:
    """An exception as `Type: message` on one line, cut to `limit` characters."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:limit]


def assign_sides(labels: torch.Tensor) -> torch.Tensor:
    """Relabel the sided classes (brows, eyes, ears) of canonical-crop label maps by position.

    labels: (N,306,306) int64 label ids of aligned crops. A pixel of either member of a pair becomes the
    subject's left class when it lies right of `MIDLINE_X` in the image (the subject's left is on the image's
    right) and the subject's right class otherwise. Returns a new tensor of the same shape and dtype.

    Why: the face-parsing.PyTorch checkpoint does not tell the two sides apart reliably. Its training applied
    random horizontal flips whose l/r label swap was a no-op (`flip_lb[lb == 2] = 3` compares a PIL image,
    see zllrunning/face-parsing.PyTorch PR #26 and issue #57), so half of its training samples carried
    mirrored side labels. In the aligned crop the side is given by geometry instead.
    """
    subject_left = (torch.arange(labels.shape[-1], device=labels.device) >= MIDLINE_X).view(1, 1, -1)
    out = labels
    for left_id, right_id in SIDED_PAIRS:
        sided = (labels == left_id) | (labels == right_id)
        out = torch.where(sided, torch.where(subject_left, left_id, right_id), out)
    return out


class BiSeNetParser:
    """Per-pixel CelebAMask-HQ labels of aligned face crops from a user-supplied BiSeNet checkpoint.

    weights: path to face-parsing.PyTorch's `79999_iter.pth` (a state_dict of `BiSeNet(n_classes=19)`).
    device: the torch device the network runs on; `parse` expects its input there.
    """

    def __init__(self, weights: Path | None, device: torch.device | str) -> None:
        weights = Path(weights) if weights is not None else Path("(none given)")
        self.device = torch.device(device)
        if not weights.is_file():
            raise ParserWeightsError(
                f"BiSeNet weights not found at {weights}: download 79999_iter.pth from the "
                "face-parsing.PyTorch project (zllrunning/face-parsing.PyTorch, its README links the file) "
                "and pass --parser-weights PATH"
            )
        try:
            state = torch.load(weights, map_location=self.device, weights_only=True)
        except Exception as exc:  # unpickling errors come in many types
            raise ParserWeightsError(
                f"BiSeNet weights at {weights} cannot be read as a torch state_dict "
                f"(expected face-parsing.PyTorch's 79999_iter.pth): {_one_line(exc)}"
            ) from exc
        self.net = BiSeNet(NUM_LABELS)
        try:
            self.net.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise ParserWeightsError(
                f"BiSeNet weights at {weights} do not match face-parsing.PyTorch's BiSeNet(n_classes=19) "
                f"(expected its 79999_iter.pth state_dict): {_one_line(exc)}"
            ) from exc
        self.net.to(self.device).eval()
        self._mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    @torch.inference_mode()
    def parse(self, crops: torch.Tensor) -> torch.Tensor:
        """Label aligned crops.

        crops: (N,3,306,306) float32 RGB in [0,1] on the parser's device.
        Returns (N,306,306) int64 label ids in `parts.LABEL_NAMES` order (CelebAMask-HQ, as the checkpoint),
        with the side of brows, eyes and ears (the subject's own left/right) set by `assign_sides`.
        """
        if crops.ndim != 4 or crops.shape[1:] != (3, CROP_SIZE, CROP_SIZE):
            raise ValueError(f"expected crops of shape (N,3,{CROP_SIZE},{CROP_SIZE}), got {tuple(crops.shape)}")
        x = F.interpolate(crops, (INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        x = (x - self._mean) / self._std
        labels = self.net(x)[0].argmax(dim=1, keepdim=True)
        # Nearest resize of an integer map: go through float (exact for ids < 2**24).
        labels = F.interpolate(labels.float(), (CROP_SIZE, CROP_SIZE), mode="nearest")
        return assign_sides(labels[:, 0].long())
