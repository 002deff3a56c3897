"""Shared fixtures. Integration tests run against the real server on loopback, once on the
embedded default (SQLite, SQL one-time store) and once on PostgreSQL + Redis. Expiry rules run on
`clocked_server`, the application in this process on a clock the test moves (support/inprocess.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from support.backends import BACKENDS
from support.server import Server, drop_pg_database, start_server

if TYPE_CHECKING:  # the application is imported only by the tests that start it
    from support.inprocess import InProcessServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the clocked in-process server need no services: `make check` selects them (-m inprocess)."""
    for item in items:
        if {"clocked_server", "start_clocked"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.inprocess)


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


@pytest.fixture
def start_clocked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., InProcessServer]]:
    """Start the demo server in this process, on SQLite and a clock of its own, with FINGRADE_*
    settings of the test's choosing: `srv = start_clocked({...}); srv.clock.advance(seconds)`.
    One per test (the clock stands in for the time of the whole process)."""
    started: list[InProcessServer] = []

    def start(extra_env: dict[str, str] | None = None) -> InProcessServer:
        from support.inprocess import start_in_process

        assert not started, "one clocked server per test"
        started.append(start_in_process(tmp_path, monkeypatch, extra_env))
        return started[0]

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def clocked_server(start_clocked: Callable[..., InProcessServer]) -> InProcessServer:
    """The demo server in this process with the test settings: `clocked_server.clock.advance(seconds)`."""
    return start_clocked()
