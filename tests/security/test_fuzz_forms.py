"""Property: no form body reaches a 5xx at any POST endpoint of the authorization server.

Generated bodies: random and known parameter names and values, repeated parameters (RFC 6749 §3.1),
empty values, bad and truncated percent-escapes, escapes of invalid UTF-8, raw non-UTF-8 bytes, huge
values below the body limit, JSON, JWS-shaped values; under every kind of Content-Type; with and without
real credentials (a client's secret, a resource server's, an access token, a browser's cookies and CSRF
token), so that the body reaches the code behind authentication and the CSRF check. Every answer must
hold the invariants of fuzzkit: no 5xx, the security headers, a registered error code in a JSON body
(OAuth endpoints) or an error page (browser endpoints), the keep-alive connection kept, and nothing
written by a refused request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.demo import BACKEND_REDIRECT
from support.flow import pkce_pair
from support.pages import authorize_query, browser_form, interaction
from support.server import Server

from .fuzzgen import CONTENT_TYPES, form_body
from .fuzzkit import FuzzCredentials, probe

pytestmark = pytest.mark.fuzz

BOUNDED = settings(
    max_examples=60, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)


@dataclass
class Target:
    path: str
    authorization: list[bytes] = field(default_factory=list)  # the real credentials, sent or not
    cookie: bytes | None = None  # a browser's cookies, with the CSRF token in `base`
    base: dict[str, str] = field(default_factory=dict)  # a request that works, which generation alters
    limit: int = 64 * 1024  # the endpoint's body limit: bodies stay below it (its 413 is tested elsewhere)


def _targets(server: Server, creds: FuzzCredentials) -> dict[str, Callable[[], Target]]:
    """Each POST endpoint with the credentials that get a generated body past its gate (built lazily:
    a browser form costs a sign-in)."""

    def page(path: str, action: str | None = None, sign_in: bool = False) -> Target:
        form = browser_form(server, path, action, sign_in=sign_in)
        return Target(form.path, cookie=form.cookie_header.encode(), base={"csrf_token": form.csrf}, limit=8192)

    def in_interaction(signed_in: bool) -> Target:
        _, form = interaction(server, signed_in=signed_in)
        return Target(form.path, cookie=form.cookie_header.encode(), base={"csrf_token": form.csrf}, limit=8192)

    _, challenge = pkce_pair()
    par = {
        "response_type": "code",
        "redirect_uri": BACKEND_REDIRECT,
        "scope": "openid accounts",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return {
        "/token": lambda: Target("/token", [creds.backend], base={"grant_type": "client_credentials"}),
        "/par": lambda: Target("/par", [creds.backend], base=par),
        "/introspect": lambda: Target(
            "/introspect", [creds.resource_server], base={"token": creds.client_credentials_token(server)}
        ),
        # The client's own token: a valid request revokes it (a write, allowed for a success).
        "/revoke": lambda: Target("/revoke", [creds.backend], base={"token": creds.client_credentials_token(server)}),
        "/userinfo": lambda: Target("/userinfo", [b"Bearer " + creds.user_token.encode()]),
        "/authorize": lambda: Target("/authorize", base=authorize_query()),
        "/interaction/{iid}/login": lambda: in_interaction(signed_in=False),
        "/interaction/{iid}/consent": lambda: in_interaction(signed_in=True),
        "/logout": lambda: page("/logout"),
        "/account/login": lambda: page("/account/login"),
        "/account/connections/revoke": lambda: page(
            "/account/connections", "/account/connections/revoke", sign_in=True
        ),
        "/register": lambda: Target("/register", [b"Bearer " + creds.initial_access_token.encode()]),
        "/consent-resources": lambda: Target("/consent-resources", [creds.resource_server]),
    }


ENDPOINTS = [
    "/token",
    "/par",
    "/introspect",
    "/revoke",
    "/userinfo",
    "/authorize",
    "/interaction/{iid}/login",
    "/interaction/{iid}/consent",
    "/logout",
    "/account/login",
    "/account/connections/revoke",
    "/register",
    "/consent-resources",
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_no_form_body_reaches_a_5xx(server: Server, fuzz_credentials: FuzzCredentials, endpoint: str) -> None:
    target = _targets(server, fuzz_credentials)[endpoint]()
    limit = target.limit - 1
    bodies = st.one_of(form_body(target.base, max_huge=limit), form_body(max_huge=limit)).map(lambda b: b[:limit])
    with probe(server) as p:

        @given(body=bodies, ctype=CONTENT_TYPES, authorized=st.integers(0, 3).map(bool))
        @BOUNDED
        def run(body: bytes, ctype: bytes | None, authorized: bool) -> None:
            headers = []
            if ctype is not None:
                headers.append((b"content-type", ctype))
            if authorized and target.authorization:
                headers.append((b"authorization", target.authorization[0]))
            if target.cookie:
                headers.append((b"cookie", target.cookie))
            p.send("POST", target.path, headers=headers, content=body)

        run()


# -- query strings and path segments at every GET endpoint ---------------------------------------------------
PATH_SEGMENTS = st.one_of(
    st.sampled_from(
        [
            "x",
            "..",
            ".",
            "%00",
            "%2F",
            "%2f..%2f",
            "%0A",
            "%0D%0A",
            "%ff",
            "%",
            "%zz",
            "a" * 300,
            "aac-x",
            "demo-backend",
            "%20",
            "+",
            "~",
            "%E2%80%AE",
        ]
    ),
    st.text(min_size=1, max_size=20).map(lambda s: quote(s, safe="")),
)


def _short(query: bytes) -> bytes:
    """At most 6000 bytes: a longer request line meets the server's header limits (431/414), which
    are not what is tested here."""
    return query[:6000]


GET_PATHS = [
    "/userinfo",
    "/authorize",
    "/interaction/{}",
    "/logout",
    "/account/login",
    "/account/connections",
    "/register/{}",
    "/consent-resources/{}",
    "/jwks",
    "/",
    "/healthz",
    "/openapi.json",
    "/static/{}",
    "/.well-known/openid-configuration",
]


def test_no_query_or_path_reaches_a_5xx_at_get_endpoints(server: Server, fuzz_credentials: FuzzCredentials) -> None:
    """Every GET endpoint, with any query string (RFC 6749 §3.1 rules at the OAuth ones: repeated and
    empty parameters, bad escapes, an access token in the query, FAPI 2.0 SP 5.3.4) and any path segment,
    with the credentials that get past its gate."""
    signed_in = browser_form(server, "/account/connections", sign_in=True).cookie_header.encode()
    credentials = {
        "/userinfo": (b"authorization", b"Bearer " + fuzz_credentials.user_token.encode()),
        "/consent-resources/{}": (b"authorization", fuzz_credentials.resource_server),
        "/register/{}": (b"authorization", b"Bearer x"),
        "/account/connections": (b"cookie", signed_in),
    }
    with probe(server) as p:

        @given(
            path=st.sampled_from(GET_PATHS),
            segment=PATH_SEGMENTS,
            query=form_body(max_huge=4000).map(_short),
            authorized=st.booleans(),
        )
        @settings(
            max_examples=150, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
        )
        def run(path: str, segment: str, query: bytes, authorized: bool) -> None:
            headers = [credentials[path]] if authorized and path in credentials else []
            p.send("GET", path.format(segment), query=query, headers=headers)

        run()
