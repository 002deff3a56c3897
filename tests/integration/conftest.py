"""Integration fixtures beyond the shared `server`: a second server with settings the shared one
must not have (key rotation reaching a running server, a short access token lifetime)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.backends import BACKENDS
from support.server import Server, dedicated_server

TUNED_ENV = {
    "FINGRADE_KEY_RELOAD_SECONDS": "1",  # a rotation reaches the running server within a second
    "FINGRADE_ACCESS_TOKEN_TTL": "30",  # the smallest lifetime the configuration allows
}


@pytest.fixture(scope="session", params=BACKENDS)
def tuned_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with dedicated_server(tmp_path_factory.mktemp("tuned-" + request.param), request.param, TUNED_ENV) as srv:
        yield srv
