"""Disabling a customer (`fingrade users disable`) ends all their access at once, on the real server,
both backends: the sign-in session (no `prompt=none` code, no connected-apps page), refresh tokens,
access tokens at userinfo and introspection (RFC 7662 §2.2 `active: false`), and at the bank API
within its introspection cache time (`bank_introspection_cache_seconds`, 2 s on this server).
`fingrade users enable` lets the customer sign in again; what was revoked stays revoked. Audited."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from support.bank import Fintech, account_information
from support.database import audit_events, user_id
from support.demo import BASIC, NATIVE_REDIRECT
from support.flow import CSRF, authorize_url, pkce_pair, query_of
from support.operator import new_user
from support.polling import wait_for
from support.server import Server
from support.tokens import bearer, introspect

from fingrade.config import load_settings
from fingrade.oauth.models import Grant, RefreshToken, Session
from fingrade.oauth.token_formats import mint_access_token
from fingrade.protocol.crypto import new_token, token_hash
from fingrade.runtime import build_core, close_core

pytestmark = [pytest.mark.login, pytest.mark.revocation]

# Listed accounts: a fresh user owns none, so the consent page has nothing to pick (the bank answers []).
DETAIL = account_information(accounts=[{"iban": "GB33BUKB20201555555555"}])


@pytest.fixture(scope="module")
def fintech(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Fintech:
    return Fintech(server, tmp_path_factory.mktemp("disable-fintech"))


def connect(fintech: Fintech, browser: httpx.Client, username: str) -> dict[str, Any]:
    """PAR + sign-in + consent in `browser` (its session stays), then the token response."""
    fc = fintech.client
    with fintech.server.client() as http:
        params, verifier = fc.request_params(scope="openid accounts", authorization_details=json.dumps([DETAIL]))
        pushed = fc.push(http, params)
        assert pushed.status_code == 201, pushed.text
        got = fc.authorize(browser, pushed.json()["request_uri"], verifier, username=username)
        assert got.code, got.params
        resp = fc.redeem(http, got)
    assert resp.status_code == 200, resp.text
    return resp.json()


def silent_authorize(fintech: Fintech, browser: httpx.Client) -> dict[str, str]:
    """prompt=none from the browser's session (OIDC Core §3.1.2.1): a code, or an error, never a page."""
    fc = fintech.client
    with fintech.server.client() as http:
        params, _ = fc.request_params(scope="openid accounts", prompt="none")
        pushed = fc.push(http, params)
        assert pushed.status_code == 201, pushed.text
    resp = browser.get("/authorize", params={"client_id": fc.client_id, "request_uri": pushed.json()["request_uri"]})
    assert resp.status_code == 303 and resp.headers["location"].startswith(fc.redirect_uri), resp.text[:300]
    return query_of(resp.headers["location"])


def userinfo(fintech: Fintech, http: httpx.Client, token: str) -> int:
    proof = fintech.client.dpop.proof("GET", fintech.server.issuer + "/userinfo", token=token)
    return http.get("/userinfo", headers={"Authorization": f"DPoP {token}", "DPoP": proof}).status_code


def active(fintech: Fintech, http: httpx.Client, token: str) -> bool:
    resp = http.post("/introspect", data={"token": token, **fintech.client.auth_params()})
    assert resp.status_code == 200, resp.text
    return resp.json()["active"]


def refresh(fintech: Fintech, http: httpx.Client, refresh_token: str) -> httpx.Response:
    return http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, **fintech.client.auth_params()},
        headers=fintech.client.dpop_header("/token"),
    )


def can_sign_in(server: Server, username: str, password: str) -> bool:
    with server.client(follow_redirects=False) as browser:
        page = browser.get("/account/login")
        resp = browser.post(
            "/account/login",
            data={"username": username, "password": password, "csrf_token": CSRF.search(page.text).group(1)},
        )
        return resp.status_code == 303


