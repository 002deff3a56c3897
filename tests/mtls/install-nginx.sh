#!/usr/bin/env bash
# Debian's nginx for the mutual-TLS tests behind a TLS-terminating proxy (tests/mtls). The tests run
# the binary as a plain subprocess with their own configuration and prefix in a temporary directory;
# no system service is used. Idempotent: does nothing when nginx is already installed.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q nginx
/usr/sbin/nginx -v
