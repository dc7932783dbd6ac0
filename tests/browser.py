"""Headless Chromium for the tests that must see a page or an SVG as a browser draws it.

`make install` installs Debian's chromium where it can (scripts/install_system.sh); where it is missing,
`chromium_or_skip()` skips the test and says why.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest

# Flags for a closed network and a root shell: no sandbox, no GPU, no background connections, a fresh profile.
_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--hide-scrollbars", "--mute-audio")


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_or_skip() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip("headless Chromium is not installed (make install installs Debian's chromium as root; "
                    "apt-get install chromium)")
    return path


def screenshot(url: str, out_png: Path, size: tuple[int, int] = (512, 512), wait_ms: int = 0,
               transparent: bool = False, timeout: float = 60.0, real_ms: int = 0) -> np.ndarray:
    """Open url in headless Chromium, screenshot it at size (w, h) to out_png; returns (h, w, 3|4) uint8.

    wait_ms: virtual time to let the page run (animations, scripts) before the picture is taken.
    real_ms: instead, the picture is taken after this many real milliseconds, for a page that never stops
    fetching (virtual time stands still while a fetch is pending, so a live page's picture came only when
    its stream ended).
    transparent: keep the page's transparent background (RGBA) instead of white.
    """
    import cv2

    chromium = chromium_or_skip()
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium, *_FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
               f"--screenshot={out_png}"]
        if real_ms:
            cmd.append(f"--timeout={int(real_ms)}")
        elif wait_ms:
            cmd.append(f"--virtual-time-budget={int(wait_ms)}")
        if transparent:
            cmd.append("--default-background-color=00000000")
        subprocess.run(cmd + [url], check=True, timeout=timeout, capture_output=True)
    img = cv2.imread(str(out_png), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise AssertionError(f"chromium wrote no screenshot to {out_png}")
    return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA if img.shape[2] == 4 else cv2.COLOR_BGR2RGB)
