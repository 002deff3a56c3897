"""The authorization code flow with PKCE end to end, for each client profile (RFC 6749 §4.1,
RFC 7636, OIDC Core §3.1)."""

from __future__ import annotations

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.flow import run_flow
from support.server import DEMO_SECRET, Server

pytestmark = pytest.mark.pkce

NATIVE_REDIRECT = "http://127.0.0.1:51234/callback"


def _keys(http: httpx.Client) -> KeySet:
    return KeySet.import_key_set(http.get("/jwks").json())


def test_native_app_flow_issues_tokens(server: Server, browser: httpx.Client) -> None:
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT, scope="openid profile email", nonce="n-0S6_WzA2Mj")
    # RFC 9207 §2: iss in the authorization response; RFC 6749 §4.1.2: state echoed.
    assert got.params["iss"] == server.issuer
    assert got.code and len(got.code) >= 43
    resp = browser.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": got.code,
            "redirect_uri": NATIVE_REDIRECT,
            "client_id": "demo-native",
            "code_verifier": got.verifier,
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store"  # RFC 6749 §5.1
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 300
    keys = _keys(browser)
    at = jwt.decode(body["access_token"], keys)
    assert at.header["typ"] == "at+jwt" and at.header["kid"]  # RFC 9068 §2.1
    for claim in ("iss", "exp", "aud", "sub", "client_id", "iat", "jti"):  # RFC 9068 §2.2
        assert claim in at.claims
    idt = jwt.decode(body["id_token"], keys)
    assert idt.claims["nonce"] == "n-0S6_WzA2Mj" and idt.claims["aud"] == "demo-native"
    assert {"at_hash", "auth_time", "acr"} <= idt.claims.keys() and idt.header["kid"]
    info = browser.get("/userinfo", headers={"Authorization": "Bearer " + body["access_token"]})
    assert info.status_code == 200 and info.json()["sub"] == idt.claims["sub"]
    assert info.json()["preferred_username"] == "alice"


def test_confidential_client_flow_with_basic_auth(server: Server, browser: httpx.Client) -> None:
    got = run_flow(browser, "demo-backend", "https://localhost:9443/callback", scope="openid offline_access accounts")
    resp = browser.post(
        "/token",
        auth=("demo-backend", DEMO_SECRET),
        data={
            "grant_type": "authorization_code",
            "code": got.code,
            "redirect_uri": "https://localhost:9443/callback",
            "code_verifier": got.verifier,
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["scope"] == "openid offline_access accounts"
    assert "refresh_token" in resp.json()  # OIDC Core §11: offline_access asked for and approved


def test_client_credentials(server: Server, http: httpx.Client) -> None:
    resp = http.post(
        "/token", auth=("demo-backend", DEMO_SECRET), data={"grant_type": "client_credentials", "scope": "accounts"}
    )
    assert resp.status_code == 200, resp.text
    claims = jwt.decode(resp.json()["access_token"], _keys(http)).claims
    assert claims["sub"] == "demo-backend" and claims["scope"] == "accounts"
    assert "refresh_token" not in resp.json()


def test_pkce_downgrade_is_refused_at_the_token_endpoint(server: Server, browser: httpx.Client) -> None:
    """RFC 9700 §4.8.2 (CVE-2024-22258): a code issued without code_challenge must not be redeemed
    with a code_verifier. Only a confidential client registered with require_pkce = false can get
    such a code at all."""
    client = server.add_client(
        "--name",
        "legacy",
        "--profile",
        "confidential",
        "--no-pkce",
        "--redirect-uri",
        "https://legacy.example/cb",
        "--scope",
        "openid",
    )
    auth = (client["client_id"], client["client_secret"])
    got = run_flow(
        browser,
        client["client_id"],
        "https://legacy.example/cb",
        scope="openid",
        challenge=False,
        nonce="legacy-nonce-1",
    )
    assert got.code, got.params
    resp = browser.post(
        "/token",
        auth=auth,
        data={
            "grant_type": "authorization_code",
            "code": got.code,
            "redirect_uri": "https://legacy.example/cb",
            "code_verifier": got.verifier,
        },
    )
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    # Without PKCE the nonce is mandatory (RFC 9700 §4.5.3).
    got = run_flow(browser, client["client_id"], "https://legacy.example/cb", scope="openid", challenge=False)
    assert got.params["error"] == "invalid_request" and got.params["iss"] == server.issuer


def test_require_pkce_false_is_refused_for_public_clients(server: Server) -> None:
    """RFC 7636 / RFC 8252 §8.1: public clients always use PKCE."""
    result = server.cli(
        "clients",
        "add",
        "--name",
        "x",
        "--profile",
        "native",
        "--no-pkce",
        "--redirect-uri",
        "http://127.0.0.1/cb",
        check=False,
    )
    assert result.returncode == 2 and "invalid_client_metadata" in result.stderr
