"""MediaPipe's face mesh with attention (`face_landmark_with_attention.tflite`, Apache-2.0, see weights/NOTICE):
the 468-point mesh plus refined lips (80 points), eyes (71 points each) and irises (5 points each), as a torch
module.

The network's backbone is the face mesh's; three small heads look again at the lips and at each eye through
crops of its 48x48 feature map (MediaPipe's custom operators `Landmarks2TransformMatrix`,
`TransformTensorBilinear` and `TransformLandmarks`, written here in torch after their definitions in
mediapipe/util/tflite/operations). Its lips close where the plain mesh's stay 0.01-0.03 of the inter-ocular
distance apart, which is what MediaPipe's own face mesh (`refine_landmarks=True`) reads.

vidmoji runs the plain mesh (mesh.FaceMeshNet) and, from this network, only the layers its lips head needs: the
first 48x48 feature map and the head, cropped around the plain mesh's lips (`LipParting`); the eyes stay the
iris model's, which the blink and wink rules were tuned on (this network's eyes read a wink's open eye 5-10%
narrower: d3's first wink was lost and d19's one-eye squints turned into winks).

The graph is kept as the converter wrote it (scripts/convert_attention.py): a list of operators over numbered
tensors, run in order. Feature maps are NCHW; the landmark tensors keep TFLite's shapes with a batch in front.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vidmoji.errors import VidmojiError
from vidmoji.face.detector import WEIGHTS_DIR

WEIGHTS = "face_landmark_attention.pt"

# Points of the refined lips and of each refined eye (their mesh points, in the heads' order, are the spec's
# "refine" lists); each iris head gives 5 (centre first).
LIPS = 80
EYE = 71
# The inner lip contour's upper and lower points, in pairs across the mouth (its corners, 78 and 308, left out):
# the points whose parting the refined lips set in the plain mesh (see LipParting).
INNER_LIP_PAIRS = ((191, 95), (80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318), (415, 324))
OUTPUTS = ("mesh", "lips", "eye_a", "eye_b", "iris_a", "iris_b", "presence")


def _points_tensor(spec: dict) -> int:
    """The tensor of the mesh's points (N, 468, 3) in input pixels that the heads' crops are computed from: the
    reshaped mesh that is scaled into the feature map's pixels before `Landmarks2TransformMatrix`."""
    producer = {outs[0]: (kind, ins) for kind, ins, outs, _ in spec["ops"]}
    for kind, ins, _, _ in spec["ops"]:
        if kind == "Landmarks2TransformMatrix":
            scaled_kind, scaled_ins = producer[ins[0]]
            assert scaled_kind == "MUL"
            return int(scaled_ins[0])
    raise ValueError("no Landmarks2TransformMatrix in the graph")


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _activation(x: torch.Tensor, name: int) -> torch.Tensor:
    # TFLite's ActivationFunctionType: 0 none, 1 RELU, 3 RELU6.
    if name == 1:
        return F.relu(x)
    if name == 3:
        return F.relu6(x)
    return x


def _rotation(r: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(r), torch.sin(r)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)        # (B, 2, 2)


def landmarks_to_matrix(points: torch.Tensor, opts: dict) -> torch.Tensor:
    """`Landmarks2TransformMatrix` (v2): the (B, 4, 4) matrix that maps a crop's output pixels into the
    landmarks' space, for a crop around opts["subset_idxs"], turned so that the left -> right rotation points
    lie along x, scaled by scale_x/scale_y. points: (B, N, >=2)."""
    xy = points[..., :2].float()
    left, right = xy[:, opts["left_rotation_idx"]], xy[:, opts["right_rotation_idx"]]
    rotation = opts.get("target_rotation_radians", 0.0) - torch.atan2(right[:, 1] - left[:, 1],
                                                                       right[:, 0] - left[:, 0])
    subset = xy[:, list(opts["subset_idxs"])]                                              # (B, K, 2)
    turned = subset @ _rotation(rotation).transpose(1, 2)
    lo, hi = turned.min(1).values, turned.max(1).values
    size = hi - lo
    centre = (((lo + hi) / 2)[:, None] @ _rotation(-rotation).transpose(1, 2))[:, 0]       # (B, 2)
    out_w, out_h = opts["output_width"], opts["output_height"]
    scale = torch.stack([opts["scale_x"] * size[:, 0] / out_w, opts["scale_y"] * size[:, 1] / out_h], -1)
    turn = _rotation(-rotation) * scale[:, None, :]                                        # R @ diag(scale)
    shift = centre + turn @ torch.tensor([-out_w / 2.0, -out_h / 2.0], device=xy.device, dtype=xy.dtype)
    # Built from the batch's own tensors (no batch size taken as a number), so a traced network takes any batch.
    zero, one = torch.zeros_like(shift[:, :1]), torch.ones_like(shift[:, :1])
    rows = [torch.cat([turn[:, 0], zero, shift[:, :1]], 1), torch.cat([turn[:, 1], zero, shift[:, 1:]], 1),
            torch.cat([zero, zero, one, zero], 1), torch.cat([zero, zero, zero, one], 1)]
    return torch.stack(rows, 1)


