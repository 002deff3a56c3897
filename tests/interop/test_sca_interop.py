"""Strong customer authentication seen by clients nobody here wrote: Authlib and openid-client ask
for it with `acr_values` (OIDC Core §3.1.2.1) and read `acr` and `amr` (OIDC Core §2, RFC 8176) from
the ID tokens they validated. The customer's part (password, authenticator-app code, consent) is
played by our helpers on a server with SCA on."""

from __future__ import annotations

import os
import subprocess
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from authlib.deprecate import AuthlibDeprecationWarning
from interop.helpers import NODE_DIR, converse, user_part
from interop.test_authlib import authlib_client, verify_id_token
from support.flow import query_of
from support.sca import SCA_ON, Authenticator
from support.server import Server, dedicated_server

with warnings.catch_warnings():
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.common.security import generate_token

from fingrade.oauth.authn_level import ACR_SCA

pytestmark = [pytest.mark.interop, pytest.mark.sca]

NATIVE_REDIRECT = "http://127.0.0.1:50733/callback"


@pytest.fixture(scope="module")
def sca_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with dedicated_server(tmp_path_factory.mktemp("sca-interop"), "sqlite", SCA_ON) as srv:
        yield srv


@pytest.fixture(scope="module")
def app() -> Authenticator:
    return Authenticator()  # alice's app, shared by the module: no code is shown twice


def test_authlib_asks_for_sca_and_validates_acr(sca_server: Server, app: Authenticator) -> None:
    with sca_server.client() as http:
        meta = http.get("/.well-known/openid-configuration").json()
        jwks = http.get(meta["jwks_uri"]).json()
    assert ACR_SCA in meta["acr_values_supported"]
    with (
        authlib_client(sca_server, meta, "demo-native", NATIVE_REDIRECT, scope="openid") as client,
        sca_server.client(follow_redirects=False) as browser,
    ):
        verifier, nonce = generate_token(64), generate_token(24)
        url, state = client.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce, acr_values=ACR_SCA
        )
        assert query_of(url)["acr_values"] == ACR_SCA
        callback = user_part(browser, url, NATIVE_REDIRECT, app=app)
        token = dict(client.fetch_token(authorization_response=callback, state=state, code_verifier=verifier))
    claims = verify_id_token(meta, jwks, token, "demo-native", nonce)
    # Authlib's own essential-claim check of acr (OIDC Core §5.5.1.1) passes with our value.
    claims.options = {**claims.options, "acr": {"essential": True, "value": ACR_SCA}}
    claims.validate(leeway=5)
    assert claims["acr"] == ACR_SCA and claims["amr"] == ["pwd", "otp", "mfa"]


def test_openid_client_asks_for_sca_and_reads_acr_and_amr(node: str, sca_server: Server, app: Authenticator) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OIDC_")}
    env["NODE_EXTRA_CA_CERTS"] = sca_server.ca
    env["OIDC_ACR_VALUES"] = ACR_SCA
    redirect = "http://127.0.0.1:51877/callback"
    proc = subprocess.Popen(
        [
            node,
            str(NODE_DIR / "pkce-flow.mjs"),
            sca_server.issuer,
            "demo-native",
            redirect,
            "openid profile offline_access",
        ],
        cwd=NODE_DIR,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with sca_server.client(follow_redirects=False) as browser:
        run = converse(proc, browser, redirect, 60, app=app)
    assert run.result["step"] == "done", (run.result, run.stderr)
    assert query_of(run.authorize["url"])["acr_values"] == ACR_SCA
    claims: dict[str, Any] = run.result["claims"]
    assert claims["acr"] == ACR_SCA and claims["amr"] == ["pwd", "otp", "mfa"]
    # OIDC Core §12.2: the ID token of a refresh tells how the customer authenticated, too.
    assert run.result["refreshed_claims"]["acr"] == ACR_SCA
