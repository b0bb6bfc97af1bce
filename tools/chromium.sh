#!/usr/bin/env bash
# The browser tests' Chromium (tests/browser.py): Debian's /usr/bin/chromium, never `playwright install`.
# `make test` runs this first. Where it is missing, it is installed with apt-get when this user can
# (root, Debian/Ubuntu); elsewhere this says how, and the browser tests are skipped (failed under CI).
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "tools/chromium.sh: $CHROMIUM is missing: installing Debian's chromium (apt-get) for the browser tests"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
    echo "tools/chromium.sh: $("$CHROMIUM" --version 2>/dev/null)"
else
    echo "tools/chromium.sh: $CHROMIUM is missing and this user cannot apt-get it;"
    echo "  install it with: sudo apt-get update && sudo apt-get install -y chromium"
    echo "  (until then the browser tests are skipped)"
fi