def transform_tensor(features: torch.Tensor, matrix: torch.Tensor, opts: dict) -> torch.Tensor:
    """`TransformTensorBilinear` (v2): (B, C, H, W) features sampled at matrix x (output pixel centre), zero
    outside the feature map -> (B, C, output_height, output_width)."""
    h, w = features.shape[2:]
    out_h, out_w = opts["output_height"], opts["output_width"]
    ys, xs = torch.meshgrid(torch.arange(out_h, device=features.device, dtype=features.dtype),
                            torch.arange(out_w, device=features.device, dtype=features.dtype), indexing="ij")
    # The pixel-centre correction of v2: T -> S (T A), A adding 0.5 to the output pixel and S taking 0.5 off.
    grid_out = torch.stack([xs + 0.5, ys + 0.5], -1).reshape(1, -1, 2)
    tc = grid_out @ matrix[:, :2, :2].transpose(1, 2) + matrix[:, None, :2, 3] - 0.5     # (B, P, 2)
    inside = (tc[..., 0] >= 0) & (tc[..., 0] <= w - 1) & (tc[..., 1] >= 0) & (tc[..., 1] <= h - 1)
    norm = torch.stack([tc[..., 0] / max(w - 1, 1) * 2 - 1, tc[..., 1] / max(h - 1, 1) * 2 - 1], -1)
    sampled = F.grid_sample(features, norm.reshape(-1, out_h, out_w, 2), mode="bilinear", padding_mode="zeros",
                            align_corners=True)
    return sampled * inside.reshape(-1, 1, out_h, out_w).to(sampled.dtype)


