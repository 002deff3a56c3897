"""Redirect URI tricks at the authorization endpoint. Until the client and its redirect URI are
known to belong together, every error is an error page and never a redirect (RFC 6749 §4.1.2.1,
RFC 9700 §4.11: no open redirector). Matching is exact, byte for byte and case-sensitive
(RFC 9700 §4.1.3), with only the loopback port free (RFC 8252 §7.3)."""

from __future__ import annotations

import string
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.demo import BACKEND, BACKEND_REDIRECT, NATIVE, NATIVE_REDIRECT
from support.flow import pkce_pair
from support.refusals import assert_error_page
from support.server import Server
from support.uri_oracle import assert_page_csp_intact, assert_well_formed

_, CHALLENGE = pkce_pair()


def query(client_id: str | None, redirect_uri: str | None, **extra: str) -> str:
    params = {
        "response_type": "code",
        "scope": "openid",
        "state": "s1",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        **extra,
    }
    if client_id is not None:
        params["client_id"] = client_id
    if redirect_uri is not None:
        params["redirect_uri"] = redirect_uri
    return urlencode(params, quote_via=quote)


BACKEND_TRICKS = [
    "https://localhost:9443/callback/../callback",  # path traversal
    "https://localhost:9443/callback/..%2fcallback",
    "https://localhost:9443/callback/%2e%2e/callback",  # encoded dot segments
    "https://localhost:9443/callback/%252e%252e/callback",  # double encoding
    "https://localhost:9443/callback/..;/callback",
    "https://localhost:9443/x/../callback",
    "https://localhost:9443/%63allback",  # an encoded equivalent is not byte-identical
    "https://evil.com@localhost:9443/callback",  # userinfo
    "https://localhost:9443@evil.com/callback",
    "https://localhost:9443%40evil.com/callback",
    "https://LOCALHOST:9443/callback",  # case in host (CVE-2020-15234)
    "https://localhost:9443/Callback",  # case in path
    "HTTPS://localhost:9443/callback",  # case in scheme
    "https://localhost:9443/callback?x=1",  # extra query
    "https://localhost:9443/callback?",
    "https://localhost:9443.evil.com/callback",  # suffix host
    "https://localhost:9443/callback.evil.com",
    "https://localhost:9443/callbackx",
    "https://localhost:9443/callback/",  # trailing slash
    "https://localhost:9443//callback",
    "https://localhost:9443/callback\r\nSet-Cookie: x=1",  # control characters (CVE-2024-39694)
    "https://localhost:9443/callback%0d%0a",
    "https://localhost:9443/callback\t",
    "https://localhost:9443/callback%09",
    "https://localhost:9443/call\x00back",
    "https://localhost:9443/callback#fragment",  # fragment
    "https://localhost:9443/callback#",
    "https://localhost/callback",  # default port
    "https://localhost:443/callback",
    "https://localhost:9444/callback",  # another port: only loopback http gets the port rule
    "http://localhost:9443/callback",  # downgrade to http
    "https://localhost:9443\\@evil.com/callback",  # backslash parsed as a slash by browsers
    "//evil.com/callback",  # scheme-relative
    "https:/localhost:9443/callback",
    "javascript:alert(document.domain)//https://localhost:9443/callback",
    "data:text/html,https://localhost:9443/callback",
    " https://localhost:9443/callback",
    "https://localhost:9443/callback ",
    "https://localhost:9443/caf\u00e9",
    "",
]

NATIVE_TRICKS = [
    "http://localhost:51234/callback",  # RFC 8252 §8.3: localhost is not the registered IP literal
    "http://localhost/callback",
    "http://127.0.0.1:51234/callback/../callback",
    "http://127.0.0.1:51234/callback/%2e%2e/callback",
    "http://127.0.0.1:51234/Callback",
    "http://127.0.0.1:51234/callback/",
    "http://127.0.0.1:51234/callback?x=1",  # loopback: port only, query exact (CVE-2020-15233)
    "http://127.0.0.1:51234/callback#x",
    "http://127.0.0.1:51234/callback%0d%0a",
    "http://127.0.0.1:51234/callback\t",
    "http://127.0.0.1.evil.com/callback",  # suffix host
    "http://127.0.0.1:51234.evil.com/callback",
    "http://127.0.0.1:51234@evil.com/callback",  # userinfo
    "http://evil.com@127.0.0.1:51234/callback",
    "http://127.0.0.2:51234/callback",
    "http://[0:0:0:0:0:0:0:1]:51234/callback",
    "http://2130706433:51234/callback",  # 127.0.0.1 as an integer
    "http://0x7f.0.0.1:51234/callback",
    "https://127.0.0.1:51234/callback",
    "HTTP://127.0.0.1:51234/callback",
    "http://127.0.0.1:0/callback",
    "http://127.0.0.1:99999/callback",
    "http://127.0.0.1:51234\\@evil.com/callback",
    "com.fingrade.demo:/callback/../x",
    "com.fingrade.demo://callback",
    "COM.FINGRADE.DEMO:/callback",
    "com.fingrade.demo.evil:/callback",
    "com.fingrade.demo:/callback?x=1",
]


