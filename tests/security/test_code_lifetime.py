"""An intercepted code is worth something only for seconds: codes expire (FAPI 2.0 SP
5.3.2.1-11: at most 60 s; RFC 6749 §4.1.2: short-lived). A second server of the same backend runs
with code_ttl = 2 so the test does not wait a minute."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from support.demo import NATIVE, NATIVE_REDIRECT
from support.flow import run_flow
from support.refusals import assert_oauth_error
from support.server import Server, drop_pg_database, start_server


@pytest.fixture(scope="module")
def short_code_server(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("short-code-" + server.backend),
        backend=server.backend,
        extra_env={"FINGRADE_CODE_TTL": "2"},
    )
    yield srv
    srv.stop()
    if srv.backend == "postgres":
        drop_pg_database(srv.env["FINGRADE_DATABASE_URL"])


def test_expired_code_refused_fapi2_sp_5_3_2_1_11(short_code_server: Server) -> None:
    with short_code_server.client(follow_redirects=False) as browser:
        got = run_flow(browser, NATIVE, NATIVE_REDIRECT)
        fresh = run_flow(browser, NATIVE, NATIVE_REDIRECT)
        issued = time.monotonic()
        # Control: inside its lifetime the code works.
        ok = _redeem(browser, fresh.code, fresh.verifier)
        assert ok.status_code == 200, ok.text
        time.sleep(max(0.0, 3.2 - (time.monotonic() - issued)))
        assert_oauth_error(_redeem(browser, got.code, got.verifier), "invalid_grant")


def _redeem(browser: httpx.Client, code: str, verifier: str) -> httpx.Response:
    return browser.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": NATIVE,
            "redirect_uri": NATIVE_REDIRECT,
            "code_verifier": verifier,
        },
    )
