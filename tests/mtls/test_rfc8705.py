"""RFC 8705 (OAuth 2.0 Mutual-TLS Client Authentication and Certificate-Bound Access Tokens) with the
`fapi2` profile, in both deployments (Fingrade's own mTLS listener, and nginx forwarding the
certificate) on both store backends. Each test names the section it checks."""

from __future__ import annotations

import base64
import secrets
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.backends import BACKENDS
from support.fapi import FAPI_REDIRECT, FapiClient
from support.flow import run_flow
from support.mtls import ClientCert, self_signed, write_jwks
from support.refusals import assert_oauth_error

from .conftest import CERT_HEADER, Deployment

pytestmark = pytest.mark.mtls


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mtls-clients")


def claims_of(deployment: Deployment, token: str) -> dict[str, Any]:
    with deployment.front() as http:
        keys = KeySet.import_key_set(http.get("/jwks").json())
    return jwt.decode(token, keys).claims


def tls_client(deployment: Deployment, tmp: Path, cert: ClientCert, *extra: str) -> FapiClient:
    """A fapi2 tls_client_auth client registered by the certificate's subject DN."""
    return FapiClient.register_mtls(
        deployment.server, tmp, "tls_client_auth", "--tls-subject-dn", cert.cert.subject.rfc4514_string(), *extra
    )


def self_signed_client(deployment: Deployment, tmp: Path, cert: ClientCert) -> FapiClient:
    fapi = FapiClient.register_mtls(
        deployment.server, tmp, "self_signed_tls_client_auth", "--jwks-file", str(write_jwks(tmp, cert.jwk()))
    )
    deployment.wait_trusted(cert)
    return fapi


def client_credentials(http: httpx.Client, fapi: FapiClient, **headers: str) -> httpx.Response:
    return http.post(
        "/token", data={"grant_type": "client_credentials", "scope": "accounts", **fapi.auth_params()}, headers=headers
    )


def refused_at_handshake_or_invalid_client(deployment: Deployment, attempt: Callable[[], httpx.Response]) -> None:
    """A certificate the TLS layer cannot accept: Fingrade's own listener refuses the handshake (its
    trust store holds the CA bundle and registered certificates); nginx (optional_no_ca) forwards
    it and the core answers invalid_client."""
    if deployment.kind == "direct":
        with pytest.raises((httpx.HTTPError, ssl.SSLError)):
            attempt()
    else:
        assert_oauth_error(attempt(), "invalid_client", 401)


@pytest.fixture(scope="module")
def bound(deployment: Deployment, tmp: Path) -> dict[str, Any]:
    """One full fapi2 flow with tls_client_auth and certificate-bound tokens (shared by the tests
    that look at the tokens)."""
    cert = deployment.pki.ca.issue(tmp, "Fintech Bound")
    fapi = tls_client(deployment, tmp, cert)
    with deployment.front(follow_redirects=False) as browser, deployment.mtls(cert) as http:
        resp = fapi.flow(http, browser, dpop=False, scope="openid offline_access accounts")
    assert resp.status_code == 200, resp.text
    return {"cert": cert, "fapi": fapi, "tokens": resp.json()}


# -- §2 client authentication ---------------------------------------------------------------------


def test_rfc8705_s2_1_tls_client_auth_fapi2_flow_gives_certificate_bound_tokens(
    deployment: Deployment, bound: dict[str, Any]
) -> None:
    """RFC 8705 §2.1 (PKI client authentication) and §3.1: PAR, authorization and token request of a
    fapi2 client authenticated by its CA-issued certificate; the access token carries
    cnf.x5t#S256 of that certificate and stays a Bearer token (FAPI 2.0 SP 5.3.2.1-4, -5, -6)."""
    tokens, cert = bound["tokens"], bound["cert"]
    assert tokens["token_type"] == "Bearer"
    claims = claims_of(deployment, tokens["access_token"])
    assert claims["cnf"] == {"x5t#S256": cert.x5t_s256}
    assert claims["client_id"] == bound["fapi"].client_id
    assert "refresh_token" in tokens


