"""The `fapi2` client profile (FAPI 2.0 Security Profile, Final): the rules the profile makes
mandatory for its clients, each named after the section it checks, and the happy flow with
private_key_jwt + DPoP."""

from __future__ import annotations

import time

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.fapi import FAPI_REDIRECT, FapiClient
from support.flow import authorize_url, follow_to_client, pkce_pair, query_of
from support.refusals import assert_oauth_error
from support.server import Server

pytestmark = [pytest.mark.par, pytest.mark.dpop, pytest.mark.client_auth]


@pytest.fixture(scope="module")
def fapi(server: Server, tmp_path_factory: pytest.TempPathFactory) -> FapiClient:
    return FapiClient.register(server, tmp_path_factory.mktemp("fapi"))


def test_happy_flow_private_key_jwt_dpop(fapi: FapiClient, http: httpx.Client, browser: httpx.Client) -> None:
    resp = fapi.flow(http, browser)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "DPoP"
    claims = jwt.decode(body["access_token"], KeySet.import_key_set(http.get("/jwks").json())).claims
    assert claims["cnf"]["jkt"] == fapi.dpop.jkt
    assert claims["client_id"] == fapi.client_id
    # The token works at userinfo with a proof by the same key (RFC 9449 §7).
    token = body["access_token"]
    info = http.get(
        "/userinfo", headers={"Authorization": f"DPoP {token}", **fapi.dpop_header("/userinfo", "GET", token=token)}
    )
    assert info.status_code == 200, info.text


def test_5_3_2_2_3_authorization_request_without_par_refused(fapi: FapiClient, browser: httpx.Client) -> None:
    """FAPI 2.0 SP 5.3.2.2-3: a front-channel request not sent via PAR gets invalid_request (RFC 9126 §4)."""
    _verifier, challenge = pkce_pair()
    resp = browser.get(authorize_url(fapi.client_id, FAPI_REDIRECT, challenge, "openid"))
    assert resp.status_code == 303
    params = query_of(resp.headers["location"])
    assert resp.headers["location"].startswith(FAPI_REDIRECT)
    assert params["error"] == "invalid_request"
    assert params["iss"] == fapi.server.issuer  # 5.3.2.2-7: iss in error responses too


def test_5_3_2_1_4_token_request_without_sender_constraint_refused(
    fapi: FapiClient, http: httpx.Client, browser: httpx.Client
) -> None:
    """FAPI 2.0 SP 5.3.2.1-4: only sender-constrained tokens; a code redeemed without a DPoP proof
    or client certificate is refused, and the code is not spent by the refusal."""
    params, verifier = fapi.request_params()
    pushed = fapi.push(http, params, dpop=False)
    assert pushed.status_code == 201, pushed.text
    got = fapi.authorize(browser, pushed.json()["request_uri"], verifier)
    assert_oauth_error(fapi.redeem(http, got, dpop=False), "invalid_request", 400)
    assert fapi.redeem(http, got).status_code == 200


