.PHONY: demo test check bench

# Run the server with its embedded default: SQLite in ./fingrade-data, demo bank users and
# clients, HTTPS on https://localhost:8443 with a self-signed development certificate.
demo:
	scripts/setup.sh
	.venv/bin/fingrade serve --demo

# The whole test suite (starts PostgreSQL/Redis if they are down, installs Chromium and npm deps).
test:
	scripts/test.sh

# The fast loop, under a minute and without services (no PostgreSQL, Redis, Chromium, nginx or npm):
# lint, format, types, the package layers, the unit tests, the store contracts on SQLite and in
# memory, the ledger on SQLite, the docs' test references, and the tests on the clocked in-process
# server (docs/testing.md).
check: .venv/bin/pytest
	.venv/bin/ruff check src tests bench examples scripts
	.venv/bin/ruff format --check src tests bench examples scripts
	.venv/bin/mypy
	FINGRADE_TEST_BACKENDS=sqlite .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_layers.py tests/unit tests/stores tests/bank tests/test_docs_references.py
	.venv/bin/python -m pytest -q -p no:cacheprovider -m inprocess tests/integration tests/security

.venv/bin/pytest:
	scripts/setup.sh --test

# Load benchmark of docs/performance.md (server pinned to core 0, driver to core 1).
bench:
	scripts/setup.sh
	.venv/bin/pip install -q -e '.[bench]'
	.venv/bin/python bench/run.py
