"""FAPI 2.0 SP 5.3.4 at the bank API, on the real server, both backends: a resource server only
accepts sender-constrained access tokens. An unbound Bearer token, even a valid one with the right
scope and authorization details, is refused for account reads, payments and consent resources
with 401 `invalid_token` and the DPoP challenge (RFC 9449 §7.1); the same client's DPoP-bound token
works. (Certificate-bound tokens at the bank: tests/mtls/test_bank_mtls.py.)"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from support.bank import PREFIX, account_information, payment_body, payment_initiation
from support.database import db_rows
from support.demo import BACKEND_REDIRECT, BASIC
from support.dpop import DPoPKey
from support.flow import run_flow
from support.refusals import www_authenticate
from support.server import Server
from support.tokens import exchange

pytestmark = [pytest.mark.bank, pytest.mark.dpop]


def _backend_token(server: Server, browser: httpx.Client, scope: str, detail: dict, key: DPoPKey | None = None) -> dict:
    """demo-backend (confidential, client_secret_basic, not FAPI) through the code flow with an
    RFC 9396 detail; with `key` the token request carries a DPoP proof."""
    got = run_flow(browser, "demo-backend", BACKEND_REDIRECT, scope=scope, authorization_details=json.dumps([detail]))
    headers = {"DPoP": key.proof("POST", server.issuer + "/token")} if key else None
    resp = exchange(browser, got, auth=BASIC, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == ("DPoP" if key else "Bearer")
    return resp.json()


def _assert_refused_unbound(resp: httpx.Response) -> None:
    """401 invalid_token with the DPoP challenge: the client learns to come back with a DPoP token."""
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_token"
    challenge = www_authenticate(resp)
    assert challenge["scheme"] == "dpop" and challenge["error"] == "invalid_token", challenge
    assert challenge["algs"].split() == ["ES256", "PS256", "EdDSA"]
    assert resp.headers["x-fapi-interaction-id"]


def test_fapi2_sp_5_3_4_unbound_bearer_token_refused_for_account_reads(
    server: Server, browser: httpx.Client, http: httpx.Client
) -> None:
    token = _backend_token(server, browser, "openid accounts", account_information())["access_token"]
    for path in ("/accounts",):
        _assert_refused_unbound(http.get(PREFIX + path, headers={"Authorization": f"Bearer {token}"}))
    # The control: the same client, the same customer, a DPoP-bound token is served.
    key = DPoPKey()
    bound = _backend_token(server, browser, "openid accounts", account_information(), key)["access_token"]
    url = server.issuer + PREFIX + "/accounts"
    resp = http.get(
        PREFIX + "/accounts", headers={"Authorization": f"DPoP {bound}", "DPoP": key.proof("GET", url, token=bound)}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["Data"]["Account"]


def test_fapi2_sp_5_3_4_unbound_bearer_token_refused_for_payments(
    server: Server, browser: httpx.Client, http: httpx.Client
) -> None:
    """A stolen unbound payment token moves nothing: 401 before the body is looked at, no payment."""
    detail = payment_initiation("3.21", creditor_name="Unbound Ltd")
    token = _backend_token(server, browser, "openid payments", detail)["access_token"]
    before = db_rows(server, "SELECT COUNT(*) FROM bank_payments")[0][0]
    resp = http.post(
        PREFIX + "/payments",
        content=json.dumps(payment_body(detail)).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid.uuid4()),
        },
    )
    _assert_refused_unbound(resp)
    assert db_rows(server, "SELECT COUNT(*) FROM bank_payments")[0][0] == before


def test_fapi2_sp_5_3_4_unbound_client_credentials_token_refused_for_consents(
    server: Server, http: httpx.Client
) -> None:
    resp = http.post("/token", auth=BASIC, data={"grant_type": "client_credentials", "scope": "accounts"})
    assert resp.status_code == 200 and resp.json()["token_type"] == "Bearer", resp.text
    token = resp.json()["access_token"]
    lodged = http.post(
        PREFIX + "/account-access-consents",
        headers={"Authorization": f"Bearer {token}"},
        json={"Data": {"Permissions": ["ReadAccountsBasic"]}, "Risk": {}},
    )
    _assert_refused_unbound(lodged)
