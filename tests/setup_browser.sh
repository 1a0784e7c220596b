#!/usr/bin/env bash
# What tests/test_browser.py needs beyond Python:
#  - headless Chromium from Debian's own package (the tests drive it with
#    Playwright from PyPI and never run `playwright install`);
#  - java (Debian's default-jre-headless) for the Nu HTML Checker;
#  - the checkers themselves, pinned in tests/package.json and
#    tests/package-lock.json: `npm ci` into tests/node_modules (git-ignored),
#    with install scripts off (vnu-jar's would download a Java runtime).
# Idempotent: installs only what is missing.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium fonts-dejavu-core)
command -v java >/dev/null || packages+=(default-jre-headless)
command -v npm >/dev/null || packages+=(npm)

if [ "${#packages[@]}" -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "setup_browser.sh: missing ${packages[*]} and there is no apt-get;" \
             "install Chromium (/usr/bin/chromium), java and npm" >&2
        exit 1
    fi
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
        SUDO="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # fonts-dejavu-core: readable text in the screenshots on a bare machine
    $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
fi
test -x /usr/bin/chromium
java -version >/dev/null 2>&1

# node_modules/.installed-lock: the lock file it was installed from
if ! cmp -s "$HERE/package-lock.json" "$HERE/node_modules/.installed-lock"; then
    (cd "$HERE" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    cp "$HERE/package-lock.json" "$HERE/node_modules/.installed-lock"
fi
test -f "$HERE/node_modules/vnu-jar/build/dist/vnu.jar"
test -f "$HERE/node_modules/axe-core/axe.min.js"
echo "setup_browser.sh: $(/usr/bin/chromium --version 2>/dev/null || echo chromium)," \
     "$(java -version 2>&1 | head -1), vnu-jar and axe-core in tests/node_modules"
