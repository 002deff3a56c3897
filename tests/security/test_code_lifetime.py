"""An intercepted code is worth something only for seconds: codes expire (FAPI 2.0 SP
5.3.2.1-11: at most 60 s; RFC 6749 §4.1.2: short-lived). The server runs in this process with the
default code_ttl of 60 s, on a clock the test moves."""

from __future__ import annotations

import httpx
from support.demo import NATIVE, NATIVE_REDIRECT
from support.flow import run_flow
from support.inprocess import InProcessServer
from support.refusals import assert_oauth_error


def test_expired_code_refused_fapi2_sp_5_3_2_1_11(clocked_server: InProcessServer) -> None:
    clocked_server.clock.freeze()  # to the second: a code issued at t is good until t + 60
    with clocked_server.client(follow_redirects=False) as browser:
        got = run_flow(browser, NATIVE, NATIVE_REDIRECT)
        fresh = run_flow(browser, NATIVE, NATIVE_REDIRECT)
        # Control: inside its lifetime the code works.
        clocked_server.clock.advance(60)
        ok = _redeem(browser, fresh.code, fresh.verifier)
        assert ok.status_code == 200, ok.text
        clocked_server.clock.advance(1)
        assert_oauth_error(_redeem(browser, got.code, got.verifier), "invalid_grant")


def _redeem(browser: httpx.Client, code: str, verifier: str) -> httpx.Response:
    return browser.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": NATIVE_REDIRECT,
            "client_id": NATIVE,
            "code_verifier": verifier,
        },
    )
