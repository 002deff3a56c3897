"""The bank's UK Open Banking account-access-consents endpoints (Read/Write API v3.1) over HTTP, in
process, against a stand-in authorization server that keeps consent resources as its contract says
(POST/GET/DELETE /consent-resources, resource-server Basic authentication, 404 for another client's
consent). Covers what the live server cannot show on demand: the AS failing (503, fail closed), and
its refusals passed on to the TPP. The real flow is tests/integration/test_bank_consent_resources.py."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from test_bank_rules import AUD, ISSUER, StandInAS

from fingrade.bank.context import Bank
from fingrade.bank.routes import bank_api, bank_mount
from fingrade.bank.trust import AsTrust
from fingrade.config import load_settings

pytestmark = [pytest.mark.bank, pytest.mark.consent]

CONSENTS = "/bank/v1/account-access-consents"
BODY = {"Data": {"Permissions": ["ReadAccountsDetail", "ReadBalances"]}, "Risk": {}}


class ConsentAS(StandInAS):
    """The stand-in AS plus its consent resources."""

    def __init__(self) -> None:
        super().__init__()
        self.consents: dict[str, dict[str, Any]] = {}
        self.failure: httpx.Response | None = None
        self.calls: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        if not request.url.path.startswith("/consent-resources"):
            return super().handler(request)
        self.calls.append(request)
        if self.failure is not None:
            return self.failure
        assert request.headers["authorization"].startswith("Basic ")
        now = int(time.time())
        if request.method == "POST":
            body = json.loads(request.content)
            cid = "aac-" + secrets.token_urlsafe(8)
            details = [{**d, "expires_at": "2027-03-01T00:00:00Z"} for d in body["authorization_details"]]
            self.consents[cid] = {
                "consent_id": cid,
                "client_id": body["client_id"],
                "status": "AwaitingAuthorisation",
                "created_at": now,
                "status_updated_at": now,
                "authorization_details": details,
                "data": body["data"],
            }
            return httpx.Response(201, json=self.consents[cid])
        cid = request.url.path.rsplit("/", 1)[1]
        found = self.consents.get(cid)
        if found is None or found["client_id"] != request.url.params.get("client_id"):
            return httpx.Response(404, json={"error": "not_found"})
        if request.method == "DELETE" and found["status"] in ("AwaitingAuthorisation", "Authorised"):
            found.update(status="Revoked", status_updated_at=now)
        return httpx.Response(200, json=found)


@pytest.fixture
def stand_in() -> ConsentAS:
    return ConsentAS()


def _app(stand_in: ConsentAS, tmp_path: Any, accept_bearer: bool) -> Client:
    # The stand-in AS issues unbound tokens (no DPoP proofs here: there is no one-time store). These
    # tests are about the consent endpoints, so the deployment accepts Bearer tokens (a non-FAPI
    # setting); the default refusal is checked below and on the live server
    # (tests/integration/test_bank_sender_constrained.py).
    settings = load_settings(
        overrides={
            "issuer": ISSUER,
            "bank_url": AUD,
            "data_dir": str(tmp_path),
            "bank_accept_bearer_tokens": accept_bearer,
        },
        environ={},
    )
    trust = AsTrust(
        httpx.AsyncClient(transport=httpx.MockTransport(stand_in.handler)),
        issuer=ISSUER,
        audience=AUD,
        client_id="rs",
        client_secret="s3cret",
        cache_seconds=0,
        jwks_refresh_seconds=10,
        clock=lambda: int(time.time()),
    )
    api, mounted = bank_api()
    api.state.bank = Bank(settings=settings, onetime=None, server_key=b"k" * 32, ledger=None, trust=trust)  # type: ignore[arg-type]
    return Client(Starlette(routes=[bank_mount(mounted)]))


@pytest.fixture
def client(stand_in: ConsentAS, tmp_path) -> Iterator[Client]:
    yield _app(stand_in, tmp_path, accept_bearer=True)


def test_fapi2_sp_5_3_4_unbound_token_refused_by_default(stand_in: ConsentAS, tmp_path) -> None:
    """With the default bank_accept_bearer_tokens = false the same unbound token is 401
    invalid_token with a DPoP challenge (RFC 9449 §7.1), and the AS is never asked for the consent."""
    resp = _app(stand_in, tmp_path, accept_bearer=False).post(CONSENTS, json=BODY, headers=tpp_token(stand_in))
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token", resp.text
    assert (
        resp.headers["www-authenticate"].startswith("DPoP ")
        and 'error="invalid_token"' in resp.headers["www-authenticate"]
    )
    assert stand_in.calls == []


class Client:
    """Synchronous calls into the ASGI app (httpx's ASGI transport; no server, no lifespan needed)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, **kw: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url="https://bank.example.com"
            ) as http:
                return await http.request(method, url, **kw)

        return asyncio.run(call())

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("POST", url, **kw)

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("GET", url, **kw)

    def delete(self, url: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", url, **kw)


def tpp_token(stand_in: ConsentAS, client_id: str = "tpp_1", **over: Any) -> dict[str, str]:
    """A client credentials token (RFC 6749 §4.4): no grant, sub = client_id."""
    return {"Authorization": "Bearer " + stand_in.token(sub=client_id, client_id=client_id, **over)}


def test_lodge_read_and_revoke_through_the_as(client: Client, stand_in: ConsentAS) -> None:
    """UK OB Read/Write API v3.1 account-access-consents: 201 AwaitingAuthorisation (Location, Self,
    the effective expiry), 200 with the AS's status, 204 on DELETE and Revoked after."""
    resp = client.post(CONSENTS, json=BODY, headers=tpp_token(stand_in))
    assert resp.status_code == 201, resp.text
    lodged = json.loads(stand_in.calls[0].content)
    assert lodged == {
        "client_id": "tpp_1",
        "data": {"Permissions": ["ReadAccountsDetail", "ReadBalances"]},
        "authorization_details": [{"type": "account_information", "actions": ["accounts", "balances"]}],
    }
    data = resp.json()["Data"]
    cid = data["ConsentId"]
    assert resp.headers["location"] == f"{AUD}/account-access-consents/{cid}" == resp.json()["Links"]["Self"]
    assert data["Status"] == "AwaitingAuthorisation" and data["ExpirationDateTime"] == "2027-03-01T00:00:00Z"
    assert resp.headers["cache-control"] == "no-store" and "x-fapi-interaction-id" in resp.headers

    stand_in.consents[cid]["status"] = "Authorised"
    got = client.get(f"{CONSENTS}/{cid}", headers=tpp_token(stand_in))
    assert got.status_code == 200 and got.json()["Data"]["Status"] == "Authorised"

    gone = client.delete(f"{CONSENTS}/{cid}", headers=tpp_token(stand_in))
    assert gone.status_code == 204 and gone.content == b""
    assert client.get(f"{CONSENTS}/{cid}", headers=tpp_token(stand_in)).json()["Data"]["Status"] == "Revoked"


def test_another_clients_consent_is_404_like_an_unknown_one(client: Client, stand_in: ConsentAS) -> None:
    cid = client.post(CONSENTS, json=BODY, headers=tpp_token(stand_in)).json()["Data"]["ConsentId"]
    for method in ("GET", "DELETE"):
        other = client.request(method, f"{CONSENTS}/{cid}", headers=tpp_token(stand_in, "tpp_2"))
        unknown = client.request(method, f"{CONSENTS}/aac-unknown", headers=tpp_token(stand_in))
        assert other.status_code == unknown.status_code == 404
        assert other.json() == unknown.json()
    assert stand_in.consents[cid]["status"] == "AwaitingAuthorisation"


def test_customer_token_is_403_and_never_reaches_the_as(client: Client, stand_in: ConsentAS) -> None:
    """RFC 6750 §3.1 insufficient_scope with a challenge: the token was issued for a customer."""
    customer = {"Authorization": "Bearer " + stand_in.token(grant_id="g_1")}
    for resp in (client.post(CONSENTS, json=BODY, headers=customer), client.get(f"{CONSENTS}/aac-x", headers=customer)):
        assert resp.status_code == 403
        assert resp.json()["error"] == "insufficient_scope"
        assert 'error="insufficient_scope"' in resp.headers["www-authenticate"]
    assert stand_in.calls == []


def test_as_refusal_is_the_tpps_invalid_request(client: Client, stand_in: ConsentAS) -> None:
    stand_in.failure = httpx.Response(
        400,
        json={
            "error": "invalid_authorization_details",
            "error_description": "this client may not use account_information",
        },
    )
    resp = client.post(CONSENTS, json=BODY, headers=tpp_token(stand_in))
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "invalid_request",
        "error_description": "this client may not use account_information",
    }


