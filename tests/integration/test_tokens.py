"""The token endpoint (RFC 6749 §3.2, §5, §6; RFC 9068): lifetimes, refresh scope rules,
client_credentials scopes, grant-type errors, and CORS for browser apps."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.demo import BACKEND_REDIRECT, BASIC, NATIVE_REDIRECT, SPA_ORIGIN, SPA_REDIRECT
from support.flow import Authorized, authorize_url, consent, follow_to_client, login, pkce_pair, query_of, run_flow
from support.inprocess import InProcessServer
from support.operator import new_confidential_client, new_user
from support.server import Server
from support.tokens import backend_tokens, client_credentials, exchange, user_tokens

pytestmark = pytest.mark.refresh


def _claims(http: httpx.Client, token: str) -> dict:
    return jwt.decode(token, KeySet.import_key_set(http.get("/jwks").json())).claims


def _refresh(http: httpx.Client, refresh_token: str, auth=BASIC, **data: str) -> httpx.Response:
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token, **data}
    return http.post("/token", auth=auth, data=body)


# -- lifetimes --------------------------------------------------------------------------------


def test_default_access_token_lifetime_is_five_minutes(http: httpx.Client) -> None:
    """Access tokens live 5 minutes by default; expires_in (RFC 6749 §5.1) says so."""
    body = client_credentials(http, "accounts")
    claims = _claims(http, body["access_token"])
    assert body["expires_in"] == 300 and claims["exp"] - claims["iat"] == 300


def test_access_token_lifetime_is_configurable(start_clocked: Callable[..., InProcessServer]) -> None:
    """FINGRADE_ACCESS_TOKEN_TTL=30 (the shortest allowed): expires_in and exp follow it for every
    grant. On the server in this process."""
    srv = start_clocked({"FINGRADE_ACCESS_TOKEN_TTL": "30"})
    with srv.client(follow_redirects=False) as browser:
        for body in (
            client_credentials(browser, "accounts"),
            backend_tokens(browser, "openid offline_access accounts"),
        ):
            claims = _claims(browser, body["access_token"])
            assert body["expires_in"] == 30 and claims["exp"] - claims["iat"] == 30
        refreshed = _refresh(browser, body["refresh_token"]).json()
        assert refreshed["expires_in"] == 30


# -- refresh (RFC 6749 §6) --------------------------------------------------------------------


def test_refresh_can_narrow_the_scope_and_never_widen_it(http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 6749 §6: the requested scope MUST NOT include any scope not originally granted; omitted
    means the original scope; narrowing one refresh does not shrink the grant."""
    tokens = backend_tokens(browser, "openid profile offline_access accounts")
    narrow = _refresh(http, tokens["refresh_token"], scope="accounts")
    assert narrow.status_code == 200, narrow.text
    assert narrow.headers["cache-control"] == "no-store"
    body = narrow.json()
    assert body["scope"] == "accounts" and _claims(http, body["access_token"])["scope"] == "accounts"
    assert "id_token" not in body  # no openid, no ID token
    assert body["refresh_token"] == tokens["refresh_token"]  # confidential clients do not rotate
    full = _refresh(http, tokens["refresh_token"]).json()
    assert full["scope"] == "openid profile offline_access accounts"
    for wider in ("openid profile offline_access accounts payments", "payments", "admin"):
        resp = _refresh(http, tokens["refresh_token"], scope=wider)
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope", wider
    # A refused refresh does not hurt the grant.
    assert _refresh(http, tokens["refresh_token"], scope="profile").json()["scope"] == "profile"


def test_refresh_with_openid_returns_a_new_id_token(http: httpx.Client, browser: httpx.Client) -> None:
    """OIDC Core §12.2: a refreshed ID token keeps iss, sub, aud and auth_time; it has no nonce."""
    tokens = backend_tokens(browser, "openid offline_access accounts", nonce="first-nonce")
    first = _claims(http, tokens["id_token"])
    again = _refresh(http, tokens["refresh_token"]).json()
    second = _claims(http, again["id_token"])
    for claim in ("iss", "sub", "aud", "auth_time"):
        assert second[claim] == first[claim], claim
    assert "nonce" not in second


