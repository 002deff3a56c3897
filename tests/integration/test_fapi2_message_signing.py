"""FAPI 2.0 Message Signing (Final) for the `fapi2-message-signing` profile: signed request objects
at the PAR endpoint (RFC 9101 JAR, RFC 9126 §3), signed authorization responses (JARM) and signed
introspection responses (RFC 9701). Named after the sections they check; the conformance-suite
module a test mirrors is named in its docstring."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey
from support.demo import BACKEND_REDIRECT, BASIC
from support.fapi import FAPI_REDIRECT, FapiClient, form_post_fields, new_key
from support.flow import authorize_url, consent, follow_to_client, login, query_of, run_flow
from support.refusals import assert_oauth_error
from support.server import DEMO_PASSWORD, Server

pytestmark = [pytest.mark.jar, pytest.mark.jarm, pytest.mark.introspection]

MS = "fapi2-message-signing"
NOW = lambda: int(time.time())  # noqa: E731


@pytest.fixture(scope="module")
def ms(server: Server, tmp_path_factory: pytest.TempPathFactory) -> FapiClient:
    return FapiClient.register(server, tmp_path_factory.mktemp("ms"), profile=MS)


@pytest.fixture(scope="module")
def ms_rsa(server: Server, tmp_path_factory: pytest.TempPathFactory) -> FapiClient:
    return FapiClient.register(server, tmp_path_factory.mktemp("ms-rsa"), profile=MS, alg="PS256")


@pytest.fixture(scope="module")
def other(server: Server, tmp_path_factory: pytest.TempPathFactory) -> FapiClient:
    return FapiClient.register(server, tmp_path_factory.mktemp("ms-other"), profile=MS)


@pytest.fixture(scope="module")
def fapi(server: Server, tmp_path_factory: pytest.TempPathFactory) -> FapiClient:
    return FapiClient.register(server, tmp_path_factory.mktemp("fapi-plain"))


def _jwks(http: httpx.Client) -> KeySet:
    return KeySet.import_key_set(http.get("/jwks").json())


def _signed_push(client: FapiClient, http: httpx.Client, **extra: str | None) -> tuple[httpx.Response, str]:
    params, verifier = client.request_params(**{"response_mode": "jwt", **extra})
    return client.push_signed(http, params), verifier


# -- happy flows ------------------------------------------------------------------------------


def test_fapi2_ms_happy_flow_jar_jarm_private_key_jwt_dpop(
    ms: FapiClient, http: httpx.Client, browser: httpx.Client
) -> None:
    """FAPI 2.0 Message Signing 5.3.1 and 5.3.2 (conformance `fapi2-security-profile-final-happy-flow`,
    signed_non_repudiation + jarm): a signed request object at PAR, the response as a JWT signed with a
    key from /jwks (JARM §2.1: iss, aud = client_id, exp ≤ 10 min, code, state; RFC 9207 iss only inside),
    then a DPoP-bound token."""
    pushed, verifier = _signed_push(ms, http, state="s-happy")
    assert pushed.status_code == 201, pushed.text
    got = ms.authorize(browser, pushed.json()["request_uri"], verifier)
    assert set(got.params) == {"response"}, got.location  # query.jwt (JARM §2.3.4): nothing else in the URL
    assert got.location.startswith(FAPI_REDIRECT + "?response=")
    claims = jwt.decode(got.params["response"], _jwks(http)).claims
    assert claims == got.jarm
    assert claims["iss"] == ms.server.issuer and claims["aud"] == ms.client_id
    assert claims["state"] == "s-happy" and claims["code"]
    assert 0 < claims["exp"] - claims["iat"] <= 600
    resp = ms.redeem(http, got)
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "DPoP"
    # The helper does the same in one call.
    assert ms.flow(http, browser, signed=True, response_mode="jwt").status_code == 200


def test_jarm_s2_3_3_form_post_jwt(ms: FapiClient, http: httpx.Client, browser: httpx.Client) -> None:
    """JARM §2.3.3: form_post.jwt returns an HTML page that posts `response` to the redirect URI. It
    works without JavaScript (a visible submit button) and with it under a CSP that allows only the
    page's own script by hash (no 'unsafe-inline'); it is not cached and sends no Referer."""
    pushed, verifier = _signed_push(ms, http, response_mode="form_post.jwt", state="s-form")
    assert pushed.status_code == 201, pushed.text
    got = ms.authorize(browser, pushed.json()["request_uri"], verifier)
    assert got.location == FAPI_REDIRECT and set(got.params) == {"response"}
    assert got.jarm["state"] == "s-form" and got.jarm["code"]
    assert ms.redeem(http, got).status_code == 200


