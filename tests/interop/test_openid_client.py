"""openid-client (npm, panva, v6 on oauth4webapi) runs the authorization code + PKCE flow against the
real server: discovery, S256 PKCE, state, nonce, RFC 9207 `iss` check, code grant, ID token validation,
userinfo and refresh. The Node side is `node/pkce-flow.mjs`; the user's login and consent are done here."""

from __future__ import annotations

import os
import subprocess
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from interop.helpers import NODE_DIR, NodeRun, converse
from support.flow import query_of
from support.server import DEMO_SECRET, Server

pytestmark = pytest.mark.interop

NATIVE_REDIRECT = "http://127.0.0.1:51871/callback"  # RFC 8252 §7.3: loopback, any port
BACKEND_REDIRECT = "https://localhost:9443/callback"
TIMEOUT = 60


def run_openid_client(
    node: str,
    server: Server,
    browser: httpx.Client,
    client_id: str,
    redirect_uri: str,
    secret: str | None = None,
    scope: str = "openid profile email offline_access",
    tamper=None,
    decision: str = "approve",
    prompt: str | None = None,
) -> NodeRun:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OIDC_")}
    env["NODE_EXTRA_CA_CERTS"] = server.ca  # trust the server's self-signed development certificate
    if secret is not None:
        env["OIDC_CLIENT_SECRET"] = secret
    if prompt is not None:
        env["OIDC_PROMPT"] = prompt
    proc = subprocess.Popen(
        [node, str(NODE_DIR / "pkce-flow.mjs"), server.issuer, client_id, redirect_uri, scope],
        cwd=NODE_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return converse(proc, browser, redirect_uri, TIMEOUT, tamper, decision)


def _check_flow(run: NodeRun, server: Server, client_id: str) -> dict[str, Any]:
    assert run.result["step"] == "done", (run.result, run.stderr)
    auth = query_of(run.authorize["url"])
    assert run.authorize["url"].startswith(server.issuer + "/authorize?")
    # RFC 7636 §4.3: openid-client sent an S256 challenge; OIDC Core §3.1.2.1: state and nonce.
    assert auth["code_challenge_method"] == "S256" and len(auth["code_challenge"]) == 43
    assert auth["state"] == run.authorize["state"] and auth["nonce"] == run.authorize["nonce"]
    cb = query_of(run.callback)
    assert cb["iss"] == server.issuer and cb["state"] == run.authorize["state"]  # RFC 9207 §2
    tokens, claims = run.result["tokens"], run.result["claims"]
    assert tokens["token_type"].lower() == "bearer"
    assert {"access_token", "id_token", "refresh_token", "expires_in"} <= tokens.keys()
    # openid-client already validated the ID token; check that what it accepted is what we issued.
    assert claims["iss"] == server.issuer and claims["aud"] == client_id
    assert claims["nonce"] == run.authorize["nonce"] and claims["at_hash"]
    info = run.result["userinfo"]
    assert info["sub"] == claims["sub"] and info["preferred_username"] == "alice"
    refreshed = run.result["refreshed"]
    assert refreshed["access_token"] and refreshed["access_token"] != tokens["access_token"]
    # OIDC Core §12.2: an ID token from a refresh keeps iss, sub, aud and auth_time.
    rc = run.result["refreshed_claims"]
    assert rc["sub"] == claims["sub"] and rc["auth_time"] == claims["auth_time"] and rc["aud"] == client_id
    return run.result


def test_openid_client_native_public_client_with_loopback_redirect(
    node: str, server: Server, browser: httpx.Client
) -> None:
    """RFC 8252 §7.3 loopback redirect with a port, public client (auth method none), PKCE S256."""
    result = _check_flow(
        run_openid_client(node, server, browser, "demo-native", NATIVE_REDIRECT), server, "demo-native"
    )
    # RFC 9700 §4.14.2: a public client's refresh token rotates on every use.
    assert result["refreshed"]["refresh_token"] != result["tokens"]["refresh_token"]
    old = browser.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "demo-native",
            "refresh_token": result["tokens"]["refresh_token"],
        },
    )
    assert old.status_code == 400 and old.json()["error"] == "invalid_grant"


def test_openid_client_confidential_client_secret_basic(node: str, server: Server, browser: httpx.Client) -> None:
    """RFC 6749 §2.3.1 client_secret_basic, with PKCE all the same (FAPI 2.0 SP 5.3.2.2)."""
    result = _check_flow(
        run_openid_client(node, server, browser, "demo-backend", BACKEND_REDIRECT, secret=DEMO_SECRET),
        server,
        "demo-backend",
    )
    # Confidential clients' refresh tokens are sender-constrained by client auth and do not rotate.
    assert result["refreshed"]["refresh_token"] == result["tokens"]["refresh_token"]


def _drop_param(url: str, name: str) -> str:
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != name])
    return urlunsplit(parts._replace(query=query))


def test_openid_client_enforces_the_advertised_iss_parameter(node: str, server: Server, browser: httpx.Client) -> None:
    """RFC 9207 §2.4/§3: the discovery document advertises authorization_response_iss_parameter_supported,
    so a conforming client refuses a callback without `iss` (mix-up defence)."""
    run = run_openid_client(
        node, server, browser, "demo-native", NATIVE_REDIRECT, tamper=lambda url: _drop_param(url, "iss")
    )
    assert run.authorize["server"]["authorization_response_iss_parameter_supported"] is True
    assert run.result["step"] == "error", run.result
    assert run.result["code"] == "OAUTH_INVALID_RESPONSE", run.result
    assert run.result["cause"] == 'response parameter "iss" (issuer) missing', run.result


def test_openid_client_accepts_the_denial_as_an_authorization_error(
    node: str, server: Server, browser: httpx.Client
) -> None:
    """RFC 6749 §4.1.2.1 access_denied after the user denies consent, carrying `iss` as every
    authorization response must (RFC 9207 §2): openid-client checks iss before it looks at the error,
    so a missing iss would surface as OAUTH_INVALID_RESPONSE instead."""
    # prompt=consent (OIDC Core §3.1.2.1): alice's consent may be remembered from an earlier test.
    run = run_openid_client(node, server, browser, "demo-native", NATIVE_REDIRECT, decision="deny", prompt="consent")
    assert run.result["step"] == "error", run.result
    assert run.result["code"] == "OAUTH_AUTHORIZATION_RESPONSE_ERROR", run.result
    assert run.result["error"] == "access_denied", run.result
    cb = query_of(run.callback)
    assert cb["iss"] == server.issuer and "code" not in cb
