"""Pushed authorization requests (RFC 9126) for every client profile: the PAR endpoint (§2), the
authorization endpoint with request_uri (§4), requiring PAR (§5, §6) and metadata (§5)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from support.backends import BACKENDS
from support.demo import BACKEND_REDIRECT, BASIC, NATIVE_REDIRECT
from support.fapi import client_assertion, new_key
from support.flow import Authorized, consent, follow_to_client, login, pkce_pair, query_of, run_flow
from support.inprocess import InProcessServer
from support.operator import jwks_client, new_confidential_client
from support.refusals import assert_error_page, assert_oauth_error
from support.server import DEMO_PASSWORD, DEMO_SECRET, Server, dedicated_server
from support.tokens import exchange

pytestmark = pytest.mark.par

URN = "urn:ietf:params:oauth:request_uri:"


def _request(client_id: str, redirect_uri: str, scope: str = "openid", **extra: str) -> tuple[str, dict[str, str]]:
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": "st-" + verifier[:8],
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return verifier, params


def push(client: httpx.Client, params: dict[str, str], auth: Any = None) -> httpx.Response:
    return client.post("/par", data=params, auth=auth)


def pushed_uri(client: httpx.Client, params: dict[str, str], auth: Any = None) -> str:
    resp = push(client, params, auth)
    assert resp.status_code == 201, resp.text
    return resp.json()["request_uri"]


def start(browser: httpx.Client, client_id: str, request_uri: str, **extra: str) -> httpx.Response:
    return browser.get("/authorize?" + urlencode({"client_id": client_id, "request_uri": request_uri, **extra}))


def finish(browser: httpx.Client, resp: httpx.Response, redirect_uri: str, verifier: str) -> Authorized:
    """Sign in (and consent) on the pages `resp` leads to; return the authorization response."""
    resp = follow_to_client(browser, resp, redirect_uri)
    if resp.status_code == 200 and 'name="password"' in resp.text:
        resp = follow_to_client(browser, login(browser, resp, "alice", DEMO_PASSWORD), redirect_uri)
    if resp.status_code == 200 and 'name="decision"' in resp.text:
        resp = consent(browser, resp)
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    location = resp.headers["location"]
    assert location.startswith(redirect_uri), location
    params = query_of(location)
    return Authorized(
        code=params.get("code"), params=params, verifier=verifier, redirect_uri=redirect_uri, location=location
    )


def _pushed_flow(
    server: Server, browser: httpx.Client, client_id: str, redirect_uri: str, scope: str
) -> dict[str, Any]:
    """A public client's flow through PAR: pushed with client_id alone."""
    verifier, params = _request(client_id, redirect_uri, scope)
    resp = push(browser, params)
    # RFC 9126 §2.2: 201, request_uri with ≥ 128 random bits, expires_in, and never cached.
    assert resp.status_code == 201, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["expires_in"] == 60
    assert body["request_uri"].startswith(URN) and len(body["request_uri"]) - len(URN) >= 22
    # RFC 9126 §4: client_id and request_uri are all the browser carries.
    got = finish(browser, start(browser, client_id, body["request_uri"]), redirect_uri, verifier)
    assert got.code and got.params["state"] == params["state"] and got.params["iss"] == server.issuer
    tokens = exchange(browser, got, client_id=client_id)
    assert tokens.status_code == 200, tokens.text
    return tokens.json()


# -- happy paths, one per client profile ------------------------------------------------------


def test_rfc9126_s2_1_public_native_client_identifies_with_client_id(server: Server, browser: httpx.Client) -> None:
    """RFC 9126 §2.1: a public client (demo-native) pushes with client_id, as at the token endpoint."""
    tokens = _pushed_flow(server, browser, "demo-native", NATIVE_REDIRECT, "openid profile")
    assert tokens["scope"] == "openid profile"


