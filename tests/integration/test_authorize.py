"""The authorization endpoint (RFC 6749 §4.1.1-§4.1.2.1, OIDC Core §3.1.2): methods, prompt, max_age,
remembered consent, and where errors go."""

from __future__ import annotations

import re
import secrets
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.database import audit_events, user_id
from support.demo import BACKEND_REDIRECT, NATIVE_REDIRECT, SPA_ORIGIN, SPA_REDIRECT
from support.flow import authorize_steps, authorize_url, consent, follow_to_client, login, pkce_pair, query_of, run_flow
from support.inprocess import InProcessServer
from support.operator import new_confidential_client, new_user
from support.server import DEMO_PASSWORD, Server
from support.tokens import exchange

pytestmark = [pytest.mark.login, pytest.mark.consent]

# RFC 6749 §4.1.2.1: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
DESCRIPTION = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")


def _id_token(http: httpx.Client, tokens: dict) -> dict:
    return jwt.decode(tokens["id_token"], KeySet.import_key_set(http.get("/jwks").json())).claims


def _params(
    client_id: str = "demo-native", redirect_uri: str = NATIVE_REDIRECT, scope: str = "openid", **extra: str
) -> dict[str, str]:
    _, challenge = pkce_pair()
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


# -- GET and POST -----------------------------------------------------------------------------


