"""A fintech calling the bank's account information API (/bank/v1) with DPoP-bound tokens obtained
through the real flow: PAR + RFC 9396 authorization_details + login + consent + token."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import httpx

from support.fapi import FapiClient
from support.sca import Authenticator
from support.server import Server

PREFIX = "/bank/v1"


def account_information(actions: tuple[str, ...] = ("accounts", "balances", "transactions"), **over: Any) -> dict:
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": "account_information", "actions": list(actions), "expires_at": expires, **over}


def payment_initiation(
    amount: str = "12.34",
    currency: str = "EUR",
    *,
    creditor_iban: str = "DE89370400440532013000",
    creditor_name: str = "Acme GmbH",
    remittance: str | None = "Invoice 42",
    actions: tuple[str, ...] = ("initiate", "status"),
    **over: Any,
) -> dict:
    """A payment_initiation authorization detail (RFC 9396 §2 shape, fields as the AS accepts them)."""
    d: dict[str, Any] = {
        "type": "payment_initiation",
        "actions": list(actions),
        "instructedAmount": {"currency": currency, "amount": amount},
        "creditorName": creditor_name,
        "creditorAccount": {"iban": creditor_iban},
    }
    if remittance is not None:
        d["remittanceInformationUnstructured"] = remittance
    d.update(over)
    return d


def payment_body(detail: dict) -> dict:
    """The POST /payments body for an approved detail: the detail without type/actions/locations."""
    return {k: v for k, v in detail.items() if k not in ("type", "actions", "locations")}


class Fintech:
    """A FAPI 2.0 client (private_key_jwt, DPoP, PAR) registered for account_information."""

    def __init__(self, server: Server, tmp: Path, *extra: str) -> None:
        self.server = server
        self.client = FapiClient.register(server, tmp, "--authorization-details-type", "account_information", *extra)

    def token(
        self, *details: dict, username: str = "alice", scope: str = "openid accounts", app: Authenticator | None = None
    ) -> str:
        extra: dict[str, str] = {"scope": scope}
        if details:
            extra["authorization_details"] = json.dumps(list(details))
        with self.server.client() as http, self.server.client(follow_redirects=False) as browser:
            params, verifier = self.client.request_params(**extra)
            pushed = self.client.push(http, params)
            assert pushed.status_code == 201, pushed.text
            got = self.client.authorize(browser, pushed.json()["request_uri"], verifier, username=username, app=app)
            assert got.code, got.params
            resp = self.client.redeem(http, got)
        assert resp.status_code == 200, resp.text
        assert resp.json()["token_type"] == "DPoP"
        return resp.json()["access_token"]

    def client_credentials(self, scope: str = "accounts") -> str:
        """The fintech's own DPoP-bound client credentials token (RFC 6749 §4.4; FAPI 2.0 SP 5.3.2.1-4:
        sender-constrained), as a UK TPP uses for account-access-consents."""
        with self.server.client() as http:
            resp = http.post(
                "/token",
                data={"grant_type": "client_credentials", "scope": scope, **self.client.auth_params()},
                headers=self.client.dpop_header("/token"),
            )
        assert resp.status_code == 200, resp.text
        assert resp.json()["token_type"] == "DPoP"
        return resp.json()["access_token"]

    def proof(self, path: str, token: str, method: str = "GET", base: str | None = None, **kw: Any) -> str:
        return self.client.dpop.proof(method, (base or self.server.base_url) + PREFIX + path, token=token, **kw)

    def get(
        self,
        http: httpx.Client,
        path: str,
        token: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        base: str | None = None,
    ) -> httpx.Response:
        """GET with a fresh DPoP proof (htu without the query, RFC 9449 §4.2)."""
        hdrs = {"Authorization": f"DPoP {token}", "DPoP": self.proof(path.split("?")[0], token, base=base)}
        hdrs.update(headers or {})
        return http.get((base or "") + PREFIX + path, params=params, headers=hdrs)

    def post(
        self,
        http: httpx.Client,
        path: str,
        token: str,
        body: Any,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        base: str | None = None,
    ) -> httpx.Response:
        """POST JSON with a fresh DPoP proof and, if given, an Idempotency-Key."""
        hdrs = {
            "Authorization": f"DPoP {token}",
            "DPoP": self.proof(path, token, method="POST", base=base),
            "Content-Type": "application/json",
        }
        if key is not None:
            hdrs["Idempotency-Key"] = key
        hdrs.update(headers or {})
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return http.post((base or "") + PREFIX + path, content=content, headers=hdrs)

    def delete(self, http: httpx.Client, path: str, token: str, *, base: str | None = None) -> httpx.Response:
        """DELETE with a fresh DPoP proof."""
        return http.delete(
            (base or "") + PREFIX + path,
            headers={"Authorization": f"DPoP {token}", "DPoP": self.proof(path, token, method="DELETE", base=base)},
        )