def test_rfc9126_s2_1_confidential_client_secret_basic(server: Server, browser: httpx.Client) -> None:
    """RFC 9126 §2.1: demo-backend authenticates with client_secret_basic at the PAR endpoint."""
    verifier, params = _request("demo-backend", BACKEND_REDIRECT, "openid accounts")
    del params["client_id"]  # identified by its Basic credentials alone
    uri = pushed_uri(browser, params, BASIC)
    got = finish(browser, start(browser, "demo-backend", uri), BACKEND_REDIRECT, verifier)
    resp = exchange(browser, got, auth=BASIC)
    assert resp.status_code == 200, resp.text
    assert resp.json()["scope"] == "openid accounts"


def test_rfc9126_s2_1_private_key_jwt_client(server: Server, browser: httpx.Client, tmp_path: Path) -> None:
    """RFC 9126 §2.1 with RFC 7523 client assertions at both the PAR and the token endpoint."""
    key = new_key("ES256")
    client_id = jwks_client(server, key, tmp_path, "--grant-type", "authorization_code", "--scope", "openid accounts")
    verifier, params = _request(client_id, BACKEND_REDIRECT, "openid accounts")
    params.update(
        client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        client_assertion=client_assertion(key, "ES256", client_id, server.issuer),
    )
    uri = pushed_uri(browser, params)
    got = finish(browser, start(browser, client_id, uri), BACKEND_REDIRECT, verifier)
    resp = browser.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": got.code,
            "redirect_uri": BACKEND_REDIRECT,
            "code_verifier": verifier,
            "client_assertion_type": params["client_assertion_type"],
            "client_assertion": client_assertion(key, "ES256", client_id, server.issuer),
        },
    )
    assert resp.status_code == 200, resp.text


# -- the PAR endpoint's refusals --------------------------------------------------------------


def test_rfc9126_s2_3_get_is_405(http: httpx.Client) -> None:
    """RFC 9126 §2.3: methods other than POST get 405."""
    resp = http.get("/par")
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"


@pytest.mark.parametrize(
    "auth, drop_client_id", [(None, True), (("demo-backend", "wrong-secret"), False), (None, False)]
)
def test_rfc9126_s2_1_client_authentication_required(http: httpx.Client, auth: Any, drop_client_id: bool) -> None:
    """RFC 9126 §2.1 step 1, RFC 6749 §5.2: no, wrong or missing credentials are 401 invalid_client."""
    _, params = _request("demo-backend", BACKEND_REDIRECT)
    if drop_client_id:
        del params["client_id"]
    assert_oauth_error(push(http, params, auth), "invalid_client", 401)


def test_rfc9126_s2_1_request_uri_inside_a_push_is_refused(http: httpx.Client) -> None:
    """RFC 9126 §2.1 step 2: the pushed request must not contain request_uri."""
    _, params = _request("demo-native", NATIVE_REDIRECT, request_uri=URN + "x" * 43)
    assert_oauth_error(push(http, params), "invalid_request")


# (pushed override, error at PAR and at /authorize, /authorize answers with a page rather than a redirect)
SAME_ERRORS = [
    ({"response_type": "token"}, "unsupported_response_type", False),
    ({"scope": "openid admin"}, "invalid_scope", False),
    ({"code_challenge_method": "plain"}, "invalid_request", False),
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request", False),
    ({"redirect_uri": "https://evil.example/cb"}, "invalid_request", True),
    ({"redirect_uri": None}, "invalid_request", True),
]


@pytest.mark.parametrize("override, error, page", SAME_ERRORS)
def test_rfc9126_s2_3_pushed_params_validated_like_authorize(
    http: httpx.Client, browser: httpx.Client, override: dict[str, str | None], error: str, page: bool
) -> None:
    """RFC 9126 §2.1 step 3, §2.3: the pushed parameters get the authorization endpoint's checks, as JSON 400."""
    _, params = _request("demo-native", NATIVE_REDIRECT)
    for name, value in override.items():
        if value is None:
            params.pop(name)
        else:
            params[name] = value
    assert_oauth_error(push(http, params), error)
    resp = browser.get("/authorize?" + urlencode(params))
    if page:
        assert_error_page(resp)
        assert error in resp.text
    else:
        assert resp.status_code == 303 and query_of(resp.headers["location"])["error"] == error


# -- the authorization endpoint with request_uri ----------------------------------------------


