"""`vidmoji plot-embeddings` end to end: one frame per input frame at its timestamps, --data holding exactly
the pipeline's values, and a clip with a stretch without a face."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from conftest import clip, needs_media
from vidmoji.avatar.index import load_indexes
from vidmoji.avatar.templates import load_style
from vidmoji.embed.registry import load_embedder
from vidmoji.pipeline import PlotOptions, choose_parts, plot_media, track_faces
from vidmoji.video import FrameReader, VideoWriter

pytestmark = needs_media
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def gap_clip(tmp_path_factory):
    """liveportrait__d0 with frames 30-49 blacked out: a face, then none, then the face again."""
    path = tmp_path_factory.mktemp("gap") / "gap.mp4"
    with FrameReader(clip("liveportrait__d0")) as reader:
        info = reader.info
        with VideoWriter(path, info.width, info.height, info.fps, info.time_base) as writer:
            for batch in reader:
                for j, (frame, t) in enumerate(zip(batch.frames, batch.pts_s)):
                    i = batch.index + j
                    writer.write(np.zeros_like(frame) if 30 <= i < 50 else frame, float(t))
    return path


def _times(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.array(sorted(float(f.pts * f.time_base) for f in c.decode(video=0)))


def test_diagnostic_video_is_complete_and_its_data_is_the_pipelines(gap_clip, tmp_path):
    out, data = tmp_path / "gap_embeddings.mp4", tmp_path / "values.npz"
    result = plot_media(gap_clip, PlotOptions(output=out, data=data, device="cpu", show_progress=False,
                                              slots=("eye_right", "mouth")))
    src, got = _times(gap_clip), _times(out)
    assert len(got) == len(src) == result.frames
    np.testing.assert_allclose(got, src, atol=1e-3)
    assert (tmp_path / "gap_embeddings.png").stat().st_size > 10_000

    values = np.load(data)
    found = values["face_found"]
    assert not found[30:50].any() and found[:30].all() and found[50:].mean() > 0.9
    # The same pipeline, run again here: the plotted values are exactly its embeddings and similarities.
    embedder = load_embedder("ae", CPU)
    indexes = load_indexes(load_style("flat"), embedder, CPU, log=lambda m: None)
    track = track_faces(gap_clip, CPU)
    choices = choose_parts(track, embedder, indexes, "viterbi", CPU)
    for slot in ("eye_right", "mouth"):
        face = values[f"ae/{slot}/face"]
        np.testing.assert_array_equal(face[found], choices.matches[slot].embeddings)
        assert np.isnan(face[~found]).all()
        np.testing.assert_array_equal(values[f"ae/{slot}/similarity"], choices.similarity[slot])
        np.testing.assert_array_equal(values[f"ae/{slot}/row"], choices.rows[slot])
        part = values[f"ae/{slot}/part"]
        np.testing.assert_array_equal(part[found], indexes[slot].vectors[choices.rows[slot][found]])
