"""The bank's account information API (HTTP layer), mounted at /bank/v1.

Every call: interaction headers (interaction.py), then the access token through the protocol core's
resource rules (`protocol.resource.authorize_resource`: header-only token, Bearer / DPoP scheme, DPoP
proof with `htu` built from `bank_url`, binding, certificate binding) with this resource server's
own token verifier (trust.py: JWKS + introspection), then the consent (access.py), then the ledger.
Errors follow RFC 6750 §3.1 / RFC 9449 §7.1 (`protocol.resource.resource_error`).

Response shapes follow UK Open Banking's Read/Write API (Data / Links / Meta), trimmed to what the
ledger knows; docs/banking-api.md documents them.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fingrade.bank import access, query
from fingrade.bank.errors import LedgerError
from fingrade.bank.fapi_headers import AUTH_DATE, CUSTOMER_IP, INTERACTION_ID, auth_date, customer_ip, interaction_id
from fingrade.bank.ledger import Account, Entry, Ledger
from fingrade.bank.trust import AsTrust
from fingrade.config import Settings
from fingrade.finance.money import format_amount
from fingrade.protocol import dpop
from fingrade.protocol.body_limit import BodyLimit, BodyLimits
from fingrade.protocol.edge import client_certificate, client_ip
from fingrade.protocol.errors import OAuthError, method_not_allowed
from fingrade.protocol.failures import RETRY_AFTER, ErrorBoundary
from fingrade.protocol.http import NO_STORE, HttpRequest, HttpResponse
from fingrade.protocol.resource import authorize_resource, resource_error
from fingrade.store.interfaces import OneTimeStore

log = logging.getLogger("fingrade.bank")

PREFIX = "/bank/v1"
MAX_BODY = 16 * 1024  # the largest request body of any bank endpoint (payments.py, uk_consents.py)
SCOPE = "accounts"
_ACCOUNT_SUBTYPES = {"current": "CurrentAccount", "savings": "Savings"}


def _now() -> int:
    return int(time.time())


@dataclass
class Bank:
    """The resource server's context; also what DPoP proof checks need (oauth.context.ProofContext)."""

    settings: Settings
    onetime: OneTimeStore  # shared with the AS nodes: DPoP proofs are single-use everywhere
    server_key: bytes  # DPoP nonces of this resource server (RFC 9449 §9)
    ledger: Ledger
    trust: AsTrust
    clock: Callable[[], int] = field(default=_now)

    @property
    def issuer(self) -> str:
        # ProofContext: DPoP's RFC 8705 §5 alias check maps issuer-based URLs to the mTLS host; in
        # role all the bank is served below the issuer, so its URLs have the same alias.
        return self.settings.issuer

    def url(self, path: str) -> str:
        return self.settings.bank_url + path


# -- request handling ---------------------------------------------------------------------------


def _to_core(request: Request) -> HttpRequest:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    # RFC 8705 §3 / FAPI 2.0 SP 5.3.4-5: the certificate a certificate-bound token must come with, from
    # our mTLS listener or a trusted proxy's header (which the core never sees itself).
    settings = request.app.state.bank.settings
    proxies = tuple(settings.trusted_proxies)
    header = settings.mtls_cert_header.lower()
    headers.pop(header, None)
    return HttpRequest(
        method=request.method,
        path=request.url.path,
        headers=headers,
        query=request.scope.get("query_string", b""),
        body=b"",
        client_ip=client_ip(request, proxies),
        client_cert=client_certificate(request, proxies, header),
    )


