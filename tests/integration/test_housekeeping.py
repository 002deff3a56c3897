"""What the server does by itself: the janitor removes expired one-time rows and sessions, and
security events are written to the audit log."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import httpx
from support.database import audit_events, db_rows, user_id
from support.demo import BACKEND_REDIRECT
from support.fapi import ASSERTION_TYPE, client_assertion, new_key
from support.flow import authorize_steps, pkce_pair
from support.inprocess import InProcessServer
from support.operator import jwks_client, new_confidential_client, new_user
from support.polling import wait_for
from support.server import Server
from support.tokens import bearer, exchange

# The janitor is the server's own timer, in real time: the expiry tests wait for its next round.
JANITOR_EVERY_SECOND = {"FINGRADE_JANITOR_INTERVAL": "1"}


def _onetime_expiry(server: Server, kind: str, key: str) -> int | None:
    """expires_at of a row of the SQL one-time store, None when there is none."""
    rows = db_rows(server, "SELECT expires_at FROM onetime WHERE kind = ? AND key = ?", kind, key)
    return rows[0][0] if rows else None


def test_expired_one_time_rows_are_removed(start_clocked: Callable[..., InProcessServer], tmp_path: Path) -> None:
    """Expired rows are cleaned up by the server itself. A client assertion's jti is kept (RFC 7523
    §3 replay cache) only until the assertion expires (exp plus 5 s of leeway), then the janitor
    removes the entry. The server runs in this process on a clock the test moves."""
    srv = start_clocked(JANITOR_EVERY_SECOND)
    srv.clock.freeze()
    key = new_key("ES256")
    cid = jwks_client(srv, key, tmp_path)
    assertion = client_assertion(key, "ES256", cid, srv.issuer, lifetime=60)
    claims = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))
    data = {"grant_type": "client_credentials", "scope": "accounts"}
    with srv.client() as http:
        resp = http.post(
            "/token", data={**data, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
        )
    assert resp.status_code == 200, resp.text
    entry = f"{cid}:{claims['jti']}"
    assert _onetime_expiry(srv, "assertion_jti", entry) == claims["exp"] + 5
    srv.clock.advance(claims["exp"] + 5 - srv.clock())
    wait_for(lambda: _onetime_expiry(srv, "assertion_jti", entry) is None, timeout=5, interval=0.1)


def test_expired_session_asks_to_sign_in_again(start_clocked: Callable[..., InProcessServer]) -> None:
    """A session lives session_ttl (8 h by default), then the user has to sign in again. The server
    runs in this process on a clock the test moves (its janitor idle, so only the rule decides)."""
    srv = start_clocked({"FINGRADE_JANITOR_INTERVAL": "3600"})
    srv.clock.freeze()
    with srv.client(follow_redirects=False) as browser:
        assert authorize_steps(browser, "demo-native", "http://127.0.0.1:5000/callback", "openid").saw_login
        srv.clock.advance(8 * 3600 - 1)
        assert not authorize_steps(browser, "demo-native", "http://127.0.0.1:5000/callback", "openid").saw_login
        srv.clock.advance(1)
        assert authorize_steps(browser, "demo-native", "http://127.0.0.1:5000/callback", "openid").saw_login


def test_expired_sessions_are_removed(start_clocked: Callable[..., InProcessServer]) -> None:
    """The janitor deletes sessions once they have expired (session_ttl, 8 h by default). The server
    runs in this process on a clock the test moves."""
    srv = start_clocked(JANITOR_EVERY_SECOND)
    srv.clock.freeze()
    uid = user_id(srv, "alice")

    def sessions() -> list:
        return db_rows(srv, "SELECT expires_at FROM sessions WHERE user_id = ?", uid)

    with srv.client(follow_redirects=False) as browser:
        first = authorize_steps(browser, "demo-native", "http://127.0.0.1:5000/callback", "openid")
        assert first.saw_login and first.result.code
    assert sessions() == [(srv.clock() + 8 * 3600,)]
    srv.clock.advance(8 * 3600)
    wait_for(lambda: not sessions(), timeout=5, interval=0.1)


def test_security_events_are_audited(server: Server, http: httpx.Client, browser: httpx.Client) -> None:
    """The audit log records login, consent, code reuse, token revocation and client
    registration, each with the client and (where there is one) the user."""
    username, password = new_user(server)
    uid = user_id(server, username)
    cid, secret = new_confidential_client(server)
    assert audit_events(server, "client_registered", client_id=cid)

    steps = authorize_steps(browser, cid, BACKEND_REDIRECT, "openid offline_access", username, password)
    assert audit_events(server, "login", client_id=cid, user_id=uid)
    granted = audit_events(server, "consent_granted", client_id=cid, user_id=uid)
    assert len(granted) == 1 and json.loads(granted[0][4])["scope"] == "openid offline_access"

    tokens = exchange(browser, steps.result, auth=(cid, secret)).json()
    # Redeemed again with another verifier: not the first redeemer's retry, so reuse.
    replayed = dataclasses.replace(steps.result, verifier=pkce_pair()[0])
    assert exchange(browser, replayed, auth=(cid, secret)).json()["error"] == "invalid_grant"
    assert audit_events(server, "code_reuse", client_id=cid, user_id=uid)

    # The reuse revoked that grant; a fresh grant shows the revocation event on its own.
    again = authorize_steps(browser, cid, BACKEND_REDIRECT, "openid offline_access", username, password)
    fresh = exchange(browser, again.result, auth=(cid, secret)).json()
    assert http.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    assert http.post("/revoke", auth=(cid, secret), data={"token": fresh["refresh_token"]}).status_code == 200
    revoked = audit_events(server, "token_revoked", client_id=cid, user_id=uid)
    assert len(revoked) == 1 and json.loads(revoked[0][4])["kind"] == "refresh_token"
