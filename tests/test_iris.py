"""MediaPipe's iris model ported to torch: parity with the TFLite interpreter, batching, and the reason it
exists: refined meshes tell shut eyes from open ones on real clips from ../shared/media."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import converter, mediapipe_wheel
from vidmoji.face.iris import EYE_MESH_INDICES, EyeRefiner, crop_eyes, eye_rois
from vidmoji.face.locate import FaceLocator

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
DEVICE = torch.device("cpu")
BATCH = 32
# Clips with labelled eye closures: winks (d19) and blinks (d14). Meshing them whole takes about 20 s on
# an idle 2-core CPU (tracking dominates).
CLIPS = ("liveportrait__d19", "liveportrait__d14")
# Eye aspect ratio: mean (upper, lower) lid distance over the corner distance, per subject's eye.
EAR_POINTS = {
    "eye_right": (((160, 144), (159, 145), (158, 153)), (33, 133)),
    "eye_left": (((387, 373), (386, 374), (385, 380)), (362, 263)),
}

needs_media = pytest.mark.skipif(not MEDIA.is_dir(), reason=f"real test media not found at {MEDIA}")


def batches(name: str):
    """The frames of video/<name>.mp4 as uint8 (n,H,W,3) RGB tensors of up to BATCH frames."""
    import av

    frames = []
    with av.open(str(MEDIA / "video" / f"{name}.mp4")) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == BATCH:
                yield torch.from_numpy(np.stack(frames))
                frames = []
    if frames:
        yield torch.from_numpy(np.stack(frames))


def eye_aspect_ratio(mesh: torch.Tensor, eye: str) -> np.ndarray:
    pairs, (a, b) = EAR_POINTS[eye]
    upper, lower = [p for p, _ in pairs], [q for _, q in pairs]
    lids = (mesh[:, upper, :2] - mesh[:, lower, :2]).norm(dim=-1).mean(dim=1)
    return (lids / (mesh[:, a, :2] - mesh[:, b, :2]).norm(dim=-1)).numpy()


@pytest.fixture(scope="module")
def refiner() -> EyeRefiner:
    return EyeRefiner(DEVICE)


@pytest.fixture(scope="module")
def clips(refiner) -> dict[str, dict]:
    """Per clip: the tracked meshes (raw), the refined meshes and the irises of every frame, and the
    first batch of frames (for the parity and batching tests)."""
    if not MEDIA.is_dir():
        pytest.skip(f"real test media not found at {MEDIA}")
    locator = FaceLocator(DEVICE)
    out = {}
    for name in CLIPS:
        locator.reset()
        raw, refined, irises, first = [], [], [], None
        for frames in batches(name):
            faces = locator.track(frames)
            assert all(len(f) == 1 for f in faces), f"{name}: a frame without its face"
            mesh = torch.stack([f[0].mesh for f in faces])
            index = torch.arange(len(frames))
            mesh_refined, iris = refiner.refine(frames, index, mesh)
            raw.append(mesh)
            refined.append(mesh_refined)
            irises.append(iris)
            if first is None:
                first = frames
        out[name] = {"raw": torch.cat(raw), "refined": torch.cat(refined), "iris": torch.cat(irises),
                     "first": first}
    return out


# --- parity with the TFLite interpreter ------------------------------------------------------------------
@pytest.fixture(scope="module")
def tflite_model() -> bytes:
    """iris_landmark.tflite from the wheel the converter reads (path overridable with MEDIAPIPE_WHEEL)."""
    conv = converter("convert_iris")
    return conv.read_model(mediapipe_wheel(conv, "iris_landmark.tflite"), conv.IRIS_MEMBER)


def run_tflite(model: bytes, images: torch.Tensor) -> list[np.ndarray]:
    """The interpreter on NCHW images one by one -> [eye (N,213), iris (N,15)]."""
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


@needs_media
def test_iris_net_matches_tflite(refiner, tflite_model, clips):
    crops = []
    for name in CLIPS:
        frames = clips[name]["first"]
        pick = torch.arange(0, len(frames), 4)         # open and shut eyes of both clips, both sides
        crops.append(crop_eyes(frames, pick, eye_rois(clips[name]["raw"][pick])).reshape(-1, 3, 64, 64))
    crops = torch.cat(crops)
    eye, iris = run_tflite(tflite_model, crops)
    with torch.inference_mode():
        torch_eye, torch_iris = refiner.net(crops)
    diff_eye = np.abs(torch_eye.reshape(len(crops), -1).numpy() - eye).max()
    diff_iris = np.abs(torch_iris.reshape(len(crops), -1).numpy() - iris).max()
    print(f"\niris parity on {len(crops)} real eye crops: eye contour max |diff| {diff_eye:.2e}, "
          f"iris {diff_iris:.2e} (outputs up to {np.abs(eye).max():.1f})")
    assert diff_eye <= 1e-3 and diff_iris <= 1e-3
    # The points land on the eye: inside the 64x64 crop, corners apart.
    assert (eye.reshape(len(crops), -1, 3)[:, :16, :2] > 0).all()
    assert (eye.reshape(len(crops), -1, 3)[:, :16, :2] < 64).all()


# --- batching and mesh update ----------------------------------------------------------------------------
@needs_media
def test_refine_batched_equals_single(refiner, clips):
    clip = clips["liveportrait__d19"]
    frames = clip["first"]
    # The fixture refined these frames as one batch.
    mesh, refined, iris = (clip[k][:len(frames)] for k in ("raw", "refined", "iris"))
    alone, iris_alone = refiner.refine(frames[5:6], torch.zeros(1, dtype=torch.long), mesh[5:6])
    torch.testing.assert_close(refined[5:6], alone, atol=1e-4, rtol=0)
    torch.testing.assert_close(iris[5:6], iris_alone, atol=1e-4, rtol=0)
    # Two faces of the same frame, in any order, each get their own result.
    pair, iris_pair = refiner.refine(frames, torch.tensor([9, 5]), mesh[[9, 5]])
    torch.testing.assert_close(pair[1:], alone, atol=1e-4, rtol=0)
    torch.testing.assert_close(iris_pair[:1], iris[9:10], atol=1e-4, rtol=0)
    # Only the 2x71 eye-region points move, and only in x and y.
    changed = (refined != mesh).any(dim=-1).any(dim=0)
    assert set(torch.nonzero(changed).flatten().tolist()) <= set(sum(EYE_MESH_INDICES, ()))
    torch.testing.assert_close(refined[..., 2], mesh[..., 2])
    # An empty batch is fine.
    empty, empty_iris = refiner.refine(frames, torch.zeros(0, dtype=torch.long), mesh[:0])
    assert empty.shape == (0, 468, 3) and empty_iris.shape == (0, 2, 5, 3)


# --- the point of the exercise ----------------------------------------------------------------------------
# Shut-eye median aspect ratio over the open-eye one must fall below this. On d19 the labelled winks are
# squints behind glasses: the iris and its highlights stay visible through them and the refined lids follow
# the narrowed opening, at about 0.7 of the open eye (the labeller's own calibrated scores for these frames
# sit at 0.65-0.75 too), so that clip is held to a looser bound.
CLOSED_OVER_OPEN = {"liveportrait__d19": 0.8, "liveportrait__d14": 0.6}
# Refinement must lower the ratio by at least this much on every clip and eye.
MIN_GAIN = 0.1


@needs_media
def test_refined_mesh_tells_shut_eyes(clips):
    lines, failures = [], []
    for name in CLIPS:
        labels = json.loads((MEDIA / "labels" / f"{name}.json").read_text())
        for eye in EAR_POINTS:
            state = np.array([s or "" for s in labels[eye]])
            sure = ~np.array(labels["uncertain"][eye], dtype=bool)
            shut, open_ = (state == "closed") & sure, (state == "open") & sure
            assert shut.sum() >= 5 and open_.sum() >= 50, f"{name} {eye}: too few labelled frames"
            ratios = {}
            for kind in ("raw", "refined"):
                ear = eye_aspect_ratio(clips[name][kind], eye)
                ratios[kind] = (np.median(ear[shut]), np.median(ear[open_]))
            (rs, ro), (fs, fo) = ratios["raw"], ratios["refined"]
            lines.append(f"{name} {eye}: raw shut {rs:.3f} / open {ro:.3f} = {rs / ro:.3f}; "
                         f"refined shut {fs:.3f} / open {fo:.3f} = {fs / fo:.3f} "
                         f"({shut.sum()} shut, {open_.sum()} open frames)")
            if fs / fo >= CLOSED_OVER_OPEN[name] or fs / fo > rs / ro - MIN_GAIN:
                failures.append(lines[-1])
    print("\n" + "\n".join(lines))
    assert not failures, "\n".join(failures)


@needs_media
def test_skip_still_moves_the_last_eyes_while_the_lids_move_rigidly(clips):
    """Live's skip_still (one face a frame): the iris model runs on every other frame at least, and on the
    frames it skips, the eyes of the frame before moved with the plain mesh's lids stay close to what the
    model gives there: the eye aspect ratio (open 0.25-0.35) within 0.015 and the iris centre within 0.03 eye
    widths at the median (measured 0.0115 and 0.021 on d14, whose head moves most; the largest, 0.16 and 0.37,
    are a lid or a look a frame late). The frames it runs on equal the plain refiner's. That blinks still
    show live is test_live's d14 test."""
    skipping = EyeRefiner(DEVICE)
    skipping.skip_still = True
    lines = []
    for name in CLIPS:
        skipping.reset()
        raw, refined, irises = clips[name]["raw"], clips[name]["refined"], clips[name]["iris"]
        skipped, ear_err, iris_err, i = [], [], [], 0
        for frames in batches(name):
            for frame in frames:
                mesh, iris = skipping.refine(frame[None], torch.zeros(1, dtype=torch.long), raw[i:i + 1])
                skipped.append(skipping.skipped)
                if skipping.skipped:
                    width = (raw[i, 33, :2] - raw[i, 133, :2]).norm()
                    ear_err.append(max(abs(float(eye_aspect_ratio(mesh, e)[0]
                                                 - eye_aspect_ratio(refined[i:i + 1], e)[0])) for e in EAR_POINTS))
                    iris_err.append(float((iris[0, :, 0, :2] - irises[i, :, 0, :2]).norm(dim=-1).max() / width))
                else:
                    torch.testing.assert_close(mesh[0], refined[i])
                i += 1
        skipped = np.array(skipped)
        lines.append(f"{name}: skipped {skipped.mean():.0%} of {len(skipped)} frames; eye aspect ratio off by "
                     f"{np.median(ear_err):.4f} (median) {np.max(ear_err):.4f} (max), iris centre by "
                     f"{np.median(iris_err):.4f} / {np.max(iris_err):.4f} eye widths")
        assert not (skipped[1:] & skipped[:-1]).any(), f"{name}: two frames skipped in a row"
        assert skipped.mean() >= 0.25, lines[-1]
        assert np.median(ear_err) <= 0.015 and np.median(iris_err) <= 0.03, lines[-1]
    print("\n" + "\n".join(lines))
