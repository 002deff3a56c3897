"""Shared fixtures. Integration tests run against the real server on loopback, once on the
embedded default (SQLite, SQL one-time store) and once on PostgreSQL + Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.backends import BACKENDS
from support.server import Server, drop_pg_database, start_server


@pytest.fixture(scope="session", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp(request.param), backend=request.param)
    yield srv
    srv.stop()
    if srv.backend == "postgres":
        drop_pg_database(srv.env["FINGRADE_DATABASE_URL"])


@pytest.fixture
def browser(server: Server) -> Iterator:
    """A cookie-keeping HTTP client that does not follow redirects (we inspect each one)."""
    with server.client(follow_redirects=False) as client:
        yield client


@pytest.fixture
def http(server: Server) -> Iterator:
    with server.client() as client:
        yield client
