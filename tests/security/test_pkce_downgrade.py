"""PKCE downgrade (RFC 9700 §4.8, CVE-2024-22258) and the front-channel response types that
would leak tokens (RFC 9700 §2.1.2). Errors after the client and redirect URI are verified go back
to the client with `iss` (RFC 9207 §2) and `state` (RFC 6749 §4.1.2.1)."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
import pytest
from support.demo import BACKEND, BACKEND_REDIRECT, NATIVE, NATIVE_REDIRECT, SPA, SPA_REDIRECT
from support.flow import pkce_pair, query_of, run_flow
from support.refusals import assert_oauth_error
from support.server import Server

pytestmark = pytest.mark.pkce

CLIENTS = [(NATIVE, NATIVE_REDIRECT), (SPA, SPA_REDIRECT), (BACKEND, BACKEND_REDIRECT)]


def authorize(browser: httpx.Client, client_id: str, redirect_uri: str, **params: str) -> httpx.Response:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": "st-Ate_1",
        "nonce": "n-1",
        **params,
    }
    return browser.get("/authorize?" + urlencode({k: v for k, v in query.items() if v is not None}))


def assert_redirected_error(server: Server, resp: httpx.Response, redirect_uri: str, error: str) -> dict[str, str]:
    """An error response to the verified redirect URI, 303 (RFC 9700 §4.12), with iss and state."""
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    location = resp.headers["location"]
    assert location.startswith(redirect_uri + "?"), location
    params = query_of(location)
    assert params["error"] == error, params
    assert params["iss"] == server.issuer  # RFC 9207 §2: in error responses too
    assert params["state"] == "st-Ate_1"
    assert "code" not in params
    return params


@pytest.mark.parametrize(("client_id", "redirect_uri"), CLIENTS)
def test_request_without_code_challenge_refused_rfc9700_4_8_2(
    server: Server, browser: httpx.Client, client_id: str, redirect_uri: str
) -> None:
    """Every profile requires PKCE by default: stripping code_challenge is refused up front."""
    resp = authorize(browser, client_id, redirect_uri)
    assert_redirected_error(server, resp, redirect_uri, "invalid_request")


@pytest.mark.parametrize(("client_id", "redirect_uri"), CLIENTS)
def test_plain_method_refused_rfc7636_4_4_1(
    server: Server, browser: httpx.Client, client_id: str, redirect_uri: str
) -> None:
    verifier, _ = pkce_pair()
    resp = authorize(browser, client_id, redirect_uri, code_challenge=verifier, code_challenge_method="plain")
    assert_redirected_error(server, resp, redirect_uri, "invalid_request")


@pytest.mark.parametrize(("client_id", "redirect_uri"), CLIENTS)
def test_absent_method_means_plain_and_is_refused_rfc7636_4_3(
    server: Server, browser: httpx.Client, client_id: str, redirect_uri: str
) -> None:
    _, challenge = pkce_pair()
    resp = authorize(browser, client_id, redirect_uri, code_challenge=challenge)
    assert_redirected_error(server, resp, redirect_uri, "invalid_request")


@pytest.mark.parametrize("method", ["s256", "S512", "SHA256"])
def test_unknown_method_refused_rfc7636_4_4_1(server: Server, browser: httpx.Client, method: str) -> None:
    _, challenge = pkce_pair()
    resp = authorize(browser, NATIVE, NATIVE_REDIRECT, code_challenge=challenge, code_challenge_method=method)
    assert_redirected_error(server, resp, NATIVE_REDIRECT, "invalid_request")


def test_malformed_challenge_refused_rfc7636_4_2(server: Server, browser: httpx.Client) -> None:
    resp = authorize(browser, NATIVE, NATIVE_REDIRECT, code_challenge="short", code_challenge_method="S256")
    assert_redirected_error(server, resp, NATIVE_REDIRECT, "invalid_request")


def test_valid_request_is_accepted(browser: httpx.Client) -> None:
    """Control: the same request with an S256 challenge goes on to the login page."""
    _, challenge = pkce_pair()
    resp = authorize(browser, NATIVE, NATIVE_REDIRECT, code_challenge=challenge, code_challenge_method="S256")
    assert resp.status_code == 303 and resp.headers["location"].startswith("/interaction/")


def test_verifier_for_a_code_without_challenge_refused_rfc9700_4_8_2(server: Server, browser: httpx.Client) -> None:
    """The downgrade end to end. A confidential OIDC client registered without PKCE (nonce instead)
    can get a code without a challenge. The attacker injects such a code (obtained in its own
    session) into the victim's session; the victim's client sends its code_verifier with it. A
    server that enforced PKCE only when a challenge was stored would accept; ours refuses, and the
    injected code is burned."""
    client = server.add_client(
        "--name",
        "Legacy OIDC",
        "--profile",
        "confidential",
        "--no-pkce",
        "--redirect-uri",
        "https://legacy.example.com/cb",
        "--scope",
        "openid profile",
    )
    auth = (client["client_id"], client["client_secret"])
    got = run_flow(
        browser,
        client["client_id"],
        "https://legacy.example.com/cb",
        scope="openid",
        challenge=False,
        nonce="attacker-nonce",
    )
    assert got.code, got.params
    victim_verifier, _ = pkce_pair()
    token_request = {
        "grant_type": "authorization_code",
        "code": got.code,
        "redirect_uri": "https://legacy.example.com/cb",
    }
    resp = browser.post("/token", auth=auth, data={**token_request, "code_verifier": victim_verifier})
    assert_oauth_error(resp, "invalid_grant")
    assert_oauth_error(browser.post("/token", auth=auth, data=token_request), "invalid_grant")  # burned
    # Control: a fresh code without challenge, redeemed without verifier, works for this client.
    got = run_flow(
        browser, client["client_id"], "https://legacy.example.com/cb", scope="openid", challenge=False, nonce="n-2"
    )
    resp = browser.post("/token", auth=auth, data={**token_request, "code": got.code})
    assert resp.status_code == 200, resp.text


def test_code_issued_with_challenge_needs_the_verifier_even_for_no_pkce_client_rfc7636_4_6(
    server: Server, browser: httpx.Client
) -> None:
    """A client allowed to skip PKCE that sends a challenge anyway is held to it."""
    client = server.add_client(
        "--name",
        "Legacy OIDC 2",
        "--profile",
        "confidential",
        "--no-pkce",
        "--redirect-uri",
        "https://legacy.example.com/cb",
        "--scope",
        "openid",
    )
    got = run_flow(browser, client["client_id"], "https://legacy.example.com/cb", scope="openid", nonce="n")
    resp = browser.post(
        "/token",
        auth=(client["client_id"], client["client_secret"]),
        data={"grant_type": "authorization_code", "code": got.code, "redirect_uri": "https://legacy.example.com/cb"},
    )
    assert_oauth_error(resp, "invalid_grant")


@pytest.mark.parametrize(
    "response_type", ["token", "code id_token", "id_token", "code token", "id_token token", "none", "code code", "CODE"]
)
def test_implicit_and_hybrid_refused_rfc9700_2_1_2(server: Server, browser: httpx.Client, response_type: str) -> None:
    """RFC 9700 §2.1.2 / FAPI 2.0 SP 5.3.2.2-1: only response_type=code; the refusal goes to the
    verified redirect URI as unsupported_response_type, with iss."""
    _, challenge = pkce_pair()
    resp = authorize(
        browser,
        NATIVE,
        NATIVE_REDIRECT,
        response_type=response_type,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    params = assert_redirected_error(server, resp, NATIVE_REDIRECT, "unsupported_response_type")
    assert "access_token" not in params and "id_token" not in params
    assert "#" not in resp.headers["location"]  # never a fragment response


def test_response_mode_fragment_refused_rfc9700_2_1_2(server: Server, browser: httpx.Client) -> None:
    _, challenge = pkce_pair()
    resp = authorize(
        browser,
        NATIVE,
        NATIVE_REDIRECT,
        response_mode="fragment",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert_redirected_error(server, resp, NATIVE_REDIRECT, "invalid_request")
