"""`pip install vidmoji` gives a working tool: the sdist and the wheel carry the weights, the shipped styles
and their indexes, and the installed tool runs outside the checkout without writing into site-packages.

The wheel is built from the sdist of a copy of the checkout (offline: `--no-build-isolation` uses the
setuptools already installed), installed with `--no-deps` into a fresh virtual environment that sees the
running environment's packages (torch, faiss...) through a .pth line. Such a line adds the folder to sys.path
without running the folder's own .pth files, so an editable vidmoji there cannot take over the import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import MEDIA, clip, needs_media

REPO = Path(__file__).resolve().parents[1]
NOT_SHIPPED = shutil.ignore_patterns(".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", "out", ".cache", "tests", "bench", "docs")


def _run(cmd, cwd, env=None, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{cmd} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def _clean_env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIDMOJI_", "VIRTUAL_ENV"))}
    env.update(extra)
    return env


def _files(root: Path) -> set[str]:
    """Files under root, less the bytecode Python itself may cache on import."""
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def _venv(path: Path) -> tuple[Path, Path]:
    """A fresh venv that also sees this environment's packages: (its python, its site-packages)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     path, _clean_env()).stdout.strip())
    (site / "zz_parent_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(sdist, wheel) built from a copy of the checkout."""
    tmp = tmp_path_factory.mktemp("dists")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=NOT_SHIPPED)
    env = _clean_env()
    _run([sys.executable, "-c", "from setuptools import build_meta as b; b.build_sdist('../sdist')"], src, env)
    (sdist,) = (tmp / "sdist").glob("vidmoji-*.tar.gz")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", tmp / "wheel", unpacked], tmp, env)
    (wheel,) = (tmp / "wheel").glob("vidmoji-*.whl")
    return sdist, wheel


def _shipped(folder: str) -> set[str]:
    return {str(p.relative_to(REPO / folder)).replace(os.sep, "/") for p in (REPO / folder).rglob("*")
            if p.is_file()}


def test_wheel_carries_code_weights_styles_and_indexes(dists):
    _, wheel = dists
    names = set(zipfile.ZipFile(wheel).namelist())
    code = {str(p.relative_to(REPO)).replace(os.sep, "/") for p in (REPO / "vidmoji").rglob("*.py")}
    assert code - names == set(), "modules missing from the wheel (add the subpackage to pyproject's packages)"
    weights = {str(p.relative_to(REPO)).replace(os.sep, "/") for p in (REPO / "vidmoji").glob("*/weights/*")}
    assert weights and weights <= names
    templates = _shipped("templates")
    assert {"flat/style.json", "line/style.json", "cute/style.json"} <= templates
    assert {f"vidmoji/_templates/{t}" for t in templates} <= names
    indexes = _shipped("indexes")
    assert {"flat/ae/meta.json", "flat/pca/meta.json"} <= indexes
    assert {f"vidmoji/_indexes/{i}" for i in indexes} <= names
    print(f"wheel: {wheel.stat().st_size / 2**20:.1f} MiB")


def test_sdist_carries_the_top_level_folders(dists):
    sdist, _ = dists
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {f"templates/{t}" for t in _shipped("templates")} <= names
    assert {f"indexes/{i}" for i in _shipped("indexes")} <= names
    assert {"pyproject.toml", "MANIFEST.in", "README.md"} <= names


@pytest.fixture(scope="module")
def installed(dists, tmp_path_factory):
    """(the venv's python, its site-packages, a home folder, a working folder outside the checkout)."""
    _, wheel = dists
    tmp = tmp_path_factory.mktemp("installed")
    python, site = _venv(tmp / "venv")
    home, work = tmp / "home", tmp / "work"
    home.mkdir()
    work.mkdir()
    # --ignore-installed: never touch a vidmoji of the parent environment (pip sees it through the .pth).
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--ignore-installed", wheel], work,
         _clean_env(HOME=str(home)))
    return python, site, home, work


def _tool_env(home: Path) -> dict[str, str]:
    return _clean_env(HOME=str(home), XDG_CACHE_HOME=str(home / "cache"), MPLCONFIGDIR=str(home / "mpl"))


def _vidmoji(python: Path, *args) -> list[str]:
    return [python, "-m", "vidmoji", *args]


def test_installed_tool_runs_outside_the_checkout(installed, tmp_path):
    python, site, home, work = installed
    env = _tool_env(home)
    where = json.loads(_run([python, "-c", "import json, vidmoji.resources as r; print(json.dumps(["
                             "r.__file__, str(r.checkout_root()), str(r.templates_root())]))"], work, env).stdout)
    assert Path(where[0]).is_relative_to(site), f"vidmoji imported from {where[0]}, not from the wheel"
    assert where[1] == "None" and Path(where[2]) == site / "vidmoji" / "_templates"
    script = python.parent / ("vidmoji.exe" if os.name == "nt" else "vidmoji")
    assert script.is_file(), "the wheel installs no vidmoji command"
    before = _files(site)

    styles = _run([script, "styles"], work, env).stdout.splitlines()
    assert sorted(line.split()[0] for line in styles) == ["cute", "flat", "line"]

    if MEDIA.is_dir():
        photo = MEDIA / "image" / "scikit-image__astronaut.png"
        out = _run([script, "render", photo, "-o", tmp_path / "astronaut.png", "--size", "128",
                    "--device", "cpu"], work, env)
        assert "rebuilding" not in out.stdout + out.stderr, "the shipped index was not used"
        assert (tmp_path / "astronaut.png").stat().st_size > 0
        out = _run([script, "render", clip("liveportrait__d0"), "-o", tmp_path / "d0.mp4", "--size", "128",
                    "--style", "line", "--device", "cpu"], work, env)
        assert "rebuilding" not in out.stdout + out.stderr
        assert (tmp_path / "d0.mp4").stat().st_size > 0

    out = _run([script, "index", "--style", "flat", "--device", "cpu"], work, env).stdout
    built = home / "cache" / "vidmoji" / "indexes" / "flat" / "ae"
    assert f"wrote {built}" in out and (built / "meta.json").is_file()

    assert _files(site) == before, "the installed tool wrote into site-packages"
    assert _files(work) == set(), "the installed tool wrote into the working folder"


@needs_media
def test_render_media_is_there():
    """The render part of test_installed_tool_runs_outside_the_checkout needs ../shared/media."""
    assert (MEDIA / "image" / "scikit-image__astronaut.png").is_file() and clip("liveportrait__d0").is_file()


def test_editable_install_uses_the_checkouts_folders(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=NOT_SHIPPED)
    python, site = _venv(tmp_path / "venv")
    env = _clean_env(HOME=str(tmp_path))
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
          "--ignore-installed", "-e", src], tmp_path, env)
    out = _run([python, "-c", "import vidmoji.resources as r; from vidmoji.avatar.templates import list_styles; "
                "print(r.__file__); print(r.templates_root()); print(r.shipped_indexes_root()); "
                "print(','.join(list_styles()))"], tmp_path, env).stdout.splitlines()
    assert out == [str(src / "vidmoji" / "resources.py"), str(src / "templates"), str(src / "indexes"),
                   "cute,flat,line"]
