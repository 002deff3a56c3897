"""Server metadata (RFC 8414 §3, OpenID Connect Discovery 1.0 §4): the document advertises exactly
what the endpoints do."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.demo import BASIC, NATIVE_REDIRECT
from support.fapi import ASSERTION_TYPE, client_assertion, new_key
from support.flow import run_flow
from support.operator import jwks_client, new_confidential_client
from support.server import Server
from support.tokens import client_credentials, exchange

WELL_KNOWN = ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server")


@pytest.fixture
def meta(http: httpx.Client) -> dict:
    return http.get(WELL_KNOWN[0]).json()


def test_both_well_known_documents_are_identical_json(http: httpx.Client) -> None:
    """RFC 8414 §3 and OIDC Discovery §4: one metadata document at both well-known URLs."""
    a, b = (http.get(path) for path in WELL_KNOWN)
    assert a.status_code == b.status_code == 200
    assert a.headers["content-type"].startswith("application/json")
    assert b.headers["content-type"].startswith("application/json")
    assert a.json() == b.json()


def test_issuer_is_the_base_url(server: Server, meta: dict) -> None:
    """RFC 8414 §3.3 / OIDC Discovery §4.3: `issuer` is identical to the URL the document was fetched from."""
    assert meta["issuer"] == server.base_url
    assert not meta["issuer"].endswith("/")


def test_every_endpoint_is_listed_under_the_issuer_and_answers(server: Server, meta: dict, http: httpx.Client) -> None:
    """RFC 8414 §2 / OIDC Discovery §3: every endpoint the server has is in the document."""
    names = (
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "introspection_endpoint",
        "revocation_endpoint",
        "registration_endpoint",
    )
    for name in names:
        url = meta[name]
        assert url.startswith(server.base_url + "/"), (name, url)
        # Every listed URL is routed (an empty request gets an OAuth error, never "not found").
        method = "GET" if name in ("authorization_endpoint", "userinfo_endpoint", "jwks_uri") else "POST"
        resp = http.request(method, url)
        assert resp.status_code != 404, (name, resp.status_code)
    assert http.get(meta["jwks_uri"]).status_code == 200


def test_pkce_response_type_and_iss_parameter(meta: dict) -> None:
    """RFC 7636 §4.3 via RFC 8414 §2 (S256 only, FAPI 2.0 SP 5.3.2.2-5); RFC 9700 §2.1.2 (code only);
    RFC 9207 §3 (iss in authorization responses)."""
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["response_modes_supported"] == ["query", "jwt", "query.jwt", "form_post.jwt"]  # JARM §4.1


def test_oidc_required_members(meta: dict) -> None:
    """OIDC Discovery §3: the REQUIRED members, and `openid` among the scopes."""
    for name in (
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ):
        assert meta[name], name
    assert "openid" in meta["scopes_supported"]
    assert "password" not in meta["grant_types_supported"]  # RFC 9700 §2.4
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}


def test_id_tokens_are_signed_with_the_advertised_alg(browser: httpx.Client, meta: dict) -> None:
    """OIDC Discovery §3 id_token_signing_alg_values_supported matches the ID tokens issued."""
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT)
    body = exchange(browser, got, client_id="demo-native").json()
    keys = KeySet.import_key_set(browser.get(meta["jwks_uri"]).json())
    idt = jwt.decode(body["id_token"], keys, algorithms=meta["id_token_signing_alg_values_supported"])
    assert idt.header["alg"] in meta["id_token_signing_alg_values_supported"]
    at = jwt.decode(body["access_token"], keys, algorithms=meta["id_token_signing_alg_values_supported"])
    assert at.header["alg"] in meta["id_token_signing_alg_values_supported"]


def test_cors_on_discovery_and_jwks(http: httpx.Client, meta: dict) -> None:
    """Metadata and keys are public: any origin may read them (RFC 9700 §2.6 allows CORS there)."""
    for path in (*WELL_KNOWN, "/jwks"):
        resp = http.get(path, headers={"Origin": "https://rp.example"})
        assert resp.status_code == 200
        assert resp.headers["access-control-allow-origin"] == "*", path


# -- what is advertised is what /token accepts ------------------------------------------------


def test_token_endpoint_accepts_every_advertised_secret_method(server: Server, http: httpx.Client, meta: dict) -> None:
    """RFC 8414 §2 token_endpoint_auth_methods_supported: client_secret_basic and client_secret_post work."""
    assert {"client_secret_basic", "client_secret_post", "private_key_jwt", "none"} == set(
        meta["token_endpoint_auth_methods_supported"]
    )
    client_credentials(http, "accounts", auth=BASIC)
    cid, secret = new_confidential_client(
        server, "--auth-method", "client_secret_post", "--grant-type", "client_credentials"
    )
    resp = http.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret, "scope": "accounts"},
    )
    assert resp.status_code == 200, resp.text


def test_token_endpoint_accepts_public_clients_with_none(browser: httpx.Client, meta: dict) -> None:
    """`none` is advertised: a public client redeems its code with client_id alone (RFC 6749 §2.3, §4.1.3)."""
    assert "none" in meta["token_endpoint_auth_methods_supported"]
    got = run_flow(browser, "demo-native", NATIVE_REDIRECT)
    assert exchange(browser, got, client_id="demo-native").status_code == 200


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")  # joserfc follows RFC 9864; FAPI still names EdDSA
@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_private_key_jwt_with_every_advertised_alg(
    server: Server, http: httpx.Client, meta: dict, tmp_path: Path, alg: str
) -> None:
    """RFC 8414 §2 token_endpoint_auth_signing_alg_values_supported: each listed alg authenticates a
    private_key_jwt client (RFC 7523 §2.2, aud = issuer per FAPI 2.0 SP 5.3.2.1-8)."""
    assert alg in meta["token_endpoint_auth_signing_alg_values_supported"]
    key = new_key(alg)
    cid = jwks_client(server, key, tmp_path)
    resp = http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "scope": "accounts",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(key, alg, cid, meta["issuer"]),
        },
    )
    assert resp.status_code == 200, resp.text
    # The same assertion rules serve introspection and revocation (their own metadata lists them).
    assert alg in meta["introspection_endpoint_auth_signing_alg_values_supported"]
    token = resp.json()["access_token"]
    resp = http.post(
        "/introspect",
        data={
            "token": token,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(key, alg, cid, meta["issuer"]),
        },
    )
    assert resp.status_code == 200 and resp.json()["active"] is True, resp.text


def test_no_unadvertised_signing_alg_is_listed(meta: dict) -> None:
    """FAPI 2.0 SP 5.4.1-1: only PS256, ES256 and EdDSA; never `none`, HS* or RS256."""
    for name in (
        "token_endpoint_auth_signing_alg_values_supported",
        "introspection_endpoint_auth_signing_alg_values_supported",
        "revocation_endpoint_auth_signing_alg_values_supported",
        "id_token_signing_alg_values_supported",
    ):
        assert set(meta[name]) <= {"ES256", "PS256", "EdDSA"}, name


def test_introspection_methods_exclude_none_and_revocation_methods_include_it(http: httpx.Client, meta: dict) -> None:
    """RFC 8414 §2: introspection does not list `none` and refuses a public client (RFC 7662 §2.1);
    revocation lists `none` and accepts a public client (RFC 7009 §2.1)."""
    assert "none" not in meta["introspection_endpoint_auth_methods_supported"]
    resp = http.post("/introspect", data={"token": "x", "client_id": "demo-native"})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert "none" in meta["revocation_endpoint_auth_methods_supported"]
    resp = http.post("/revoke", data={"token": "x", "client_id": "demo-native"})
    assert resp.status_code == 200