def test_jarm_s2_3_3_form_post_page_headers(ms: FapiClient, http: httpx.Client, browser: httpx.Client) -> None:
    """JARM §2.3.3 page: CSP script hash, no-store, no-referrer, a button for browsers without JS."""
    pushed, _verifier = _signed_push(ms, http, response_mode="form_post.jwt", prompt="consent")
    resp = browser.get("/authorize", params={"client_id": ms.client_id, "request_uri": pushed.json()["request_uri"]})
    resp = follow_to_client(browser, resp, FAPI_REDIRECT)
    resp = follow_to_client(browser, login(browser, resp, "alice", DEMO_PASSWORD), FAPI_REDIRECT)
    resp = consent(browser, resp, "approve")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    csp = resp.headers["content-security-policy"]
    script = re.search(r"<script>(.*?)</script>", resp.text, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "unsafe-inline" not in csp and "form-action 'self' https://localhost:9443" in csp
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert re.search(r'<button type="submit"[^>]*>Continue</button>', resp.text)
    action, fields = form_post_fields(resp.text)
    assert action == FAPI_REDIRECT and ms.decode_response(http, fields["response"])["code"]


def test_jarm_s2_4_access_denied_inside_the_jwt(ms: FapiClient, http: httpx.Client, browser: httpx.Client) -> None:
    """JARM §2.4 (conformance `user-rejects-authentication` with jarm): the user denies consent →
    access_denied, state and iss inside the signed JWT, nothing in the clear."""
    pushed, verifier = _signed_push(ms, http, prompt="consent", state="s-deny")
    got = ms.authorize(browser, pushed.json()["request_uri"], verifier, decision="deny")
    assert set(got.params) == {"response"}
    assert got.jarm["error"] == "access_denied" and got.jarm["state"] == "s-deny"
    assert "code" not in got.jarm and got.code is None


def test_fapi2_ms_5_3_2_front_channel_error_is_signed(
    ms: FapiClient, browser: httpx.Client, http: httpx.Client
) -> None:
    """FAPI 2.0 Message Signing 5.3.2 (signed responses required for this client): even an error for a
    request that skipped PAR travels inside a JWT (query.jwt), never as plain error parameters."""
    resp = browser.get(authorize_url(ms.client_id, FAPI_REDIRECT, "x" * 43, "openid", state="s-err"))
    assert resp.status_code == 303
    params = query_of(resp.headers["location"])
    assert set(params) == {"response"}
    claims = ms.decode_response(http, params["response"])
    assert claims["error"] == "invalid_request" and claims["state"] == "s-err"


@pytest.mark.parametrize("mode", [None, "query"])
def test_fapi2_ms_5_3_2_unsigned_response_mode_refused(ms: FapiClient, http: httpx.Client, mode: str | None) -> None:
    """FAPI 2.0 Message Signing 5.3.2: a client configured for message signing must ask for a JWT
    response; without response_mode (or with query) its PAR request is refused with invalid_request."""
    params, _ = ms.request_params(response_mode=mode)
    assert_oauth_error(ms.push_signed(http, params), "invalid_request", 400)


@pytest.mark.parametrize("mode", ["fragment.jwt", "fragment", "form_post", "JWT"])
def test_jarm_s2_3_unsupported_response_modes_refused(fapi: FapiClient, http: httpx.Client, mode: str) -> None:
    """JARM §2.3 / RFC 9700 §2.1.2: fragment.jwt (and other modes not advertised) → invalid_request;
    the code never travels in a fragment."""
    params, _ = fapi.request_params(response_mode=mode)
    assert_oauth_error(fapi.push(http, params), "invalid_request", 400)


def test_jarm_s2_3_any_client_may_ask_for_jwt_responses(
    server: Server, http: httpx.Client, browser: httpx.Client
) -> None:
    """JARM §2.3: the JWT modes work for every client on the front channel too: success (query.jwt),
    a validation error (form_post.jwt) and an interaction error (prompt=none → login_required)."""
    keys = _jwks(http)
    got = run_flow(
        browser, "demo-backend", BACKEND_REDIRECT, scope="openid accounts", response_mode="jwt", state="s-backend"
    )
    claims = jwt.decode(got.params["response"], keys).claims
    assert claims["aud"] == "demo-backend" and claims["iss"] == server.issuer and claims["state"] == "s-backend"
    assert claims["code"] and "code" not in got.params and "iss" not in got.params
    token = http.post(
        "/token",
        auth=BASIC,
        data={
            "grant_type": "authorization_code",
            "code": claims["code"],
            "redirect_uri": BACKEND_REDIRECT,
            "code_verifier": got.verifier,
        },
    )
    assert token.status_code == 200, token.text

    resp = browser.get(
        authorize_url(
            "demo-backend", BACKEND_REDIRECT, "x" * 43, "openid admin", response_mode="form_post.jwt", state="s-scope"
        )
    )
    assert resp.status_code == 200
    action, fields = form_post_fields(resp.text)
    assert action == BACKEND_REDIRECT
    claims = jwt.decode(fields["response"], keys).claims
    assert claims["error"] == "invalid_scope" and claims["state"] == "s-scope"

    with server.client(follow_redirects=False) as fresh:  # no session: prompt=none must fail
        resp = fresh.get(
            authorize_url(
                "demo-backend", BACKEND_REDIRECT, "x" * 43, "openid", prompt="none", response_mode="query.jwt"
            )
        )
    claims = jwt.decode(query_of(resp.headers["location"])["response"], keys).claims
    assert claims["error"] == "login_required" and claims["aud"] == "demo-backend"


# -- signed request objects at PAR ------------------------------------------------------------


def test_fapi2_ms_5_3_1_unsigned_par_request_refused(ms: FapiClient, http: httpx.Client) -> None:
    """FAPI 2.0 Message Signing 5.3.1 (conformance `ensure-unsigned-request-at-par-endpoint-fails`)."""
    params, _ = ms.request_params(response_mode="jwt")
    assert_oauth_error(ms.push(http, params), "invalid_request", 400)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(client: FapiClient, params: dict[str, str]) -> dict:
    now = NOW()
    return {
        "iss": client.client_id,
        "aud": client.server.issuer,
        "client_id": client.client_id,
        "nbf": now,
        "exp": now + 300,
        **params,
    }


@pytest.mark.parametrize("alg", ["RS256", "none", "HS256"])
def test_fapi2_sp_5_4_1_request_object_algorithm_refused(ms_rsa: FapiClient, http: httpx.Client, alg: str) -> None:
    """FAPI 2.0 SP 5.4.1 via Message Signing 5.3.1 (conformance: RS256 and `none` request objects fail):
    only PS256, ES256 and EdDSA; the object is refused with invalid_request_object (RFC 9126 §2.3)."""
    params, _ = ms_rsa.request_params(response_mode="jwt")
    if alg == "RS256":
        token = jwt.encode(
            {"alg": "RS256", "kid": ms_rsa.key.kid}, _claims(ms_rsa, params), ms_rsa.key, algorithms=["RS256"]
        )
    elif alg == "HS256":
        token = jwt.encode(
            {"alg": "HS256"}, _claims(ms_rsa, params), OctKey.import_key(secrets.token_bytes(32)), algorithms=["HS256"]
        )
    else:
        token = f"{_b64({'alg': 'none', 'typ': 'oauth-authz-req+jwt'})}.{_b64(_claims(ms_rsa, params))}."
    assert_oauth_error(ms_rsa.push(http, {"request": token}), "invalid_request_object", 400)
    # The same request signed with PS256 by the same key is accepted.
    assert ms_rsa.push_signed(http, params).status_code == 201


def _assert_refused(client: FapiClient, http: httpx.Client, **claims: object) -> None:
    params, _ = client.request_params(response_mode="jwt")
    assert_oauth_error(client.push_signed(http, params, **claims), "invalid_request_object", 400)


def _assert_accepted(client: FapiClient, http: httpx.Client, **claims: object) -> httpx.Response:
    params, _ = client.request_params(response_mode="jwt")
    resp = client.push_signed(http, params, **claims)
    assert resp.status_code == 201, resp.text
    return resp


def test_fapi2_ms_5_3_1_expired_request_object_refused(ms: FapiClient, http: httpx.Client) -> None:
    """RFC 9101 §6.2 / FAPI 2.0 Message Signing 5.3.1: an expired object (conformance
    `ensure-expired-request-object-fails`), and one without exp, are refused."""
    _assert_refused(ms, http, nbf=NOW() - 600, exp=NOW() - 60)
    _assert_refused(ms, http, exp=None)


def test_fapi2_ms_5_3_1_nbf_rules(ms: FapiClient, http: httpx.Client) -> None:
    """FAPI 2.0 Message Signing 5.3.1: nbf is required and no more than 60 minutes in the past
    (conformance: nbf 70 minutes ago fails), exp at most 60 minutes after nbf; nbf 8 s in the future
    is clock skew and accepted (`ensure-request-object-with-nbf-8-seconds-in-the-future-is-accepted`),
    20 s is not."""
    now = NOW()
    _assert_refused(ms, http, nbf=None)
    _assert_refused(ms, http, nbf=now - 70 * 60, exp=now + 60)
    _assert_refused(ms, http, nbf=now - 70 * 60, exp=now - 70 * 60 + 3000)  # lifetime fine, nbf too old
    _assert_refused(ms, http, nbf=now, exp=now + 65 * 60)
    _assert_refused(ms, http, nbf=now + 20, exp=now + 300)
    _assert_accepted(ms, http, nbf=now + 8, exp=now + 300)
    _assert_accepted(ms, http, nbf=now - 59 * 60, exp=now + 60)


def test_rfc9101_s6_2_aud(ms: FapiClient, http: httpx.Client) -> None:
    """RFC 9101 §4/§6.2, FAPI 2.0 Message Signing 5.3.1: aud is the issuer, or an array containing it
    (`ensure-request-object-with-multiple-aud-succeeds`); a wrong or missing aud fails."""
    _assert_refused(ms, http, aud="https://other.example")
    _assert_refused(ms, http, aud=ms.server.issuer + "/par")
    _assert_refused(ms, http, aud=None)
    _assert_refused(ms, http, aud=["https://other.example"])
    _assert_accepted(ms, http, aud=["https://other.example", ms.server.issuer])


def test_rfc9101_s6_2_signed_with_another_clients_key_refused(
    ms: FapiClient, other: FapiClient, http: httpx.Client
) -> None:
    """RFC 9101 §6.2 (conformance `ensure-matching-key-in-authorization-request`): the signature must
    verify with a key of the authenticated client; another registered client's key fails, as does an
    unregistered key."""
    _assert_refused(ms, http, key=other.key)
    _assert_refused(ms, http, key=new_key("ES256", kid=ms.key.kid))


def test_rfc9126_s3_client_id_and_iss_must_be_the_authenticated_client(
    ms: FapiClient, other: FapiClient, http: httpx.Client
) -> None:
    """RFC 9126 §3 / RFC 9101 §5: the object's client_id must be the authenticated client (required);
    iss, when present, too; iss may be left out."""
    _assert_refused(ms, http, client_id=other.client_id)
    _assert_refused(ms, http, client_id=None)
    _assert_refused(ms, http, iss=other.client_id)
    _assert_accepted(ms, http, iss=None)
    # A valid object of `other` pushed with `ms`'s authentication: not this client's request.
    params, _ = other.request_params(response_mode="jwt")
    assert_oauth_error(ms.push(http, {"request": other.request_object(params)}), "invalid_request_object", 400)


def test_rfc9126_s3_request_uri_inside_the_object_refused(ms: FapiClient, http: httpx.Client) -> None:
    """RFC 9126 §3 (conformance `par-authorization-request-containing-request_uri`)."""
    _assert_refused(ms, http, request_uri="urn:ietf:params:oauth:request_uri:abc")
    _assert_refused(ms, http, request="eyJ.eyJ.sig")


def test_rfc9101_s4_typ(ms: FapiClient, http: httpx.Client) -> None:
    """RFC 9101 §4/§10.8: typ oauth-authz-req+jwt (compared case-insensitively) or absent; any other
    typ is refused (explicit typing against cross-JWT confusion)."""
    _assert_accepted(ms, http, typ="OAUTH-AUTHZ-REQ+JWT")
    _assert_accepted(ms, http, typ=None)
    _assert_refused(ms, http, typ="JWT")
    _assert_refused(ms, http, typ="dpop+jwt")


def test_rfc9101_s10_3_jti_is_single_use(ms: FapiClient, http: httpx.Client) -> None:
    """RFC 9101 §10.3 (replay): an object with a jti is accepted once; jti is optional."""
    params, _ = ms.request_params(response_mode="jwt")
    token = ms.request_object(params)
    assert ms.push(http, {"request": token}).status_code == 201
    assert_oauth_error(ms.push(http, {"request": token}), "invalid_request_object", 400)
    _assert_accepted(ms, http, jti=None)


def test_rfc9101_garbage_and_encrypted_objects_refused(ms: FapiClient, http: httpx.Client) -> None:
    """RFC 9101 §6.1: we do not accept encrypted (five-part) objects; malformed ones fail cleanly."""
    for token in ("not-a-jwt", "a.b.c.d.e", "e30.e30.e30"):
        assert_oauth_error(ms.push(http, {"request": token}), "invalid_request_object", 400)


def test_rfc9101_s6_3_only_parameters_inside_the_object_are_used(
    ms: FapiClient, http: httpx.Client, browser: httpx.Client
) -> None:
    """RFC 9101 §6.3 / RFC 9126 §3 (conformance: state only outside the object is not returned):
    form parameters beside the object are ignored, including a different state or nonce."""
    params, verifier = ms.request_params(response_mode="jwt", state=None)
    token = ms.request_object(params)
    pushed = ms.push(http, {"request": token, "state": "outside", "nonce": "outside", "scope": "openid payments"})
    assert pushed.status_code == 201, pushed.text
    got = ms.authorize(browser, pushed.json()["request_uri"], verifier)
    assert "state" not in got.jarm
    tokens = ms.redeem(http, got).json()
    assert tokens["scope"] == "openid accounts"
    id_claims = jwt.decode(tokens["id_token"], _jwks(http)).claims
    assert id_claims["nonce"] == params["nonce"]


def test_rfc9126_s3_fapi2_client_may_sign(fapi: FapiClient, http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 9126 §3: a request object is accepted at PAR from any client with registered keys; a plain
    fapi2 client still gets plain query responses unless it asks for JARM."""
    resp = fapi.flow(http, browser, signed=True)
    assert resp.status_code == 200, resp.text


# -- registration -----------------------------------------------------------------------------


def _dcr(server: Server, http: httpx.Client, meta: dict) -> httpx.Response:
    token = server.cli("registration-token", "create", "--label", "ms-" + secrets.token_hex(3)).stdout.strip()
    return http.post(
        "/register",
        json={"client_name": "ms", "redirect_uris": [FAPI_REDIRECT], **meta},
        headers={"Authorization": f"Bearer {token}"},
    )


def test_rfc9101_s10_5_require_signed_request_object_in_client_metadata(server: Server, http: httpx.Client) -> None:
    """RFC 9101 §10.5: a fapi2-message-signing client's metadata says it must sign; it cannot be
    registered without keys (FAPI 2.0 Message Signing 5.3.1; with mutual TLS: tests/mtls/)."""
    meta = {"security_profile": MS, "token_endpoint_auth_method": "private_key_jwt"}
    assert_oauth_error(_dcr(server, http, meta), "invalid_client_metadata", 400)
    resp = _dcr(server, http, {**meta, "jwks": {"keys": [new_key().as_dict(private=False)]}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["require_signed_request_object"] is True


@pytest.mark.parametrize("field", ["authorization_signed_response_alg", "introspection_signed_response_alg"])
def test_jarm_s3_rfc9701_s6_signed_response_alg_metadata(
    server: Server, http: httpx.Client, field: str, tmp_path: Path
) -> None:
    """JARM §3 / RFC 9701 §6: the client may name the alg, but only the server's (ES256 here; the
    specs' RS256 default is forbidden by FAPI 2.0 SP 5.4.1)."""
    jwks = {"keys": [new_key().as_dict(private=False)]}
    base = {"security_profile": MS, "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}
    assert_oauth_error(_dcr(server, http, {**base, field: "RS256"}), "invalid_client_metadata", 400)
    assert_oauth_error(_dcr(server, http, {**base, field: "none"}), "invalid_client_metadata", 400)
    alg = http.get("/.well-known/openid-configuration").json()["id_token_signing_alg_values_supported"][0]
    resp = _dcr(server, http, {**base, field: alg})
    assert resp.status_code == 201, resp.text
    assert resp.json()[field] == alg


# -- signed introspection (RFC 9701) ---------------------------------------------------------

JWT_TYPE = "application/token-introspection+jwt"


def test_rfc9701_s5_signed_introspection_response(ms: FapiClient, http: httpx.Client, browser: httpx.Client) -> None:
    """RFC 9701 §4/§5: with Accept application/token-introspection+jwt the answer is a JWT (typ
    token-introspection+jwt) signed with a key from /jwks: iss, aud = the caller, iat and
    token_introspection holding the RFC 7662 response; an unknown token gives {"active": false}."""
    access = ms.flow(http, browser, signed=True, response_mode="jwt").json()["access_token"]
    resp = http.post("/introspect", data={"token": access, **ms.auth_params()}, headers={"Accept": JWT_TYPE})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].split(";")[0] == JWT_TYPE
    assert resp.headers["cache-control"] == "no-store"
    decoded = jwt.decode(resp.text, _jwks(http))
    assert decoded.header["typ"] == "token-introspection+jwt"
    claims = decoded.claims
    assert claims["iss"] == ms.server.issuer and claims["aud"] == ms.client_id
    assert abs(claims["iat"] - time.time()) < 60
    info = claims["token_introspection"]
    assert info["active"] is True and info["client_id"] == ms.client_id and info["token_type"] == "DPoP"
    assert info["cnf"]["jkt"] == ms.dpop.jkt

    resp = http.post(
        "/introspect",
        data={"token": "unknown", **ms.auth_params()},
        headers={"Accept": f"application/json;q=0.5, {JWT_TYPE}"},
    )
    assert jwt.decode(resp.text, _jwks(http)).claims["token_introspection"] == {"active": False}


def test_rfc9701_s5_json_unless_asked_and_errors_stay_json(ms: FapiClient, http: httpx.Client) -> None:
    """RFC 9701 §4: without the media type (or with q=0) the response is RFC 7662 JSON; errors (here a
    failed client authentication) stay JSON with their status (RFC 7662 §2.3)."""
    for accept in (None, "application/json", f"{JWT_TYPE};q=0"):
        headers = {"Accept": accept} if accept else {}
        resp = http.post("/introspect", data={"token": "unknown", **ms.auth_params()}, headers=headers)
        assert resp.headers["content-type"].startswith("application/json"), accept
        assert resp.json() == {"active": False}
    resp = http.post("/introspect", data={"token": "unknown", "client_id": ms.client_id}, headers={"Accept": JWT_TYPE})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"


def test_metadata_advertises_message_signing(http: httpx.Client) -> None:
    """JARM §4.1, RFC 9101 §10.1 / OIDC Discovery, RFC 9701 §7: exactly what is enforced."""
    doc = http.get("/.well-known/openid-configuration").json()
    alg = doc["id_token_signing_alg_values_supported"]
    assert doc["response_modes_supported"] == ["query", "jwt", "query.jwt", "form_post.jwt"]
    assert doc["authorization_signing_alg_values_supported"] == alg
    assert doc["introspection_signing_alg_values_supported"] == alg
    assert set(doc["request_object_signing_alg_values_supported"]) == {"ES256", "PS256", "EdDSA"}
    assert doc["request_parameter_supported"] is False
    assert "authorization_encryption_alg_values_supported" not in doc


def test_rfc9101_s4_authorization_details_inside_the_object(
    server: Server, http: httpx.Client, browser: httpx.Client, tmp_path: Path
) -> None:
    """RFC 9101 §4 with RFC 9396 §3: JSON-valued parameters travel as JSON inside the request object
    (here authorization_details as an array) and are validated like the form parameter."""
    payer = FapiClient.register(server, tmp_path, "--authorization-details-type", "payment_initiation", profile=MS)
    details = [
        {
            "type": "payment_initiation",
            "instructedAmount": {"currency": "EUR", "amount": "25.00"},
            "creditorName": "Acme Ltd",
            "creditorAccount": {"iban": "GB33BUKB20201555555555"},
        }
    ]
    params, verifier = payer.request_params(response_mode="jwt")
    pushed = payer.push(http, {"request": payer.request_object(params, authorization_details=details)})
    assert pushed.status_code == 201, pushed.text
    got = payer.authorize(browser, pushed.json()["request_uri"], verifier)
    tokens = payer.redeem(http, got).json()
    assert tokens["authorization_details"][0]["creditorName"] == "Acme Ltd"
    bad = [{**details[0], "instructedAmount": {"currency": "EUR", "amount": "-1"}}]
    resp = payer.push(http, {"request": payer.request_object(params, authorization_details=bad)})
    assert_oauth_error(resp, "invalid_authorization_details", 400)
