"""Properties of what arrives in HTTP headers and JWTs:

- no JWS-shaped value reaches a 5xx wherever the server reads a JWT: access tokens (Bearer and DPoP
  schemes at /userinfo, the token parameter of introspection and revocation), DPoP proofs (RFC 9449),
  client assertions (RFC 7523) and request objects (RFC 9101) at the token and PAR endpoints. Headers
  and payloads are JSON of every type, members of every type (`alg`, `kid`, `typ`, `crit`, `jwk`, `exp`,
  `iat`, `nbf`, `jti`, `iss`, `aud`, `cnf`, …), validly signed or not; each is refused with the
  endpoint's error, and writes nothing;
- no header reaches a 5xx: Authorization schemes and junk, DPoP, Content-Type, Origin, Cookie, Host,
  X-Forwarded-*, repeated headers, at every endpoint;
- behind a trusted proxy (`trusted_proxies`), no X-Forwarded-For or forwarded client certificate
  (`mtls_cert_header`) reaches a 5xx either.

Every request also holds the invariants of fuzzkit (headers, keep-alive, nothing written)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.demo import BACKEND_REDIRECT
from support.server import Server, free_port, start_server

from .fuzzgen import FORM, HEADER_JUNK, ODD_CONTENT_TYPES, jws
from .fuzzkit import FuzzCredentials, probe

pytestmark = pytest.mark.fuzz

BOUNDED = settings(
    max_examples=150, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Short enough that no header or body size limit is what answers (those have their own tests).
JWS = jws().filter(lambda t: len(t) <= 3000)


def _form(**params: str) -> bytes:
    return urlencode(params).encode()


PAR = {
    "response_type": "code",
    "redirect_uri": BACKEND_REDIRECT,
    "scope": "openid accounts",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
    "code_challenge_method": "S256",
}
PLACES = [
    "userinfo bearer",
    "userinfo dpop",
    "userinfo dpop proof",
    "token dpop proof",
    "token client_assertion",
    "par client_assertion",
    "par request",
    "par dpop proof",
    "introspect token",
    "revoke token",
]


def _jwt_request(
    place: str, token: str, creds: FuzzCredentials
) -> tuple[str, str, list[tuple[bytes, bytes]], bytes | None]:
    """(method, path, headers, body) that puts `token` where `place` says."""
    form = [(b"content-type", FORM)]
    user = creds.user_token.encode()
    if place == "userinfo bearer":
        return "GET", "/userinfo", [(b"authorization", b"Bearer " + token.encode())], None
    if place == "userinfo dpop":
        return "GET", "/userinfo", [(b"authorization", b"DPoP " + token.encode())], None
    if place == "userinfo dpop proof":
        return "GET", "/userinfo", [(b"authorization", b"DPoP " + user), (b"dpop", token.encode())], None
    if place == "token dpop proof":
        return (
            "POST",
            "/token",
            [*form, (b"authorization", creds.backend), (b"dpop", token.encode())],
            _form(grant_type="client_credentials"),
        )
    if place == "token client_assertion":
        return (
            "POST",
            "/token",
            form,
            _form(grant_type="client_credentials", client_assertion_type=ASSERTION_TYPE, client_assertion=token),
        )
    if place == "par client_assertion":
        return "POST", "/par", form, _form(**PAR, client_assertion_type=ASSERTION_TYPE, client_assertion=token)
    if place == "par request":
        return "POST", "/par", [*form, (b"authorization", creds.backend)], _form(request=token)
    if place == "par dpop proof":
        return "POST", "/par", [*form, (b"authorization", creds.backend), (b"dpop", token.encode())], _form(**PAR)
    if place == "introspect token":
        return "POST", "/introspect", [*form, (b"authorization", creds.resource_server)], _form(token=token)
    return "POST", "/revoke", [*form, (b"authorization", creds.backend)], _form(token=token)


def test_no_jwt_reaches_a_5xx(server: Server, fuzz_credentials: FuzzCredentials) -> None:
    """Every JWT reader refuses what is not a JWT it accepts with its own error (RFC 6750 §3.1
    invalid_token, RFC 9449 §5/§7.1 invalid_dpop_proof, RFC 7523 §3.1 invalid_client, RFC 9101 §6.3
    invalid_request_object; introspection answers active=false, RFC 7662 §2.2; revocation 200, RFC 7009
    §2.2), never with a 5xx."""
    with probe(server) as p:

        @given(token=JWS, place=st.sampled_from(PLACES))
        @BOUNDED
        def run(token: str, place: str) -> None:
            method, path, headers, body = _jwt_request(place, token, fuzz_credentials)
            resp = p.send(
                method, path, headers=headers, content=body, must_refuse=not place.startswith(("introspect", "revoke"))
            )
            if place.startswith("introspect") and resp.status_code == 200:
                assert resp.json() == {"active": False}, resp.text

        run()


# -- any header, any endpoint -------------------------------------------------------------------------------
def _latin1(s: str) -> bytes:
    return s.encode("latin-1", "replace")


AUTHORIZATION = st.one_of(
    st.tuples(
        st.sampled_from([b"Bearer", b"DPoP", b"Basic", b"bearer", b"BASIC", b"Negotiate", b"Digest", b"", b"x"]),
        st.sampled_from([b" ", b"  ", b"\t", b""]),
        st.one_of(JWS.map(str.encode), HEADER_JUNK, st.binary(max_size=40).map(base64.b64encode)),
    ).map(b"".join),
    HEADER_JUNK,
)
COOKIE = st.lists(
    st.tuples(
        st.sampled_from([b"__Host-fg_browser", b"__Host-fg_session", b"x", b"", b"__Host-"])
        | HEADER_JUNK.map(lambda v: v.replace(b"=", b"").replace(b";", b"")[:10] or b"c"),
        HEADER_JUNK.map(lambda v: v.replace(b";", b"")) | st.just(b"") | st.just(b"a" * 200),
    ),
    max_size=4,
).map(lambda pairs: b"; ".join(k + b"=" + v for k, v in pairs) or b"=")
HOST = (
    st.sampled_from(
        [
            b"localhost",
            b"evil.example",
            b"[::1]",
            b"localhost:1",
            b"a b",
            b"[",
            b"a]",
            b"x:y:z",
            b"%zz",
            b"localhost:99999",
            b"xn--",
            b"127.0.0.1:443",
        ]
    )
    | HEADER_JUNK
)
HEADER = st.one_of(
    st.tuples(st.just(b"authorization"), AUTHORIZATION),
    st.tuples(st.just(b"dpop"), JWS.map(str.encode) | HEADER_JUNK),
    st.tuples(st.just(b"content-type"), ODD_CONTENT_TYPES | st.just(FORM)),
    st.tuples(
        st.just(b"origin"),
        st.sampled_from([b"https://localhost:3000", b"null", b"https://evil.example", b"https://localhost:3000/", b"*"])
        | HEADER_JUNK,
    ),
    st.tuples(st.just(b"cookie"), COOKIE),
    st.tuples(st.just(b"host"), HOST),
    st.tuples(
        st.sampled_from(
            [
                b"x-forwarded-for",
                b"x-forwarded-proto",
                b"x-forwarded-host",
                b"forwarded",
                b"x-real-ip",
                b"x-client-cert",
                b"x-fapi-customer-ip-address",
                b"x-fapi-interaction-id",
            ]
        ),
        HEADER_JUNK,
    ),
    st.tuples(
        st.sampled_from(
            [
                b"accept",
                b"accept-language",
                b"if-none-match",
                b"range",
                b"referer",
                b"user-agent",
                b"access-control-request-method",
                b"x-http-method-override",
            ]
        ),
        HEADER_JUNK,
    ),
)
TARGETS = [
    ("GET", "/userinfo", None),
    ("POST", "/userinfo", b""),
    ("POST", "/token", _form(grant_type="client_credentials")),
    ("OPTIONS", "/token", None),
    ("POST", "/par", _form(**PAR)),
    ("POST", "/introspect", _form(token="x")),
    ("POST", "/revoke", _form(token="x")),
    ("POST", "/register", b"{}"),
    ("GET", "/register/demo-backend", None),
    ("GET", "/authorize", None),
    ("GET", "/interaction/abc", None),
    ("POST", "/interaction/abc/login", b""),
    ("GET", "/logout", None),
    ("POST", "/logout", b""),
    ("GET", "/account/login", None),
    ("GET", "/account/connections", None),
    ("POST", "/account/connections/revoke", b""),
    ("GET", "/", None),
    ("GET", "/jwks", None),
    ("GET", "/.well-known/openid-configuration", None),
    ("GET", "/openapi.json", None),
    ("GET", "/static/style.css", None),
    ("GET", "/consent-resources/aac-x", None),
    ("GET", "/nope", None),
]


def test_no_header_reaches_a_5xx(server: Server) -> None:
    with probe(server) as p:

        @given(target=st.sampled_from(TARGETS), headers=st.lists(HEADER, min_size=1, max_size=5), twice=st.booleans())
        @BOUNDED
        def run(target: tuple[str, str, bytes | None], headers: list[tuple[bytes, bytes]], twice: bool) -> None:
            method, path, body = target
            if twice:  # the same header twice (joined with ", " by the server)
                headers = headers + headers[:1]
            if body is not None and not any(name == b"content-type" for name, _ in headers):
                headers = [(b"content-type", b"application/json" if path == "/register" else FORM), *headers]
            p.send(method, path, headers=headers, content=body)

        run()


# -- behind a trusted proxy ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`serve --http` behind a TLS-terminating proxy at 127.0.0.1 (the test is the proxy): the forwarding
    headers are believed, so their parsing is reached."""
    public, mtls = free_port(), free_port()
    srv = start_server(
        Path(tmp_path_factory.mktemp("proxied")),
        "sqlite",
        plain_http=True,
        extra_env={
            "FINGRADE_ISSUER": f"https://localhost:{public}",
            "FINGRADE_TRUSTED_PROXIES": "127.0.0.1",
            "FINGRADE_MTLS_BASE_URL": f"https://localhost:{mtls}",
            "FINGRADE_MTLS_CERT_HEADER": "X-Client-Cert",
        },
    )
    yield srv
    srv.stop()


