"""Ledger tests run on a real database: a fresh SQLite file per test, and one PostgreSQL database
per session (tests there use their own fresh accounts, and the ledger invariants are global)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.backends import BACKENDS
from support.server import _create_pg_database, drop_pg_database


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    if "postgres" not in BACKENDS:
        yield ""
        return
    url = _create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str) -> str:
    return f"sqlite:///{tmp_path / 'bank.db'}" if request.param == "sqlite" else pg_url


@pytest.fixture(params=BACKENDS)
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own, for tests that break the books on purpose or count everything."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bank.db'}"
        return
    url = _create_pg_database()
    yield url
    drop_pg_database(url)
