#!/usr/bin/env bash
# System packages that some tests need, installed by `make install` where it can: Debian's chromium (headless
# browser tests of the served live page and the animated SVG stickers). Never fatal: where it cannot be
# installed (not root, no apt, no network) the tests that need it skip and say why.
set -u
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: chromium is not installed and this is not a root Debian/Ubuntu shell; the browser tests will skip" >&2
    exit 0
fi
if ! (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)); then
    echo "note: apt-get could not install chromium; the browser tests will skip" >&2
fi
exit 0
