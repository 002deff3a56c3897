"""Integration fixtures beyond the shared `server`: a second server with short lifetimes, for
behaviour the shared one must not show (key rotation, token and session expiry)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.backends import BACKENDS
from support.server import Server, dedicated_server
from support.tokens import client_credentials

TUNED_ENV = {
    "FINGRADE_KEY_RELOAD_SECONDS": "1",  # a rotation reaches the running server within a second
    "FINGRADE_ACCESS_TOKEN_TTL": "30",  # the smallest lifetime the configuration allows
    "FINGRADE_SESSION_TTL": "6",  # sessions the janitor can be seen removing
}


@pytest.fixture(scope="session", params=BACKENDS)
def tuned_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with dedicated_server(tmp_path_factory.mktemp("tuned-" + request.param), request.param, TUNED_ENV) as srv:
        # A token minted at start: by the time the expiry test runs, part of its 30 s are gone.
        with srv.client() as http:
            srv.extra["early_token"] = client_credentials(http, "accounts")["access_token"]
        yield srv