def transform_landmarks(points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """`TransformLandmarks` (v2): (B, N, 2) points through the matrix's affine part."""
    return points @ matrix[:, :2, :2].transpose(1, 2) + matrix[:, None, :2, 3]


class AttentionMeshNet(nn.Module):
    """192x192 RGB in [0, 1] (N, 3, 192, 192) -> {"mesh": (N, 468, 3), "lips": (N, 80, 2), "eye_a"/"eye_b":
    (N, 71, 2), "iris_a"/"iris_b": (N, 5, 2), "presence": (N,) logit}, in input pixels; "a" is the eye at mesh
    points 33-133 (the subject's right), "b" the other. spec: the converter's graph (see module doc)."""

    def __init__(self, spec: dict, outputs: tuple[str, ...] = OUTPUTS, points_given: bool = False):
        super().__init__()
        self.input_id = int(spec["input"])
        self.output_ids = {name: int(spec["outputs"][name]) for name in outputs}
        # points_given: the mesh points the heads crop around come from the caller (forward's `points`), not
        # from this network's own mesh, which then is not computed.
        self.points_id = _points_tensor(spec) if points_given else None
        # Only the operators the wanted outputs depend on (the eyes' heads cost a third of the network).
        wanted, ops = set(self.output_ids.values()), []
        for kind, ins, outs, opts in reversed(spec["ops"]):
            if wanted & set(outs) and outs[0] != self.points_id:
                wanted |= set(ins)
                ops.append((kind, list(ins), list(outs), dict(opts)))
        self.ops = ops[::-1]
        # The feature maps each operator is the last to read, dropped after it: kept to the end of forward, every
        # 96x96 map was fresh memory (page faults), and at batch 16 the lips path took twice the time per face
        # of batch 8 (2.2 against 1.0 ms on the 2-core CPU).
        last_use: dict[int, int] = {}
        for n, (_, ins, _, _) in enumerate(self.ops):
            for i in ins:
                last_use[i] = n
        keep = set(self.output_ids.values())
        self.release = [[] for _ in self.ops]
        for i, n in last_use.items():
            if i not in keep:
                self.release[n].append(i)
        prelu = {ins[1] for kind, ins, _, _ in self.ops if kind == "PRELU"}
        for key, value in spec["consts"].items():
            if int(key) in wanted:
                value = value.float()
                self.register_buffer(f"c{key}", value.reshape(-1) if int(key) in prelu else value)
        self.refine = {name: tuple(int(i) for i in idx) for name, idx in spec["refine"].items()}

    def _const(self, i: int) -> torch.Tensor | None:
        return getattr(self, f"c{i}", None)

    def forward(self, x: torch.Tensor, points: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """x: (N, 3, 192, 192); points: (N, 468, 3) mesh points in input pixels, when built with points_given."""
        t: dict[int, torch.Tensor] = {self.input_id: x}
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        if self.points_id is not None:
            t[self.points_id] = points

        def get(i: int) -> torch.Tensor:
            c = self._const(i)
            return c if c is not None else t[i]

        for (kind, ins, outs, o), release in zip(self.ops, self.release):
            if kind == "CONV_2D" or kind == "DEPTHWISE_CONV_2D":
                a, weight, bias = get(ins[0]), get(ins[1]), get(ins[2])
                k, s = weight.shape[-1], o["stride"]
                pad = 0
                if o["same"] and s == 1:
                    pad = k // 2                    # symmetric for odd kernels
                elif o["same"]:
                    ph, pw = _same_pad(a.shape[2], k, s), _same_pad(a.shape[3], k, s)
                    a = F.pad(a, (*pw, *ph))
                groups = a.shape[1] if kind == "DEPTHWISE_CONV_2D" else 1
                y = _activation(F.conv2d(a, weight, bias, s, pad, groups=groups), o["act"])
            elif kind == "PRELU":
                y = F.prelu(get(ins[0]), get(ins[1]))
            elif kind == "ADD":
                y = _activation(get(ins[0]) + get(ins[1]), o["act"])
            elif kind == "MUL":
                y = _activation(get(ins[0]) * get(ins[1]), o["act"])
            elif kind == "MAX_POOL_2D":
                y = F.max_pool2d(get(ins[0]), o["filter"], o["stride"])
            elif kind == "PAD":
                y = F.pad(get(ins[0]), o["pad"])
            elif kind == "RESHAPE":
                a = get(ins[0])
                y = a.reshape(-1, *o["shape"])
            elif kind == "STRIDED_SLICE":
                y = get(ins[0])
            elif kind == "Landmarks2TransformMatrix":
                y = landmarks_to_matrix(get(ins[0]), o)
            elif kind == "TransformTensorBilinear":
                y = transform_tensor(get(ins[0]), get(ins[1]), o)
            elif kind == "TransformLandmarks":
                y = transform_landmarks(get(ins[0]), get(ins[1]))
            else:
                raise ValueError(f"unsupported operator {kind}")
            if y.dim() == 4 and channels_last and not y.is_contiguous(memory_format=torch.channels_last):
                # PAD (of channels) and the crop's grid_sample return NCHW; the convolutions after them run
                # on channels-last weights, which on NCHW input take a slow path (the lips path 3.2 -> 2.3 ms per
                # face at batch 16 on the 2-core CPU).
                y = y.contiguous(memory_format=torch.channels_last)
            t[outs[0]] = y
            for i in release:
                t.pop(i, None)
        out = {name: t[i] for name, i in self.output_ids.items()}
        for name in out:
            out[name] = out[name].reshape(-1) if name == "presence" else \
                out[name].reshape(x.shape[0], -1, 3 if name == "mesh" else 2)
        return out


class LipParting(nn.Module):
    """The attention network's lips for the plain mesh: (x (N, 3, 192, 192) in [0, 1], points (N, 468, 3): the
    plain mesh's points on x, in input pixels) -> the same points with the inner lips parted as the attention
    network's lips head reads them (from a crop around the plain mesh's lips; its own mesh and eye heads are not
    run: the eyes are the iris model's, which the blink and wink rules were tuned on).

    Only the parting is taken: each upper/lower pair of the inner contour keeps the plain mesh's midpoint and
    gets the refined pair's offset. The mouth's curve stays the plain mesh's, on which the smile and frown
    parts and the resting curve's calibration (windows.REST_SAG_MEAN) were measured; with the refined contour
    as it is, hand-labelled smiles were 0.881 against 0.929 (full size, flat, ae) and d0 switched more.

    A module of its own (not a head on the mesh network) so that the face mesh runs it once per face, on the
    crop it keeps: not on a first crop that the mesh's own points move (mesh.FaceMesh.run)."""

    def __init__(self, spec: dict):
        super().__init__()
        self.lips = AttentionMeshNet(spec, ("lips",), points_given=True)
        order = self.lips.refine["lips"]
        upper, lower = zip(*INNER_LIP_PAIRS)
        self.register_buffer("upper_rows", torch.tensor([order.index(i) for i in upper], dtype=torch.long))
        self.register_buffer("lower_rows", torch.tensor([order.index(i) for i in lower], dtype=torch.long))
        self.register_buffer("upper_index", torch.tensor(upper, dtype=torch.long))
        self.register_buffer("lower_index", torch.tensor(lower, dtype=torch.long))

    def forward(self, x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        lips = self.lips(x, points)["lips"]
        xy = points[..., :2]
        up, lo = lips.index_select(1, self.upper_rows), lips.index_select(1, self.lower_rows)
        # The refined lips' parting about the plain mesh's lip line: each pair's midpoint stays the plain
        # mesh's, so the mouth's curve (smiles, frowns, the resting curve's calibration) is as before.
        mid = (xy.index_select(1, self.upper_index) + xy.index_select(1, self.lower_index)) / 2
        half = (lo - up) / 2
        xy = xy.index_copy(1, self.upper_index, mid - half).index_copy(1, self.lower_index, mid + half)
        return torch.cat([xy, points[..., 2:]], -1)


def load_lip_parting(device: torch.device) -> LipParting:
    """The lips head of the converted attention network (weights/face_landmark_attention.pt) as a LipParting, on
    `device`, eval mode, channels-last like the other face networks."""
    path = WEIGHTS_DIR / WEIGHTS
    if not path.exists():
        raise VidmojiError(f"{path} is missing: reinstall vidmoji (or run scripts/convert_attention.py)")
    spec = torch.load(path, map_location="cpu", weights_only=True)
    return LipParting(spec).to(device, memory_format=torch.channels_last).eval()