def _sub_path(request: Request) -> str:
    """The request path below the API prefix, exactly as sent (for the DPoP htu)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("ascii", "replace")
    return path[len(PREFIX) :] if path.startswith(PREFIX) else path


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers={**NO_STORE, **(headers or {})}, media_type="application/json")


def _from_core(resp: HttpResponse) -> Response:
    return _json(resp.status, resp.json, resp.headers)


def _not_found() -> Response:
    return _json(404, {"error": "not_found", "error_description": "no such account"})


async def verified_claims(
    request: Request, allow: tuple[str, ...], scope: str, params: frozenset[str] = query.NONE
) -> dict[str, Any] | Response:
    """The checks every bank endpoint makes before its own: the method, the interaction headers (a
    malformed one is the client's error whatever the token), then the access token with `scope`
    through the core's resource rules, then the query string, which may hold only the endpoint's
    `params` (query.py; `request.state.query` has them). The token's claims, or the error response
    to send."""
    bank: Bank = request.app.state.bank
    try:
        if request.method not in allow:
            raise method_not_allowed(", ".join(allow))
        ip = customer_ip(request.headers.get(CUSTOMER_IP))
        date = auth_date(request.headers.get(AUTH_DATE))
    except OAuthError as exc:
        return _json(exc.status, exc.body(), exc.headers)
    try:
        claims = await authorize_resource(
            bank,
            _to_core(request),
            scope,
            bank.url(_sub_path(request)),
            verify=bank.trust.verify,
            accept_unbound=bank.settings.bank_accept_bearer_tokens,
        )
    except OAuthError as exc:
        return _auth_error(request, exc)
    try:
        request.state.query = query.parse(request.scope.get("query_string", b""), params)
    except OAuthError as exc:
        return _json(exc.status, exc.body(), exc.headers)
    request.state.client_id = claims.get("client_id")
    if ip or date:
        log.info(
            "bank api call interaction=%s client=%s customer_ip=%s auth_date=%s",
            request.state.interaction_id,
            claims.get("client_id"),
            ip or "-",
            date or "-",
        )
    return claims


def _auth_error(request: Request, exc: OAuthError) -> Response:
    """RFC 6750 §3.1 / RFC 9449 §7.1 errors with a challenge; an unreachable AS is a plain 503."""
    if exc.error == "temporarily_unavailable":
        return _json(503, exc.body(), {"Retry-After": RETRY_AFTER})
    if not isinstance(exc, dpop.DPoPError) and _dpop_scheme(request):
        exc = dpop.DPoPError(exc.error, exc.description, exc.status, headers=exc.headers)
    return _from_core(resource_error(exc))


def _dpop_scheme(request: Request) -> bool:
    return request.headers.get("authorization", "").split(" ", 1)[0].lower() == "dpop"


Endpoint = Callable[["Bank", Request, dict[str, Any], list[access.AccountAccess]], Awaitable[tuple[int, Any]]]


def _handler(fn: Endpoint, params: frozenset[str] = query.NONE) -> Any:
    async def route(request: Request) -> Response:
        bank: Bank = request.app.state.bank
        claims = await verified_claims(request, ("GET",), SCOPE, params)
        if isinstance(claims, Response):
            return claims
        try:
            accesses = access.grants(claims, bank.clock())
        except OAuthError as exc:
            return _auth_error(request, exc)
        try:
            status, body = await fn(bank, request, claims, accesses)
        except OAuthError as exc:
            if exc.error in ("insufficient_scope", "invalid_token"):
                return _auth_error(request, exc)
            return _json(exc.status, exc.body(), exc.headers)
        except LedgerError as exc:
            return _json(400, {"error": "invalid_request", "error_description": exc.message})
        if status == 404:
            return _not_found()
        return _json(status, body, dpop.nonce_headers(bank))

    return route


# -- shapes ------------------------------------------------------------------------------------


def _iso(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _amount(minor: int, currency: str) -> dict[str, str]:
    return {"Amount": format_amount(abs(minor), currency), "Currency": currency}


def _indicator(minor: int) -> str:
    return "Debit" if minor < 0 else "Credit"


def account_json(a: Account) -> dict[str, Any]:
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


def entry_json(e: Entry) -> dict[str, Any]:
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
    return 200, _page({"Account": [account_json(a) for a in accounts]}, bank.url("/accounts"))


async def get_account(
    bank: Bank, request: Request, claims: dict[str, Any], accesses: list[access.AccountAccess]
) -> tuple[int, Any]:
    account = await _visible_account(bank, claims, accesses, request.path_params["account_id"])
    if account is None:
        return 404, None
    if access.for_account(access.require_action(accesses, access.ACCOUNTS), account.iban) is None:
        raise access.insufficient_scope("the consent does not include accounts for this account")
    return 200, _page({"Account": [account_json(account)]}, bank.url(f"/accounts/{account.id}"))


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
    return 200, _page({"Transaction": [entry_json(e) for e in page.entries]}, self_url, next_url)


# -- the OpenAPI document ---------------------------------------------------------------------


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The hand-written OpenAPI 3.1 description of this API (openapi.json beside this module), loaded once.
    tests/integration/test_bank_openapi.py keeps it true: routes <-> paths, and schemathesis on the live server."""
    return orjson.loads(importlib.resources.files(__package__).joinpath("openapi.json").read_bytes())


def route_template(path: str) -> str:
    """/accounts/{AccountId} and /accounts/{account_id} -> /accounts/{}"""
    return re.sub(r"\{[^}]+\}", "{}", path)


def served_document(routes: frozenset[str]) -> dict[str, Any]:
    """What we tell clients: `paths`, plus the drafts in `x-pending-paths` (endpoints written ahead of
    their code) whose route this build serves (`routes`: route_template of each). Never a path that
    is not served."""
    doc = openapi_document()
    ready = {
        p: item
        for p, item in doc.get("x-pending-paths", {}).items()
        if p.startswith("/") and route_template(p) in routes
    }
    out = {k: v for k, v in doc.items() if k != "x-pending-paths"}
    out["paths"] = {**doc["paths"], **ready}
    return out


@functools.cache
def _openapi_bytes(bank_url: str, routes: frozenset[str]) -> bytes:
    return orjson.dumps({**served_document(routes), "servers": [{"url": bank_url}]})


async def openapi(request: Request) -> Response:
    """GET /openapi.json: public like discovery (no token, any origin, cacheable); `servers` is bank_url."""
    if request.method not in ("GET", "HEAD"):
        return _json(405, method_not_allowed("GET").body(), {"Allow": "GET, HEAD"})
    routes = frozenset(route_template(r.path) for r in request.app.routes if isinstance(r, Route))
    body = _openapi_bytes(request.app.state.bank.settings.bank_url, routes)
    return Response(
        body,
        media_type="application/json",
        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "public, max-age=300"},
    )


