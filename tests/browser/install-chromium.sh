#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright drives it with executable_path; its own
# browser downloads are not used). Idempotent: does nothing when Chromium is already installed.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q chromium
/usr/bin/chromium --version