def test_rfc8705_s3_refresh_gives_tokens_bound_to_the_certificate(
    deployment: Deployment, bound: dict[str, Any]
) -> None:
    """RFC 8705 §3: access tokens from a refresh are bound to the certificate presented then; the
    confidential client's refresh token is bound by its client authentication (RFC 9700 §4.14.2)."""
    fapi, cert = bound["fapi"], bound["cert"]
    data = {"grant_type": "refresh_token", "refresh_token": bound["tokens"]["refresh_token"], **fapi.auth_params()}
    with deployment.mtls(cert) as http:
        resp = http.post("/token", data=data)
    assert resp.status_code == 200, resp.text
    assert claims_of(deployment, resp.json()["access_token"])["cnf"] == {"x5t#S256": cert.x5t_s256}
    with deployment.mtls(deployment.pki.ca.issue(Path(cert.cert_path).parent, "Someone Else")) as http:
        assert_oauth_error(http.post("/token", data=data), "invalid_client", 401)


@pytest.mark.parametrize(
    "field, good, bad",
    [
        ("dns", {"dns": ["api.fintech.example"]}, {"dns": ["api.evil.example"]}),
        ("uri", {"uri": ["https://fintech.example/tpp/1"]}, {"uri": ["https://fintech.example/tpp/2"]}),
        ("ip", {"ip": ["192.0.2.10"]}, {"ip": ["192.0.2.11"]}),
        ("email", {"email": ["tpp@fintech.example"]}, {"email": ["other@fintech.example"]}),
    ],
)
def test_rfc8705_s2_1_2_san_registration(
    deployment: Deployment, tmp: Path, field: str, good: dict[str, list[str]], bad: dict[str, list[str]]
) -> None:
    """RFC 8705 §2.1.2: tls_client_auth_san_dns / _uri / _ip / _email match the SAN entry of that type;
    a certificate from the same CA with another value is invalid_client."""
    right = deployment.pki.ca.issue(tmp, "Fintech SAN", **good)
    wrong = deployment.pki.ca.issue(tmp, "Fintech SAN", **bad)
    fapi = FapiClient.register_mtls(
        deployment.server, tmp, "tls_client_auth", f"--tls-san-{field}", next(iter(good.values()))[0]
    )
    with deployment.mtls(right) as http:
        resp = client_credentials(http, fapi)
    assert resp.status_code == 200, resp.text
    assert claims_of(deployment, resp.json()["access_token"])["cnf"] == {"x5t#S256": right.x5t_s256}
    with deployment.mtls(wrong) as http:
        assert_oauth_error(client_credentials(http, fapi), "invalid_client", 401)


def test_rfc8705_s2_1_2_wrong_subject_dn_is_invalid_client(deployment: Deployment, tmp: Path) -> None:
    """RFC 8705 §2.1.2: a trusted certificate whose subject is not the registered DN."""
    fapi = tls_client(deployment, tmp, deployment.pki.ca.issue(tmp, "Fintech Registered"))
    with deployment.mtls(deployment.pki.ca.issue(tmp, "Fintech Impostor")) as http:
        assert_oauth_error(client_credentials(http, fapi), "invalid_client", 401)
        params, _ = fapi.request_params()
        assert_oauth_error(fapi.push(http, params, dpop=False), "invalid_client", 401)


def test_rfc8705_s2_no_certificate_is_invalid_client(deployment: Deployment, tmp: Path) -> None:
    """RFC 8705 §2: no certificate presented → invalid_client (RFC 6749 §5.2), at the mTLS host and
    at the browser-facing host (which never asks for one), at /token and /par."""
    fapi = tls_client(deployment, tmp, deployment.pki.ca.issue(tmp, "Fintech Certless"))
    for client in (deployment.mtls(), deployment.front()):
        with client as http:
            assert_oauth_error(client_credentials(http, fapi), "invalid_client", 401)
            params, _ = fapi.request_params()
            assert_oauth_error(fapi.push(http, params, dpop=False), "invalid_client", 401)