@pytest.mark.parametrize("uri", BACKEND_TRICKS)
def test_confidential_client_redirect_tricks_get_an_error_page_rfc9700_4_1_3(browser: httpx.Client, uri: str) -> None:
    assert_error_page(browser.get("/authorize?" + query(BACKEND, uri)))


@pytest.mark.parametrize("uri", NATIVE_TRICKS)
def test_native_client_redirect_tricks_get_an_error_page_rfc8252_7_3(browser: httpx.Client, uri: str) -> None:
    assert_error_page(browser.get("/authorize?" + query(NATIVE, uri)))


@pytest.mark.parametrize(
    ("client_id", "uri"),
    [
        (BACKEND, BACKEND_REDIRECT),
        (NATIVE, NATIVE_REDIRECT),
        (NATIVE, "http://127.0.0.1/callback"),
        (NATIVE, "http://127.0.0.1:1/callback"),
        (NATIVE, "http://[::1]:51234/callback"),
        (NATIVE, "com.fingrade.demo:/callback"),
    ],
)
def test_registered_uris_are_accepted(browser: httpx.Client, client_id: str, uri: str) -> None:
    """Control: the registered URIs (and the loopback ones on any port) go on to the login page."""
    resp = browser.get("/authorize?" + query(client_id, uri))
    assert resp.status_code == 303 and resp.headers["location"].startswith("/interaction/"), resp.text[:300]


def test_redirect_uri_may_not_be_omitted(browser: httpx.Client) -> None:
    """Exact matching needs something to match (OAuth 2.1 §4.1.1; FAPI 2.0 SP 5.3.2.2-6)."""
    assert_error_page(browser.get("/authorize?" + query(BACKEND, None)))


def test_unknown_client_gets_an_error_page_rfc6749_4_1_2_1(browser: httpx.Client) -> None:
    assert_error_page(browser.get("/authorize?" + query("no-such-client", BACKEND_REDIRECT)))
    assert_error_page(browser.get("/authorize?" + query(None, BACKEND_REDIRECT)))
    assert_error_page(browser.get("/authorize?" + query("demo-native\x00", NATIVE_REDIRECT)))
    assert_error_page(browser.get("/authorize?" + query("DEMO-NATIVE", NATIVE_REDIRECT)))


def test_another_clients_redirect_uri_refused_rfc6749_3_1_2_3(browser: httpx.Client) -> None:
    assert_error_page(browser.get("/authorize?" + query(NATIVE, BACKEND_REDIRECT)))
    assert_error_page(browser.get("/authorize?" + query(BACKEND, NATIVE_REDIRECT)))


@pytest.mark.parametrize(
    "raw",
    [
        # CVE-2026-9689, parameter pollution: a duplicate must not be validated one way and used another.
        f"redirect_uri={quote(BACKEND_REDIRECT, safe='')}&redirect_uri=https%3A%2F%2Fevil.com%2Fcb",
        f"redirect_uri=https%3A%2F%2Fevil.com%2Fcb&redirect_uri={quote(BACKEND_REDIRECT, safe='')}",
        f"redirect_uri={quote(BACKEND_REDIRECT, safe='')}&redirect_uri={quote(BACKEND_REDIRECT, safe='')}",
        f"client_id=demo-native&redirect_uri={quote(BACKEND_REDIRECT, safe='')}",
        f"client_id=demo-backend&redirect_uri={quote(BACKEND_REDIRECT, safe='')}",
    ],
)
def test_duplicated_parameters_get_an_error_page_rfc6749_3_1(browser: httpx.Client, raw: str) -> None:
    base = query(BACKEND, None)
    assert_error_page(browser.get(f"/authorize?{base}&{raw}"))


