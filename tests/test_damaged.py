"""Damaged and unusual inputs: every command that reads media gives either the decodable part (with a
`warning:` line for what was left out) or one `error:` line and exit 1; never a traceback, a hang or a
half-written output. Also: a clip without a face is an error, and a killed run's temporary is cleaned up.

The corpus (tests/corpus.py) is derived from the public clips at test time with fixed seeds. The command
lines run in one process (tests/_drive.py: the real CLI entry point, in-process, one case after another,
each with its own captured output and time limit), since a process per case would spend most of the time
importing torch; a few run as real processes to prove the process path too.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest

from conftest import MEDIA, clip, needs_media

pytestmark = needs_media

ROOT = Path(__file__).resolve().parents[1]
CASE_TIMEOUT_S = 120  # per command line; a healthy case takes a few seconds
# Lines a command may print on stderr besides its result: the device, progress bars, warnings, one error.
ALLOWED_STDERR = re.compile(r"^(device: |warning: |error: |\s*(faces|render|parse|plot)\s)")
# The subset that plot-embeddings and parse also run over (render runs over every case).
SUBSET = ("clean-mp4", "clean-png", "bad-audio-mp4", "one-frame", "odd-size", "gray", "fake-png", "zero-byte",
          "audio-only", "black", "scatter6-mov", "tail3-webm", "tail3-avi", "flip1-mkv", "scatter4-jpg", "garbled-mkv")


def _env() -> dict:
    """This checkout's vidmoji first on the path of child processes."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("VIDMOJI_DEBUG", None)
    return env


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from corpus import build_corpus
    return build_corpus(MEDIA, tmp_path_factory.mktemp("corpus"))


def _job(command: str, case, out_dir: Path) -> tuple[dict, Path]:
    folder = out_dir / command / case.name
    folder.mkdir(parents=True)
    output = folder / ("out.png" if case.image and command != "plot-embeddings" else "out.mp4")
    argv = [command, str(case.path), "-o", str(output), "--device", "cpu"]
    if command == "render":
        argv += ["--size", "64"]
    if command == "plot-embeddings":
        argv += ["--parts", "mouth"]
    return {"id": f"{command}:{case.name}", "argv": argv, "timeout": CASE_TIMEOUT_S}, output


@pytest.fixture(scope="module")
def driven(corpus, tmp_path_factory):
    """{(command, case name): (result record, output path, case)} for every command line run."""
    work = tmp_path_factory.mktemp("driven")
    jobs, meta = [], {}
    for command in ("render", "plot-embeddings", "parse"):
        for case in corpus:
            if command != "render" and case.name not in SUBSET:
                continue
            job, output = _job(command, case, work)
            jobs.append(job)
            meta[job["id"]] = (command, case, output)
    cases_file, results_file = work / "cases.json", work / "results.jsonl"
    cases_file.write_text(json.dumps(jobs))
    start = time.monotonic()
    # One torch thread: the cases are small, and on a busy machine a second thread mostly spins waiting.
    env = dict(_env(), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "_drive.py"), str(cases_file), str(results_file)],
                          capture_output=True, text=True, env=env, timeout=CASE_TIMEOUT_S * 10)
    records = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    done = {r["id"] for r in records}
    assert proc.returncode == 0 and len(done) == len(jobs), (
        f"the driver stopped (exit {proc.returncode}) after {len(done)} of {len(jobs)} cases; "
        f"next: {[j['id'] for j in jobs if j['id'] not in done][:1]}\n{proc.stderr[-3000:]}")
    print(f"\n{len(jobs)} command lines over {len(corpus)} cases in {time.monotonic() - start:.0f} s; slowest: "
          + ", ".join(f"{r['id']} {r['seconds']} s" for r in sorted(records, key=lambda r: -r["seconds"])[:3]))
    return {(meta[r["id"]][0], meta[r["id"]][1].name): (r, meta[r["id"]][2], meta[r["id"]][1]) for r in records}


def _video_frames(path: Path) -> tuple[int, bool]:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0])), bool(c.streams.audio)


def _check(record: dict, output: Path, case) -> list[str]:
    """The contract for one command line; returns its stderr lines that say something (no progress bars)."""
    where = f"{record['id']} ({case.path.name}): exit {record['exit_code']}\n{record['stderr']}"
    assert record["status"] == "done", f"{record['id']} hung (killed after {CASE_TIMEOUT_S} s)"
    assert record["traceback"] is None, f"{where}\n{record['traceback']}"
    assert "Traceback" not in record["stderr"] + record["stdout"], where
    lines = [line for line in record["stderr"].splitlines() if line.strip()]
    assert all(ALLOWED_STDERR.match(line) for line in lines), f"unexpected stderr lines: {where}"
    errors = [line for line in lines if line.startswith("error:")]
    leftovers = [p.name for p in output.parent.iterdir() if ".part" in p.name]
    assert not leftovers, f"temporary files left behind: {leftovers}: {where}"
    if record["exit_code"] == 1:
        assert len(errors) == 1 and lines[-1] == errors[0], where
        assert not output.exists(), f"an output was written although the command failed: {where}"
    else:
        assert record["exit_code"] == 0 and not errors, where
        assert output.exists(), where
        if output.suffix == ".mp4":
            frames, _ = _video_frames(output)
            assert frames >= 1, where
        else:
            assert output.stat().st_size > 100, where
    return [line for line in lines if line.startswith(("warning:", "error:"))]