def test_rfc9126_s4_parameters_outside_the_pushed_request_are_ignored(browser: httpx.Client) -> None:
    """RFC 9126 §4: only the pushed request counts; another redirect_uri, scope or state on the query do nothing."""
    verifier, params = _request("demo-native", NATIVE_REDIRECT, "openid")
    uri = pushed_uri(browser, params)
    resp = start(
        browser,
        "demo-native",
        uri,
        redirect_uri="http://127.0.0.1:9/elsewhere",
        scope="openid profile email",
        state="from-the-query",
        response_type="token",
    )
    got = finish(browser, resp, NATIVE_REDIRECT, verifier)
    assert got.params["state"] == params["state"]
    tokens = exchange(browser, got, client_id="demo-native")
    assert tokens.status_code == 200 and tokens.json()["scope"] == "openid"


def test_rfc9126_s4_request_uri_bound_to_its_client(browser: httpx.Client) -> None:
    """RFC 9126 §2.2/§4: a request_uri used with another client_id gets an error page (no redirect)."""
    _, params = _request("demo-native", NATIVE_REDIRECT)
    uri = pushed_uri(browser, params)
    resp = start(browser, "demo-spa", uri)
    assert_error_page(resp)
    assert "invalid_request_uri" in resp.text


@pytest.mark.parametrize(
    "request_uri, error",
    [
        (URN + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "invalid_request_uri"),
        ("https://127.0.0.1:1/request.jwt", "request_uri_not_supported"),  # never fetched (CVE-2020-10770)
    ],
)
def test_rfc9126_s4_unknown_or_foreign_request_uri(browser: httpx.Client, request_uri: str, error: str) -> None:
    """RFC 9126 §4: an unknown request_uri, or one that is not ours, gets an error page."""
    resp = start(browser, "demo-native", request_uri)
    assert_error_page(resp)
    assert error in resp.text


def test_rfc9126_s4_reload_before_login_then_dead_after_code(server: Server, browser: httpx.Client) -> None:
    """RFC 9126 §4/§7.3, FAPI 2.0 SP note 3: loading the request twice before sign-in works; once the
    code is issued the request_uri is used up, also for the other open interaction."""
    verifier, params = _request("demo-native", NATIVE_REDIRECT)
    uri = pushed_uri(browser, params)
    first = start(browser, "demo-native", uri)
    second = start(browser, "demo-native", uri)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] != second.headers["location"]
    got = finish(browser, second, NATIVE_REDIRECT, verifier)
    assert got.code
    again = start(browser, "demo-native", uri)
    assert_error_page(again)
    assert "invalid_request_uri" in again.text
    # The first interaction is still open but may not produce a second code.
    page = follow_to_client(browser, browser.get(first.headers["location"]), NATIVE_REDIRECT)
    if page.status_code == 200 and 'name="password"' in page.text:
        page = follow_to_client(browser, login(browser, page, "alice", DEMO_PASSWORD), NATIVE_REDIRECT)
    if page.status_code == 200 and 'name="decision"' in page.text:
        page = consent(browser, page)
    assert_error_page(page)
    assert "invalid_request_uri" in page.text


def test_rfc9126_s6_client_requiring_par_refuses_plain_requests(server: Server, browser: httpx.Client) -> None:
    """RFC 9126 §6 (client metadata require_pushed_authorization_requests) and §4: invalid_request
    to the verified redirect URI, with iss (RFC 9207) and state."""
    client_id, secret = new_confidential_client(server, "--require-par")
    shown = server.cli("clients", "show", client_id).stdout
    assert '"require_pushed_authorization_requests": true' in shown
    verifier, params = _request(client_id, BACKEND_REDIRECT)
    resp = browser.get("/authorize?" + urlencode(params))
    assert resp.status_code == 303
    got = query_of(resp.headers["location"])
    assert resp.headers["location"].startswith(BACKEND_REDIRECT)
    assert got["error"] == "invalid_request" and got["state"] == params["state"] and got["iss"] == server.issuer
    uri = pushed_uri(browser, params, (client_id, secret))
    assert finish(browser, start(browser, client_id, uri), BACKEND_REDIRECT, verifier).code


