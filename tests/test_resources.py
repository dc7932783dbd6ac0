"""Where vidmoji finds its styles and indexes, and where it builds the indexes it has to build."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidmoji import resources

REPO = Path(__file__).resolve().parents[1]


def test_a_checkout_uses_its_top_level_folders():
    assert resources.checkout_root() == REPO
    assert resources.templates_root() == REPO / "templates"
    assert resources.shipped_indexes_root() == REPO / "indexes"


def test_an_installed_package_uses_its_own_copies(monkeypatch, tmp_path):
    pkg = tmp_path / "site-packages" / "vidmoji"
    pkg.mkdir(parents=True)
    monkeypatch.setattr(resources, "PACKAGE_DIR", pkg)
    assert resources.checkout_root() is None
    assert resources.templates_root() == pkg / "_templates"
    assert resources.shipped_indexes_root() == pkg / "_indexes"


@pytest.mark.parametrize("platform", ["linux", "freebsd13"])
def test_cache_dir_follows_xdg(monkeypatch, tmp_path, platform):
    monkeypatch.setattr(resources.sys, "platform", platform)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resources.user_cache_dir() == tmp_path / "xdg" / "vidmoji"
    assert resources.cache_indexes_root() == tmp_path / "xdg" / "vidmoji" / "indexes"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    assert resources.user_cache_dir() == tmp_path / "home" / ".cache" / "vidmoji"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resources.user_cache_dir() == tmp_path / "home" / ".cache" / "vidmoji"


def test_cache_dir_on_macos_and_windows(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(resources.sys, "platform", "darwin")
    assert resources.user_cache_dir() == tmp_path / "Library" / "Caches" / "vidmoji"
    monkeypatch.setattr(resources.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "Local"))
    assert resources.user_cache_dir() == tmp_path / "Local" / "vidmoji" / "Cache"


def test_is_writable_dir(tmp_path):
    assert resources.is_writable_dir(tmp_path / "not" / "made" / "yet")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        import os
        if os.geteuid() != 0:  # root writes anywhere
            assert not resources.is_writable_dir(ro / "indexes")
    finally:
        ro.chmod(0o755)


# --- where each style's index is read and built (vidmoji.avatar.index.index_locations) ---------------------


@pytest.fixture
def flat():
    from vidmoji.avatar.templates import load_style
    return load_style("flat")


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.delenv(resources.INDEXES_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(resources.sys, "platform", "linux")
    return tmp_path / "xdg" / "vidmoji" / "indexes"


def test_checkout_rebuilds_shipped_indexes_in_place(flat, cache):
    from vidmoji.avatar.index import index_locations
    reads, write = index_locations(flat, "ae")
    assert reads == (REPO / "indexes" / "flat" / "ae",) and write == reads[0]


def test_installed_shipped_indexes_rebuild_into_the_cache(cache, monkeypatch, tmp_path):
    from vidmoji.avatar.index import index_locations
    from vidmoji.avatar.templates import load_style
    pkg = tmp_path / "site-packages" / "vidmoji"   # an installed package, its data as the wheel lays it out
    pkg.mkdir(parents=True)
    (pkg / "_templates").symlink_to(REPO / "templates")
    (pkg / "_indexes").symlink_to(REPO / "indexes")
    monkeypatch.setattr(resources, "PACKAGE_DIR", pkg)
    reads, write = index_locations(load_style("flat", resources.templates_root()), "ae")
    assert reads == (pkg / "_indexes" / "flat" / "ae", cache / "flat" / "ae") and write == reads[1]


def test_read_only_checkout_rebuilds_into_the_cache(flat, cache, monkeypatch):
    from vidmoji.avatar.index import index_locations
    monkeypatch.setattr(resources, "is_writable_dir", lambda path: False)
    reads, write = index_locations(flat, "ae")
    assert reads == (REPO / "indexes" / "flat" / "ae", cache / "flat" / "ae") and write == reads[1]


def test_users_own_styles_index_into_the_cache(flat, cache, tmp_path):
    import shutil
    from vidmoji.avatar.index import index_locations
    from vidmoji.avatar.templates import load_style
    mine = tmp_path / "mine"
    shutil.copytree(REPO / "templates" / "flat", mine / "flat")
    reads, write = index_locations(load_style("flat", mine), "ae")
    assert reads == (write,) and write.parent.parent == cache and write.parent.name.startswith("flat-")
    assert write != index_locations(flat, "ae")[1]


def test_vidmoji_indexes_overrides(flat, cache, monkeypatch, tmp_path):
    from vidmoji.avatar.index import index_dir, index_locations
    monkeypatch.setenv(resources.INDEXES_ENV, str(tmp_path / "elsewhere"))
    assert index_locations(flat, "pca") == ((tmp_path / "elsewhere" / "flat" / "pca",),
                                            tmp_path / "elsewhere" / "flat" / "pca")
    assert index_dir(flat, "pca") == tmp_path / "elsewhere" / "flat" / "pca"
    assert index_dir(flat, "pca", tmp_path / "given") == tmp_path / "given" / "flat" / "pca"
