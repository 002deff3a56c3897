"""The bank's account information API with certificate-bound tokens (RFC 8705 §3; FAPI 2.0 SP
5.3.4-5): a tls_client_auth fapi2 client's token works at /bank/v1 only over mutual TLS with the
same certificate. Both deployments (own mTLS listener, nginx forwarding the certificate)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from support.bank import PREFIX, account_information
from support.fapi import FapiClient

from mtls.conftest import Deployment

pytestmark = [pytest.mark.mtls, pytest.mark.bank]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bank-mtls")


def test_rfc8705_s3_certificate_bound_token_at_the_bank(
    deployment: Deployment, browser: httpx.Client, tmp: Path
) -> None:
    cert = deployment.pki.ca.issue(tmp, "Fintech Bank mTLS")
    other = deployment.pki.ca.issue(tmp, "Another Fintech")
    fapi = FapiClient.register_mtls(
        deployment.server,
        tmp,
        "tls_client_auth",
        "--tls-subject-dn",
        cert.cert.subject.rfc4514_string(),
        "--authorization-details-type",
        "account_information",
    )
    with deployment.mtls(cert) as http:
        resp = fapi.flow(
            http,
            browser,
            dpop=False,
            scope="openid accounts",
            authorization_details=json.dumps([account_information()]),
        )
        assert resp.status_code == 200, resp.text
        token = resp.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        accounts = http.get(PREFIX + "/accounts", headers=auth)
        assert accounts.status_code == 200, accounts.text
        assert accounts.json()["Data"]["Account"], accounts.json()
    # The stolen token: no certificate, or another client's certificate.
    for thief in (deployment.mtls(), deployment.mtls(other)):
        with thief as http:
            resp = http.get(PREFIX + "/accounts", headers=auth)
            assert resp.status_code == 401, resp.text
            assert resp.json()["error"] == "invalid_token"
            assert resp.headers["www-authenticate"].startswith("Bearer")