def test_5_3_2_1_4_client_credentials_without_sender_constraint_refused(fapi: FapiClient, http: httpx.Client) -> None:
    data = {"grant_type": "client_credentials", "scope": "accounts", **fapi.auth_params()}
    assert_oauth_error(http.post("/token", data=data), "invalid_request", 400)
    resp = http.post("/token", data={**data, **fapi.auth_params()}, headers=fapi.dpop_header("/token"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "DPoP"


def test_5_3_2_2_5_par_without_pkce_refused(fapi: FapiClient, http: httpx.Client) -> None:
    """FAPI 2.0 SP 5.3.2.2-5: PKCE S256 required (no opt-out for this profile)."""
    params, _ = fapi.request_params(code_challenge=None, code_challenge_method=None)
    assert_oauth_error(fapi.push(http, params), "invalid_request", 400)
    params, verifier = fapi.request_params(code_challenge_method="plain")
    params["code_challenge"] = verifier
    assert_oauth_error(fapi.push(http, params), "invalid_request", 400)


def test_5_3_2_2_6_par_without_redirect_uri_refused(fapi: FapiClient, http: httpx.Client) -> None:
    params, _ = fapi.request_params(redirect_uri=None)
    assert_oauth_error(fapi.push(http, params), "invalid_request", 400)


def test_5_3_2_1_8_assertion_aud_must_be_issuer_string_at_par(fapi: FapiClient, http: httpx.Client) -> None:
    """FAPI 2.0 SP 5.3.2.1-8 (Final): the issuer as a string; an array or the endpoint URL is refused,
    at the PAR endpoint as well as the token endpoint."""
    params, _ = fapi.request_params()
    for aud in ([fapi.server.issuer], fapi.server.issuer + "/par", fapi.server.issuer + "/token"):
        assert_oauth_error(fapi.push(http, params, auth=fapi.auth_params(aud=aud)), "invalid_client", 401)


@pytest.mark.parametrize("offset,ok", [(8, True), (70, False)])
def test_5_3_2_1_13_assertion_clock_skew(fapi: FapiClient, http: httpx.Client, offset: int, ok: bool) -> None:
    """FAPI 2.0 SP 5.3.2.1-13: iat/nbf up to 10 s in the future accepted, more than 60 s refused."""
    now = int(time.time())
    params, _ = fapi.request_params()
    resp = fapi.push(http, params, auth=fapi.auth_params(iat=now + offset, nbf=now + offset, exp=now + offset + 60))
    if ok:
        assert resp.status_code == 201, resp.text
    else:
        assert_oauth_error(resp, "invalid_client", 401)


def test_5_3_2_1_9_refresh_tokens_not_rotated(fapi: FapiClient, http: httpx.Client, browser: httpx.Client) -> None:
    """FAPI 2.0 SP 5.3.2.1-9: no refresh token rotation; the refresh token stays bound to the DPoP key."""
    tokens = fapi.flow(http, browser, scope="openid offline_access accounts").json()
    refresh = tokens["refresh_token"]
    for _ in range(2):
        resp = http.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh, **fapi.auth_params()},
            headers=fapi.dpop_header("/token"),
        )
        assert resp.status_code == 200, resp.text
        assert "refresh_token" not in resp.json() or resp.json()["refresh_token"] == refresh
        assert resp.json()["token_type"] == "DPoP"
    # Without proof of possession (conformance fapi2 refresh-token module): refused.
    resp = http.post("/token", data={"grant_type": "refresh_token", "refresh_token": refresh, **fapi.auth_params()})
    assert resp.status_code in (400, 401)


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post", "none"])
def test_5_3_2_1_6_weak_client_authentication_refused_at_registration(server: Server, method: str) -> None:
    """FAPI 2.0 SP 5.3.2.1-3 and -6: confidential clients only, authenticating with private_key_jwt or mTLS."""
    out = server.cli(
        "clients",
        "add",
        "--name",
        "weak",
        "--profile",
        "fapi2",
        "--auth-method",
        method,
        "--redirect-uri",
        FAPI_REDIRECT,
        check=False,
    )
    assert out.returncode != 0
    assert "not allowed for fapi2" in out.stderr + out.stdout


def test_5_3_2_1_6_dynamic_registration_refuses_client_secret(server: Server, http: httpx.Client) -> None:
    token = server.cli("registration-token", "create", "--label", "fapi-dcr-test").stdout.strip()
    resp = http.post(
        "/register",
        json={
            "security_profile": "fapi2",
            "redirect_uris": [FAPI_REDIRECT],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert_oauth_error(resp, "invalid_client_metadata", 400)


def test_rfc9126_s4_parameters_outside_pushed_request_ignored(
    fapi: FapiClient, http: httpx.Client, browser: httpx.Client
) -> None:
    """RFC 9126 §4, FAPI 2.0 SP 5.3.3.2: only the pushed parameters count (a state sent on the
    front channel is neither used nor returned)."""
    params, verifier = fapi.request_params(state="inside")
    uri = fapi.push(http, params).json()["request_uri"]
    resp = browser.get("/authorize", params={"client_id": fapi.client_id, "request_uri": uri, "state": "outside"})
    resp = follow_to_client(browser, resp, FAPI_REDIRECT)
    got = fapi.authorize(browser, uri, verifier) if resp.status_code != 303 else None
    location = got.location if got else resp.headers["location"]
    assert query_of(location)["state"] == "inside"


def test_metadata_advertises_fapi_rules(http: httpx.Client) -> None:
    doc = http.get("/.well-known/openid-configuration").json()
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert "RS256" not in doc["token_endpoint_auth_signing_alg_values_supported"]
    assert set(doc["dpop_signing_alg_values_supported"]) == {"ES256", "PS256", "EdDSA"}