def test_public_client_refresh_rotates_and_narrows(http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 9700 §4.14.2: a public client's refresh token rotates on every use; RFC 6749 §6 scope rules
    apply the same way."""
    tokens = user_tokens(browser, scope="openid profile offline_access")
    resp = _refresh(http, tokens["refresh_token"], auth=None, client_id="demo-native", scope="profile")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["scope"] == "profile" and body["refresh_token"] != tokens["refresh_token"]
    resp = _refresh(http, body["refresh_token"], auth=None, client_id="demo-native", scope="profile email")
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope"


def test_refresh_token_of_another_client_is_invalid_grant(
    server: Server, http: httpx.Client, browser: httpx.Client
) -> None:
    """RFC 6749 §6: the refresh token is bound to the client it was issued to."""
    tokens = backend_tokens(browser)
    other = new_confidential_client(server)
    resp = _refresh(http, tokens["refresh_token"], auth=other)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    assert _refresh(http, tokens["refresh_token"]).status_code == 200


# -- when a refresh token is issued (OIDC Core §11) ------------------------------------------


def _consent_then_tokens(server: Server, client_id: str, redirect_uri: str, scope: str, auth=None) -> tuple[str, dict]:
    """A new customer signs in, sees the consent page (returned) and allows; the token response."""
    username, password = new_user(server)
    verifier, challenge = pkce_pair()
    with server.client(follow_redirects=False) as browser:
        resp = follow_to_client(
            browser, browser.get(authorize_url(client_id, redirect_uri, challenge, scope)), redirect_uri
        )
        resp = follow_to_client(browser, login(browser, resp, username, password), redirect_uri)
        assert resp.status_code == 200 and 'name="decision"' in resp.text, resp.text[:300]
        page = resp.text
        location = consent(browser, resp).headers["location"]
        got = Authorized(
            code=query_of(location)["code"],
            params=query_of(location),
            verifier=verifier,
            redirect_uri=redirect_uri,
            location=location,
        )
        tokens = exchange(browser, got, client_id=None if auth else client_id, auth=auth)
    assert tokens.status_code == 200, tokens.text
    return page, tokens.json()


@pytest.mark.parametrize(
    "client_id, redirect_uri, auth", [("demo-backend", BACKEND_REDIRECT, BASIC), ("demo-native", NATIVE_REDIRECT, None)]
)
def test_oidc_core_11_refresh_token_only_when_staying_connected_was_approved(
    server: Server, client_id: str, redirect_uri: str, auth
) -> None:
    """OIDC Core §11: a refresh token gives access while the customer is away, so it is issued only
    when offline_access was asked for and the customer approved it on the consent page, where it
    reads "Stay connected"; without it the tokens end with the access token (confidential and public
    clients alike)."""
    page, body = _consent_then_tokens(server, client_id, redirect_uri, "openid profile", auth)
    assert "refresh_token" not in body and "Stay connected" not in page
    page, body = _consent_then_tokens(server, client_id, redirect_uri, "openid profile offline_access", auth)
    assert body["refresh_token"] and "Stay connected" in page
    assert body["scope"] == "openid profile offline_access"


def test_oidc_core_11_no_stay_connected_for_a_client_that_gets_no_refresh_token(server: Server) -> None:
    """A client not registered for the refresh_token grant asking offline_access: the consent page
    does not promise what will not happen, and no refresh token is issued."""
    no_refresh = new_confidential_client(server, "--grant-type", "authorization_code")
    page, body = _consent_then_tokens(server, no_refresh[0], BACKEND_REDIRECT, "openid offline_access", no_refresh)
    assert "refresh_token" not in body and "Stay connected" not in page


# -- client_credentials (RFC 6749 §4.4) -------------------------------------------------------


def test_client_credentials_scope_rules(http: httpx.Client) -> None:
    """RFC 6749 §4.4.2/§3.3: no scope → the client's registered API scopes; a subset is granted as
    asked; anything else → invalid_scope. No user, so no openid/offline_access and no refresh token
    (§4.4.3)."""
    default = client_credentials(http)
    assert set(default["scope"].split()) == {"profile", "email", "accounts", "payments"}
    assert "refresh_token" not in default and "id_token" not in default
    assert client_credentials(http, "payments accounts")["scope"] == "payments accounts"
    for scope in ("openid", "accounts openid", "offline_access", "admin", "accounts admin"):
        resp = http.post("/token", auth=BASIC, data={"grant_type": "client_credentials", "scope": scope})
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope", scope


def test_client_credentials_is_limited_to_the_registered_scope(server: Server, http: httpx.Client) -> None:
    cid, secret = new_confidential_client(server, "--grant-type", "client_credentials", "--scope", "accounts")
    assert client_credentials(http, auth=(cid, secret))["scope"] == "accounts"
    resp = http.post("/token", auth=(cid, secret), data={"grant_type": "client_credentials", "scope": "payments"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope"


# -- grant type errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "grant_type",
    [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "bogus",
    ],
)
def test_unsupported_grant_type(http: httpx.Client, grant_type: str) -> None:
    """RFC 6749 §5.2 unsupported_grant_type; the password grant MUST NOT be used (RFC 9700 §2.4)."""
    resp = http.post(
        "/token", auth=BASIC, data={"grant_type": grant_type, "username": "alice", "password": "whatever-it-is"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "unsupported_grant_type"
    assert resp.headers["cache-control"] == "no-store"


def test_missing_grant_type_is_invalid_request(http: httpx.Client) -> None:
    resp = http.post("/token", auth=BASIC, data={"scope": "accounts"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


def test_unauthorized_client_for_unregistered_grants(server: Server, http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 6749 §5.2 unauthorized_client: the client is not registered for this grant type."""
    # A public client may not use client_credentials at all.
    resp = http.post("/token", data={"grant_type": "client_credentials", "client_id": "demo-native"})
    assert resp.status_code == 400 and resp.json()["error"] == "unauthorized_client"
    # A confidential client registered for client_credentials only.
    cc_only = new_confidential_client(server, "--grant-type", "client_credentials")
    resp = http.post(
        "/token",
        auth=cc_only,
        data={
            "grant_type": "authorization_code",
            "code": "x",
            "redirect_uri": BACKEND_REDIRECT,
            "code_verifier": "y" * 43,
        },
    )
    assert resp.status_code == 400 and resp.json()["error"] == "unauthorized_client"
    resp = http.post("/token", auth=cc_only, data={"grant_type": "refresh_token", "refresh_token": "x"})
    assert resp.status_code == 400 and resp.json()["error"] == "unauthorized_client"
    # ... and the authorization endpoint says the same, to its verified redirect URI (§4.1.2.1).
    resp = browser.get(authorize_url(cc_only[0], BACKEND_REDIRECT, pkce_pair()[1]))
    assert resp.status_code == 303 and query_of(resp.headers["location"])["error"] == "unauthorized_client"
    # A client registered without refresh_token gets no refresh token and may not use the grant.
    no_refresh = new_confidential_client(server, "--grant-type", "authorization_code")
    got = run_flow(browser, no_refresh[0], BACKEND_REDIRECT, scope="openid offline_access")
    body = exchange(browser, got, auth=no_refresh).json()
    assert "refresh_token" not in body
    resp = http.post("/token", auth=no_refresh, data={"grant_type": "refresh_token", "refresh_token": "x"})
    assert resp.status_code == 400 and resp.json()["error"] == "unauthorized_client"


# -- CORS for browser apps (spa profile) ------------------------------------------------------


def _preflight(http: httpx.Client, origin: str) -> httpx.Response:
    return http.options(
        "/token",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_preflight_allows_only_registered_spa_origins(http: httpx.Client) -> None:
    """Fetch standard CORS preflight: the spa client's registered origin gets exactly that origin back
    (never `*`, no credentials); any other origin gets no CORS headers."""
    resp = _preflight(http, SPA_ORIGIN)
    assert resp.status_code in (200, 204)
    assert resp.headers["access-control-allow-origin"] == SPA_ORIGIN
    assert "POST" in resp.headers["access-control-allow-methods"]
    assert "content-type" in resp.headers["access-control-allow-headers"].lower()
    assert "origin" in resp.headers["vary"].lower()
    assert "access-control-allow-credentials" not in resp.headers
    for origin in (
        "https://evil.example",
        "https://localhost:3001",
        "http://localhost:3000",
        "https://localhost:9443",
        "null",
    ):
        resp = _preflight(http, origin)
        assert not any(h.startswith("access-control-allow") for h in resp.headers), origin


def test_token_response_to_the_spa_origin_carries_cors(browser: httpx.Client) -> None:
    """The spa's POST from its origin can read the response; the same request from elsewhere cannot."""
    got = run_flow(browser, "demo-spa", SPA_REDIRECT)
    resp = exchange(browser, got, client_id="demo-spa", headers={"Origin": SPA_ORIGIN})
    assert resp.status_code == 200, resp.text
    assert resp.headers["access-control-allow-origin"] == SPA_ORIGIN
    assert "origin" in resp.headers["vary"].lower()
    # Its errors are readable too (so the app can react), with the same origin only.
    resp = browser.post(
        "/token",
        headers={"Origin": SPA_ORIGIN},
        data={
            "grant_type": "authorization_code",
            "code": "spent",
            "client_id": "demo-spa",
            "redirect_uri": SPA_REDIRECT,
            "code_verifier": "v" * 43,
        },
    )
    assert resp.status_code == 400 and resp.headers["access-control-allow-origin"] == SPA_ORIGIN
    # A registered spa client called from an unregistered origin: no CORS.
    got = run_flow(browser, "demo-spa", SPA_REDIRECT)
    resp = exchange(browser, got, client_id="demo-spa", headers={"Origin": "https://evil.example"})
    assert resp.status_code == 200 and "access-control-allow-origin" not in resp.headers


def test_non_spa_clients_get_no_cors_even_from_the_spa_origin(browser: httpx.Client) -> None:
    """CORS is a property of the spa profile: a native or confidential client's token response is not
    opened to browsers, whatever Origin is claimed."""
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT)
    resp = exchange(browser, got, client_id="demo-native", headers={"Origin": SPA_ORIGIN})
    assert resp.status_code == 200 and "access-control-allow-origin" not in resp.headers
    resp = browser.post(
        "/token",
        auth=BASIC,
        headers={"Origin": SPA_ORIGIN},
        data={"grant_type": "client_credentials", "scope": "accounts"},
    )
    assert resp.status_code == 200 and "access-control-allow-origin" not in resp.headers
