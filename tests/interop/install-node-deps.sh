#!/usr/bin/env bash
# Install openid-client for the interop tests (tests/interop/node) from the committed package-lock.json,
# with the machine's Node.js and npm. Idempotent: does nothing when the installed tree matches the lock.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/node" && pwd)"

command -v node >/dev/null || { echo "install-node-deps: node is not installed (Node.js >= 20 is needed)" >&2; exit 1; }
command -v npm >/dev/null || { echo "install-node-deps: npm is not installed" >&2; exit 1; }

# npm records the installed tree in node_modules/.package-lock.json; reinstall when it is missing or
# older than the committed lock (someone bumped a version).
installed="$dir/node_modules/.package-lock.json"
if [[ -f "$installed" && -f "$dir/node_modules/openid-client/package.json" && ! "$dir/package-lock.json" -nt "$installed" ]]; then
  exit 0
fi
echo "install-node-deps: npm ci in $dir"
cd "$dir"
npm ci --no-audit --no-fund --loglevel=error
