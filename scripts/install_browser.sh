#!/usr/bin/env bash
# Headless Chromium for the browser tests, from Debian's package (test tools must
# not download a browser of their own). Installs only when missing and running
# as root with apt; otherwise says so, and the browser tests skip themselves.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: installing Debian's chromium (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium >/dev/null
    command -v chromium
else
    echo "install_browser: chromium not found and not root with apt-get;" \
         "browser tests will be skipped (install it with: sudo apt-get install chromium)" >&2
fi
