"""The command line as a user meets it: fast help, the styles, index building, parse, and errors."""

from __future__ import annotations

import os
import subprocess
import sys

import cv2
import numpy as np

from conftest import MEDIA, needs_media


def run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vidmoji", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_help_and_version_do_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from vidmoji.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "assert 'render' in r.output and 'plot-embeddings' in r.output; "
            "assert 'torch' not in sys.modules and 'faiss' not in sys.modules and 'cv2' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("vidmoji ")


def test_styles_lists_three_with_licence():
    r = run("styles")
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 3
    assert all("licence" in line and "mouth" in line for line in lines)


def test_index_builds_and_says_what_it_wrote(tmp_path):
    env = dict(os.environ, VIDMOJI_INDEXES=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "vidmoji", "index", "--style", "flat", "--embedder", "pca",
                        "--device", "cpu"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "flat" / "pca"
    assert (out / "meta.json").is_file() and len(list(out.glob("*.faiss"))) == 8     # 7 per-frame slots + hair
    assert str(out) in r.stdout


def test_unknown_embedder_and_style_are_one_line_errors():
    for args in (("index", "--embedder", "nope"), ("index", "--style", "nope")):
        r = run(*args)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        lines = r.stderr.strip().splitlines()
        assert lines[-1].startswith("error:") and "nope" in lines[-1]
        assert sum(line.startswith("error:") for line in lines) == 1


@needs_media
def test_parse_draws_the_parts_on_the_astronaut(tmp_path):
    out = tmp_path / "parsed.png"
    r = run("parse", str(MEDIA / "image" / "scikit-image__astronaut.png"), "-o", str(out), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert str(out) in r.stdout
    src = cv2.imread(str(MEDIA / "image" / "scikit-image__astronaut.png"))
    drawn = cv2.imread(str(out))
    assert drawn.shape == src.shape
    changed = np.abs(drawn.astype(int) - src.astype(int)).sum(-1) > 30
    ys, xs = np.nonzero(changed)
    # The face of the astronaut is in the upper middle of the picture (x 150-300, y 50-250).
    assert changed.mean() > 0.02
    assert 150 < np.median(xs) < 300 and 50 < np.median(ys) < 250
