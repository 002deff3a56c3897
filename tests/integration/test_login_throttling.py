"""Failed logins are throttled per account and per address (issue 2, §6; NIST SP 800-63B §5.2.2),
and a throttled attempt is refused without checking the password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.flow import authorize_url, login, pkce_pair
from support.server import DEMO_PASSWORD, Server, start_server


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(Path(tmp_path_factory.mktemp("throttle")), extra_env={
        "FINGRADE_LOGIN_MAX_FAILURES_PER_ADDRESS": "4", "FINGRADE_LOGIN_MAX_FAILURES_PER_ACCOUNT": "3"})
    yield srv
    srv.stop()


def _login_page(browser: httpx.Client) -> httpx.Response:
    _, challenge = pkce_pair()
    resp = browser.get(authorize_url("demo-native", "http://127.0.0.1:5000/callback", challenge, prompt="login"))
    assert resp.status_code == 303
    return browser.get(resp.headers["location"])


def _attempt(server: Server, username: str, password: str) -> httpx.Response:
    with server.client(follow_redirects=False) as browser:
        return login(browser, _login_page(browser), username, password)


def test_per_account_limit(strict: Server) -> None:
    for _ in range(3):
        assert _attempt(strict, "bob", "wrong-password-123").status_code == 401
    # The right password no longer helps while the account is throttled.
    resp = _attempt(strict, "bob", DEMO_PASSWORD)
    assert resp.status_code == 429 and "Too many" in resp.text
    # Other accounts are not locked by bob's failures (until the address limit).
    assert _attempt(strict, "alice", DEMO_PASSWORD).status_code == 303


def test_per_address_limit_covers_every_account(strict: Server) -> None:
    # 3 failures for bob above; one more failure on an unknown name reaches the address limit of 4.
    assert _attempt(strict, "nobody-here", "wrong-password-123").status_code == 401
    resp = _attempt(strict, "alice", DEMO_PASSWORD)
    assert resp.status_code == 429
