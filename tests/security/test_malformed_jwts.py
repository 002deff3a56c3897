"""Malformed JWTs at every endpoint that reads one: a protected header or claims set of the wrong
JSON shape (RFC 7515 §4, §5.2; RFC 7519 §7.2), a `crit` that is not a list of understood names
(RFC 7515 §4.1.11), duplicate members (RFC 7515 §5.2 step 4 allows refusing them) must get the
endpoint's spec-correct 4xx with the security headers, on the same keep-alive connection — never a
5xx or a dropped connection."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.demo import BACKEND
from support.dpop import DPoPKey
from support.fapi import ASSERTION_TYPE, FapiClient
from support.server import DEMO_SECRET, Server

pytestmark = pytest.mark.fuzz

SECURITY_HEADERS = {"x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_of(header: bytes, payload: bytes = b"{}", signature: str = "AAAA") -> str:
    return f"{b64(header)}.{b64(payload)}.{signature}"


# Each is refused by shape alone, before any key is looked up or any signature checked.
MALFORMED = {
    "header-array": "WyJhbGciXQ.e30.AAAA",  # ["alg"]
    "header-null": jwt_of(b"null"),
    "header-string": jwt_of(b'"ES256"'),
    "header-number": jwt_of(b"1e999"),
    "crit-string": jwt_of(b'{"alg":"ES256","typ":"at+jwt","kid":"k","crit":"exp"}'),
    "crit-number": jwt_of(b'{"alg":"ES256","typ":"dpop+jwt","kid":"k","crit":5}'),
    "crit-object": jwt_of(b'{"alg":"ES256","typ":"at+jwt","kid":"k","crit":{"a":1}}'),
    "crit-empty": jwt_of(b'{"alg":"ES256","typ":"at+jwt","kid":"k","crit":[]}'),
    "crit-unknown": jwt_of(b'{"alg":"ES256","typ":"at+jwt","kid":"k","crit":["x-ext"],"x-ext":1}'),
    "crit-missing": jwt_of(b'{"alg":"ES256","typ":"at+jwt","kid":"k","crit":["x-ext"]}'),
    "alg-list": jwt_of(b'{"alg":["ES256"],"typ":"at+jwt","kid":"k"}'),
    "typ-object": jwt_of(b'{"alg":"ES256","typ":{"a":"at+jwt"},"kid":"k"}'),
    "jwk-list": jwt_of(b'{"alg":"ES256","typ":"dpop+jwt","jwk":["EC"]}'),
    "duplicate-alg": jwt_of(b'{"alg":"none","alg":"ES256","typ":"at+jwt","kid":"k"}'),
    "claims-array": jwt_of(b'{"alg":"ES256","typ":"at+jwt","kid":"k"}', b"[1]"),
    "exp-huge": jwt_of(b'{"alg":"ES256","typ":"at+jwt","kid":"k"}', b'{"exp":1e308,"iss":"x"}'),
    "iss-list": jwt_of(b'{"alg":"ES256","kid":"k"}', b'{"iss":["demo-backend"],"sub":"x"}'),
    "cnf-string": jwt_of(b'{"alg":"ES256","typ":"at+jwt","kid":"k"}', b'{"cnf":"jkt"}'),
    "duplicate-claim": jwt_of(b'{"alg":"ES256","kid":"k"}', b'{"iss":"a","iss":"demo-backend"}'),
    "header-bad-utf8": jwt_of(b'{"alg":"\xff"}'),
    "header-lone-surrogate": jwt_of(b'{"alg":"ES256","kid":"\\ud800"}'),
}


def assert_security_headers(resp: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert resp.headers.get(name) == value, (name, resp.status_code, dict(resp.headers))
    assert "frame-ancestors 'none'" in resp.headers.get("content-security-policy", "")


def local_port(resp: httpx.Response) -> int:
    """The client side of the TCP connection that carried the response: the same port on the next
    request means the server kept the connection open."""
    stream = resp.extensions["network_stream"]
    return stream.get_extra_info("socket").getsockname()[1]


class Connection:
    """One keep-alive HTTP/1.1 connection; every answer must leave it open."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        try:
            self.port = local_port(http.get("/healthz"))
        except httpx.RemoteProtocolError:  # the pooled connection was closed by the server: a new one
            self.port = local_port(http.get("/healthz"))

    def send(self, method: str, path: str, **kw: object) -> httpx.Response:
        try:
            resp = self.http.request(method, path, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:  # a dropped connection without an answer
            raise AssertionError(f"{path}: {type(exc).__name__}: {exc}") from None
        assert resp.status_code < 500, (path, resp.status_code, resp.text[:300])
        assert_security_headers(resp)
        assert resp.headers.get("connection", "").lower() != "close", (path, resp.status_code)
        assert local_port(resp) == self.port, f"{path}: the server dropped the keep-alive connection"
        return resp


@pytest.fixture(scope="module")
def signer(server: Server, tmp_path_factory: pytest.TempPathFactory) -> FapiClient:
    """A private_key_jwt client with registered keys, so a `request` object reaches its checks."""
    return FapiClient.register(server, tmp_path_factory.mktemp("malformed-jwts"), profile="fapi2-message-signing")


def _challenge_error(resp: httpx.Response) -> str:
    return resp.headers.get("www-authenticate", "")


# One call per endpoint that reads a JWT: (name, request maker, check of the answer).
Call = Callable[[Connection, str], None]


def at_userinfo(conn: Connection, token: str) -> None:
    for scheme in ("Bearer", "DPoP"):
        resp = conn.send("GET", "/userinfo", headers={"Authorization": f"{scheme} {token}"})
        assert resp.status_code == 401 and resp.json()["error"] in ("invalid_token", "invalid_dpop_proof"), resp.text
        assert 'error="invalid_token"' in _challenge_error(resp) or "invalid_dpop_proof" in _challenge_error(resp)


def at_bank(conn: Connection, token: str) -> None:
    for scheme in ("Bearer", "DPoP"):
        resp = conn.send("GET", "/bank/v1/accounts", headers={"Authorization": f"{scheme} {token}"})
        assert resp.status_code == 401 and resp.json()["error"] in ("invalid_token", "invalid_dpop_proof"), resp.text
        assert "error=" in _challenge_error(resp)


def at_introspect(conn: Connection, token: str) -> None:
    """RFC 7662 §2.2: a token that is not one of ours is simply not active."""
    resp = conn.send("POST", "/introspect", data={"token": token}, auth=(BACKEND, DEMO_SECRET))
    assert resp.status_code == 200 and resp.json() == {"active": False}, resp.text


def at_revoke(conn: Connection, token: str) -> None:
    """RFC 7009 §2.2: an invalid token is no error."""
    for hint in ("access_token", "refresh_token"):
        resp = conn.send("POST", "/revoke", data={"token": token, "token_type_hint": hint}, auth=(BACKEND, DEMO_SECRET))
        assert resp.status_code == 200, resp.text


def dpop_at(path: str) -> Call:
    def call(conn: Connection, token: str) -> None:
        data = (
            {"grant_type": "client_credentials"}
            if path == "/token"
            else {
                "response_type": "code",
                "client_id": BACKEND,
                "redirect_uri": "https://localhost:9443/callback",
                "scope": "openid",
                "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method": "S256",
            }
        )
        resp = conn.send("POST", path, data=data, auth=(BACKEND, DEMO_SECRET), headers={"DPoP": token})
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_dpop_proof", resp.text  # RFC 9449 §5

    return call


def aimed_at(token: str, client_id: str) -> str:
    """The same header and signature with claims naming a registered private_key_jwt client, so the
    assertion gets past the client lookup to the signature check."""
    parts = token.split(".")
    if len(parts) != 3 or parts[1] != "e30":
        return token
    return f"{parts[0]}.{b64(json.dumps({'iss': client_id, 'sub': client_id}).encode())}.{parts[2]}"


def assertion_at(path: str, signer: FapiClient) -> Call:
    def call(conn: Connection, token: str) -> None:
        for assertion in dict.fromkeys((token, aimed_at(token, signer.client_id))):
            data = {"grant_type": "client_credentials"} if path == "/token" else {"response_type": "code"}
            data.update({"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion})
            resp = conn.send("POST", path, data=data)
            assert resp.status_code == 401 and resp.json()["error"] == "invalid_client", resp.text  # RFC 7523 §3.2

    return call


def request_at_par(signer: FapiClient) -> Call:
    def call(conn: Connection, token: str) -> None:
        resp = conn.send(
            "POST", "/par", data={"request": token, **signer.auth_params()}, headers=signer.dpop_header("/par")
        )
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_request_object", resp.text  # RFC 9126 §2.3

    return call


def endpoints(signer: FapiClient) -> dict[str, Call]:
    return {
        "userinfo": at_userinfo,
        "bank": at_bank,
        "introspect": at_introspect,
        "revoke": at_revoke,
        "dpop-token": dpop_at("/token"),
        "dpop-par": dpop_at("/par"),
        "assertion-token": assertion_at("/token", signer),
        "assertion-par": assertion_at("/par", signer),
        "request-par": request_at_par(signer),
    }


ENDPOINTS = [
    "userinfo",
    "bank",
    "introspect",
    "revoke",
    "dpop-token",
    "dpop-par",
    "assertion-token",
    "assertion-par",
    "request-par",
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_malformed_jwt_is_a_4xx_on_the_same_connection_rfc7515_5_2(
    server: Server, signer: FapiClient, endpoint: str
) -> None:
    call = endpoints(signer)[endpoint]
    with server.client() as http:
        conn = Connection(http)
        failures = []
        for name, token in MALFORMED.items():
            try:
                call(conn, token)
            except AssertionError as exc:
                failures.append(f"{name}: {exc}")
                conn = Connection(http)
        assert not failures, "\n".join(failures)


# -- generated malformed JWTs, a few dozen per endpoint --------------------------------------------

_json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)
_HEADER_NAMES = ["alg", "kid", "typ", "crit", "jwk", "x5c", "x5t#S256", "b64", "cty", "jku"]
_CLAIM_NAMES = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "cnf",
    "htm",
    "htu",
    "ath",
    "client_id",
    "scope",
    "authorization_details",
    "nonce",
]


@st.composite
def malformed_jwts(draw: st.DrawFn) -> str:
    header = {"alg": "ES256", "typ": draw(st.sampled_from(["at+jwt", "dpop+jwt", "oauth-authz-req+jwt"])), "kid": "k"}
    header.update(draw(st.dictionaries(st.sampled_from(_HEADER_NAMES), _json, max_size=3)))
    claims = draw(st.dictionaries(st.sampled_from(_CLAIM_NAMES), _json, max_size=4))
    head_bytes = draw(
        st.one_of(
            st.just(json.dumps(header).encode()), _json.map(lambda v: json.dumps(v).encode()), st.binary(max_size=40)
        )
    )
    body_bytes = draw(
        st.one_of(
            st.just(json.dumps(claims).encode()), _json.map(lambda v: json.dumps(v).encode()), st.binary(max_size=40)
        )
    )
    sig = draw(st.sampled_from(["AAAA", "", "!!", b64(bytes(64))]))
    parts = [b64(head_bytes), b64(body_bytes), sig]
    shape = draw(st.sampled_from(["jws", "jws", "jws", "two", "four", "raw"]))
    if shape == "two":
        return ".".join(parts[:2])
    if shape == "four":
        return ".".join([*parts, "AAAA"])
    if shape == "raw":
        return draw(st.text(alphabet="abcdefXYZ012-_.=+/ ", min_size=1, max_size=60)).strip() or "x"
    return ".".join(parts)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_generated_malformed_jwts_never_get_a_5xx(server: Server, signer: FapiClient, endpoint: str) -> None:
    call = endpoints(signer)[endpoint]
    with server.client() as http:
        conn = Connection(http)

        @settings(
            max_examples=30,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(token=malformed_jwts())
        def check(token: str) -> None:
            call(conn, token)

        check()


@pytest.mark.dpop
def test_dpop_proof_with_valid_signature_and_malformed_claims_rfc9449_4_3(server: Server) -> None:
    """Well signed, wrong claim types: still invalid_dpop_proof, not a 5xx (RFC 9449 §4.3 items 3, 11)."""
    key = DPoPKey()
    with server.client() as http:
        conn = Connection(http)
        for claims in (
            {"iat": 1e308},
            {"iat": True},
            {"jti": ["x"]},
            {"htu": {"a": 1}},
            {"exp": -1e308},
            {"nbf": "soon"},
            {"iat": 2**62},
        ):
            proof = key.proof("POST", server.issuer + "/token", claims=claims)
            resp = conn.send(
                "POST",
                "/token",
                data={"grant_type": "client_credentials"},
                auth=(BACKEND, DEMO_SECRET),
                headers={"DPoP": proof},
            )
            assert resp.status_code == 400 and resp.json()["error"] == "invalid_dpop_proof", (claims, resp.text)


@pytest.mark.jar
def test_signed_request_object_with_malformed_claims_rfc9101_6_2(server: Server, signer: FapiClient) -> None:
    """Well signed by the client, wrong claim types: invalid_request_object (RFC 9126 §2.3)."""
    params, _ = signer.request_params()
    with server.client() as http:
        conn = Connection(http)
        for claims in (
            {"exp": 1e308},
            {"nbf": 2**80},
            {"aud": 5},
            {"aud": [1, 2]},
            {"jti": {"a": 1}},
            {"authorization_details": "x"},
            {"iss": ["x"]},
        ):
            resp = conn.send(
                "POST",
                "/par",
                data={"request": signer.request_object(params, **claims), **signer.auth_params()},
                headers=signer.dpop_header("/par"),
            )
            assert resp.status_code == 400 and resp.json()["error"] == "invalid_request_object", (claims, resp.text)