def test_rfc8705_s2_1_certificate_not_chaining_to_the_ca(deployment: Deployment, tmp: Path) -> None:
    """RFC 8705 §2.1: the right subject, issued by a CA the server does not trust."""
    real = deployment.pki.ca.issue(tmp, "Fintech Forged")
    fapi = tls_client(deployment, tmp, real)
    forged = deployment.pki.rogue.issue(tmp, "Fintech Forged")
    assert forged.cert.subject == real.cert.subject

    def attempt() -> httpx.Response:
        with deployment.mtls(forged) as http:
            return client_credentials(http, fapi)

    refused_at_handshake_or_invalid_client(deployment, attempt)


def test_rfc8705_s2_2_self_signed_tls_client_auth_fapi2_flow(
    deployment: Deployment, browser: httpx.Client, tmp: Path
) -> None:
    """RFC 8705 §2.2: a self-signed certificate registered in the client's JWKS (x5c) authenticates
    the client; tokens are bound to it (§3.1)."""
    cert = self_signed(tmp)
    fapi = self_signed_client(deployment, tmp, cert)
    with deployment.mtls(cert) as http:
        resp = fapi.flow(http, browser, dpop=False)
        assert resp.status_code == 200, resp.text
        token = resp.json()["access_token"]
        assert claims_of(deployment, token)["cnf"] == {"x5t#S256": cert.x5t_s256}
        info = http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    assert info.status_code == 200, info.text


def test_rfc8705_s2_2_self_signed_certificate_not_registered(deployment: Deployment, tmp: Path) -> None:
    """RFC 8705 §2.2: a certificate that is not in the client's JWKS is invalid_client, even one
    registered by another client (so it passes any TLS-layer check); an unknown self-signed
    certificate is refused too."""
    mine, theirs = self_signed(tmp), self_signed(tmp)
    fapi = self_signed_client(deployment, tmp, mine)
    self_signed_client(deployment, tmp, theirs)
    with deployment.mtls(theirs) as http:
        assert_oauth_error(client_credentials(http, fapi), "invalid_client", 401)
    stranger = self_signed(tmp)

    def attempt() -> httpx.Response:
        with deployment.mtls(stranger) as http:
            return client_credentials(http, fapi)

    refused_at_handshake_or_invalid_client(deployment, attempt)


