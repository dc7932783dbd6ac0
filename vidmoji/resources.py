"""Where vidmoji's data lives: the shipped styles (`templates/`), their prebuilt indexes (`indexes/`) and the
user's cache folder, for indexes that have to be built on the user's machine.

The repository keeps `templates/` and `indexes/` at its top level; the wheel carries the same folders inside
the package, as `vidmoji/_templates/` and `vidmoji/_indexes/` (pyproject.toml maps them). Running from a source
checkout (or an editable install of one) uses the top-level folders, an installed package its own copies.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
INDEXES_ENV = "VIDMOJI_INDEXES"


def checkout_root() -> Path | None:
    """The source checkout that holds this package (pyproject.toml and templates/ beside it), else None."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "templates").is_dir():
        return root
    return None


def _data_dir(name: str) -> Path:
    root = checkout_root()
    return root / name if root is not None else PACKAGE_DIR / f"_{name}"


def templates_root() -> Path:
    """The shipped styles: the checkout's templates/, else the installed package's copy."""
    return _data_dir("templates")


def shipped_indexes_root() -> Path:
    """The shipped indexes: the checkout's indexes/, else the installed package's copy."""
    return _data_dir("indexes")


def indexes_override() -> Path | None:
    """VIDMOJI_INDEXES, when set: the one folder indexes are read from and written to."""
    value = os.environ.get(INDEXES_ENV)
    return Path(value) if value else None


def user_cache_dir() -> Path:
    """vidmoji's cache folder: $XDG_CACHE_HOME/vidmoji (default ~/.cache/vidmoji), ~/Library/Caches/vidmoji
    on macOS, %LOCALAPPDATA%\\vidmoji\\Cache on Windows (the folders platformdirs would give)."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return (Path(base) if base else Path.home() / "AppData" / "Local") / "vidmoji" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "vidmoji"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec ignores relative paths.
    return (Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache") / "vidmoji"


def cache_indexes_root() -> Path:
    """Where indexes built on the user's machine go."""
    return user_cache_dir() / "indexes"


def is_writable_dir(path: Path) -> bool:
    """True when files can be created in path (or, for a folder not made yet, in its nearest existing parent)."""
    path = Path(path)
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)