@pytest.mark.parametrize(
    "failure",
    [
        httpx.Response(500),
        httpx.Response(403, json={"error": "access_denied"}),
        httpx.Response(401, json={"error": "invalid_client"}),
        httpx.Response(201, content=b"{}"),
        httpx.Response(200, content=b"<html>"),
    ],
)
def test_as_failure_is_503_fail_closed(client: Client, stand_in: ConsentAS, failure: httpx.Response) -> None:
    cid = client.post(CONSENTS, json=BODY, headers=tpp_token(stand_in)).json()["Data"]["ConsentId"]
    stand_in.failure = failure
    for resp in (
        client.post(CONSENTS, json=BODY, headers=tpp_token(stand_in)),
        client.get(f"{CONSENTS}/{cid}", headers=tpp_token(stand_in)),
        client.delete(f"{CONSENTS}/{cid}", headers=tpp_token(stand_in)),
    ):
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"] == "temporarily_unavailable" and resp.headers["retry-after"]
        assert "x-fapi-interaction-id" in resp.headers


def test_bad_body_never_reaches_the_as(client: Client, stand_in: ConsentAS) -> None:
    for content in (b"{", b'{"Data": {"Permissions": ["ReadPAN"]}, "Risk": {}}', b"x" * 20000):
        resp = client.post(
            CONSENTS, content=content, headers={**tpp_token(stand_in), "Content-Type": "application/json"}
        )
        assert resp.status_code in (400, 413), resp.text
        assert resp.json()["error"] == "invalid_request"
    assert stand_in.calls == []
