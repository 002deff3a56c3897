"""UserInfo (OIDC Core §5.3) as a protected resource (RFC 6750)."""

from __future__ import annotations

import httpx
import pytest
from support.refusals import www_authenticate
from support.server import Server
from support.tokens import bearer, client_credentials, user_tokens


@pytest.fixture
def tokens(browser: httpx.Client) -> dict:
    return user_tokens(browser, scope="openid profile email")


def test_get_and_post_return_the_same_claims(http: httpx.Client, tokens: dict) -> None:
    """OIDC Core §5.3.1: the UserInfo endpoint MUST support GET and POST."""
    get = http.get("/userinfo", headers=bearer(tokens["access_token"]))
    post = http.post("/userinfo", headers=bearer(tokens["access_token"]))
    form_post = http.post("/userinfo", headers=bearer(tokens["access_token"]), data={"unrelated": "ignored"})
    assert get.status_code == post.status_code == form_post.status_code == 200
    assert get.json() == post.json() == form_post.json()
    assert get.headers["content-type"].startswith("application/json")
    assert get.headers["cache-control"] == "no-store"


def test_claims_follow_the_granted_scopes(browser: httpx.Client, server: Server) -> None:
    """OIDC Core §5.4: `profile` releases name claims, `email` the address; `sub` always (§5.3.2)."""
    with server.client(follow_redirects=False) as b2, server.client(follow_redirects=False) as b3:
        only_openid = user_tokens(browser, scope="openid")
        profile = user_tokens(b2, scope="openid profile")
        both = user_tokens(b3, scope="openid profile email")
    info = {
        name: browser.get("/userinfo", headers=bearer(t["access_token"])).json()
        for name, t in (("openid", only_openid), ("profile", profile), ("both", both))
    }
    assert set(info["openid"]) == {"sub"}
    assert set(info["profile"]) == {"sub", "name", "preferred_username"}
    assert set(info["both"]) == {"sub", "name", "preferred_username", "email", "email_verified"}
    assert info["both"]["preferred_username"] == "alice"
    assert info["both"]["email"] == "alice@demo.fingrade.test" and info["both"]["email_verified"] is True
    assert info["openid"]["sub"] == info["profile"]["sub"] == info["both"]["sub"]


def test_no_token_is_401_with_a_bare_bearer_challenge(http: httpx.Client) -> None:
    """RFC 6750 §3.1: a request without authentication gets a challenge with no error attribute."""
    for resp in (http.get("/userinfo"), http.post("/userinfo")):
        assert resp.status_code == 401
        challenge = www_authenticate(resp)
        assert challenge["scheme"] == "bearer"
        assert challenge.get("realm")
        assert "error" not in challenge
        assert "error=" not in resp.headers["www-authenticate"]


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "eyJhbGciOiJub25lIn0.e30."])
def test_bad_token_is_401_invalid_token(http: httpx.Client, token: str) -> None:
    """RFC 6750 §3.1: an invalid token → 401 with error="invalid_token" in the challenge."""
    resp = http.get("/userinfo", headers=bearer(token))
    assert resp.status_code == 401
    challenge = www_authenticate(resp)
    assert challenge["scheme"] == "bearer" and challenge["error"] == "invalid_token" and challenge.get("realm")
    assert resp.json()["error"] == "invalid_token"


def test_tampered_token_is_401_invalid_token(http: httpx.Client, tokens: dict) -> None:
    """RFC 6750 §3.1: a token whose signature does not verify is invalid."""
    header, payload, sig = tokens["access_token"].split(".")
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    resp = http.get("/userinfo", headers=bearer(f"{header}.{payload}.{flipped}"))
    assert resp.status_code == 401 and www_authenticate(resp)["error"] == "invalid_token"


def test_id_token_is_not_an_access_token(http: httpx.Client, tokens: dict) -> None:
    """RFC 9068 §4: a JWT of another type (the ID token) is refused as an access token."""
    resp = http.get("/userinfo", headers=bearer(tokens["id_token"]))
    assert resp.status_code == 401 and www_authenticate(resp)["error"] == "invalid_token"


def test_token_without_openid_scope_is_403_insufficient_scope(browser: httpx.Client, http: httpx.Client) -> None:
    """RFC 6750 §3.1 insufficient_scope → 403; OIDC Core §5.3: UserInfo needs the `openid` scope."""
    for token in (
        user_tokens(browser, scope="accounts")["access_token"],
        client_credentials(http, "accounts")["access_token"],
    ):
        resp = http.get("/userinfo", headers=bearer(token))
        assert resp.status_code == 403, resp.text
        assert www_authenticate(resp)["error"] == "insufficient_scope"
        assert resp.json()["error"] == "insufficient_scope"


def test_token_in_query_string_or_form_body_is_refused(http: httpx.Client, tokens: dict) -> None:
    """FAPI 2.0 SP 5.3.4 / RFC 9700 §2 (no tokens in URLs): only the Authorization header carries the
    token; RFC 6750 §2.2 and §2.3 transports are refused with invalid_request (400, RFC 6750 §3.1)."""
    token = tokens["access_token"]
    resp = http.get("/userinfo", params={"access_token": token})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    assert www_authenticate(resp)["error"] == "invalid_request"
    resp = http.post("/userinfo", data={"access_token": token})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_scheme_name_is_case_insensitive(http: httpx.Client, tokens: dict, scheme: str) -> None:
    """RFC 9110 §11.1: the authentication scheme name is case-insensitive."""
    resp = http.get("/userinfo", headers=bearer(tokens["access_token"], scheme))
    assert resp.status_code == 200, resp.text


def test_other_schemes_are_refused(http: httpx.Client, tokens: dict) -> None:
    """RFC 6750 §2.1: only `Bearer` carries an access token here (Basic is not a token)."""
    resp = http.get("/userinfo", headers={"Authorization": "Basic " + tokens["access_token"]})
    assert resp.status_code == 401 and www_authenticate(resp)["error"] == "invalid_token"


def test_two_authorization_headers_are_invalid_request(http: httpx.Client, tokens: dict) -> None:
    """RFC 6750 §3.1 (more than one credential → invalid_request, 400); RFC 9449 §7.2."""
    token = tokens["access_token"]
    resp = http.get("/userinfo", headers=[("Authorization", "Bearer " + token), ("Authorization", "Bearer " + token)])
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
    assert "bearer" in resp.headers["www-authenticate"].lower()