CERT_JUNK = st.one_of(
    HEADER_JUNK,
    st.sampled_from(
        [
            b":",
            b"::",
            b":AAAA:",
            b":!!!:",
            b"-----BEGIN%20CERTIFICATE-----%0AAAAA%0A-----END%20CERTIFICATE-----",
            b"-----BEGIN CERTIFICATE-----",
            b"%ff%fe",
            b"%",
            b":" + b"A" * 2000 + b":",
        ]
    ),
)
FORWARDED_FOR = st.lists(
    st.sampled_from(
        [
            b"127.0.0.1",
            b"192.0.2.7",
            b"::1",
            b"fe80::1%eth0",
            b"unknown",
            b"",
            b"1.2.3.4:5678",
            b"[2001:db8::1]",
            b"999.1.1.1",
            b"a" * 300,
        ]
    )
    | HEADER_JUNK,
    min_size=1,
    max_size=4,
).map(b", ".join)


def test_no_forwarded_header_reaches_a_5xx_behind_a_trusted_proxy(proxied: Server) -> None:
    """RFC 9700 §4.13 / RFC 8705 §2: from a trusted proxy the client address and certificate are read
    from headers; no value of them is a 5xx (an unreadable certificate is no certificate)."""
    with probe(proxied) as p:

        @given(
            target=st.sampled_from(
                [
                    ("POST", "/token", _form(grant_type="client_credentials", client_id="demo-native")),
                    ("POST", "/par", _form(**PAR, client_id="demo-backend")),
                    ("GET", "/userinfo", None),
                    ("GET", "/authorize", None),
                    ("POST", "/introspect", _form(token="x", client_id="demo-backend")),
                ]
            ),
            forwarded=FORWARDED_FOR,
            cert=st.none() | CERT_JUNK,
        )
        @BOUNDED
        def run(target: tuple[str, str, bytes | None], forwarded: bytes, cert: bytes | None) -> None:
            method, path, body = target
            headers = [(b"x-forwarded-for", forwarded)]
            if cert is not None:
                headers.append((b"x-client-cert", cert))
            if body is not None:
                headers.append((b"content-type", FORM))
            p.send(method, path, headers=headers, content=body)

        run()
