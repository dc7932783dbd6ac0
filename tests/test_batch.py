"""Many clips in one run (vidmoji.batch): a folder of short public clips and a corrupt file rendered with
the local pool and with Ray, against one-by-one renders; a killed worker; a rerun that resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from conftest import ROOT, clip, needs_media

pytestmark = needs_media
CLIPS = ("liveportrait__d14", "liveportrait__d18", "liveportrait__d19")
SECONDS = 0.5
BROKEN_REASON = "not a readable video or image"
POOL = ("--jobs", "2", "--threads", "1", "--device", "cpu")  # one torch thread, as the reference renders


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "VIDMOJI_DEBUG": ""}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidmoji", *args]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Three half-second public clips (their packets copied, not re-encoded) and a corrupt .mp4."""
    from corpus import _remux
    d = tmp_path_factory.mktemp("clips")
    for name in CLIPS:
        _remux(clip(name), d / f"{name}.mp4", SECONDS)
    (d / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (d / "notes.md").write_text("not media: ignored")
    return d


@pytest.fixture(scope="module")
def reference(folder, tmp_path_factory) -> dict[str, Path]:
    """Each clip rendered on its own by `vidmoji render CLIP -o OUT`'s library call, with one torch thread
    as the batches below use (the pixels depend on torch's thread count: float sums in another order)."""
    import torch
    from vidmoji.pipeline import RenderOptions, render_media
    out = tmp_path_factory.mktemp("one_by_one")
    refs = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in CLIPS:
            path = out / f"{name}_avatar.mp4"
            render_media(folder / f"{name}.mp4", RenderOptions(output=path, device="cpu", show_progress=False))
            refs[name] = path
    finally:
        torch.set_num_threads(threads)
    return refs


def _frames(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def _manifest(out: Path) -> dict[str, dict]:
    from vidmoji.batch import read_manifest
    return {Path(k).stem: v for k, v in read_manifest(out).items()}


def _check_outputs(out: Path, reference: dict[str, Path], records: dict[str, dict]) -> None:
    for name in CLIPS:
        record = records[name]
        assert record["status"] == "done", record
        assert record["outputs"] == [str(out / f"{name}_avatar.mp4")]
        assert record["frames"] == len(_frames(reference[name])) and record["fps"] > 0
        np.testing.assert_array_equal(_frames(out / f"{name}_avatar.mp4"), _frames(reference[name]),
                                      err_msg=f"{name}: the batch render differs from the one-by-one render")


def _check_broken(records: dict[str, dict]) -> None:
    broken = records["broken"]
    assert broken["status"] == "failed" and broken["outputs"] == []
    assert BROKEN_REASON in broken["error"] and "\n" not in broken["error"]


@pytest.fixture(scope="module")
def pool_run(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("batch") / "out"
    r = subprocess.run(_cli("render", str(folder), "-o", str(out), *POOL),
                       capture_output=True, text=True, env=_env(), timeout=600)
    return out, r


def test_folder_with_two_workers_matches_one_by_one_renders(pool_run, reference):
    out, r = pool_run
    assert r.returncode == 1, r.stderr  # one input failed
    assert "Traceback" not in r.stderr
    records = _manifest(out)
    assert set(records) == {*CLIPS, "broken"}  # notes.md is not an input
    _check_outputs(out, reference, records)
    _check_broken(records)
    assert len({rec["pid"] for rec in records.values()}) == 2  # both workers took clips
    assert "done          3" in r.stdout and "failed        1" in r.stdout and "clips per minute" in r.stdout
    assert f"broken.mp4: {BROKEN_REASON}" in r.stdout


def test_rerun_skips_what_is_done_and_retries_what_failed(pool_run, folder):
    out, _ = pool_run
    before = {name: (out / f"{name}_avatar.mp4").stat().st_mtime_ns for name in CLIPS}
    lines_before = (out / "manifest.jsonl").read_text().count("\n")
    r = subprocess.run(_cli("render", str(folder), "-o", str(out), *POOL),
                       capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "skipped       3" in r.stdout and "failed        1" in r.stdout and "done          0" in r.stdout
    assert {name: (out / f"{name}_avatar.mp4").stat().st_mtime_ns for name in CLIPS} == before
    assert (out / "manifest.jsonl").read_text().count("\n") == lines_before + 1  # the broken file, again
    _check_broken(_manifest(out))


def _spawned_workers(parent: int) -> list[int]:
    """The pool's worker processes: children of `parent` started by multiprocessing's spawn_main."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


def test_a_killed_worker_costs_only_its_clip(folder, reference, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen(_cli("render", str(folder), "-o", str(out), *POOL),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    killed = None
    try:
        deadline = time.monotonic() + 300
        # the broken file goes first and fails at once; then both workers are rendering a clip
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "manifest.jsonl").is_file() and "broken" in (out / "manifest.jsonl").read_text():
                workers = _spawned_workers(proc.pid)
                # a worker that has not finished a clip yet is still rendering its first one
                done = {rec.get("pid") for rec in _manifest(out).values() if rec.get("status") == "done"}
                busy = [w for w in workers if w not in done]
                if len(workers) == 2 and busy:
                    killed = busy[0]
                    os.kill(killed, signal.SIGKILL)
                    break
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed is not None, "the run ended before a worker could be killed"
    assert "Traceback" not in stderr
    assert f"worker process {killed} died" in stderr, stderr
    records = _manifest(out)
    assert set(records) == {*CLIPS, "broken"}
    _check_broken(records)
    # the killed worker's clip was retried (--retries 1 by default) on a fresh worker; the others finished
    _check_outputs(out, reference, records)
    assert killed not in {rec["pid"] for rec in records.values() if rec["status"] == "done"}
    assert not list(out.glob(".*.part*")), "a killed render left its temporary behind"


def test_ray_engine_with_a_local_cluster(folder, reference, tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'vidmoji[ray]')")
    from vidmoji.batch import run_batch
    from vidmoji.pipeline import RenderOptions
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        result = run_batch([folder], tmp_path / "out", RenderOptions(device="cpu"), engine="ray",
                           show_progress=False, threads=1)
    finally:
        ray.shutdown()
    assert (result.done, result.failed, result.skipped, result.engine) == (3, 1, 0, "ray")
    records = _manifest(tmp_path / "out")
    _check_outputs(tmp_path / "out", reference, records)
    _check_broken(records)


def test_inputs_from_globs_and_lists_and_name_collisions(folder, tmp_path):
    from vidmoji.batch import BatchError, collect, is_many
    listing = tmp_path / "list.txt"
    listing.write_text(f"# two clips\n{folder / 'liveportrait__d18.mp4'}\n\n{folder.name}/liveportrait__d19.mp4\n")
    (tmp_path / folder.name).symlink_to(folder)
    clips = collect([listing, Path(str(folder / "*d1[48].mp4"))], tmp_path / "out")
    assert [c.source.name for c in clips] == ["liveportrait__d18.mp4", "liveportrait__d19.mp4",
                                              "liveportrait__d14.mp4"]  # d18 named twice: rendered once
    assert all(c.out_dir == (tmp_path / "out").resolve() for c in clips)
    assert is_many([folder]) and is_many([listing]) and is_many([Path(str(folder / "*.mp4"))])
    assert not is_many([folder / "liveportrait__d18.mp4"])
    other = tmp_path / "other"
    other.mkdir()
    (other / "liveportrait__d18.mp4").write_bytes(b"x")
    with pytest.raises(BatchError, match="would both write"):
        collect([folder, other / "liveportrait__d18.mp4"], tmp_path / "out")
    with pytest.raises(BatchError, match="no file matches"):
        collect([Path(str(tmp_path / "nothing*.mp4"))], tmp_path / "out")


def test_many_inputs_need_an_output_folder(folder):
    r = subprocess.run(_cli("render", str(folder)), capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "-o names the output folder" in lines[0]


def test_plot_embeddings_of_several_files(folder, tmp_path):
    import torch
    from vidmoji.pipeline import PlotOptions, plot_media
    name = "liveportrait__d19"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        plot_media(folder / f"{name}.mp4", PlotOptions(output=tmp_path / "one.mp4", device="cpu",
                                                       show_progress=False))
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "plots"
    r = subprocess.run(_cli("plot-embeddings", str(folder / f"{name}.mp4"), str(folder / "broken.mp4"),
                            "-o", str(out), *POOL), capture_output=True, text=True, env=_env(), timeout=600)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    records = _manifest(out)
    assert records[name]["status"] == "done"
    assert records[name]["outputs"] == [str(out / f"{name}_embeddings.mp4"), str(out / f"{name}_embeddings.png")]
    np.testing.assert_array_equal(_frames(out / f"{name}_embeddings.mp4"), _frames(tmp_path / "one.mp4"))
    _check_broken(records)


def test_a_workers_second_clip_loads_no_model_again(pool_run):
    """Each worker of the pool loads the embedder, indexes and face models for its first clip and reuses
    them for the next: the manifest records what each clip loaded (vidmoji.models' counters)."""
    out, _ = pool_run
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    by_pid: dict[int, list[dict]] = {}
    for rec in records:
        if rec["status"] == "done":
            by_pid.setdefault(rec["pid"], []).append(rec)
    assert any(len(recs) > 1 for recs in by_pid.values()), f"no worker rendered two clips: {records}"
    for recs in by_pid.values():
        first = recs[0]["loads"]
        assert first.get("embedder") == 1 and first.get("indexes") == 1 and first.get("face") == 1, recs[0]
        assert first.get("segmenter") == 1 and recs[0]["load_s"] > 0, recs[0]
        for rec in recs[1:]:  # another subject: only its composer (skin, look) is new
            assert not {"embedder", "indexes", "face", "segmenter"} & set(rec["loads"]), rec
            assert rec["load_s"] < recs[0]["load_s"], rec


def test_identify_many_inputs(folder, tmp_path):
    """`vidmoji identify DIR -o OUT`: one persona per input, named as `vidmoji identify INPUT` names it,
    the same persona as a one-by-one identify; the corrupt file marked failed."""
    from vidmoji.pipeline import identify_media
    name = "liveportrait__d18"
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        one = identify_media(folder / f"{name}.mp4", tmp_path / f"{name}_persona.json", "cpu", show_progress=False)
    finally:
        torch.set_num_threads(threads)
    out = tmp_path / "personas"
    r = subprocess.run(_cli("identify", str(folder), "-o", str(out), *POOL), capture_output=True, text=True,
                       env=_env(), timeout=600)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    records = _manifest(out)
    assert set(records) == {*CLIPS, "broken"}
    _check_broken(records)
    for clip_name in CLIPS:
        assert records[clip_name]["status"] == "done", records[clip_name]
        assert records[clip_name]["outputs"] == [str(out / f"{clip_name}_persona.json")]
    persona = json.loads((out / f"{name}_persona.json").read_text())
    assert persona == json.loads(one.written[0].read_text())
    assert "done          3" in r.stdout and "failed        1" in r.stdout


def test_rerun_with_other_options_is_refused(pool_run, folder):
    """The folder's options.json: a rerun with another style, or another command, into the same folder
    stops with a one-line error before any work, and leaves the folder as it was."""
    out, _ = pool_run
    manifest = (out / "manifest.jsonl").read_text()
    assert json.loads((out / "options.json").read_text())["options"]["style"] == "flat"
    for args, expected in ((("render", "--style", "cute"), "style 'flat' -> 'cute'"),
                           (("identify",), "holds the outputs of `vidmoji render`")):
        r = subprocess.run(_cli(args[0], str(folder), "-o", str(out), *args[1:], *POOL), capture_output=True,
                           text=True, env=_env(), timeout=120)
        assert r.returncode != 0 and "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.stderr
    assert (out / "manifest.jsonl").read_text() == manifest
