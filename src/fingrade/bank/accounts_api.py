"""The bank's account information API (HTTP layer) below /bank/v1: the customer's accounts, their
balances and booked transactions, within the consent the token carries (access.py). Every call goes
through the common request checks (request_checks.py) with the scope `accounts`, then the consent,
then the ledger. Errors follow RFC 6750 §3.1 / RFC 9449 §7.1 (responses.py).

Response shapes follow UK Open Banking's Read/Write API (Data / Links / Meta), trimmed to what the
ledger knows; docs/banking-api.md documents them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from fingrade.bank import access, query
from fingrade.bank.context import Bank
from fingrade.bank.errors import LedgerError
from fingrade.bank.ledger import Account, Entry
from fingrade.bank.request_checks import verified_claims
from fingrade.bank.responses import auth_error, json_response
from fingrade.finance.money import format_amount
from fingrade.protocol import dpop
from fingrade.protocol.errors import OAuthError

SCOPE = "accounts"
_ACCOUNT_SUBTYPES = {"current": "CurrentAccount", "savings": "Savings"}


def _not_found() -> Response:
    return json_response(404, {"error": "not_found", "error_description": "no such account"})


Endpoint = Callable[[Bank, Request, dict[str, Any], list[access.AccountAccess]], Awaitable[tuple[int, Any]]]


def account_endpoint(fn: Endpoint, params: frozenset[str] = query.NONE) -> Any:
    """A GET route of this API: the request checks with the scope `accounts` and the query `params`,
    the consent's account accesses, then `fn`; its 404 is "no such account"."""

    async def route(request: Request) -> Response:
        bank: Bank = request.app.state.bank
        claims = await verified_claims(request, ("GET",), SCOPE, params)
        if isinstance(claims, Response):
            return claims
        try:
            accesses = access.grants(claims, bank.clock())
        except OAuthError as exc:
            return auth_error(request, exc)
        try:
            status, body = await fn(bank, request, claims, accesses)
        except OAuthError as exc:
            if exc.error in ("insufficient_scope", "invalid_token"):
                return auth_error(request, exc)
            return json_response(exc.status, exc.body(), exc.headers)
        except LedgerError as exc:
            return json_response(400, {"error": "invalid_request", "error_description": exc.message})
        if status == 404:
            return _not_found()
        return json_response(status, body, dpop.nonce_headers(bank))

    return route


# -- shapes ------------------------------------------------------------------------------------


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _amount(minor: int, currency: str) -> dict[str, str]:
    return {"Amount": format_amount(abs(minor), currency), "Currency": currency}


def _indicator(minor: int) -> str:
    return "Debit" if minor < 0 else "Credit"


def accountjson_response(a: Account) -> dict[str, Any]:
    return {
        "AccountId": a.id,
        "Status": "Enabled" if a.status == "open" else "Disabled",
        "Currency": a.currency,
        "AccountType": "Personal",
        "AccountSubType": _ACCOUNT_SUBTYPES.get(a.kind, a.kind),
        "Nickname": a.name,
        "OpeningDate": _iso(a.created_at)[:10],
        "Account": [{"SchemeName": "UK.OBIE.IBAN", "Identification": a.iban, "Name": a.holder_name}],
    }


