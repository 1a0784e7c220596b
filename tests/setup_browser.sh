#!/usr/bin/env bash
# Headless Chromium for tests/test_browser.py, from Debian's own package (the
# tests drive it with Playwright from PyPI and never run `playwright install`).
# Idempotent: does nothing when /usr/bin/chromium is there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "setup_browser.sh: /usr/bin/chromium is missing and there is no apt-get;" \
         "install Chromium so that /usr/bin/chromium exists" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# fonts-dejavu-core: readable text in the screenshots on a bare machine
$SUDO apt-get install -y -qq chromium fonts-dejavu-core >/dev/null
test -x /usr/bin/chromium
echo "setup_browser.sh: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
