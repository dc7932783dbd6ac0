"""Shared test fixtures: the real media in ../shared/media, its labels, and face tracks computed once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
needs_media = pytest.mark.skipif(not MEDIA.is_dir(),
                                 reason=f"real media folder {MEDIA} is absent (CI and shared checkouts have it)")
# The single-face clips with trustworthy per-frame labels.
LABELLED = ("liveportrait__d0", "liveportrait__d14", "liveportrait__d18", "liveportrait__d19")


def clip(name: str) -> Path:
    """Path of a clip in ../shared/media/video by its stem."""
    return MEDIA / "video" / f"{name}.mp4"


def labels(name: str) -> dict:
    """The per-frame expression labels of a clip."""
    return json.loads((MEDIA / "labels" / f"{name}.json").read_text())


@pytest.fixture(scope="session")
def face_tracks():
    """name -> FaceTrack of the clip (pass 1 of the pipeline on the CPU), computed once per session."""
    from vidmoji.pipeline import track_faces
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = track_faces(clip(name), torch.device("cpu"))
        return cache[name]
    return get
