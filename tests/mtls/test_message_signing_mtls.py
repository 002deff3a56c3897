"""FAPI 2.0 Message Signing with mutual TLS (RFC 8705) client authentication and certificate-bound
tokens, in both deployments: the client still signs its request objects with a key it registered
(5.3.1), so it must register a JWKS as well as its certificate subject."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.fapi import FAPI_REDIRECT, FapiClient, new_key
from support.mtls import write_jwks
from support.refusals import assert_oauth_error

from mtls.conftest import Deployment

pytestmark = [pytest.mark.mtls, pytest.mark.jar, pytest.mark.jarm]

MS = "fapi2-message-signing"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mtls-ms-clients")


def test_fapi2_ms_5_3_1_mtls_client_needs_keys_and_signs(deployment: Deployment, tmp: Path) -> None:
    """FAPI 2.0 Message Signing 5.3.1 with tls_client_auth: registration without a JWKS is refused;
    with one, an unsigned PAR request is refused (invalid_request), and the signed flow with a JARM
    response ends in a certificate-bound token (RFC 8705 §3)."""
    cert = deployment.pki.ca.issue(tmp, "Fintech Signing")
    subject = cert.cert.subject.rfc4514_string()
    out = deployment.server.cli(
        "clients",
        "add",
        "--name",
        "ms without keys",
        "--profile",
        MS,
        "--auth-method",
        "tls_client_auth",
        "--tls-subject-dn",
        subject,
        "--redirect-uri",
        FAPI_REDIRECT,
        check=False,
    )
    assert out.returncode != 0 and "jwks" in out.stdout + out.stderr
    key = new_key("ES256")
    fapi = FapiClient.register_mtls(
        deployment.server,
        tmp,
        "tls_client_auth",
        "--tls-subject-dn",
        subject,
        "--jwks-file",
        str(write_jwks(tmp, key.as_dict(private=False))),
        profile=MS,
    )
    fapi.key, fapi.alg = key, "ES256"
    with deployment.front(follow_redirects=False) as browser, deployment.mtls(cert) as http:
        params, _ = fapi.request_params(response_mode="jwt")
        assert_oauth_error(fapi.push(http, params, dpop=False), "invalid_request", 400)
        other = new_key("ES256", kid=key.kid)
        assert_oauth_error(fapi.push_signed(http, params, dpop=False, key=other), "invalid_request_object", 400)
        resp = fapi.flow(http, browser, dpop=False, signed=True, response_mode="jwt")
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "Bearer"