def _dcr(deployment: Deployment, meta: dict[str, Any]) -> httpx.Response:
    token = deployment.server.cli(
        "registration-token", "create", "--label", "mtls-dcr-" + secrets.token_hex(4)
    ).stdout.split()[0]
    with deployment.front() as http:
        return http.post("/register", json=meta, headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("method", ["tls_client_auth", "self_signed_tls_client_auth"])
def test_rfc8705_s2_1_2_s3_4_dcr_with_standard_metadata_only(
    deployment: Deployment, browser: httpx.Client, tmp: Path, method: str
) -> None:
    """RFC 7591 §2 with RFC 8705 §2.1.2 / §2.2 and §3.4: a client that registers with standard
    metadata only (token_endpoint_auth_method, tls_client_auth_subject_dn or jwks with x5c, and
    tls_client_certificate_bound_access_tokens; no Fingrade member) is a confidential client that
    authenticates with its certificate. Its plain authorization request (no PAR asked for) works and
    its tokens are bound to the certificate; without the certificate it gets nothing."""
    if method == "tls_client_auth":
        cert = deployment.pki.ca.issue(tmp, "Standard fintech " + method)
        subject = {"tls_client_auth_subject_dn": cert.cert.subject.rfc4514_string()}
    else:
        cert = self_signed(tmp, "Standard self-signed fintech")
        subject = {"jwks": {"keys": [cert.jwk()]}}
    resp = _dcr(
        deployment,
        {
            "client_name": "Standard mTLS fintech",
            "redirect_uris": [FAPI_REDIRECT],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid accounts",
            "token_endpoint_auth_method": method,
            "tls_client_certificate_bound_access_tokens": True,
            **subject,
        },
    )
    assert resp.status_code == 201, resp.text
    registered = resp.json()
    assert registered["token_endpoint_auth_method"] == method and "client_secret" not in registered
    assert registered["tls_client_certificate_bound_access_tokens"] is True
    assert registered["security_profile"] == "confidential"
    cid = registered["client_id"]
    if method == "self_signed_tls_client_auth":
        deployment.wait_trusted(cert)
    got = run_flow(browser, cid, FAPI_REDIRECT, scope="openid accounts")
    data = {
        "grant_type": "authorization_code",
        "code": got.code,
        "redirect_uri": FAPI_REDIRECT,
        "code_verifier": got.verifier,
        "client_id": cid,
    }
    with deployment.mtls() as http:  # RFC 8705 §2: the certificate is the credential
        assert_oauth_error(http.post("/token", data=data), "invalid_client", 401)
    got = run_flow(browser, cid, FAPI_REDIRECT, scope="openid accounts")
    data.update(code=got.code, code_verifier=got.verifier)
    with deployment.mtls(cert) as http:
        resp = http.post("/token", data=data)
    assert resp.status_code == 200, resp.text
    assert claims_of(deployment, resp.json()["access_token"])["cnf"] == {"x5t#S256": cert.x5t_s256}


def test_rfc8705_s2_dcr_tls_methods_are_still_refused_for_public_clients(deployment: Deployment) -> None:
    """A native or browser app (token_endpoint_auth_method none) has no certificate to authenticate
    with; and an mTLS method never makes a client public."""
    resp = _dcr(
        deployment,
        {
            "client_name": "Native",
            "application_type": "native",
            "redirect_uris": ["http://127.0.0.1/cb"],
            "token_endpoint_auth_method": "none",
            "tls_client_certificate_bound_access_tokens": True,
        },
    )
    assert_oauth_error(resp, "invalid_client_metadata", 400)


# -- §3 certificate-bound access tokens --------------------------------------------------------------


def test_rfc8705_s3_private_key_jwt_with_certificate_bound_tokens(
    deployment: Deployment, browser: httpx.Client, tmp: Path
) -> None:
    """RFC 8705 §3 with FAPI 2.0 SP 5.3.2.1-5: private_key_jwt authentication, mutual TLS as the sender
    constraint (no DPoP); without certificate or proof the request is refused (5.3.2.1-4)."""
    fapi = FapiClient.register(deployment.server, tmp)
    cert = deployment.pki.ca.issue(tmp, "Fintech JWT")
    with deployment.mtls(cert) as http:
        resp = fapi.flow(http, browser, dpop=False)
        assert resp.status_code == 200, resp.text
        assert resp.json()["token_type"] == "Bearer"
        assert claims_of(deployment, resp.json()["access_token"])["cnf"] == {"x5t#S256": cert.x5t_s256}
    with deployment.mtls() as http:
        assert_oauth_error(client_credentials(http, fapi), "invalid_request", 400)


def test_rfc8705_s3_certificate_bound_grant_stays_certificate_bound(
    deployment: Deployment, browser: httpx.Client, tmp: Path
) -> None:
    """RFC 8705 §3, FAPI 2.0 SP 5.3.2.1-4: a grant whose tokens are bound to the client certificate
    is refreshed only with a certificate that binds the new access token; a refresh that would
    bind it otherwise (a DPoP proof without the certificate) is refused, and the grant lives on.
    A confidential client may renew its certificate: the refresh token is bound to its
    authentication (private_key_jwt here), not to the certificate."""
    fapi = FapiClient.register(deployment.server, tmp)
    cert = deployment.pki.ca.issue(tmp, "Fintech Sticky")
    with deployment.mtls(cert) as http:
        resp = fapi.flow(http, browser, dpop=False, scope="openid offline_access accounts")
    assert resp.status_code == 200, resp.text
    rt = resp.json()["refresh_token"]

    def refresh(http: httpx.Client, **headers: str) -> httpx.Response:
        return http.post(
            "/token", data={"grant_type": "refresh_token", "refresh_token": rt, **fapi.auth_params()}, headers=headers
        )

    with deployment.mtls() as http:
        proof = fapi.dpop.proof("POST", deployment.mtls_url + "/token")
        assert_oauth_error(refresh(http, DPoP=proof), "invalid_request", 400)
    renewed = deployment.pki.ca.issue(tmp, "Fintech Sticky Renewed")
    with deployment.mtls(renewed) as http:
        resp = refresh(http)
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "Bearer"
    assert claims_of(deployment, resp.json()["access_token"])["cnf"] == {"x5t#S256": renewed.x5t_s256}


def test_rfc8705_s3_dpop_proof_wins_over_the_certificate(deployment: Deployment, tmp: Path) -> None:
    """A request with both a DPoP proof and a client certificate gets a DPoP-bound token (RFC 9449
    §5): the proof is what the client asked for on this request. The proof's htu may name the
    mTLS alias of the endpoint (RFC 8705 §5, RFC 9449 §4.3 item 9)."""
    fapi = FapiClient.register(deployment.server, tmp)
    cert = deployment.pki.ca.issue(tmp, "Fintech DPoP")
    with deployment.mtls(cert) as http:
        for htu in (deployment.server.issuer + "/token", deployment.mtls_url + "/token"):
            resp = client_credentials(http, fapi, DPoP=fapi.dpop.proof("POST", htu))
            assert resp.status_code == 200, resp.text
            assert resp.json()["token_type"] == "DPoP"
            assert claims_of(deployment, resp.json()["access_token"])["cnf"] == {"jkt": fapi.dpop.jkt}


def test_rfc8705_s3_certificate_binds_only_when_asked(deployment: Deployment, tmp: Path) -> None:
    """RFC 8705 §3.4: a confidential client that did not register
    tls_client_certificate_bound_access_tokens gets an unbound token even with a certificate; one
    that did gets bound tokens, and no unbound token without a certificate."""
    cert = deployment.pki.ca.issue(tmp, "Fintech Plain")
    plain = deployment.server.add_client(
        "--name", "plain", "--profile", "confidential", "--grant-type", "client_credentials", "--scope", "accounts"
    )
    wants = deployment.server.add_client(
        "--name",
        "bound",
        "--profile",
        "confidential",
        "--grant-type",
        "client_credentials",
        "--scope",
        "accounts",
        "--tls-bound-tokens",
    )
    assert wants["tls_client_certificate_bound_access_tokens"] is True
    data = {"grant_type": "client_credentials", "scope": "accounts"}
    with deployment.mtls(cert) as http:
        resp = http.post("/token", data=data, auth=(plain["client_id"], plain["client_secret"]))
        assert resp.status_code == 200, resp.text
        assert "cnf" not in claims_of(deployment, resp.json()["access_token"])
        resp = http.post("/token", data=data, auth=(wants["client_id"], wants["client_secret"]))
        assert resp.status_code == 200, resp.text
        assert claims_of(deployment, resp.json()["access_token"])["cnf"] == {"x5t#S256": cert.x5t_s256}
    with deployment.mtls() as http:
        resp = http.post("/token", data=data, auth=(wants["client_id"], wants["client_secret"]))
        assert_oauth_error(resp, "invalid_request", 400)


def test_rfc8705_s3_bound_token_needs_the_same_certificate_at_userinfo(
    deployment: Deployment, bound: dict[str, Any], tmp: Path
) -> None:
    """RFC 8705 §3: the protected resource (here UserInfo, FAPI 2.0 SP 5.3.4-5) accepts a
    certificate-bound token only over mutual TLS with that certificate; otherwise 401 invalid_token."""
    token = bound["tokens"]["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    with deployment.mtls(bound["cert"]) as http:
        assert http.get("/userinfo", headers=auth).status_code == 200
    other = deployment.pki.ca.issue(tmp, "Fintech Bound")  # same subject, another certificate
    for client in (deployment.mtls(), deployment.front(), deployment.mtls(other)):
        with client as http:
            resp = http.get("/userinfo", headers=auth)
            assert resp.status_code == 401, resp.text
            assert resp.json()["error"] == "invalid_token"
            assert 'error="invalid_token"' in resp.headers["www-authenticate"]


def test_rfc8705_s3_2_introspection_shows_cnf(deployment: Deployment, bound: dict[str, Any]) -> None:
    """RFC 8705 §3.2: the introspection response carries the cnf x5t#S256 of a bound token."""
    fapi, cert = bound["fapi"], bound["cert"]
    with deployment.mtls(cert) as http:
        resp = http.post("/introspect", data={"token": bound["tokens"]["access_token"], **fapi.auth_params()})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["active"] is True and body["token_type"] == "Bearer"
    assert body["cnf"] == {"x5t#S256": cert.x5t_s256}


# -- §3.3, §5 metadata ---------------------------------------------------------------------------------


def test_rfc8705_s3_3_s5_metadata(deployment: Deployment) -> None:
    """RFC 8705 §3.3 and §5: bound tokens, the TLS methods and mtls_endpoint_aliases on the mTLS host."""
    with deployment.front() as http:
        meta = http.get("/.well-known/openid-configuration").json()
    assert meta["tls_client_certificate_bound_access_tokens"] is True
    assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(meta["token_endpoint_auth_methods_supported"])
    aliases = meta["mtls_endpoint_aliases"]
    assert aliases["token_endpoint"] == deployment.mtls_url + "/token"
    assert aliases["pushed_authorization_request_endpoint"] == deployment.mtls_url + "/par"
    with deployment.mtls() as http:  # the alias host serves the endpoints (no certificate needed to reach it)
        assert http.get("/healthz").status_code == 200


# -- the certificate header of a TLS-terminating proxy ---------------------------------------------------


def test_forged_certificate_header_from_untrusted_peer_is_ignored(
    deployment: Deployment, bound: dict[str, Any], tmp: Path
) -> None:
    """RFC 9440 §4 / RFC 9700 §4.13: a certificate header is believed only from a trusted proxy. The
    direct server trusts 192.0.2.1, not us; behind nginx the browser host strips the header."""
    fapi, cert = bound["fapi"], bound["cert"]
    forged = {CERT_HEADER: cert.escaped_pem()}
    clients = [deployment.front()] + ([deployment.mtls()] if deployment.kind == "direct" else [])
    for client in clients:
        with client as http:
            resp = client_credentials(http, fapi, **forged)
            assert_oauth_error(resp, "invalid_client", 401)
            resp = http.get(
                "/userinfo", headers={"Authorization": f"Bearer {bound['tokens']['access_token']}", **forged}
            )
            assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"


@pytest.mark.parametrize("deployment", [f"nginx-{b}" for b in BACKENDS], indirect=True)
def test_certificate_header_from_trusted_proxy_is_accepted(deployment: Deployment, bound: dict[str, Any]) -> None:
    """Behind a proxy the certificate arrives in the configured header (nginx $ssl_client_escaped_cert,
    or RFC 9440 `:base64:`) from a trusted_proxies address; the core then makes every check itself."""
    fapi, cert = bound["fapi"], bound["cert"]
    rfc9440 = ":" + base64.b64encode(cert.der).decode() + ":"
    with httpx.Client(base_url=deployment.upstream, timeout=20) as http:  # from 127.0.0.1, the trusted proxy
        for value in (cert.escaped_pem(), rfc9440):
            resp = client_credentials(http, fapi, **{CERT_HEADER: value})
            assert resp.status_code == 200, resp.text
            assert claims_of(deployment, resp.json()["access_token"])["cnf"] == {"x5t#S256": cert.x5t_s256}
        assert_oauth_error(client_credentials(http, fapi), "invalid_client", 401)
        rogue = deployment.pki.rogue.issue(Path(cert.cert_path).parent, "Fintech Bound")
        assert_oauth_error(client_credentials(http, fapi, **{CERT_HEADER: rogue.escaped_pem()}), "invalid_client", 401)


@pytest.mark.parametrize("deployment", [f"direct-{b}" for b in BACKENDS], indirect=True)
def test_fapi2_5_2_2_mtls_listener_tls12_only_recommended_ciphers(deployment: Deployment) -> None:
    """FAPI 2.0 SP 5.2.2: with TLS 1.2 a back-channel endpoint permits only the BCP 195 recommended
    (ECDHE + AES-GCM) cipher suites. Fingrade's own mTLS listener."""
    port = int(deployment.mtls_url.rsplit(":", 1)[1])

    def handshake(ctx: ssl.SSLContext) -> str:
        import socket

        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            return tls.cipher()[0]

    def client(max_version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
        ctx = deployment.server.ssl_context()
        ctx.maximum_version = max_version
        if ciphers:
            ctx.set_ciphers(ciphers)
        return ctx

    assert "GCM" in handshake(client(ssl.TLSVersion.TLSv1_2))
    with pytest.raises(ssl.SSLError):
        handshake(client(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA"))