def test_duplicated_client_id_with_a_valid_pair_refused_rfc6749_3_1(browser: httpx.Client) -> None:
    base = query(None, NATIVE_REDIRECT)
    assert_error_page(browser.get(f"/authorize?{base}&client_id=demo-native&client_id=demo-backend"))
    assert_error_page(browser.get(f"/authorize?{base}&client_id=demo-backend&client_id=demo-native"))


def test_bad_encoding_in_the_authorization_request_gets_an_error_page(browser: httpx.Client) -> None:
    """Without a trustworthy client_id/redirect_uri pair there is nowhere safe to redirect."""
    for suffix in ("&x=%zz", "&x=%ff", "&x=%C3", "&x=%00"):
        assert_error_page(browser.get("/authorize?" + query(NATIVE, NATIVE_REDIRECT) + suffix))


def test_post_authorization_request_follows_the_same_rules_rfc6749_3_1(browser: httpx.Client) -> None:
    """OIDC Core §3.1.2.1: POST is supported; the body is read exactly like the query."""
    headers = {"content-type": "application/x-www-form-urlencoded"}
    ok = browser.post("/authorize", content=query(NATIVE, NATIVE_REDIRECT), headers=headers)
    assert ok.status_code == 303 and ok.headers["location"].startswith("/interaction/")
    assert_error_page(
        browser.post("/authorize", content=query(NATIVE, "http://localhost:51234/callback"), headers=headers)
    )
    assert_error_page(
        browser.post("/authorize", content=query(NATIVE, NATIVE_REDIRECT) + "&client_id=demo-spa", headers=headers)
    )
    # Parameters in the query string of a POST are not mixed with the body.
    assert_error_page(
        browser.post(
            "/authorize?" + query(NATIVE, NATIVE_REDIRECT), content=query(None, NATIVE_REDIRECT), headers=headers
        )
    )


# -- registration: what is registered can never break the pages' CSP (RFC 3986) --------------


@pytest.fixture(scope="module")
def registration_token(server: Server) -> str:
    return server.cli("registration-token", "create", "--label", "redirect-uri-properties").stdout.split()[0]


_PIECES = string.ascii_lowercase[:4] + "09.-_;,' :@[]%/?\"\t"
_piece = st.text(alphabet=_PIECES, max_size=8)
_port = st.one_of(st.just(""), st.integers(-1, 100000).map(lambda p: f":{p}"), _piece.map(lambda s: ":" + s))
_registered = st.one_of(
    st.builds("https://{}{}{}/cb".format, st.sampled_from(["a.example", "b.example", ""]), _piece, _port),
    st.builds("com.example.app://{}{}/cb".format, _piece, _port),
)
_LIVE = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_LIVE
@given(uri=_registered)
@example(uri="https://a.com;x/cb")  # the semicolon ended the form-action directive of the login page
@example(uri="https://a.example:99999/cb")
def test_registered_redirect_uri_cannot_break_the_pages_csp_rfc3986(
    server: Server, http: httpx.Client, registration_token: str, uri: str
) -> None:
    """RFC 7591 §2 + RFC 3986 §3.2.2-§3.2.3: a redirect URI offered through dynamic registration is
    refused (400 invalid_redirect_uri), or it is well formed and the login page of an authorization
    request to it carries an intact CSP (its origin is the form-action source)."""
    native = uri.startswith("com.")
    meta = {
        "client_name": "URI property",
        "redirect_uris": [uri],
        "scope": "openid",
        **({"application_type": "native", "token_endpoint_auth_method": "none"} if native else {}),
    }
    resp = http.post("/register", json=meta, headers={"Authorization": f"Bearer {registration_token}"})
    if resp.status_code == 400:
        assert resp.json()["error"] == "invalid_redirect_uri", resp.text
        return
    assert resp.status_code == 201, resp.text
    with server.client(follow_redirects=False) as browser:
        started = browser.get("/authorize?" + query(resp.json()["client_id"], uri))
        assert started.status_code == 303 and started.headers["location"].startswith("/interaction/")
        page = browser.get(started.headers["location"])
    assert page.status_code == 200
    assert_page_csp_intact(page.headers["content-security-policy"])
    assert_well_formed(uri)
