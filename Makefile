.PHONY: demo test bench

# Run the server with its embedded default: SQLite in ./fingrade-data, demo bank users and
# clients, HTTPS on https://localhost:8443 with a self-signed development certificate.
demo:
	scripts/setup.sh
	.venv/bin/fingrade serve --demo

# The whole test suite (starts PostgreSQL/Redis if they are down, installs Chromium and npm deps).
test:
	scripts/test.sh

# Load benchmark of docs/performance.md (server pinned to core 0, driver to core 1).
bench:
	scripts/setup.sh
	.venv/bin/pip install -q -e '.[bench]'
	.venv/bin/python bench/run.py
