"""BiSeNet parser: key-for-key and output parity with the reference network (PyPI `bisnet==1.0.1`, the same
code as face-parsing.PyTorch), plus the parser's contract and its weights errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torchvision

from vidmoji.face.bisenet import BiSeNet, BiSeNetParser, ParserWeightsError, assign_sides
from vidmoji.parts import CANONICAL_EYE_LEFT, CANONICAL_EYE_RIGHT, CROP_SIZE, LABEL_IDS, NUM_LABELS

ASTRONAUT = Path(__file__).resolve().parents[2] / "shared/media/image/scikit-image__astronaut.png"
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def reference_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """The reference BiSeNet(19) in eval mode, seeded, with a fresh (not downloaded) ResNet18 backbone,
    and its state_dict saved as a .pth."""
    bisnet = pytest.importorskip(
        "bisnet", reason="reference implementation missing: pip install bisnet==1.0.1 (test extra)"
    )
    import bisnet.resnet

    torch.manual_seed(0)
    backbone = torchvision.models.resnet18(weights=None).state_dict()
    with pytest.MonkeyPatch.context() as mp:
        # The reference backbone fetches ImageNet weights in its constructor through model_zoo.load_url.
        mp.setattr(bisnet.resnet.modelzoo, "load_url", lambda *args, **kwargs: backbone)
        ref = bisnet.BiSeNet(n_classes=NUM_LABELS)
    assert torch.equal(ref.cp.resnet.conv1.weight, backbone["conv1.weight"]), "backbone patch not used"
    # Non-trivial BatchNorm statistics, so that eval-mode normalisation is actually exercised.
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    ref.eval()
    path = tmp_path_factory.mktemp("bisenet") / "79999_iter.pth"
    torch.save(ref.state_dict(), path)
    return ref, path


def _inputs() -> torch.Tensor:
    """(2,3,512,512) ImageNet-normalised: the astronaut photo and uniform noise."""
    bgr = cv2.imread(str(ASTRONAUT), cv2.IMREAD_COLOR)
    assert bgr is not None, f"missing test image {ASTRONAUT}"
    rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (512, 512), interpolation=cv2.INTER_LINEAR)
    photo = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    noise = torch.rand(3, 512, 512, generator=torch.Generator().manual_seed(1))
    return (torch.stack([photo, noise]) - IMAGENET_MEAN) / IMAGENET_STD


def test_state_dict_keys_match_reference(reference_checkpoint) -> None:
    ref, _ = reference_checkpoint
    ours = BiSeNet(NUM_LABELS).state_dict()
    theirs = ref.state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == theirs[k].shape for k in ours)


def test_outputs_match_reference(reference_checkpoint) -> None:
    ref, path = reference_checkpoint
    parser = BiSeNetParser(path, "cpu")
    x = _inputs()
    with torch.inference_mode():
        expected = ref(x)
        got = parser.net(x)
    assert len(got) == 3
    for name, e, g in zip(("main", "aux16", "aux32"), expected, got):
        assert g.shape == e.shape == (2, NUM_LABELS, 512, 512), name
        # float32 summation order differs between kernels and CPUs: 1e-4 of logits that span several units
        # is numerical noise, while a wrong layer or a mis-loaded weight changes them by O(1).
        torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")
        assert (g.argmax(1) == e.argmax(1)).float().mean() > 0.999, name


@pytest.fixture(scope="module")
def own_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded, randomly initialised checkpoint of our own BiSeNet (needs no reference package)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("own") / "79999_iter.pth"
    torch.save(BiSeNet(NUM_LABELS).state_dict(), path)
    return path


def test_parse_contract(own_checkpoint: Path) -> None:
    path = own_checkpoint
    parser = BiSeNetParser(path, torch.device("cpu"))
    crops = torch.rand(3, 3, CROP_SIZE, CROP_SIZE, generator=torch.Generator().manual_seed(2))
    labels = parser.parse(crops)
    assert labels.shape == (3, CROP_SIZE, CROP_SIZE)
    assert labels.dtype == torch.int64
    assert labels.device == crops.device
    assert int(labels.min()) >= 0 and int(labels.max()) < NUM_LABELS
    # Batched and per-crop results agree.
    assert torch.equal(parser.parse(crops[1:2]), labels[1:2])


def test_parse_is_argmax_of_main_output(reference_checkpoint) -> None:
    ref, path = reference_checkpoint
    parser = BiSeNetParser(path, "cpu")
    # The documented path: 306 -> 512 bilinear, normalise, argmax of the main output, 306 nearest.
    crop = torch.rand(1, 3, CROP_SIZE, CROP_SIZE, generator=torch.Generator().manual_seed(3))
    x = torch.nn.functional.interpolate(crop, (512, 512), mode="bilinear", align_corners=False)
    with torch.inference_mode():
        main = ref((x - IMAGENET_MEAN) / IMAGENET_STD)[0]
    expected = assign_sides(
        torch.nn.functional.interpolate(
            main.argmax(1, keepdim=True).float(), (CROP_SIZE, CROP_SIZE), mode="nearest"
        )[:, 0].long()
    )
    agree = (parser.parse(crop) == expected).float().mean().item()
    assert agree > 0.999  # near-ties in the logits may flip a handful of pixels


def test_missing_weights_message(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "79999_iter.pth"
    with pytest.raises(ParserWeightsError) as info:
        BiSeNetParser(missing, "cpu")
    msg = str(info.value)
    assert "\n" not in msg
    assert str(missing) in msg
    assert "79999_iter.pth" in msg and "zllrunning/face-parsing.PyTorch" in msg
    assert "--parser-weights" in msg


def test_mismatched_weights(tmp_path: Path) -> None:
    wrong = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), wrong)
    with pytest.raises(ParserWeightsError, match="do not match"):
        BiSeNetParser(wrong, "cpu")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(np.random.default_rng(0).bytes(64))
    with pytest.raises(ParserWeightsError, match="cannot be read"):
        BiSeNetParser(garbage, "cpu")


def test_assign_sides_uses_subject_frame() -> None:
    """Whatever side the network calls an eye, brow or ear, the one on the image's right (where the canonical
    crop puts the subject's left eye) becomes the subject's left; other classes are untouched."""
    labels = torch.full((1, CROP_SIZE, CROP_SIZE), LABEL_IDS["skin"], dtype=torch.int64)
    (rx, ry), (lx, ly) = CANONICAL_EYE_RIGHT, CANONICAL_EYE_LEFT
    labels[0, int(ry) - 3 : int(ry) + 3, int(rx) - 10 : int(rx) + 10] = LABEL_IDS["l_eye"]  # image left
    labels[0, int(ly) - 3 : int(ly) + 3, int(lx) - 10 : int(lx) + 10] = LABEL_IDS["l_eye"]  # image right
    labels[0, 90:95, 95:120] = LABEL_IDS["l_brow"]
    labels[0, 90:95, 186:211] = LABEL_IDS["r_brow"]
    labels[0, 150:200, 0:10] = LABEL_IDS["r_ear"]
    labels[0, 150:200, 296:306] = LABEL_IDS["l_ear"]
    labels[0, 220:225, 140:170] = LABEL_IDS["l_lip"]  # lower lip: not a side
    out = assign_sides(labels)
    assert out.dtype == torch.int64 and out.shape == labels.shape
    assert out[0, int(ry), int(rx)] == LABEL_IDS["r_eye"]
    assert out[0, int(ly), int(lx)] == LABEL_IDS["l_eye"]
    assert out[0, 92, 100] == LABEL_IDS["r_brow"] and out[0, 92, 200] == LABEL_IDS["l_brow"]
    assert out[0, 160, 5] == LABEL_IDS["r_ear"] and out[0, 160, 300] == LABEL_IDS["l_ear"]
    assert out[0, 222, 145] == LABEL_IDS["l_lip"] and out[0, 222, 165] == LABEL_IDS["l_lip"]
    assert out[0, 0, 0] == LABEL_IDS["skin"]
    assert torch.equal(assign_sides(out), out)
