"""Token introspection (RFC 7662)."""

from __future__ import annotations

import time

import httpx
import pytest
from support.demo import BASIC
from support.inprocess import InProcessServer
from support.operator import new_confidential_client
from support.server import DEMO_SECRET, Server
from support.tokens import backend_tokens, bearer, client_credentials, introspect, user_tokens

pytestmark = pytest.mark.introspection


def test_caller_must_authenticate(http: httpx.Client) -> None:
    """RFC 7662 §2.1/§2.3: the endpoint requires client authentication; without it → 401 invalid_client
    with a challenge (RFC 6749 §5.2)."""
    token = client_credentials(http, "accounts")["access_token"]
    resp = http.post("/introspect", data={"token": token})
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert "www-authenticate" in resp.headers
    resp = http.post("/introspect", data={"token": token}, auth=("demo-backend", DEMO_SECRET + "x"))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert "active" not in resp.json()


def test_public_client_is_refused(http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 7662 §4: a public client has no credentials, so it cannot be authorised to introspect."""
    token = user_tokens(browser)["access_token"]
    resp = http.post("/introspect", data={"token": token, "client_id": "demo-native"})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"


def test_active_access_token_claims(server: Server, http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 7662 §2.2: active token → active true with scope, client_id, sub, exp, iat, iss, token_type."""
    tokens = backend_tokens(browser, scope="openid profile accounts")
    resp = introspect(http, tokens["access_token"])
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["active"] is True
    assert body["scope"] == "openid profile accounts"
    assert body["client_id"] == "demo-backend"
    assert body["iss"] == server.issuer
    assert body["token_type"] == "Bearer"
    assert isinstance(body["exp"], int) and isinstance(body["iat"], int) and body["iat"] <= time.time() < body["exp"]
    info = http.get("/userinfo", headers=bearer(tokens["access_token"])).json()
    assert body["sub"] == info["sub"]


def test_active_refresh_token(http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 7662 §2.1: refresh tokens can be introspected too (with and without the hint)."""
    tokens = backend_tokens(browser)
    for hint in ({}, {"token_type_hint": "refresh_token"}, {"token_type_hint": "access_token"}):
        body = introspect(http, tokens["refresh_token"], **hint).json()
        assert body["active"] is True, hint
        assert body["client_id"] == "demo-backend" and body["scope"] == "openid profile offline_access accounts"
        assert body["exp"] > time.time() and body["sub"]


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 300, "eyJhbGciOiJub25lIn0.e30."])
def test_garbage_is_inactive_not_an_error(http: httpx.Client, token: str) -> None:
    """RFC 7662 §2.2: anything that is not an active token → 200 {"active": false}, and nothing else."""
    resp = introspect(http, token)
    assert resp.status_code == 200 and resp.json() == {"active": False}


def test_missing_token_parameter_is_invalid_request(http: httpx.Client) -> None:
    """RFC 7662 §2.1: `token` is REQUIRED."""
    resp = http.post("/introspect", auth=BASIC, data={})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_revoked_tokens_are_inactive(http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 7662 §2.2 + RFC 7009 §2: after revocation → {"active": false}."""
    tokens = backend_tokens(browser)
    assert http.post("/revoke", auth=BASIC, data={"token": tokens["access_token"]}).status_code == 200
    assert introspect(http, tokens["access_token"]).json() == {"active": False}
    assert introspect(http, tokens["refresh_token"]).json()["active"] is True  # its own revocation is separate
    assert http.post("/revoke", auth=BASIC, data={"token": tokens["refresh_token"]}).status_code == 200
    assert introspect(http, tokens["refresh_token"]).json() == {"active": False}


def test_rotated_away_refresh_token_is_inactive(http: httpx.Client, browser: httpx.Client, server: Server) -> None:
    """RFC 9700 §4.14.2: a public client's used refresh token is dead once rotated."""
    tokens = user_tokens(browser, scope="openid offline_access")
    resp = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "demo-native"},
    )
    assert resp.status_code == 200, resp.text
    rs_id, rs_secret = new_confidential_client(server, "--resource-server", "--grant-type", "client_credentials")
    assert introspect(http, tokens["refresh_token"], auth=(rs_id, rs_secret)).json() == {"active": False}
    assert introspect(http, resp.json()["refresh_token"], auth=(rs_id, rs_secret)).json()["active"] is True


def test_other_clients_token_is_inactive_for_a_non_resource_server(
    server: Server, http: httpx.Client, browser: httpx.Client
) -> None:
    """RFC 7662 §2.2/§4: a client learns nothing about tokens issued to other clients; a registered
    resource server may introspect them all."""
    other_id, other_secret = new_confidential_client(server, "--grant-type", "client_credentials")
    theirs = client_credentials(http, "accounts")["access_token"]  # demo-backend's
    native = user_tokens(browser)["access_token"]  # demo-native's
    for token in (theirs, native):
        resp = introspect(http, token, auth=(other_id, other_secret))
        assert resp.status_code == 200 and resp.json() == {"active": False}
    rs_id, rs_secret = new_confidential_client(server, "--resource-server", "--grant-type", "client_credentials")
    for token, owner in ((theirs, "demo-backend"), (native, "demo-native")):
        body = introspect(http, token, auth=(rs_id, rs_secret)).json()
        assert body["active"] is True and body["client_id"] == owner


def test_expired_access_token_is_inactive(clocked_server: InProcessServer) -> None:
    """RFC 7662 §2.2: an expired token is inactive. Access tokens live access_token_ttl (300 s by
    default); the server runs in this process on a clock the test moves."""
    clocked_server.clock.freeze()  # to the second: exp is iat + 300
    with clocked_server.client() as http:
        token = client_credentials(http, "accounts")["access_token"]
        claims = introspect(http, token).json()
        assert claims["active"] is True and claims["exp"] - claims["iat"] == 300
        clocked_server.clock.advance(299)
        assert introspect(http, token).json()["active"] is True
        clocked_server.clock.advance(1)
        assert introspect(http, token).json() == {"active": False}