def test_rfc9126_s5_metadata(http: httpx.Client, server: Server) -> None:
    """RFC 9126 §5: the PAR endpoint and the (default false) requirement are advertised."""
    doc = http.get("/.well-known/oauth-authorization-server").json()
    assert doc["pushed_authorization_request_endpoint"] == server.issuer + "/par"
    assert doc["require_pushed_authorization_requests"] is False
    assert doc["request_uri_parameter_supported"] is True and doc["request_parameter_supported"] is False


# -- a server that requires PAR for everyone -----------------------------------------------------


@pytest.fixture(scope="module", params=BACKENDS)
def par_only_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"FINGRADE_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS": "true"}
    with dedicated_server(tmp_path_factory.mktemp("par-" + request.param), request.param, env) as srv:
        yield srv


def test_rfc9126_s5_server_requiring_par(par_only_server: Server) -> None:
    """RFC 9126 §5 require_pushed_authorization_requests: advertised, plain requests refused, PAR works."""
    with par_only_server.client(follow_redirects=False) as browser:
        doc = browser.get("/.well-known/openid-configuration").json()
        assert doc["require_pushed_authorization_requests"] is True
        verifier, params = _request("demo-backend", BACKEND_REDIRECT)
        resp = browser.get("/authorize?" + urlencode(params))
        assert resp.status_code == 303
        got = query_of(resp.headers["location"])
        assert got["error"] == "invalid_request" and got["iss"] == par_only_server.issuer
        uri = pushed_uri(browser, params, ("demo-backend", DEMO_SECRET))
        assert finish(browser, start(browser, "demo-backend", uri), BACKEND_REDIRECT, verifier).code


def test_rfc9126_s2_2_request_uri_expires(start_clocked: Callable[..., InProcessServer]) -> None:
    """RFC 9126 §2.2: the request_uri lives expires_in seconds (par_ttl, here its shortest, 10 s), then
    /authorize refuses it with an error page. The server runs in this process on a clock the test moves."""
    srv = start_clocked({"FINGRADE_PAR_TTL": "10"})
    srv.clock.freeze()  # to the second: pushed at t, usable until t + 10
    with srv.client(follow_redirects=False) as browser:
        _, params = _request("demo-native", NATIVE_REDIRECT)
        resp = push(browser, params)
        assert resp.status_code == 201 and resp.json()["expires_in"] == 10, resp.text
        uri = resp.json()["request_uri"]
        live = pushed_uri(browser, _request("demo-native", NATIVE_REDIRECT)[1])
        srv.clock.advance(9)
        # Control: inside its lifetime the request_uri starts the sign-in.
        resp = start(browser, "demo-native", live)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/interaction/"), resp.text
        srv.clock.advance(1)
        resp = start(browser, "demo-native", uri)
        assert_error_page(resp)
        assert "invalid_request_uri" in resp.text


def test_concurrent_completions_of_one_request_uri_yield_one_code(server: Server) -> None:
    """RFC 9126 §4 / FAPI 2.0 SP note 3: a request_uri is used once. A returning user (session and
    consent) loading it in many tabs at once gets one code; the others get an error page, never a
    5xx."""
    import threading

    with server.client(follow_redirects=False) as browser:
        run_flow(browser, "demo-spa", "https://localhost:3000/callback")  # session + consent
        _, challenge = pkce_pair()
        pushed = browser.post(
            "/par",
            data={
                "client_id": "demo-spa",
                "response_type": "code",
                "redirect_uri": "https://localhost:3000/callback",
                "scope": "openid profile",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            },
        ).json()
        url = "/authorize?" + urlencode({"client_id": "demo-spa", "request_uri": pushed["request_uri"]})
        cookies = dict(browser.cookies)
    statuses: list[tuple[int, str]] = []
    barrier = threading.Barrier(6)

    def load() -> None:
        with server.client(follow_redirects=False, cookies=cookies) as tab:
            barrier.wait()
            resp = tab.get(url)
            statuses.append((resp.status_code, resp.headers.get("location", "")))

    threads = [threading.Thread(target=load) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [loc for status, loc in statuses if status == 303 and "code=" in loc]
    assert len(codes) == 1, statuses
    assert all(status in (303, 400) for status, _ in statuses), statuses
