"""Token revocation (RFC 7009)."""

from __future__ import annotations

import httpx
import pytest
from support.demo import BASIC
from support.operator import new_confidential_client
from support.server import Server
from support.tokens import backend_tokens, bearer, client_credentials, introspect, user_tokens

pytestmark = pytest.mark.revocation


def _revoke(http: httpx.Client, token: str, auth=BASIC, **data: str) -> httpx.Response:
    return http.post("/revoke", auth=auth, data={"token": token, **data})


@pytest.mark.parametrize("token", ["unknown-token", "a.b.c", "x" * 500])
def test_unknown_token_is_200(http: httpx.Client, token: str) -> None:
    """RFC 7009 §2.2: invalid tokens do not cause an error response (the client cannot act on it)."""
    for hint in ({}, {"token_type_hint": "access_token"}, {"token_type_hint": "refresh_token"}):
        resp = _revoke(http, token, **hint)
        assert resp.status_code == 200, resp.text
        assert resp.headers["cache-control"] == "no-store"


def test_revoked_access_token_is_refused_everywhere(http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 7009 §2.1: after revocation the token is inactive (RFC 7662) and refused by the protected
    resource (RFC 6750 §3.1 invalid_token)."""
    tokens = backend_tokens(browser)
    access = tokens["access_token"]
    assert http.get("/userinfo", headers=bearer(access)).status_code == 200
    assert _revoke(http, access, token_type_hint="access_token").status_code == 200
    assert introspect(http, access).json() == {"active": False}
    resp = http.get("/userinfo", headers=bearer(access))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"
    # Revoking again is still fine (§2.2).
    assert _revoke(http, access).status_code == 200
    # A client_credentials token (no grant behind it) is revoked by itself.
    cc = client_credentials(http, "accounts")["access_token"]
    assert _revoke(http, cc).status_code == 200
    assert introspect(http, cc).json() == {"active": False}


def test_revoking_a_refresh_token_revokes_the_grant(http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 7009 §2.1: revoking a refresh token also invalidates the access tokens of the same grant."""
    tokens = backend_tokens(browser)
    refreshed = http.post(
        "/token", auth=BASIC, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    ).json()
    assert _revoke(http, tokens["refresh_token"], token_type_hint="refresh_token").status_code == 200
    for access in (tokens["access_token"], refreshed["access_token"]):
        assert introspect(http, access).json() == {"active": False}
        assert http.get("/userinfo", headers=bearer(access)).status_code == 401
    resp = http.post(
        "/token", auth=BASIC, data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


def test_wrong_hint_still_finds_the_token(http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 7009 §2.1: if the hint does not locate the token, the server MUST search its other types."""
    tokens = backend_tokens(browser)
    assert _revoke(http, tokens["access_token"], token_type_hint="refresh_token").status_code == 200
    assert introspect(http, tokens["access_token"]).json() == {"active": False}
    assert _revoke(http, tokens["refresh_token"], token_type_hint="access_token").status_code == 200
    assert introspect(http, tokens["refresh_token"]).json() == {"active": False}


def test_client_cannot_revoke_another_clients_token(server: Server, http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 7009 §2.1: the server checks that the token was issued to the requesting client; another
    client's request changes nothing (and still gets 200, §2.2)."""
    other = new_confidential_client(server, "--grant-type", "client_credentials")
    tokens = backend_tokens(browser)
    cc = client_credentials(http, "accounts")["access_token"]
    native = user_tokens(browser, scope="openid offline_access")
    for token in (tokens["access_token"], tokens["refresh_token"], cc):
        assert _revoke(http, token, auth=other).status_code == 200
        assert introspect(http, token).json()["active"] is True
    # A public client cannot revoke a confidential client's token either, nor the other way round.
    resp = http.post("/revoke", data={"token": tokens["refresh_token"], "client_id": "demo-native"})
    assert resp.status_code == 200
    assert introspect(http, tokens["refresh_token"]).json()["active"] is True
    assert _revoke(http, native["refresh_token"]).status_code == 200
    refreshed = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": native["refresh_token"], "client_id": "demo-native"},
    )
    assert refreshed.status_code == 200, refreshed.text


def test_public_client_revokes_its_own_refresh_token(http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 7009 §2.1 (public clients identify themselves with client_id): a native app signs out by
    revoking its refresh token, which kills the grant."""
    tokens = user_tokens(browser, scope="openid offline_access")
    resp = http.post(
        "/revoke",
        data={"token": tokens["refresh_token"], "client_id": "demo-native", "token_type_hint": "refresh_token"},
    )
    assert resp.status_code == 200
    refreshed = http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "demo-native"},
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    assert http.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401


def test_public_client_revokes_its_own_access_token(http: httpx.Client, browser: httpx.Client) -> None:
    tokens = user_tokens(browser)
    resp = http.post("/revoke", data={"token": tokens["access_token"], "client_id": "demo-native"})
    assert resp.status_code == 200
    assert http.get("/userinfo", headers=bearer(tokens["access_token"])).status_code == 401


def test_unsupported_token_type_hint(http: httpx.Client) -> None:
    """RFC 7009 §2.2.1: a token type the server cannot revoke → unsupported_token_type (400)."""
    token = client_credentials(http, "accounts")["access_token"]
    resp = _revoke(http, token, token_type_hint="id_token")
    assert resp.status_code == 400 and resp.json()["error"] == "unsupported_token_type"
    assert introspect(http, token).json()["active"] is True


def test_revocation_requires_client_authentication(http: httpx.Client) -> None:
    """RFC 7009 §2.1: the client authenticates as at the token endpoint (RFC 6749 §2.3)."""
    token = client_credentials(http, "accounts")["access_token"]
    resp = http.post("/revoke", data={"token": token})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    resp = http.post("/revoke", data={"token": token}, auth=("demo-backend", "wrong"))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert introspect(http, token).json()["active"] is True
    resp = http.post("/revoke", auth=BASIC, data={})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