def test_post_form_works_like_get(server: Server, browser: httpx.Client) -> None:
    """OIDC Core §3.1.2.1: the authorization endpoint MUST support GET and POST (form-encoded)."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": "demo-spa",
        "redirect_uri": SPA_REDIRECT,
        "scope": "openid profile",
        "state": "post-state",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "nonce": "post-nonce",
    }
    resp = browser.post("/authorize", data=params)
    assert resp.status_code == 303 and resp.headers["location"].startswith("/interaction/")
    page = browser.get(resp.headers["location"])
    resp = login(browser, page, "alice", DEMO_PASSWORD)
    resp = browser.get(resp.headers["location"])
    if resp.status_code == 200:
        resp = consent(browser, resp)
    assert resp.status_code == 303
    got = query_of(resp.headers["location"])
    assert got["state"] == "post-state" and got["iss"] == server.issuer and got["code"]
    tokens = browser.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": got["code"],
            "redirect_uri": SPA_REDIRECT,
            "client_id": "demo-spa",
            "code_verifier": verifier,
        },
    )
    assert tokens.status_code == 200, tokens.text
    assert _id_token(browser, tokens.json())["nonce"] == "post-nonce"
    # With the session now in place, a POST goes straight back with a code, as a GET would.
    resp = browser.post("/authorize", data={**params, "state": "second"})
    assert resp.status_code == 303 and query_of(resp.headers["location"])["state"] == "second"
    assert query_of(resp.headers["location"])["code"]


def test_post_needs_a_form_body(browser: httpx.Client) -> None:
    resp = browser.post(
        "/authorize", content=b'{"client_id": "demo-native"}', headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 400 and "location" not in resp.headers


# -- prompt and max_age -----------------------------------------------------------------------


def test_prompt_none_without_session_is_login_required(server: Server, browser: httpx.Client) -> None:
    """OIDC Core §3.1.2.6: prompt=none and no signed-in user → login_required, to the redirect URI."""
    params = _params(prompt="none")
    resp = browser.get("/authorize?" + urlencode(params))
    assert resp.status_code == 303
    got = query_of(resp.headers["location"])
    assert got["error"] == "login_required" and got["state"] == params["state"] and got["iss"] == server.issuer


def test_prompt_none_with_session_and_consent_returns_a_code(server: Server, browser: httpx.Client) -> None:
    """OIDC Core §3.1.2.1 prompt=none: no page is shown; with a session and consent → a code (for a
    client whose identity is assured: here a browser app bound to its https origin, RFC 8252 §8.6)."""
    first = run_flow(browser, "demo-spa", SPA_REDIRECT, scope="openid profile")
    assert exchange(browser, first, client_id="demo-spa").status_code == 200
    params = _params("demo-spa", SPA_REDIRECT, scope="openid profile", prompt="none")
    resp = browser.get("/authorize?" + urlencode(params))
    assert resp.status_code == 303 and resp.headers["location"].startswith(SPA_REDIRECT)
    got = query_of(resp.headers["location"])
    assert got["code"] and got["state"] == params["state"] and got["iss"] == server.issuer


def test_prompt_none_with_session_but_no_consent_is_consent_required(server: Server, browser: httpx.Client) -> None:
    """OIDC Core §3.1.2.6 consent_required: signed in, but the scopes were never approved."""
    username, password = new_user(server)
    assert authorize_steps(browser, "demo-native", NATIVE_REDIRECT, "openid", username, password).saw_consent
    params = _params(scope="openid email", prompt="none")
    resp = browser.get("/authorize?" + urlencode(params))
    assert resp.status_code == 303
    got = query_of(resp.headers["location"])
    assert got["error"] == "consent_required" and got["state"] == params["state"] and got["iss"] == server.issuer
    assert "code" not in got


def test_prompt_login_forces_a_new_login(server: Server, browser: httpx.Client) -> None:
    """OIDC Core §3.1.2.1 prompt=login: reauthenticate even with a session."""
    username, password = new_user(server)
    assert authorize_steps(browser, "demo-native", NATIVE_REDIRECT, "openid", username, password).saw_login
    assert not authorize_steps(browser, "demo-native", NATIVE_REDIRECT, "openid", username, password).saw_login
    steps = authorize_steps(browser, "demo-native", NATIVE_REDIRECT, "openid", username, password, prompt="login")
    assert steps.saw_login and steps.result.code


def test_a_new_login_replaces_the_old_session(server: Server, browser: httpx.Client) -> None:
    """Session fixation defence: signing in again (prompt=login) issues a new session cookie and the
    old one stops working."""
    username, password = new_user(server)
    assert authorize_steps(browser, "demo-native", NATIVE_REDIRECT, "openid", username, password).saw_login
    old = browser.cookies.get("__Host-fg_session")
    assert authorize_steps(
        browser, "demo-native", NATIVE_REDIRECT, "openid", username, password, prompt="login"
    ).saw_login
    assert browser.cookies.get("__Host-fg_session") != old
    with server.client(follow_redirects=False) as other:
        other.cookies.set("__Host-fg_session", old, domain="localhost")
        resp = other.get("/authorize?" + urlencode(_params(scope="openid", prompt="none")))
        assert query_of(resp.headers["location"])["error"] == "login_required"


def test_prompt_consent_shows_consent_again(server: Server, browser: httpx.Client) -> None:
    """OIDC Core §3.1.2.1 prompt=consent: ask for consent even when it is remembered."""
    username, password = new_user(server)
    assert authorize_steps(browser, "demo-spa", SPA_REDIRECT, "openid", username, password).saw_consent
    assert not authorize_steps(browser, "demo-spa", SPA_REDIRECT, "openid", username, password).saw_consent
    steps = authorize_steps(browser, "demo-spa", SPA_REDIRECT, "openid", username, password, prompt="consent")
    assert steps.saw_consent and steps.result.code


# -- native apps whose identity cannot be assured (RFC 8252 §8.6) ------------------------------


def _native_client(server: Server, *extra: str) -> str:
    out = server.add_client(
        "--name",
        "Native " + secrets.token_hex(3),
        "--profile",
        "native",
        "--redirect-uri",
        "http://127.0.0.1/callback",
        "--redirect-uri",
        "com.example.app:/callback",
        "--redirect-uri",
        "https://app.example.com/callback",
        "--scope",
        "openid profile",
        *extra,
    )
    return out["client_id"]


def _prompt_none(browser: httpx.Client, client_id: str, redirect_uri: str) -> dict[str, str]:
    resp = browser.get("/authorize?" + urlencode(_params(client_id, redirect_uri, prompt="none")))
    assert resp.status_code == 303 and resp.headers["location"].startswith(redirect_uri), resp.text[:300]
    return query_of(resp.headers["location"])


@pytest.mark.parametrize("redirect_uri", [NATIVE_REDIRECT, "com.fingrade.demo:/callback"])
def test_rfc8252_8_6_unverified_native_app_asks_the_user_every_time(
    server: Server, browser: httpx.Client, redirect_uri: str
) -> None:
    """RFC 8252 §8.6: a native app's repeated request is not processed automatically when the client's
    identity cannot be assured (loopback or private-use scheme: any app can claim them), even though
    the user is signed in and approved these scopes before; prompt=none then gets consent_required
    (OIDC Core §3.1.2.6), never a code."""
    username, password = new_user(server)
    first = authorize_steps(browser, "demo-native", redirect_uri, "openid", username, password)
    assert first.saw_login and first.saw_consent and first.result.code
    again = authorize_steps(browser, "demo-native", redirect_uri, "openid", username, password)
    assert not again.saw_login and again.saw_consent and again.result.code
    got = _prompt_none(browser, "demo-native", redirect_uri)
    assert got["error"] == "consent_required" and "code" not in got and got["iss"] == server.issuer


def test_rfc8252_8_6_page_asks_to_continue_only_from_the_app(server: Server, browser: httpx.Client) -> None:
    """The confirmation says why it is asked: continue only if this came from the app on this device."""
    username, password = new_user(server)
    authorize_steps(browser, "demo-native", NATIVE_REDIRECT, "openid", username, password)
    resp = follow_to_client(browser, browser.get("/authorize?" + urlencode(_params())), NATIVE_REDIRECT)
    assert resp.status_code == 200 and 'name="decision"' in resp.text
    assert "Only continue if you started this in Fingrade Demo Mobile App" in resp.text


def test_rfc8252_8_6_verified_native_app_and_claimed_https_go_straight_back(
    server: Server, browser: httpx.Client
) -> None:
    """RFC 8252 §8.6: where the client's identity is assured the remembered consent counts again: a
    native client an operator marked verified (`clients add --verified`), or a request to a claimed
    https redirect URI (RFC 8252 §7.2: the operating system gives it only to the app of that domain)."""
    username, password = new_user(server)
    verified = _native_client(server, "--verified")
    for redirect_uri in ("http://127.0.0.1:40111/callback", "com.example.app:/callback"):
        authorize_steps(browser, verified, redirect_uri, "openid", username, password)
        again = authorize_steps(browser, verified, redirect_uri, "openid", username, password)
        assert not again.saw_login and not again.saw_consent and again.result.code
        assert _prompt_none(browser, verified, redirect_uri)["code"]
    unverified = _native_client(server)
    authorize_steps(browser, unverified, "https://app.example.com/callback", "openid", username, password)
    again = authorize_steps(browser, unverified, "https://app.example.com/callback", "openid", username, password)
    assert not again.saw_consent and again.result.code
    assert _prompt_none(browser, unverified, "https://app.example.com/callback")["code"]
    assert _prompt_none(browser, unverified, "http://127.0.0.1:40111/callback")["error"] == "consent_required"


def test_rfc8252_8_6_operator_verifies_and_unverifies_a_native_app(clocked_server: InProcessServer) -> None:
    """`fingrade clients verify|unverify <client_id>` switch the rule on a running server within its
    client cache time (client_cache_seconds, 5 s). The server runs in this process on a clock the
    test moves; the command line is another process, as in production."""
    clock = clocked_server.clock
    cid = _native_client(clocked_server)
    clock.freeze()
    with clocked_server.client(follow_redirects=False) as browser:
        authorize_steps(browser, cid, NATIVE_REDIRECT, "openid")
        assert _prompt_none(browser, cid, NATIVE_REDIRECT)["error"] == "consent_required"
        assert '"identity_verified": true' in clocked_server.cli("clients", "verify", cid).stdout
        clock.advance(5)
        assert "code" in _prompt_none(browser, cid, NATIVE_REDIRECT)
        clocked_server.cli("clients", "unverify", cid)
        clock.advance(5)
        assert _prompt_none(browser, cid, NATIVE_REDIRECT)["error"] == "consent_required"


def test_max_age(clocked_server: InProcessServer) -> None:
    """OIDC Core §3.1.2.1 max_age: if the last active authentication is older, the user signs in again;
    the ID token carries auth_time (§2) of the authentication that counted. The server runs in this
    process on a clock the test moves (to the second)."""
    clock = clocked_server.clock
    clock.freeze()
    with clocked_server.client(follow_redirects=False) as browser:
        first = authorize_steps(browser, "demo-native", NATIVE_REDIRECT, "openid")
        assert first.saw_login
        first_auth = _id_token(browser, exchange(browser, first.result, client_id="demo-native").json())["auth_time"]
        assert first_auth == clock()
        clock.advance(1)
        # A generous max_age, or one the session is exactly as old as: no login.
        for max_age in ("3600", "1"):
            recent = authorize_steps(browser, "demo-native", NATIVE_REDIRECT, "openid", max_age=max_age)
            assert not recent.saw_login, max_age
            tokens = exchange(browser, recent.result, client_id="demo-native").json()
            assert _id_token(browser, tokens)["auth_time"] == first_auth
        clock.advance(1)
        # prompt=none cannot sign the user in again: login_required.
        resp = browser.get("/authorize?" + urlencode(_params(prompt="none", max_age="1")))
        assert query_of(resp.headers["location"])["error"] == "login_required"
        # max_age=1 after two seconds: sign in again, and auth_time moves.
        stale = authorize_steps(browser, "demo-native", NATIVE_REDIRECT, "openid", max_age="1")
        assert stale.saw_login
        tokens = exchange(browser, stale.result, client_id="demo-native").json()
        assert _id_token(browser, tokens)["auth_time"] == first_auth + 2


def test_max_age_zero_is_prompt_login(clocked_server: InProcessServer) -> None:
    """OIDC Core §3.1.2.1 (errata set 2): "max_age=0 is equivalent to prompt=login", even for a
    session that is less than a second old. The server runs in this process on a frozen clock: the
    next request comes within the same second as auth_time (an "older than max_age" comparison
    alone would then not ask again)."""
    clocked_server.clock.freeze()
    with clocked_server.client(follow_redirects=False) as browser:
        assert authorize_steps(browser, "demo-spa", SPA_REDIRECT, "openid").saw_login
        steps = authorize_steps(browser, "demo-spa", SPA_REDIRECT, "openid", max_age="0")
        assert steps.saw_login and steps.result.code
        resp = browser.get("/authorize?" + urlencode(_params("demo-spa", SPA_REDIRECT, prompt="none", max_age="0")))
        assert query_of(resp.headers["location"])["error"] == "login_required"


@pytest.mark.parametrize("value", ["-1", "abc", "1.5", "9" * 12])
def test_bad_max_age_is_invalid_request(server: Server, browser: httpx.Client, value: str) -> None:
    """OIDC Core §3.1.2.1: max_age is a non-negative integer number of seconds."""
    resp = browser.get("/authorize?" + urlencode(_params(max_age=value)))
    assert resp.status_code == 303
    assert query_of(resp.headers["location"])["error"] == "invalid_request"


# -- remembered consent -----------------------------------------------------------------------


def test_consent_is_remembered_per_user_client_and_scopes(server: Server) -> None:
    """Remembered consent (per user, client and scopes; FAPI 2.0 SP 5.3.2.2-13 consent shows
    the client and scopes): a remembered consent covers only what was approved."""
    user_a, password_a = new_user(server)
    user_b, password_b = new_user(server)
    c1, _ = new_confidential_client(server)
    c2, _ = new_confidential_client(server)
    with server.client(follow_redirects=False) as a, server.client(follow_redirects=False) as b:

        def seen(browser: httpx.Client, client: str, scope: str, user: str, password: str) -> bool:
            steps = authorize_steps(browser, client, BACKEND_REDIRECT, scope, user, password)
            assert steps.result.code, steps.result.params
            return steps.saw_consent

        assert seen(a, c1, "openid profile", user_a, password_a)  # first time: asked
        assert not seen(a, c1, "openid profile", user_a, password_a)  # remembered
        assert not seen(a, c1, "profile", user_a, password_a)  # a subset is covered
        assert seen(a, c1, "openid profile email", user_a, password_a)  # a new scope: asked again
        assert not seen(a, c1, "openid email", user_a, password_a)  # approvals accumulate
        assert seen(a, c2, "openid", user_a, password_a)  # another client: asked
        assert seen(b, c1, "openid profile", user_b, password_b)  # another user: asked
    consents = audit_events(server, "consent_granted", client_id=c1, user_id=user_id(server, user_a))
    assert len(consents) == 2


def test_denied_consent_is_not_remembered(server: Server, browser: httpx.Client) -> None:
    """Deny → access_denied to the client (RFC 6749 §4.1.2.1), and the next request asks again."""
    username, password = new_user(server)
    denied = authorize_steps(browser, "demo-native", NATIVE_REDIRECT, "openid", username, password, decision="deny")
    assert denied.saw_consent and denied.result.params["error"] == "access_denied"
    assert denied.result.params["iss"] == server.issuer
    again = authorize_steps(browser, "demo-native", NATIVE_REDIRECT, "openid", username, password)
    assert again.saw_consent and again.result.code


# -- where errors go --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        {"response_type": "code", "redirect_uri": NATIVE_REDIRECT, "scope": "openid"},  # no client_id
        {"response_type": "code", "client_id": "no-such-client", "redirect_uri": NATIVE_REDIRECT, "scope": "openid"},
        {"response_type": "code", "client_id": "demo-native", "scope": "openid"},  # no redirect_uri
        {
            "response_type": "code",
            "client_id": "demo-native",
            "redirect_uri": "https://evil.example/cb",
            "scope": "openid",
        },
        {
            "response_type": "token",
            "client_id": "demo-spa",
            "redirect_uri": "https://evil.example/cb",
            "scope": "openid",
        },
    ],
)
def test_errors_before_the_redirect_uri_is_verified_are_an_error_page(browser: httpx.Client, query: dict) -> None:
    """RFC 6749 §4.1.2.1 / RFC 9700 §4.11: with a missing, unknown or mismatching client_id or
    redirect_uri the user sees an error page and is never redirected."""
    resp = browser.get("/authorize?" + urlencode(query))
    assert resp.status_code == 400
    assert "location" not in resp.headers
    assert resp.headers["content-type"].startswith("text/html")
    assert "evil.example" not in resp.text


@pytest.mark.parametrize(
    "change,error",
    [
        ({"response_type": "token"}, "unsupported_response_type"),  # RFC 9700 §2.1.2: no implicit
        ({"response_type": "code id_token"}, "unsupported_response_type"),  # no hybrid
        ({"response_type": None}, "invalid_request"),
        ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),  # RFC 7636 §4.4.1
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"prompt": "sometimes"}, "invalid_request"),
        ({"prompt": "none login"}, "invalid_request"),  # OIDC Core §3.1.2.1
        ({"scope": None}, "invalid_scope"),  # RFC 6749 §4.1.2.1
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"scope": "openid payments", "client_id": "demo-spa", "redirect_uri": SPA_REDIRECT}, "invalid_scope"),
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),  # OIDC Core §3.1.2.6
        ({"response_mode": "fragment"}, "invalid_request"),
    ],
)
def test_errors_after_the_redirect_uri_is_verified_are_redirected(
    server: Server, browser: httpx.Client, change: dict, error: str
) -> None:
    """RFC 6749 §4.1.2.1: once the redirect URI is verified, errors go back to the client with
    `error`, `error_description` (RFC 6749 §5.2 characters), `state`, and `iss` (RFC 9207 §2)."""
    params = {k: v for k, v in {**_params(scope="openid profile"), **change}.items() if v is not None}
    resp = browser.get("/authorize?" + urlencode(params))
    assert resp.status_code == 303, resp.text[:300]
    location = resp.headers["location"]
    assert location.startswith(params["redirect_uri"] + "?")
    got = query_of(location)
    assert got["error"] == error
    assert got["error_description"] and DESCRIPTION.fullmatch(got["error_description"])
    assert got["state"] == params["state"]
    assert got["iss"] == server.issuer
    assert "code" not in got


def test_redirect_error_without_state_has_no_state(server: Server, browser: httpx.Client) -> None:
    """RFC 6749 §4.1.2.1: state is returned only if it was in the request."""
    params = _params(response_type="token")
    del params["state"]
    got = query_of(browser.get("/authorize?" + urlencode(params)).headers["location"])
    assert got["error"] == "unsupported_response_type" and "state" not in got and got["iss"] == server.issuer


def test_redirect_uri_query_is_kept(server: Server, browser: httpx.Client) -> None:
    """RFC 6749 §3.1.2: the redirect URI's query component MUST be retained when parameters are added,
    for codes and for errors."""
    redirect = "https://localhost:9443/callback?tenant=7&lang=en"
    cid = server.add_client("--name", "Query redirect", "--profile", "confidential", "--redirect-uri", redirect)[
        "client_id"
    ]
    got = run_flow(browser, cid, redirect, scope="openid")
    assert got.location.startswith(redirect + "&")
    assert got.params["tenant"] == "7" and got.params["lang"] == "en" and got.code and got.params["iss"]
    resp = browser.get("/authorize?" + urlencode(_params(client_id=cid, redirect_uri=redirect, response_type="token")))
    assert resp.headers["location"].startswith(redirect + "&")
    err = query_of(resp.headers["location"])
    assert err["tenant"] == "7" and err["error"] == "unsupported_response_type"


@pytest.mark.parametrize("length", [64, 65, 200, 512])
def test_long_nonce_is_returned_unchanged(browser: httpx.Client, length: int) -> None:
    """OIDC Core §3.1.2.1/§3.1.3.6: the nonce is passed through unmodified (nonces of at least
    64 characters are kept whole)."""
    alphabet = "abcXYZ019-._~+/=!$&'()*,;:@ %"
    nonce = "".join(secrets.choice(alphabet) for _ in range(length))
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT, scope="openid", nonce=nonce)
    tokens = exchange(browser, got, client_id="demo-native").json()
    assert _id_token(browser, tokens)["nonce"] == nonce


def test_authorization_endpoint_never_sends_cors_headers(browser: httpx.Client) -> None:
    """RFC 9700 §2.6: no CORS at the authorization endpoint (its responses must not be readable by
    scripts of other origins)."""
    origin = {"Origin": SPA_ORIGIN}
    responses = [
        browser.get(authorize_url("demo-spa", SPA_REDIRECT, pkce_pair()[1]), headers=origin),
        browser.get("/authorize?client_id=nobody", headers=origin),
        browser.post("/authorize", data=_params(client_id="demo-spa", redirect_uri=SPA_REDIRECT), headers=origin),
        browser.options("/authorize", headers={**origin, "Access-Control-Request-Method": "GET"}),
    ]
    for resp in responses:
        assert not any(h.startswith("access-control-") for h in resp.headers), resp.headers


def test_login_and_consent_are_audited(server: Server, browser: httpx.Client) -> None:
    """Audit events are written for login and consent."""
    username, password = new_user(server)
    c1, _ = new_confidential_client(server)
    steps = authorize_steps(browser, c1, BACKEND_REDIRECT, "openid", username, password)
    assert steps.saw_login and steps.saw_consent
    uid = user_id(server, username)
    logins = audit_events(server, "login", client_id=c1, user_id=uid)
    assert len(logins) == 1 and logins[0][3] == "127.0.0.1"
    assert len(audit_events(server, "consent_granted", client_id=c1, user_id=uid)) == 1
