"""DPoP (RFC 9449) against the real server: DPoP-bound tokens at the token endpoint (§5, §6.1),
resource access with the DPoP scheme (§7), the Bearer downgrade refused (§7.2), refresh-token
binding for public clients (§5), code binding through dpop_jkt and PAR (§10), introspection (§6.2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.demo import BACKEND_REDIRECT, BASIC, NATIVE_REDIRECT
from support.dpop import DPoPKey
from support.flow import Authorized, run_flow
from support.refusals import assert_oauth_error, www_authenticate
from support.server import Server
from support.tokens import exchange
from test_par import _request, finish, push, start

pytestmark = pytest.mark.dpop


def _dpop_tokens(
    server: Server, browser: httpx.Client, key: DPoPKey, client_id: str = "demo-native", **extra: str
) -> dict[str, Any]:
    got = run_flow(browser, client_id, NATIVE_REDIRECT, scope="openid profile offline_access", **extra)
    resp = exchange(browser, got, client_id=client_id, headers={"DPoP": key.proof("POST", server.issuer + "/token")})
    assert resp.status_code == 200, resp.text
    return resp.json()


def _userinfo(
    server: Server,
    http: httpx.Client,
    token: str,
    key: DPoPKey | None,
    scheme: str = "DPoP",
    proof: str | None = None,
    method: str = "GET",
) -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is None and key is not None:
        proof = key.proof(method, server.issuer + "/userinfo", token=token)
    if proof is not None:
        headers["DPoP"] = proof
    return http.request(method, "/userinfo", headers=headers)


def _assert_dpop_challenge(resp: httpx.Response, error: str) -> None:
    """RFC 9449 §7.1: 401 with a DPoP challenge naming the error and the accepted algorithms."""
    assert resp.status_code == 401, (resp.status_code, resp.text[:300])
    challenge = www_authenticate(resp)
    assert challenge["scheme"] == "dpop" and challenge["error"] == error
    assert challenge["algs"].split() == ["ES256", "PS256", "EdDSA"]
    assert resp.json()["error"] == error


def test_5_token_request_with_proof_gives_dpop_token_with_cnf_jkt(server: Server, browser: httpx.Client) -> None:
    """RFC 9449 §5: token_type DPoP; §6.1: the access token carries cnf.jkt of the proof key."""
    key = DPoPKey()
    body = _dpop_tokens(server, browser, key)
    assert body["token_type"] == "DPoP"
    claims = jwt.decode(body["access_token"], KeySet.import_key_set(browser.get("/jwks").json())).claims
    assert claims["cnf"] == {"jkt": key.jkt}


def test_5_token_request_without_proof_stays_bearer(server: Server, browser: httpx.Client) -> None:
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT)
    body = exchange(browser, got, client_id="demo-native").json()
    assert body["token_type"] == "Bearer"
    claims = jwt.decode(body["access_token"], KeySet.import_key_set(browser.get("/jwks").json())).claims
    assert "cnf" not in claims


def test_5_invalid_proof_at_token_endpoint_is_400_invalid_dpop_proof(server: Server, browser: httpx.Client) -> None:
    """RFC 9449 §5: an invalid proof at the token endpoint → 400 invalid_dpop_proof."""
    key = DPoPKey()
    for proof in (
        key.proof("POST", server.issuer + "/userinfo"),
        key.proof("GET", server.issuer + "/token"),
        "not-a-jwt",
    ):
        got = run_flow(browser, "demo-native", NATIVE_REDIRECT)
        assert_oauth_error(
            exchange(browser, got, client_id="demo-native", headers={"DPoP": proof}), "invalid_dpop_proof"
        )


def test_11_1_proof_replayed_at_token_endpoint_refused(server: Server, browser: httpx.Client) -> None:
    """RFC 9449 §11.1: a proof is accepted once (jti replay cache shared by all nodes)."""
    key = DPoPKey()
    proof = key.proof("POST", server.issuer + "/token")
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT)
    assert exchange(browser, got, client_id="demo-native", headers={"DPoP": proof}).status_code == 200
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT)
    assert_oauth_error(exchange(browser, got, client_id="demo-native", headers={"DPoP": proof}), "invalid_dpop_proof")


def test_7_userinfo_with_dpop_scheme_and_proof(server: Server, browser: httpx.Client, http: httpx.Client) -> None:
    """RFC 9449 §7.1: Authorization: DPoP + a proof with ath; scheme and header names case-insensitive."""
    key = DPoPKey()
    token = _dpop_tokens(server, browser, key)["access_token"]
    resp = _userinfo(server, http, token, key)
    assert resp.status_code == 200, resp.text
    assert resp.json()["sub"]
    assert _userinfo(server, http, token, key, scheme="dpop").status_code == 200
    proof = key.proof("GET", server.issuer + "/userinfo", token=token)
    resp = http.get("/userinfo", headers={"AUTHORIZATION": "DPOP " + token, "DPOP": proof})
    assert resp.status_code == 200, resp.text
    assert _userinfo(server, http, token, key, method="POST").status_code == 200


def test_7_2_dpop_bound_token_as_bearer_refused(server: Server, browser: httpx.Client, http: httpx.Client) -> None:
    """RFC 9449 §7.2: a DPoP-bound token presented with the Bearer scheme is refused (with or without proof)."""
    key = DPoPKey()
    token = _dpop_tokens(server, browser, key)["access_token"]
    _assert_dpop_challenge(_userinfo(server, http, token, None, scheme="Bearer"), "invalid_token")
    _assert_dpop_challenge(_userinfo(server, http, token, key, scheme="Bearer"), "invalid_token")


def test_7_1_dpop_scheme_without_proof_refused(server: Server, browser: httpx.Client, http: httpx.Client) -> None:
    """RFC 9449 §7.1 / §4.3: a DPoP token without a proof → 401 invalid_dpop_proof with a DPoP challenge."""
    key = DPoPKey()
    token = _dpop_tokens(server, browser, key)["access_token"]
    _assert_dpop_challenge(_userinfo(server, http, token, None), "invalid_dpop_proof")


def test_4_3_12_proof_by_another_key_refused(server: Server, browser: httpx.Client, http: httpx.Client) -> None:
    """RFC 9449 §4.3 item 12: the proof key must be the key the token is bound to."""
    key = DPoPKey()
    token = _dpop_tokens(server, browser, key)["access_token"]
    _assert_dpop_challenge(_userinfo(server, http, token, DPoPKey()), "invalid_dpop_proof")


def test_4_3_12_wrong_ath_and_htu_refused(server: Server, browser: httpx.Client, http: httpx.Client) -> None:
    """RFC 9449 §4.3 items 9 and 12 at the resource: ath of another token, htu of another URL."""
    key = DPoPKey()
    token = _dpop_tokens(server, browser, key)["access_token"]
    wrong_ath = key.proof("GET", server.issuer + "/userinfo", token=token + "x")
    _assert_dpop_challenge(_userinfo(server, http, token, key, proof=wrong_ath), "invalid_dpop_proof")
    wrong_htu = key.proof("GET", server.issuer + "/token", token=token)
    _assert_dpop_challenge(_userinfo(server, http, token, key, proof=wrong_htu), "invalid_dpop_proof")


def test_11_1_proof_replayed_at_userinfo_refused(server: Server, browser: httpx.Client, http: httpx.Client) -> None:
    """RFC 9449 §11.1: the same proof twice at the resource → the second is refused."""
    key = DPoPKey()
    token = _dpop_tokens(server, browser, key)["access_token"]
    proof = key.proof("GET", server.issuer + "/userinfo", token=token)
    assert _userinfo(server, http, token, key, proof=proof).status_code == 200
    _assert_dpop_challenge(_userinfo(server, http, token, key, proof=proof), "invalid_dpop_proof")


def test_dpop_scheme_with_unbound_token_refused(server: Server, browser: httpx.Client, http: httpx.Client) -> None:
    """A Bearer token sent with the DPoP scheme is refused: it was never bound to the proof key."""
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT)
    token = exchange(browser, got, client_id="demo-native").json()["access_token"]
    _assert_dpop_challenge(_userinfo(server, http, token, DPoPKey()), "invalid_token")
    assert _userinfo(server, http, token, None, scheme="Bearer").status_code == 200  # Bearer stays Bearer


def _refresh(
    server: Server,
    browser: httpx.Client,
    rt: str,
    key: DPoPKey | None,
    client_id: str | None = "demo-native",
    auth: Any = None,
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": rt}
    if client_id:
        data["client_id"] = client_id
    headers = {"DPoP": key.proof("POST", server.issuer + "/token")} if key else {}
    return browser.post("/token", data=data, headers=headers, auth=auth)


def test_5_public_client_refresh_token_bound_to_dpop_key(server: Server, browser: httpx.Client) -> None:
    """RFC 9449 §5: a public client's refresh token is bound to the DPoP key; refreshing needs a
    proof by that key (none → invalid_dpop_proof, another key → invalid_grant)."""
    key = DPoPKey()
    rt = _dpop_tokens(server, browser, key)["refresh_token"]
    assert_oauth_error(_refresh(server, browser, rt, None), "invalid_dpop_proof")
    assert_oauth_error(_refresh(server, browser, rt, DPoPKey()), "invalid_grant")
    resp = _refresh(server, browser, rt, key)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "DPoP" and body["refresh_token"] != rt
    # The rotated refresh token keeps the binding.
    assert_oauth_error(_refresh(server, browser, body["refresh_token"], DPoPKey()), "invalid_grant")
    assert _refresh(server, browser, body["refresh_token"], key).status_code == 200


def test_5_confidential_client_refresh_token_bound_to_client_not_key(server: Server, browser: httpx.Client) -> None:
    """RFC 9449 §5: a confidential client's refresh token is bound by client authentication; each
    access token is bound to the key of the proof sent with that refresh, and a grant whose tokens
    are DPoP-bound stays DPoP-bound: a refresh without a proof is refused (invalid_dpop_proof), not
    answered with a Bearer token (FAPI 2.0 SP 5.3.2.1-4), and the grant lives on."""
    key = DPoPKey()
    got = run_flow(browser, "demo-backend", BACKEND_REDIRECT, scope="openid profile offline_access accounts")
    resp = exchange(browser, got, auth=BASIC, headers={"DPoP": key.proof("POST", server.issuer + "/token")})
    assert resp.status_code == 200 and resp.json()["token_type"] == "DPoP", resp.text
    rt = resp.json()["refresh_token"]
    assert_oauth_error(_refresh(server, browser, rt, None, client_id=None, auth=BASIC), "invalid_dpop_proof")
    other_key = DPoPKey()
    other = _refresh(server, browser, rt, other_key, client_id=None, auth=BASIC)
    assert other.status_code == 200 and other.json()["token_type"] == "DPoP", other.text
    claims = jwt.decode(other.json()["access_token"], KeySet.import_key_set(browser.get("/jwks").json())).claims
    assert claims["cnf"] == {"jkt": other_key.jkt}
    assert_oauth_error(_refresh(server, browser, rt, None, client_id=None, auth=BASIC), "invalid_dpop_proof")
    again = _refresh(server, browser, rt, key, client_id=None, auth=BASIC)
    assert again.status_code == 200 and again.json()["token_type"] == "DPoP", again.text


def test_10_dpop_jkt_binds_the_code(server: Server, browser: httpx.Client) -> None:
    """RFC 9449 §10: with dpop_jkt in the authorization request, the code is redeemable only with a
    proof by that key (another key → invalid_grant, no proof → invalid_dpop_proof)."""
    key = DPoPKey()
    url = server.issuer + "/token"
    for headers, error in (({"DPoP": DPoPKey().proof("POST", url)}, "invalid_grant"), ({}, "invalid_dpop_proof")):
        got = run_flow(browser, "demo-native", NATIVE_REDIRECT, dpop_jkt=key.jkt)
        assert_oauth_error(exchange(browser, got, client_id="demo-native", headers=headers), error)
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT, dpop_jkt=key.jkt)
    resp = exchange(browser, got, client_id="demo-native", headers={"DPoP": key.proof("POST", url)})
    assert resp.status_code == 200 and resp.json()["token_type"] == "DPoP", resp.text


def test_10_malformed_dpop_jkt_refused(server: Server, browser: httpx.Client) -> None:
    """RFC 9449 §10: dpop_jkt is a base64url SHA-256 thumbprint; anything else is invalid_request."""
    _verifier, params = _request("demo-native", NATIVE_REDIRECT, dpop_jkt="not-a-thumbprint")
    assert_oauth_error(push(browser, params), "invalid_request")


def _par_flow(server: Server, browser: httpx.Client, par_key: DPoPKey, token_key: DPoPKey) -> httpx.Response:
    verifier, params = _request("demo-native", NATIVE_REDIRECT)
    resp = browser.post("/par", data=params, headers={"DPoP": par_key.proof("POST", server.issuer + "/par")})
    assert resp.status_code == 201, resp.text
    got: Authorized = finish(
        browser, start(browser, "demo-native", resp.json()["request_uri"]), NATIVE_REDIRECT, verifier
    )
    return exchange(
        browser, got, client_id="demo-native", headers={"DPoP": token_key.proof("POST", server.issuer + "/token")}
    )


def test_10_1_dpop_proof_at_par_binds_the_code(server: Server, browser: httpx.Client) -> None:
    """RFC 9449 §10.1: a DPoP header at PAR binds the code as if its thumbprint were dpop_jkt."""
    key = DPoPKey()
    assert_oauth_error(_par_flow(server, browser, key, DPoPKey()), "invalid_grant")
    resp = _par_flow(server, browser, key, key)
    assert resp.status_code == 200 and resp.json()["token_type"] == "DPoP", resp.text


def test_10_1_par_proof_and_dpop_jkt_must_agree(server: Server, browser: httpx.Client) -> None:
    """RFC 9449 §10.1: dpop_jkt and the PAR proof key differ → the pushed request is refused;
    an invalid proof at PAR is invalid_dpop_proof (400)."""
    key = DPoPKey()
    _verifier, params = _request("demo-native", NATIVE_REDIRECT, dpop_jkt=DPoPKey().jkt)
    resp = browser.post("/par", data=params, headers={"DPoP": key.proof("POST", server.issuer + "/par")})
    assert_oauth_error(resp, "invalid_dpop_proof")
    _verifier, params = _request("demo-native", NATIVE_REDIRECT)
    resp = browser.post("/par", data=params, headers={"DPoP": key.proof("POST", server.issuer + "/token")})
    assert_oauth_error(resp, "invalid_dpop_proof")


def test_6_2_introspection_shows_cnf_and_dpop_token_type(
    server: Server, browser: httpx.Client, http: httpx.Client
) -> None:
    """RFC 9449 §6.2: introspection of a DPoP-bound token returns cnf.jkt and token_type DPoP."""
    key = DPoPKey()
    resp = http.post(
        "/token",
        auth=BASIC,
        data={"grant_type": "client_credentials"},
        headers={"DPoP": key.proof("POST", server.issuer + "/token")},
    )
    assert resp.status_code == 200 and resp.json()["token_type"] == "DPoP", resp.text
    info = http.post("/introspect", auth=BASIC, data={"token": resp.json()["access_token"]}).json()
    assert info["active"] is True and info["token_type"] == "DPoP" and info["cnf"] == {"jkt": key.jkt}
    plain = http.post("/token", auth=BASIC, data={"grant_type": "client_credentials"}).json()
    info = http.post("/introspect", auth=BASIC, data={"token": plain["access_token"]}).json()
    assert info["token_type"] == "Bearer" and "cnf" not in info


def test_5_1_metadata_advertises_dpop_algs(http: httpx.Client) -> None:
    """RFC 9449 §5.1: dpop_signing_alg_values_supported lists exactly the accepted algorithms."""
    doc = http.get("/.well-known/openid-configuration").json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "PS256", "EdDSA"]


@pytest.mark.parametrize("value", ["two", "comma"])
def test_4_3_1_two_proofs_at_userinfo_refused(
    server: Server, browser: httpx.Client, http: httpx.Client, value: str
) -> None:
    """RFC 9449 §4.3 item 1: two DPoP headers (or two proofs in one) are refused."""
    key = DPoPKey()
    token = _dpop_tokens(server, browser, key)["access_token"]
    p1 = key.proof("GET", server.issuer + "/userinfo", token=token)
    p2 = key.proof("GET", server.issuer + "/userinfo", token=token)
    headers = [("Authorization", "DPoP " + token)]
    headers += [("DPoP", p1), ("DPoP", p2)] if value == "two" else [("DPoP", f"{p1}, {p2}")]
    _assert_dpop_challenge(http.get("/userinfo", headers=headers), "invalid_dpop_proof")
