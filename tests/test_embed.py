"""The embedders behind the registry: shipped weights load and centre, resnet50 runs from a weights file
and explains itself without one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
import torchvision

from conftest import MEDIA, needs_media
from vidmoji import parts
from vidmoji.embed.base import EmbedderError, embed_slot
from vidmoji.embed.registry import EMBEDDERS, load_embedder
from vidmoji.train import template_windows

CPU = torch.device("cpu")


@pytest.mark.parametrize("name", ["ae", "pca"])
def test_label_embedders_give_centred_16d_vectors(name):
    embedder = load_embedder(name, CPU)
    windows = template_windows()
    for group, w in windows.items():
        e = embedder.embed(group, w)
        assert e.shape == (len(w), 16)
        # Centred over faces and parts together: the drawn parts alone sit near the origin, not far off it.
        assert e.mean(0).norm() < e.norm(dim=1).mean()


def test_left_slots_are_mirrored_onto_the_right():
    embedder = load_embedder("ae", CPU)
    w = torch.rand(3, 1, parts.WINDOW_SIZE, parts.WINDOW_SIZE)
    torch.testing.assert_close(embed_slot(embedder, "eye_left", w), embed_slot(embedder, "eye_right", w.flip(-1)))


def test_unknown_embedder_lists_the_choices():
    with pytest.raises(EmbedderError, match="ae, pca, resnet50"):
        load_embedder("clip", CPU)


def test_resnet50_without_weights_says_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(EmbedderError, match="--weights"):
        load_embedder("resnet50", CPU)


@needs_media
def test_resnet50_renders_from_a_weights_file(tmp_path):
    """The baseline's whole path (RGB part crops, 2048-d features, its own index) with a weights file in
    torchvision's format; the weights here are freshly initialised, since none can be downloaded."""
    assert "resnet50" in EMBEDDERS
    weights = tmp_path / "resnet50.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), weights)
    photo = tmp_path / "astronaut.png"
    photo.write_bytes((MEDIA / "image" / "scikit-image__astronaut.png").read_bytes())
    env = dict(os.environ, VIDMOJI_INDEXES=str(tmp_path / "indexes"))
    r = subprocess.run([sys.executable, "-m", "vidmoji", "render", str(photo), "--embedder", "resnet50",
                        "--weights", str(weights), "--device", "cpu", "--timeline", str(tmp_path / "t.json")],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "astronaut_avatar.png").is_file()
    assert (tmp_path / "indexes" / "flat" / "resnet50" / "meta.json").is_file()
