"""The resource rule of the bank: only sender-constrained access tokens (FAPI 2.0 SP 5.3.4), checked
on the protocol core's resource rules (`protocol.resource.authorize_resource`) with a stand-in token
verifier, and the setting that relaxes it for a deployment that is not FAPI."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest

from fingrade.config import load_settings
from fingrade.protocol.cert_binding import thumbprint
from fingrade.protocol.dpop import DPoPError
from fingrade.protocol.errors import OAuthError
from fingrade.protocol.http import HttpRequest
from fingrade.protocol.resource import authorize_resource, resource_error

pytestmark = [pytest.mark.bank, pytest.mark.dpop, pytest.mark.mtls]

URL = "https://bank.example.com/bank/v1/accounts"
CERT = b"0\x82 a DER certificate stands in here"


class Context:
    """What authorize_resource needs besides the token verifier (no DPoP proof is checked here)."""

    def __init__(self) -> None:
        self.settings = load_settings(overrides={}, environ={})
        self.onetime = None
        self.server_key = hashlib.sha256(b"k").digest()
        self.clock = lambda: int(time.time())
        self.issuer = self.settings.issuer


def _claims(**cnf: str) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": "u", "client_id": "c", "scope": "accounts", "jti": "j"}
    if cnf:
        claims["cnf"] = cnf
    return claims


def _call(run, claims: dict[str, Any], *, accept_unbound: bool, cert: bytes | None = None) -> dict[str, Any]:
    async def verify(token: str) -> dict[str, Any]:
        return claims

    request = HttpRequest(
        method="GET", path="/bank/v1/accounts", headers={"authorization": "Bearer t0ken"}, client_cert=cert
    )
    return run(authorize_resource(Context(), request, "accounts", URL, verify=verify, accept_unbound=accept_unbound))


def test_fapi2_sp_5_3_4_unbound_bearer_token_refused_with_dpop_challenge(run) -> None:
    """FAPI 2.0 SP 5.3.4: a resource server only accepts sender-constrained tokens; the refusal is
    401 invalid_token with the DPoP challenge that says how to come back (RFC 9449 §7.1)."""
    with pytest.raises(DPoPError) as info:
        _call(run, _claims(), accept_unbound=False)
    assert info.value.error == "invalid_token"
    resp = resource_error(info.value)
    assert resp.status == 401 and resp.json["error"] == "invalid_token"
    assert resp.headers["WWW-Authenticate"].startswith('DPoP algs="')
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_rfc8705_3_certificate_bound_token_accepted_with_its_certificate(run) -> None:
    """RFC 8705 §3: a certificate-bound token (token_type Bearer) stays accepted over mutual TLS with
    the certificate it is bound to, and only with it."""
    claims = _claims(**{"x5t#S256": thumbprint(CERT)})
    assert _call(run, claims, accept_unbound=False, cert=CERT) is claims
    with pytest.raises(OAuthError) as info:
        _call(run, claims, accept_unbound=False, cert=None)
    assert info.value.error == "invalid_token"


def test_unbound_tokens_only_where_explicitly_accepted(run) -> None:
    """A deployment that is not FAPI may accept Bearer tokens (bank_accept_bearer_tokens = true);
    the default is to refuse them (the setting defaults to false)."""
    assert load_settings(overrides={}, environ={}).bank_accept_bearer_tokens is False
    assert load_settings(overrides={}, environ={"FINGRADE_BANK_ACCEPT_BEARER_TOKENS": "true"}).bank_accept_bearer_tokens
    claims = _claims()
    assert _call(run, claims, accept_unbound=True) is claims
