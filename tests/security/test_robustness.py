"""Hostile input at every endpoint: never a 5xx, never a partial write, and the precise RFC error
(RFC 6749 §3.1, §3.2, §5.2; RFC 6750 §3.1; RFC 9068 §4; RFC 9110 §15.5.6)."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlencode

import httpx
import pytest
from joserfc import jws
from joserfc.jwk import ECKey
from support.demo import BACKEND, NATIVE, NATIVE_REDIRECT
from support.flow import pkce_pair
from support.refusals import assert_bearer_refused, assert_error_page, assert_oauth_error
from support.server import DEMO_SECRET, Server
from support.tokens import Kit

FORM = {"content-type": "application/x-www-form-urlencoded"}
BACK_CHANNEL = ["/token", "/introspect", "/revoke"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- form bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"grant_type",  # no '=': a parameter without value is omitted (RFC 6749 §3.1)
        b"&&&&",
        b"=",
        b"=value",
        b"grant_type=authorization_code&&code",
        b"\x00\x01\x02",
        b"grant_type=\xff\xfe",  # bad UTF-8 (raw)
        b"grant_type=%ff%fe",  # bad UTF-8 (percent-encoded)
        b"grant_type=authorization_code&code=%zz",  # bad percent-encoding
        b"grant_type=authorization_code&code=%",
        b"grant_type=authorization_code&code=a%00b",  # NUL
        b"grant_type=authorization_code&" + b"&".join(b"p%d=v" % i for i in range(500)),  # too many
        b"grant_type=authorization_code&code=" + b"a" * 20000,  # one huge value
        b'{"grant_type": "client_credentials"}',  # JSON sent as a form
    ],
)
def test_malformed_form_bodies_are_invalid_request_rfc6749_5_2(http: httpx.Client, body: bytes) -> None:
    for path in BACK_CHANNEL:
        resp = http.post(path, content=body, headers=FORM, auth=(BACKEND, DEMO_SECRET))
        assert_oauth_error(resp, "invalid_request")


def test_repeated_parameters_at_the_token_endpoint_refused_rfc6749_3_1(http: httpx.Client) -> None:
    for body in (
        b"grant_type=client_credentials&grant_type=client_credentials",
        b"grant_type=client_credentials&scope=accounts&scope=payments",
        b"grant_type=client_credentials&client_id=demo-backend&client_id=demo-backend",
    ):
        assert_oauth_error(
            http.post("/token", content=body, headers=FORM, auth=(BACKEND, DEMO_SECRET)), "invalid_request"
        )


@pytest.mark.parametrize(
    "ctype",
    [
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=xyz",
        "application/x-www-form-urlencoded-evil",
        "application/xml",
        None,
    ],
)
def test_wrong_content_types_refused_rfc6749_3_2(http: httpx.Client, ctype: str | None) -> None:
    body = b"grant_type=client_credentials"
    if ctype == "application/json":
        body = json.dumps({"grant_type": "client_credentials"}).encode()
    headers = {"content-type": ctype} if ctype else {}
    for path in BACK_CHANNEL:
        resp = http.post(path, content=body, headers=headers, auth=(BACKEND, DEMO_SECRET))
        assert_oauth_error(resp, "invalid_request")


def test_json_token_request_refused_rfc6749_3_2(http: httpx.Client) -> None:
    resp = http.post("/token", json={"grant_type": "client_credentials"}, auth=(BACKEND, DEMO_SECRET))
    assert_oauth_error(resp, "invalid_request")


def test_form_content_type_with_charset_accepted_rfc6749_3_2(http: httpx.Client) -> None:
    """Control for the tests above: the media type is matched without its parameters."""
    resp = http.post(
        "/token",
        content=b"grant_type=client_credentials&scope=accounts",
        headers={"content-type": "application/x-www-form-urlencoded; charset=UTF-8"},
        auth=(BACKEND, DEMO_SECRET),
    )
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke", "/register", "/userinfo", "/authorize"])
def test_oversized_bodies_refused_with_413(http: httpx.Client, path: str) -> None:
    body = b"grant_type=client_credentials&pad=" + b"a" * (65 * 1024)
    resp = http.post(path, content=body, headers=FORM, auth=(BACKEND, DEMO_SECRET))
    assert resp.status_code == 413, (resp.status_code, resp.text[:200])


def test_oversized_chunked_body_refused_with_413(http: httpx.Client) -> None:
    """No Content-Length: the limit is enforced while reading the stream."""

    def chunks():
        for _ in range(80):
            yield b"a" * 1024

    resp = http.post("/token", content=chunks(), headers=FORM, auth=(BACKEND, DEMO_SECRET))
    assert resp.status_code == 413


def test_lying_content_length_refused(server: Server) -> None:
    import socket
    import ssl

    ctx = server.ssl_context()
    port = int(server.base_url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(
            b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded"
            b"\r\nContent-Length: -5\r\nConnection: close\r\n\r\ngrant_type=x"
        )
        reply = b""
        try:
            while chunk := tls.recv(4096):
                reply += chunk
        except (ssl.SSLError, ConnectionResetError):
            pass
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 400
    assert 400 <= status < 500, reply[:200]


# -- failed requests write nothing -------------------------------------------------------------


def test_malformed_token_requests_do_not_burn_the_code(kit: Kit) -> None:
    """A request refused while parsing (duplicate, bad encoding, oversized, wrong media type)
    never reaches the code: the legitimate redemption still works afterwards."""
    got = kit.native_code()
    good = (
        f"grant_type=authorization_code&client_id={NATIVE}&redirect_uri=http%3A%2F%2F127.0.0.1%3A51234%2Fcallback"
        f"&code={got.code}&code_verifier={got.verifier}"
    ).encode()
    for body, headers in (
        (good + b"&code=x", FORM),
        (good + b"&x=%zz", FORM),
        (good + b"&x=%ff", FORM),
        (good + b"&pad=" + b"a" * 70000, FORM),
        (good, {"content-type": "text/plain"}),
    ):
        resp = kit.browser.post("/token", content=body, headers=headers)
        assert resp.status_code in (400, 413), resp.text
    resp = kit.browser.post("/token", content=good, headers=FORM)
    assert resp.status_code == 200, resp.text


# -- methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD"])
@pytest.mark.parametrize("path", ["/token", "/introspect", "/revoke"])
def test_wrong_methods_get_405_with_allow_rfc9110_15_5_6(http: httpx.Client, method: str, path: str) -> None:
    resp = http.request(method, path, auth=(BACKEND, DEMO_SECRET))
    assert resp.status_code == 405
    assert resp.headers["allow"] == "POST"


def test_userinfo_wrong_method_gets_405_with_allow_rfc9110_15_5_6(http: httpx.Client) -> None:
    resp = http.delete("/userinfo")
    assert resp.status_code == 405 and "GET" in resp.headers["allow"] and "POST" in resp.headers["allow"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_authorize_wrong_method_is_an_error_page(http: httpx.Client, method: str) -> None:
    assert_error_page(http.request(method, "/authorize"), 405)


# -- client authentication ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "Basic",
        "Basic !!!!",
        "Basic " + b64(b"no-colon"),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Basic " + base64.b64encode(b"demo-backend:wrong").decode(),
        "Basic " + base64.b64encode(b":").decode(),
        "Basic " + base64.b64encode(b"nobody:x").decode(),
        "Basic " + "A" * 5000,
        "Basic " + base64.b64encode(b"demo-backend:" + DEMO_SECRET.encode() + b"\x00").decode(),
        "basic " + base64.b64encode(b"demo-backend:" + DEMO_SECRET.encode() + b"x").decode(),
    ],
)
def test_garbage_basic_credentials_are_invalid_client_rfc6749_5_2(http: httpx.Client, header: str) -> None:
    resp = http.post("/token", data={"grant_type": "client_credentials"}, headers={"Authorization": header})
    assert_oauth_error(resp, "invalid_client", 401)
    assert resp.headers["www-authenticate"].lower().startswith("basic")


@pytest.mark.parametrize("header", ["Bearer abc", "Digest x=1", "Negotiate YII=", "\u00e9\u00e9", "Basic\tx"])
def test_other_authorization_schemes_do_not_authenticate(http: httpx.Client, header: str) -> None:
    resp = http.post(
        "/token", data={"grant_type": "client_credentials"}, headers={"Authorization": header.encode("latin-1")}
    )
    assert resp.status_code in (400, 401) and resp.json()["error"] in ("invalid_client", "invalid_request")


def test_two_authentication_methods_refused_rfc6749_2_3(http: httpx.Client) -> None:
    resp = http.post(
        "/token", auth=(BACKEND, DEMO_SECRET), data={"grant_type": "client_credentials", "client_secret": DEMO_SECRET}
    )
    assert_oauth_error(resp, "invalid_request")


def test_password_grant_refused_rfc9700_2_4(http: httpx.Client) -> None:
    resp = http.post(
        "/token", auth=(BACKEND, DEMO_SECRET), data={"grant_type": "password", "username": "alice", "password": "x"}
    )
    assert_oauth_error(resp, "unsupported_grant_type")


# -- bearer tokens at a protected resource -----------------------------------------------------


def _our_header(http: httpx.Client) -> dict:
    at = http.post("/token", auth=(BACKEND, DEMO_SECRET), data={"grant_type": "client_credentials"}).json()
    return json.loads(base64.urlsafe_b64decode(at["access_token"].split(".")[0] + "=="))


@pytest.mark.parametrize(
    "token",
    [
        "not-a-jwt",
        "a.b.c",
        "a.b",
        "....",
        "e30.e30.",
        b64(b"[]") + "." + b64(b"{}") + ".sig",
        b64(b'"x"') + "." + b64(b"{}") + ".sig",
        b64(b"null") + "." + b64(b"null") + ".x",
        b64(b'{"alg":"none","typ":"at+jwt"}') + "." + b64(b'{"sub":"alice"}') + ".",
        b64(b'{"alg":"ES256","typ":"at+jwt","kid":["x"]}') + "." + b64(b"{}") + ".AAAA",
        b64(b'{"alg":"ES256","typ":"at+jwt","kid":{"a":1}}') + "." + b64(b"{}") + ".AAAA",
        b64(b'{"alg":"ES256","typ":["at+jwt"]}') + "." + b64(b"{}") + ".AAAA",
        b64(b'{"alg":"HS256","typ":"at+jwt"}') + "." + b64(b'{"sub":"x"}') + ".AAAA",
        "x" * 7000,  # below http_max_header_line_bytes; longer lines get 431 (test_slow_and_big_clients.py)
    ],
)
def test_bearer_token_that_is_not_one_of_ours_rfc6750_3_1(http: httpx.Client, token: str) -> None:
    assert_bearer_refused(http.get("/userinfo", headers={"Authorization": "Bearer " + token}))


def test_missing_token_gets_a_bare_challenge_rfc6750_3_1(http: httpx.Client) -> None:
    resp = http.get("/userinfo")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer ") and "error=" not in resp.headers["www-authenticate"]


def test_access_token_signed_by_another_key_refused_rfc9068_4(http: httpx.Client) -> None:
    """Same header (typ, alg, even our kid), same claims, another key."""
    good = http.post(
        "/token", auth=(BACKEND, DEMO_SECRET), data={"grant_type": "client_credentials", "scope": "accounts"}
    ).json()["access_token"]
    header = json.loads(base64.urlsafe_b64decode(good.split(".")[0] + "=="))
    claims = json.loads(base64.urlsafe_b64decode(good.split(".")[1] + "=="))
    claims["scope"] = "openid profile"
    attacker = ECKey.generate_key("P-256", private=True)
    for kid in (header["kid"], "attacker-kid"):
        forged = jws.serialize_compact({**header, "kid": kid}, json.dumps(claims), attacker, algorithms=["ES256"])
        assert_bearer_refused(http.get("/userinfo", headers={"Authorization": "Bearer " + forged}))
    embedded = jws.serialize_compact(
        {**header, "jwk": attacker.as_dict(private=False)}, json.dumps(claims), attacker, algorithms=["ES256"]
    )
    assert_bearer_refused(http.get("/userinfo", headers={"Authorization": "Bearer " + embedded}))


def test_id_token_presented_as_access_token_refused_rfc9068_4(kit: Kit) -> None:
    """RFC 9068 §4: the resource server checks typ = at+jwt; an ID token is signed by the same key
    but is no access token."""
    got = kit.native_code()
    tokens = kit.redeem_native(got.code, got.verifier).json()
    assert kit.userinfo(tokens["access_token"]).status_code == 200
    assert_bearer_refused(kit.userinfo(tokens["id_token"]))
    assert kit.introspect(tokens["id_token"]) == {"active": False}


def test_access_token_in_the_query_refused_fapi2_sp_5_3_4(kit: Kit) -> None:
    """RFC 6750 §2.3 query tokens leak into logs; FAPI 2.0 SP 5.3.4 accepts the header only."""
    got = kit.native_code()
    at = kit.redeem_native(got.code, got.verifier).json()["access_token"]
    resp = kit.browser.get("/userinfo", params={"access_token": at})
    assert resp.status_code in (400, 401) and resp.json()["error"] in ("invalid_request", "invalid_token")


def test_bearer_scheme_is_case_insensitive_rfc9110_11_1(kit: Kit) -> None:
    """Control for the refusals above: a valid token works in any casing of the scheme."""
    got = kit.native_code()
    at = kit.redeem_native(got.code, got.verifier).json()["access_token"]
    assert kit.browser.get("/userinfo", headers={"Authorization": "bEaReR " + at}).status_code == 200


def test_spliced_signature_refused_rfc7515_5_2(http: httpx.Client) -> None:
    """An access token whose signature segment was swapped with another one of ours."""
    a = http.post("/token", auth=(BACKEND, DEMO_SECRET), data={"grant_type": "client_credentials"}).json()
    b = http.post("/token", auth=(BACKEND, DEMO_SECRET), data={"grant_type": "client_credentials"}).json()
    h, p, _ = a["access_token"].split(".")
    spliced = ".".join((h, p, b["access_token"].split(".")[2]))
    resp = http.post("/introspect", data={"token": spliced}, auth=(BACKEND, DEMO_SECRET))
    assert resp.json() == {"active": False}


# -- the authorization endpoint ----------------------------------------------------------------


def test_huge_state_is_an_error_page_not_a_5xx(browser: httpx.Client) -> None:
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": NATIVE,
        "redirect_uri": NATIVE_REDIRECT,
        "scope": "openid",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    resp = browser.get("/authorize?" + urlencode({**params, "state": "s" * 6000}))
    assert_error_page(resp)
    resp = browser.post("/authorize", data={**params, "state": "s" * 60000})
    assert resp.status_code in (400, 413) and "location" not in resp.headers
    # A long but reasonable state is echoed unchanged (FAPI 2.0 SP Note 4: state may be long).
    resp = browser.get("/authorize?" + urlencode({**params, "state": "s" * 1000, "prompt": "none"}))
    assert resp.status_code == 303 and ("s" * 1000) in resp.headers["location"]


def test_authorize_post_with_wrong_content_type_is_an_error_page(browser: httpx.Client) -> None:
    assert_error_page(browser.post("/authorize", json={"client_id": NATIVE}))


def test_server_is_still_healthy(http: httpx.Client) -> None:
    """After all of the above, the server answers normally."""
    assert http.get("/healthz").status_code == 200
    t0 = time.monotonic()
    assert (
        http.post("/token", auth=(BACKEND, DEMO_SECRET), data={"grant_type": "client_credentials"}).status_code == 200
    )
    assert time.monotonic() - t0 < 5


# -- NUL and other bytes the databases cannot hold ---------------------------------------------


@pytest.mark.parametrize("credentials", [b"demo-backend\x00:x", b"demo-backend%00:x", b"\x00:\x00"])
def test_nul_in_basic_client_id_is_invalid_client_rfc6749_2_3_1(http: httpx.Client, credentials: bytes) -> None:
    """Basic credentials are decoded from base64 and form-decoding, so NUL can arrive here even
    though the form parser refuses it (PostgreSQL text cannot hold NUL: this was a 500)."""
    resp = http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(credentials).decode()},
    )
    assert_oauth_error(resp, "invalid_client", 401)


def test_nul_in_client_assertion_iss_is_invalid_client_rfc7523_3(http: httpx.Client) -> None:
    forged = b64(b'{"alg":"ES256"}') + "." + b64(json.dumps({"iss": "demo-backend\u0000"}).encode()) + ".AAAA"
    resp = http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion": forged,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        },
    )
    assert_oauth_error(resp, "invalid_client", 401)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_nul_in_client_management_path_rfc7592_2(http: httpx.Client, method: str) -> None:
    resp = http.request(
        method,
        "/register/demo-backend%00",
        headers={"Authorization": "Bearer x"},
        json={"client_name": "x"} if method == "PUT" else None,
    )
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"


# -- a sweep: no combination of method, media type, body and credentials gives a 5xx ---------

SWEEP_PATHS = [
    "/token",
    "/introspect",
    "/revoke",
    "/register",
    "/register/demo-backend",
    "/register/x%00",
    "/userinfo",
    "/authorize",
    "/interaction/abc",
    "/interaction/abc/login",
    "/interaction/abc/consent",
    "/logout",
    "/jwks",
    "/.well-known/openid-configuration",
    "/healthz",
    "/nope",
]
SWEEP_BODIES = [
    b"",
    b"\xff\xfe",
    b"a=%zz&a=%zz",
    b"{",
    b"[]",
    b'{"redirect_uris": ["javascript:x"], "client_name": 5}',
    b"grant_type=authorization_code&code=%00",
]
SWEEP_TYPES = ["application/x-www-form-urlencoded", "application/json", "text/plain"]
SWEEP_AUTH = [None, "Basic !!", "Bearer a.b.c", "Basic " + base64.b64encode(b"demo-backend\x00:").decode()]


@pytest.mark.parametrize("path", SWEEP_PATHS)
def test_no_input_yields_a_5xx(server: Server, path: str) -> None:
    failures = []
    with server.client() as c:
        for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"):
            bodies = SWEEP_BODIES if method in ("POST", "PUT") else [b""]
            for body in bodies:
                for ctype in SWEEP_TYPES:
                    for auth in SWEEP_AUTH:
                        headers = {"content-type": ctype, "cookie": "__Host-fg_browser=x; __Host-fg_session=y"}
                        if auth:
                            headers["authorization"] = auth
                        try:
                            resp = c.request(method, path, content=body, headers=headers)
                        except httpx.HTTPError as exc:  # a dropped connection is a failure too
                            failures.append((method, body, ctype, auth, type(exc).__name__))
                            continue
                        if resp.status_code >= 500:
                            failures.append((method, body, ctype, auth, resp.status_code))
    assert not failures, failures[:10]