def test_disable_ends_sessions_grants_and_tokens_at_once(server: Server, fintech: Fintech) -> None:
    username, password = new_user(server)
    with server.client(follow_redirects=False) as browser, server.client() as http:
        tokens = connect(fintech, browser, username)
        access, rt = tokens["access_token"], tokens["refresh_token"]
        assert "code" in silent_authorize(fintech, browser)
        assert browser.get("/account/connections").status_code == 200
        assert userinfo(fintech, http, access) == 200 and active(fintech, http, access)
        assert fintech.get(http, "/accounts", access).status_code == 200  # the bank may cache this answer

        out = server.cli("users", "disable", username)
        disabled_at = time.monotonic()
        assert "disabled" in out.stdout and "1 sessions ended" in out.stdout, out.stdout

        # At the authorization server: at once.
        assert silent_authorize(fintech, browser).get("error") == "login_required"
        resp = browser.get("/account/connections")
        assert resp.status_code == 303 and resp.headers["location"] == "/account/login"
        refused = refresh(fintech, http, rt)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
        assert userinfo(fintech, http, access) == 401
        assert not active(fintech, http, access) and not active(fintech, http, rt)
        # At the bank: within its introspection cache time (2 s of the running server's own clock;
        # test_bank_api.py checks the cache's lapse to the second on a moved clock).
        wait_for(lambda: fintech.get(http, "/accounts", access).status_code == 401, timeout=4, interval=0.2)
        assert time.monotonic() - disabled_at <= server_cache_seconds(server) + 2
        assert not can_sign_in(server, username, password)

        out = server.cli("users", "enable", username)
        assert "enabled" in out.stdout
        assert can_sign_in(server, username, password)
        # What was revoked stays revoked.
        assert refresh(fintech, http, rt).status_code == 400 and not active(fintech, http, access)
    uid = user_id(server, username)
    (event,) = audit_events(server, "user_disabled", user_id=uid)
    assert json.loads(event[4])["by"] == "cli" and len(json.loads(event[4])["grants"]) >= 1
    assert audit_events(server, "user_enabled", user_id=uid)
    listed = [line.split("\t") for line in server.cli("users", "list").stdout.splitlines()]
    assert [row[3] for row in listed if row[0] == username] == ["active"]


def test_code_issued_before_the_disable_is_refused_at_the_token_endpoint(server: Server, fintech: Fintech) -> None:
    """A code (it lives up to 60 s) issued just before the disable gets no tokens: fail closed at the
    redemption rather than answer 200 with tokens that are dead everywhere."""
    username, _ = new_user(server)
    fc = fintech.client
    with server.client(follow_redirects=False) as browser, server.client() as http:
        params, verifier = fc.request_params(scope="openid accounts", authorization_details=json.dumps([DETAIL]))
        pushed = fc.push(http, params)
        assert pushed.status_code == 201, pushed.text
        got = fc.authorize(browser, pushed.json()["request_uri"], verifier, username=username)
        assert got.code, got.params
        server.cli("users", "disable", username)
        resp = fc.redeem(http, got)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant", resp.text


def server_cache_seconds(server: Server) -> float:
    return load_settings(environ=server.env).bank_introspection_cache_seconds


def test_nothing_a_disabled_user_holds_works_even_if_it_slipped_in(server: Server) -> None:
    """Fail closed: a session, grant, refresh token or access token of a disabled user that slipped in
    (a sign-in or code redemption racing the disable) is refused where it is read."""
    username, _ = new_user(server)
    server.cli("users", "disable", username)
    cookie, rt = new_token(32), new_token(32)

    async def plant() -> str:
        core = await build_core(load_settings(environ=server.env), migrate=False)
        try:
            now = core.clock()
            uid = (await core.store.get_user_by_username(username)).id
            await core.store.create_session(
                Session(id_hash=token_hash(cookie), user_id=uid, auth_time=now, expires_at=now + 600)
            )
            grant = Grant(
                id=new_token(16),
                client_id="demo-backend",
                user_id=uid,
                scope="openid profile",
                auth_time=now,
                created_at=now,
            )
            await core.store.create_grant(grant)
            await core.store.save_refresh_token(
                RefreshToken(
                    token_hash=token_hash(rt),
                    grant_id=grant.id,
                    client_id="demo-backend",
                    user_id=uid,
                    scope=grant.scope,
                    created_at=now,
                    expires_at=now + 600,
                )
            )
            token, _ = await mint_access_token(
                core, sub=uid, client_id="demo-backend", scope=grant.scope, grant_id=grant.id, auth_time=now
            )
            return token
        finally:
            await close_core(core)

    access = asyncio.run(plant())
    with server.client(follow_redirects=False, cookies={"__Host-fg_session": cookie}) as browser:
        resp = browser.get("/account/connections")
        assert resp.status_code == 303 and resp.headers["location"] == "/account/login"
        _, challenge = pkce_pair()
        resp = browser.get(authorize_url("demo-native", NATIVE_REDIRECT, challenge, prompt="none"))
        assert query_of(resp.headers["location"])["error"] == "login_required"  # not signed in at all
        resp = browser.post("/token", auth=BASIC, data={"grant_type": "refresh_token", "refresh_token": rt})
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
        assert introspect(browser, access).json() == {"active": False}
        assert introspect(browser, rt).json() == {"active": False}
        assert browser.get("/userinfo", headers=bearer(access)).status_code == 401


def test_unknown_user_is_an_error_without_traceback(server: Server) -> None:
    for action in ("disable", "enable", "unlock"):
        proc = server.cli("users", action, "no-such-user-" + action, check=False)
        assert proc.returncode == 1 and "no such user" in proc.stderr
        assert "Traceback" not in proc.stderr
