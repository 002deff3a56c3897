"""The FAPI 2.0 happy flows of the conformance plans, each with and without message signing: client
authentication × sender constraint = private_key_jwt + DPoP, private_key_jwt + mTLS, mTLS + mTLS;
profile `fapi2` (FAPI 2.0 SP) and `fapi2-message-signing` (plus JAR at PAR and JARM). Every flow
ends with the token used at /userinfo with its proof of possession, and refused without it
(FAPI 2.0 SP 5.3.2.1-4/5, 5.3.4-5). Both deployments (own listener, nginx), both backends."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from support.fapi import FapiClient, new_key
from support.mtls import write_jwks

from mtls.conftest import Deployment

pytestmark = [pytest.mark.mtls, pytest.mark.dpop, pytest.mark.jar, pytest.mark.jarm]

PROFILES = ["fapi2", "fapi2-message-signing"]
COMBOS = ["private_key_jwt+dpop", "private_key_jwt+mtls", "tls_client_auth+mtls"]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fapi2-matrix")


def _client(deployment: Deployment, tmp: Path, combo: str, profile: str, subject: str) -> FapiClient:
    if combo.startswith("private_key_jwt"):
        return FapiClient.register(deployment.server, tmp, profile=profile)
    key = new_key("ES256")  # request objects are signed even when mTLS authenticates the client
    extra = ("--jwks-file", str(write_jwks(tmp, key.as_dict(private=False)))) if profile != "fapi2" else ()
    fapi = FapiClient.register_mtls(
        deployment.server, tmp, "tls_client_auth", "--tls-subject-dn", subject, *extra, profile=profile
    )
    fapi.key, fapi.alg = key, "ES256"
    return fapi


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("combo", COMBOS)
def test_fapi2_happy_flow(deployment: Deployment, browser: httpx.Client, tmp: Path, combo: str, profile: str) -> None:
    cert = deployment.pki.ca.issue(tmp, f"Fintech {combo} {profile}")
    fapi = _client(deployment, tmp, combo, profile, cert.cert.subject.rfc4514_string())
    dpop = combo.endswith("dpop")
    signed = profile == "fapi2-message-signing"
    extra = {"response_mode": "jwt"} if signed else {}
    back = deployment.front() if dpop else deployment.mtls(cert)
    with back as http:
        resp = fapi.flow(http, browser, dpop=dpop, signed=signed, **extra)
        assert resp.status_code == 200, resp.text
        token = resp.json()["access_token"]
        keys = KeySet.import_key_set(http.get(deployment.server.issuer + "/jwks").json())
        cnf = jwt.decode(token, keys).claims["cnf"]
        if dpop:
            assert resp.json()["token_type"] == "DPoP" and cnf == {"jkt": fapi.dpop.jkt}
            good = {"Authorization": f"DPoP {token}", **fapi.dpop_header("/userinfo", "GET", token=token)}
        else:
            assert resp.json()["token_type"] == "Bearer" and cnf == {"x5t#S256": cert.x5t_s256}
            good = {"Authorization": f"Bearer {token}"}
        assert http.get("/userinfo", headers=good).status_code == 200
    # Without the proof of possession the token is useless: no proof, or no certificate.
    with deployment.mtls() as bare:
        stolen = bare.get("/userinfo", headers={"Authorization": f"{'DPoP' if dpop else 'Bearer'} {token}"})
        assert stolen.status_code == 401
