#!/usr/bin/env bash
# Installs headless Chromium and its WebDriver for the browser tests (tests/test_web_browser.py),
# from Debian/Ubuntu packages: `chromium` and `chromium-driver`. Idempotent: does nothing when
# both are already installed. No browser is downloaded from anywhere but the apt mirrors.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser.sh: chromium/chromedriver are missing and apt-get is not available;" \
       "install Chromium and a matching chromedriver, or set TASKONOMY_CHROMEDRIVER" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install_browser.sh: installing chromium and chromium-driver with apt-get" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
command -v chromium >/dev/null && command -v chromedriver >/dev/null
