#!/usr/bin/env bash
# Chromium for the browser test (tests/test_browser.py): Debian's `chromium` package, installed with
# apt-get when it is missing, as root or through sudo that asks no password. Where that is not
# possible it says so and exits 0: the browser test then skips and says how to get a browser.
# (Playwright drives this system browser; `playwright install` and its downloads are never used.)
set -euo pipefail

if [ -n "${PTM_CHROMIUM:-}" ]; then
    echo "browser test: Chromium from PTM_CHROMIUM=$PTM_CHROMIUM"
    exit 0
fi
if found=$(command -v chromium || command -v chromium-browser); then
    echo "browser test: Chromium at $found"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "browser test: no Chromium and no apt-get; install Chromium or set PTM_CHROMIUM (the test skips)" >&2
    exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "browser test: no Chromium, and installing it needs root: run 'sudo apt-get install chromium' (the test skips)" >&2
    exit 0
fi
echo "browser test: installing Debian's chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get install -y -q chromium >/dev/null; then
    "${as_root[@]}" apt-get update -q >/dev/null || true   # package lists may be missing or stale
    "${as_root[@]}" apt-get install -y -q chromium >/dev/null \
        || { echo "browser test: apt-get could not install chromium (the test skips)" >&2; exit 0; }
fi
echo "browser test: Chromium at $(command -v chromium)"