def test_corpus_is_large_enough(corpus):
    assert len(corpus) >= 50
    assert len({c.name for c in corpus}) == len(corpus)
    kinds = {c.path.suffix for c in corpus}
    assert {".mp4", ".mov", ".mkv", ".webm", ".avi", ".jpg", ".png"} <= kinds


def test_every_outcome_is_a_video_or_one_error_line(driven):
    outcomes = {"ok": 0, "error": 0}
    for (command, name), (record, output, case) in sorted(driven.items()):
        said = _check(record, output, case)
        outcomes["ok" if record["exit_code"] == 0 else "error"] += 1
        where = f"{record['id']}: exit {record['exit_code']}\n{record['stderr']}"
        if case.expect == "ok":
            assert record["exit_code"] == 0 and not said, where
        elif case.expect == "error":
            assert record["exit_code"] == 1, where
        elif case.expect == "no-face":
            assert record["exit_code"] == 1 and said == [f"error: no face found in {case.path}"], where
        elif case.expect == "audio-dropped":
            assert record["exit_code"] == 0, where
            assert any("audio was dropped" in line for line in said), where
            assert not _video_frames(output)[1], f"{where}: the output still has an audio stream"
    # The damage is real: both outcomes occur, and some damaged files still render.
    assert outcomes["ok"] > 10 and outcomes["error"] > 10, outcomes


def test_partly_decodable_files_say_what_was_left_out(driven):
    partial = [(command, r) for (command, _), (r, _, case) in driven.items() if case.expect == "partial"]
    assert any(command == "render" for command, _ in partial)
    for command, r in partial:
        said = [x for x in r["stderr"].splitlines() if x.startswith(("warning:", "error:"))]
        assert r["exit_code"] == 0 and len(said) == 1, r["stderr"]
        assert re.search(r": \d+ frame\(s\) could not be decoded and were skipped \(.+\); kept \d+$", said[0]), said


def test_bad_audio_in_a_real_process(corpus, tmp_path):
    """The issue's traceback (an audio stream without a codec context), and a zero-byte file, through a
    real `python -m vidmoji` process: a video and one warning line; one error line."""
    by_name = {c.name: c for c in corpus}
    out = tmp_path / "out.mp4"
    r = subprocess.run([sys.executable, "-m", "vidmoji", "render", str(by_name["bad-audio-d18"].path), "-o", str(out),
                        "--size", "64", "--device", "cpu"], capture_output=True, text=True, env=_env(), timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "audio was dropped" in warnings[0], r.stderr
    frames, has_audio = _video_frames(out)
    assert frames > 10 and not has_audio
    r = subprocess.run([sys.executable, "-m", "vidmoji", "parse", str(by_name["zero-byte"].path), "-o",
                        str(tmp_path / "p.mp4")], capture_output=True, text=True, env=_env(), timeout=300)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "zero.mp4" in lines[0] and not list(tmp_path.glob("p*")) and not list(tmp_path.glob(".p*"))


def test_unexpected_exceptions_are_one_line_unless_debugging(monkeypatch):
    import typer
    from typer.testing import CliRunner

    from vidmoji.cli import friendly_errors

    app = typer.Typer()

    @app.command()
    @friendly_errors
    def boom() -> None:
        raise ZeroDivisionError("something nobody foresaw")

    monkeypatch.delenv("VIDMOJI_DEBUG", raising=False)
    result = CliRunner().invoke(app, [])
    assert result.exit_code == 1 and result.exception is not None and isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unexpected ZeroDivisionError: something nobody")
    assert "VIDMOJI_DEBUG=1" in lines[0]
    monkeypatch.setenv("VIDMOJI_DEBUG", "1")
    result = CliRunner().invoke(app, [])
    assert isinstance(result.exception, ZeroDivisionError)


def test_stale_temporary_is_removed_before_writing(tmp_path):
    from vidmoji.video import check_writable, write_text_atomic
    stale = tmp_path / ".out.part.json"
    stale.write_text("left by a killed run")
    check_writable(tmp_path / "out.json")
    assert not stale.exists()
    stale.write_text("left by a killed run")
    write_text_atomic(tmp_path / "out.json", "{}")
    assert not stale.exists() and (tmp_path / "out.json").read_text() == "{}"


def test_killed_render_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    out = tmp_path / "avatar.mp4"
    temp = tmp_path / ".avatar.part.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "vidmoji", "render", str(clip("liveportrait__d0")), "-o", str(out),
                             "--layout", "side-by-side", "--device", "cpu"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=dict(_env(), OMP_NUM_THREADS="1"))
    try:
        deadline = time.monotonic() + 300
        while not temp.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is not None:
            pytest.skip("the render finished before it could be killed (machine too fast for this clip)")
        assert temp.exists(), "the render wrote no temporary within 300 s"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert temp.exists() and not out.exists(), "SIGKILL leaves the temporary and no output"
    # The next run writing the same output (here from another clip, in-process) removes it and completes.
    from vidmoji.pipeline import RenderOptions, render_media
    result = render_media(clip("liveportrait__d0"), RenderOptions(output=out, size=64, device="cpu",
                                                                   show_progress=False))
    assert not temp.exists() and not list(tmp_path.glob(".*"))
    assert _video_frames(out)[0] == result.frames > 0


def test_black_clip_is_no_face_error_and_writes_nothing(corpus, driven):
    for command in ("render", "plot-embeddings", "parse"):
        record, output, case = driven[(command, "black")]
        assert record["exit_code"] == 1 and record["stderr"].strip().endswith(f"error: no face found in {case.path}")
        assert not list(output.parent.iterdir())