def entryjson_response(e: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {
        "AccountId": e.account_id,
        "TransactionId": e.id,
        "Status": "Booked",
        "CreditDebitIndicator": e.credit_debit,
        "Amount": _amount(e.amount, e.currency),
        "BookingDateTime": _iso(e.booked_at),
        "ValueDateTime": e.value_date.isoformat() + "T00:00:00Z",
        "TransactionInformation": e.description,
        "Balance": {
            "Amount": _amount(e.balance_after, e.currency),
            "CreditDebitIndicator": _indicator(e.balance_after),
            "Type": "InterimBooked",
        },
    }
    if e.counterparty_iban or e.counterparty_name:
        party = {"SchemeName": "UK.OBIE.IBAN", "Identification": e.counterparty_iban, "Name": e.counterparty_name}
        out["CreditorAccount" if e.amount < 0 else "DebtorAccount"] = party
    return out


def _page(data: dict[str, Any], self_url: str, next_url: str | None = None) -> dict[str, Any]:
    links = {"Self": self_url}
    if next_url:
        links["Next"] = next_url
    return {"Data": data, "Links": links, "Meta": {}}


# -- endpoints ---------------------------------------------------------------------------------


async def _visible_account(
    bank: Bank, claims: dict[str, Any], accesses: list[access.AccountAccess], account_id: str
) -> Account | None:
    account = await bank.ledger.get_account(claims["sub"], account_id)  # another customer's: None
    if account is None or not access.visible(accesses, account.iban):
        return None  # outside the consent: indistinguishable from an id that does not exist
    return account


async def list_accounts(
    bank: Bank, request: Request, claims: dict[str, Any], accesses: list[access.AccountAccess]
) -> tuple[int, Any]:
    granted = access.require_action(accesses, access.ACCOUNTS)
    accounts = [a for a in await bank.ledger.list_accounts(claims["sub"]) if access.for_account(granted, a.iban)]
    return 200, _page({"Account": [accountjson_response(a) for a in accounts]}, bank.url("/accounts"))


async def get_account(
    bank: Bank, request: Request, claims: dict[str, Any], accesses: list[access.AccountAccess]
) -> tuple[int, Any]:
    account = await _visible_account(bank, claims, accesses, request.path_params["account_id"])
    if account is None:
        return 404, None
    if access.for_account(access.require_action(accesses, access.ACCOUNTS), account.iban) is None:
        raise access.insufficient_scope("the consent does not include accounts for this account")
    return 200, _page({"Account": [accountjson_response(account)]}, bank.url(f"/accounts/{account.id}"))


async def get_balances(
    bank: Bank, request: Request, claims: dict[str, Any], accesses: list[access.AccountAccess]
) -> tuple[int, Any]:
    account = await _visible_account(bank, claims, accesses, request.path_params["account_id"])
    if account is None:
        return 404, None
    if access.for_account(access.require_action(accesses, access.BALANCES), account.iban) is None:
        raise access.insufficient_scope("the consent does not include balances for this account")
    b = await bank.ledger.get_balances(claims["sub"], account.id)
    if b is None:
        return 404, None
    at = _iso(b.at)
    booked = {
        "AccountId": b.account_id,
        "Type": "InterimBooked",
        "DateTime": at,
        "Amount": _amount(b.booked, b.currency),
        "CreditDebitIndicator": _indicator(b.booked),
    }
    available: dict[str, Any] = {
        "AccountId": b.account_id,
        "Type": "InterimAvailable",
        "DateTime": at,
        "Amount": _amount(b.available, b.currency),
        "CreditDebitIndicator": _indicator(b.available),
    }
    if b.overdraft_limit:
        available["CreditLine"] = [
            {"Included": True, "Type": "Credit", "Amount": _amount(b.overdraft_limit, b.currency)}
        ]
    return 200, _page({"Balance": [booked, available]}, bank.url(f"/accounts/{account.id}/balances"))


async def get_transactions(
    bank: Bank, request: Request, claims: dict[str, Any], accesses: list[access.AccountAccess]
) -> tuple[int, Any]:
    q = query.transactions(request.state.query)
    account = await _visible_account(bank, claims, accesses, request.path_params["account_id"])
    if account is None:
        return 404, None
    grant = access.for_account(access.require_action(accesses, access.TRANSACTIONS), account.iban)
    if grant is None:
        raise access.insufficient_scope("the consent does not include transactions for this account")
    lo, hi = access.booking_window(grant, q.booked_from, q.booked_to)
    path = f"/accounts/{account.id}/transactions"
    if lo is not None and hi is not None and lo > hi:  # the request lies outside the granted dates
        return 200, _page({"Transaction": []}, bank.url(path))
    page = await bank.ledger.list_transactions(
        claims["sub"], account.id, booked_from=lo, booked_to=hi, cursor=q.cursor, limit=q.limit
    )
    if page is None:
        return 404, None
    keep = {k: v for k, v in q.params.items() if k in (query.FROM, query.TO, query.LIMIT)}
    self_url = bank.url(path) + ("?" + urlencode(q.params) if q.params else "")
    next_url = bank.url(path) + "?" + urlencode({**keep, "cursor": page.next_cursor}) if page.next_cursor else None
    return 200, _page({"Transaction": [entryjson_response(e) for e in page.entries]}, self_url, next_url)