# -- the ASGI application ----------------------------------------------------------------------


class InteractionHeaders:
    """x-fapi-interaction-id on every response of the bank API, errors and 404s included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = [v.decode("latin-1") for k, v in scope.get("headers", []) if k == INTERACTION_ID.encode()]
        iid = interaction_id(sent[0] if len(sent) == 1 else None)
        scope.setdefault("state", {})["interaction_id"] = iid

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != INTERACTION_ID.encode()]
                headers.append((INTERACTION_ID.encode(), iid.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)


async def _not_found_route(request: Request, exc: Exception) -> Response:
    return _json(404, {"error": "not_found"})


def failure_response(request: Request, store: bool) -> Response:
    """The bank's answer to a failure the call did not cause (failures.ErrorBoundary): a store
    outage is 503 temporarily_unavailable with Retry-After, as when the AS cannot be reached;
    anything else 500 server_error. InteractionHeaders adds the x-fapi-interaction-id."""
    if store:
        return _json(
            503,
            {
                "error": "temporarily_unavailable",
                "error_description": "the bank cannot serve this request now; retry later",
            },
            {"Retry-After": RETRY_AFTER},
        )
    return _json(500, {"error": "server_error"})


def bank_mount(app: ASGIApp) -> Mount:
    """The API mounted at PREFIX. Starlette's mount pattern ends in `.*`, which stops at a newline: a
    path with %0A in it would fall through to the host application's 404, without the interaction
    id; with DOTALL every path below PREFIX is the bank's (found by the OpenAPI conformance test)."""
    mount = Mount(PREFIX, app=app)
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    return mount


def _too_large() -> Response:
    return _json(413, {"error": "invalid_request", "error_description": "the request body is too large"})


def bank_api(max_body: int = MAX_BODY) -> tuple[Starlette, ASGIApp]:
    """The API application (its `state.bank` is set by whoever runs it) and the ASGI app to mount.
    `max_body`: the deployment's cap on request bodies (http_max_body_bytes); the bank's own is lower."""
    from fingrade.bank.payments_api import create_payment, get_payment  # imports this module
    from fingrade.bank.uk_consents_api import consent, create_consent  # imports this module

    allm = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]
    routes = [
        Route("/openapi.json", openapi, methods=allm),
        Route("/payments", create_payment, methods=allm),
        Route("/payments/{payment_id}", get_payment, methods=allm),
        Route("/account-access-consents", create_consent, methods=allm),
        Route("/account-access-consents/{consent_id}", consent, methods=allm),
        Route("/accounts", _handler(list_accounts), methods=allm),
        Route("/accounts/{account_id}", _handler(get_account), methods=allm),
        Route("/accounts/{account_id}/balances", _handler(get_balances), methods=allm),
        Route("/accounts/{account_id}/transactions", _handler(get_transactions, query.TRANSACTIONS), methods=allm),
    ]
    # The error boundary outermost (complete answers in the bank's format); inside it the body limit,
    # so a 413 looks like every bank error and InteractionHeaders (around the app) adds its headers.
    app = Starlette(
        routes=routes,
        exception_handlers={404: _not_found_route, 405: _not_found_route},
        middleware=[
            Middleware(ErrorBoundary, render=failure_response, logger=log),
            Middleware(BodyLimit, limits=BodyLimits(min(MAX_BODY, max_body)), too_large=_too_large),
        ],
    )
    return app, InteractionHeaders(app)
