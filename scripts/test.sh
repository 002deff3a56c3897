#!/usr/bin/env bash
# The whole test suite: unit, integration (SQLite and PostgreSQL+Redis), security, browser
# (headless Chromium) and interop (Authlib, openid-client), after ruff and mypy. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/services.sh
[ -x tests/browser/install-chromium.sh ] && tests/browser/install-chromium.sh
[ -x tests/mtls/install-nginx.sh ] && tests/mtls/install-nginx.sh
[ -x tests/interop/install-node-deps.sh ] && tests/interop/install-node-deps.sh
.venv/bin/ruff check src tests bench examples scripts
.venv/bin/ruff format --check src tests bench examples scripts
.venv/bin/mypy  # configuration and files: [tool.mypy] in pyproject.toml
exec .venv/bin/python -m pytest "$@"
