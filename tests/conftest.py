"""Shared test fixtures: the real media in ../shared/media, its labels, and face tracks computed once."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT.parent / "shared" / "media"
needs_media = pytest.mark.skipif(not MEDIA.is_dir(),
                                 reason=f"real media folder {MEDIA} is absent (CI and shared checkouts have it)")
# The single-face clips with trustworthy per-frame labels.
LABELLED = ("liveportrait__d0", "liveportrait__d14", "liveportrait__d18", "liveportrait__d19")


def converter(script: str):
    """scripts/<script>.py as a module, for parity tests against the TFLite interpreter; skips when
    ai-edge-litert (the test extra that runs .tflite models) is not installed."""
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (test extra) is not installed")
    spec = importlib.util.spec_from_file_location(script, ROOT / "scripts" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def mediapipe_wheel(conv, what: str) -> Path:
    """The mediapipe wheel a converter reads (overridable with MEDIAPIPE_WHEEL); skips when it is absent."""
    wheel = Path(os.environ.get("MEDIAPIPE_WHEEL", conv.MEDIAPIPE_WHEEL))
    if not wheel.exists():
        pytest.skip(f"{wheel} (source of {what}) not found; set MEDIAPIPE_WHEEL")
    return wheel


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
