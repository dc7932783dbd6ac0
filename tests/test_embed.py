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
from vidmoji.embed.base import EmbedderError
from vidmoji.embed.registry import EMBEDDERS, load_embedder
from vidmoji.train import template_windows

CPU = torch.device("cpu")


@pytest.mark.parametrize("name", ["ae", "pca"])
def test_label_embedders_tell_different_parts_apart(name):
    """16-d finite vectors, and drawn parts whose windows differ clearly are not collapsed onto one
    direction (what cosine matching would need)."""
    embedder = load_embedder(name, CPU)
    for group, w in template_windows().items():
        e = embedder.embed(group, w)
        assert e.shape == (len(w), 16) and torch.isfinite(e).all()
        cos = torch.nn.functional.normalize(e, dim=1) @ torch.nn.functional.normalize(e, dim=1).T
        differ = (w.flatten(1)[:, None] - w.flatten(1)[None]).abs().mean(-1) > 0.01
        assert differ.any()
        assert cos[differ].max() < 0.99, f"{name} {group}: different windows share a direction"


def test_a_left_part_embeds_like_its_mirrored_right_twin():
    """The templates' left eyes and brows are mirror images of the right ones: through the slot mirroring
    both land on the same embedding, which is what lets one model serve both sides."""
    from vidmoji.avatar.index import embed_parts
    from vidmoji.avatar.templates import load_style
    style = load_style("flat")
    embedder = load_embedder("ae", CPU)
    for left, right in (("eye_left", "eye_right"), ("brow_left", "brow_right")):
        a = torch.from_numpy(embed_parts(style, embedder, left, CPU))
        b = torch.from_numpy(embed_parts(style, embedder, right, CPU))
        assert torch.nn.functional.cosine_similarity(a, b).min() > 0.99


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
