"""What the server does by itself: the janitor removes expired one-time rows and sessions
(FINGRADE_JANITOR_INTERVAL is 2 s in tests), and security events are written to the audit log."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import httpx
from support.database import audit_events, db_rows, user_id
from support.demo import BACKEND_REDIRECT
from support.fapi import ASSERTION_TYPE, client_assertion, new_key
from support.flow import authorize_steps, pkce_pair
from support.operator import jwks_client, new_confidential_client, new_user
from support.polling import wait_for
from support.server import Server
from support.tokens import bearer, exchange


def _onetime_exists(server: Server, kind: str, key: str) -> bool:
    if server.backend == "postgres":  # the one-time store is Redis there
        import redis

        r = redis.Redis.from_url(server.env["FINGRADE_REDIS_URL"])
        try:
            return bool(r.exists(f"{server.env['FINGRADE_REDIS_PREFIX']}{kind}:{key}"))
        finally:
            r.close()
    return bool(db_rows(server, "SELECT 1 FROM onetime WHERE kind = ? AND key = ?", kind, key))


def test_expired_one_time_rows_are_removed(server: Server, http: httpx.Client, tmp_path: Path) -> None:
    """Issue §7: expired rows are cleaned up by the server itself. A client assertion's jti is kept
    (RFC 7523 §3 replay cache) only until the assertion expires, then the entry disappears."""
    key = new_key("ES256")
    cid = jwks_client(server, key, tmp_path)
    assertion = client_assertion(key, "ES256", cid, server.issuer, lifetime=1)
    jti = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))["jti"]
    resp = http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "scope": "accounts",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        },
    )
    assert resp.status_code == 200, resp.text
    assert _onetime_exists(server, "assertion_jti", f"{cid}:{jti}")
    # exp + 5 s leeway, then at most one janitor round (2 s ± 20 %).
    wait_for(lambda: not _onetime_exists(server, "assertion_jti", f"{cid}:{jti}"), timeout=15)


def test_expired_sessions_are_removed(tuned_server: Server) -> None:
    """Sessions live session_ttl (6 s on this server); the janitor deletes them afterwards, and the
    user has to sign in again."""
    srv = tuned_server
    username, password = new_user(srv)
    uid = user_id(srv, username)
    with srv.client(follow_redirects=False) as browser:
        first = authorize_steps(browser, "demo-native", "http://127.0.0.1:5000/callback", "openid", username, password)
        assert first.saw_login and first.result.code
        assert db_rows(srv, "SELECT expires_at FROM sessions WHERE user_id = ?", uid)
        wait_for(lambda: not db_rows(srv, "SELECT 1 FROM sessions WHERE user_id = ?", uid), timeout=20)
        again = authorize_steps(browser, "demo-native", "http://127.0.0.1:5000/callback", "openid", username, password)
        assert again.saw_login


def test_security_events_are_audited(server: Server, http: httpx.Client, browser: httpx.Client) -> None:
    """Issue §7: the audit log records login, consent, code reuse, token revocation and client
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
