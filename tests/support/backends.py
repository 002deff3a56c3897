"""The storage backends the server-backed tests run on: `sqlite` (the embedded default: SQLite and
the SQL one-time store) and `postgres` (PostgreSQL and Redis). FINGRADE_TEST_BACKENDS narrows the
list, e.g. `FINGRADE_TEST_BACKENDS=sqlite`; the first one listed is the backend of tests that run
on one backend only."""

from __future__ import annotations

import os

BACKENDS = os.environ.get("FINGRADE_TEST_BACKENDS", "sqlite,postgres").split(",")
