"""The pure rules of bank/uk_consents.py: UK Open Banking Read/Write API v3.1 account-access-consents
(OBReadConsent1 request, OBReadConsentResponse1 response) mapped to and from an RFC 9396 §2
`account_information` authorization details object (docs/banking-api.md, "UK Open Banking style
consent resources")."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json

import httpx
import pytest

from fingrade.bank.trust import AsTrust, ConsentResources
from fingrade.bank.uk_consents import (
    SUPPORTED,
    UNSUPPORTED,
    ConsentRefused,
    NotAnAccountAccessConsent,
    actions,
    consent_json,
    parse_request,
    require_client_credentials,
)
from fingrade.protocol.errors import OAuthError

pytestmark = [pytest.mark.bank, pytest.mark.consent]

NOW = int(dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC).timestamp())
TX = ["ReadTransactionsDetail", "ReadTransactionsCredits", "ReadTransactionsDebits"]
ALL = ["ReadAccountsDetail", "ReadBalances", *TX]


def body(permissions: object = None, risk: object = None, **data: object) -> bytes:
    d = {"Permissions": ALL if permissions is None else permissions, **data}
    return json.dumps({"Data": d, "Risk": {} if risk is None else risk}).encode()


def refused(raw: bytes) -> ConsentRefused:
    with pytest.raises(ConsentRefused) as exc:
        parse_request(raw, NOW)
    assert exc.value.body()["error"] == "invalid_request"
    return exc.value


@pytest.mark.parametrize(
    ("permissions", "expected"),
    [
        (["ReadAccountsDetail"], ["accounts"]),
        (["ReadAccountsBasic", "ReadAccountsDetail"], ["accounts"]),
        (["ReadBalances"], ["balances"]),
        (TX, ["transactions"]),
        (["ReadTransactionsBasic", *TX], ["transactions"]),
        (list(reversed(ALL)), ["accounts", "balances", "transactions"]),
    ],
)
def test_uk_permissions_map_to_account_information_actions(permissions: list[str], expected: list[str]) -> None:
    """UK OB Read/Write API v3.1 Permissions → RFC 9396 `account_information` actions, canonical order."""
    assert actions(permissions) == expected


@pytest.mark.parametrize("permission", UNSUPPORTED + ("ReadSomethingElse", "readaccountsdetail", "", "R" * 50))
def test_permissions_the_bank_does_not_serve_are_refused_by_name(permission: str) -> None:
    """Fail closed: never grant less than asked without saying so; the description names the permission."""
    exc = refused(body(["ReadAccountsDetail", permission]))
    assert exc.status == 400
    assert permission[:40] in exc.description
    assert ("not supported" if permission in UNSUPPORTED else "unknown permission") in exc.description


def test_rfc6749_5_2_description_quoting_the_input_keeps_to_safe_characters() -> None:
    exc = refused(body(["ReadAccountsDetail", 'Read"\\é\n']))
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in exc.description), exc.description


@pytest.mark.parametrize(
    ("permissions", "named"),
    [
        (["ReadAccountsBasic"], "ReadAccountsDetail"),
        (["ReadTransactionsBasic", "ReadTransactionsCredits", "ReadTransactionsDebits"], "ReadTransactionsDetail"),
        (["ReadTransactionsCredits"], "ReadTransactionsDetail"),
        (["ReadTransactionsDebits", "ReadTransactionsCredits"], "ReadTransactionsDetail"),
        (["ReadTransactionsDetail"], "ReadTransactionsCredits"),
        (["ReadTransactionsDetail", "ReadTransactionsCredits"], "ReadTransactionsDebits"),
        (["ReadTransactionsDetail", "ReadTransactionsDebits"], "ReadTransactionsCredits"),
    ],
)
def test_basic_and_credit_debit_views_only_together_with_what_the_bank_serves(
    permissions: list[str], named: str
) -> None:
    """The bank serves detail views and cannot filter credits from debits: a Basic view needs its
    Detail permission, and transactions need Detail with both Credits and Debits (else the TPP would
    get more, or less, than it asked for)."""
    exc = refused(body(permissions))
    assert named in exc.description


@pytest.mark.parametrize(
    "permissions", [[], "ReadAccountsDetail", [1], ["ReadBalances", "ReadBalances"], ["ReadBalances"] * 31, None]
)
def test_empty_repeated_or_malformed_permissions_are_refused(permissions: object) -> None:
    raw = json.dumps({"Data": {"Permissions": permissions}, "Risk": {}}).encode()
    refused(raw)


def test_request_maps_to_one_account_information_object_without_accounts() -> None:
    """No `accounts` in the object: the customer picks them at the AS (RFC 9396 §7.1 lets the AS add
    them to what it grants). The TPP's own values are kept, as sent, for GET to echo."""
    raw = body(
        ALL,
        ExpirationDateTime="2027-02-01T10:00:00+01:00",
        TransactionFromDateTime="2026-01-01T00:30:00+01:00",
        TransactionToDateTime="2026-06-30T23:59:59Z",
    )
    req = parse_request(raw, NOW)
    assert req.detail == {
        "type": "account_information",
        "actions": ["accounts", "balances", "transactions"],
        "expires_at": "2027-02-01T09:00:00Z",
        # the UTC date of each instant: 00:30+01:00 on 1 January is still 31 December in UTC
        "transactions_from": "2025-12-31",
        "transactions_to": "2026-06-30",
    }
    assert req.data == {
        "Permissions": ALL,
        "ExpirationDateTime": "2027-02-01T10:00:00+01:00",
        "TransactionFromDateTime": "2026-01-01T00:30:00+01:00",
        "TransactionToDateTime": "2026-06-30T23:59:59Z",
    }
    assert len(json.dumps(req.data)) <= 4096  # the AS keeps at most 4096 bytes of data


def test_minimal_request_leaves_expiry_to_the_authorization_server() -> None:
    req = parse_request(body(["ReadAccountsDetail"]), NOW)
    assert req.detail == {"type": "account_information", "actions": ["accounts"]}
    assert req.data == {"Permissions": ["ReadAccountsDetail"]}


@pytest.mark.parametrize(
    "data",
    [
        {"ExpirationDateTime": "2026-12-06T11:59:59Z"},  # past
        {"ExpirationDateTime": "2027-06-05T12:00:01Z"},  # more than 180 days away
        {"ExpirationDateTime": "2027-01-01"},  # a date, not a date-time
        {"ExpirationDateTime": "2027-01-01T00:00:00"},  # no offset
        {"ExpirationDateTime": "2027-02-30T00:00:00Z"},
        {"ExpirationDateTime": 1798761600},
        {"TransactionFromDateTime": "2026-06-01T00:00:00Z", "TransactionToDateTime": "2026-01-01T00:00:00Z"},
        {"TransactionFromDateTime": "1999-12-31T00:00:00Z"},
        {"TransactionToDateTime": "yesterday"},
    ],
)
def test_bad_date_times_are_refused(data: dict) -> None:
    refused(body(ALL, **data))


def test_transaction_dates_need_transactions() -> None:
    exc = refused(body(["ReadAccountsDetail"], TransactionFromDateTime="2026-01-01T00:00:00Z"))
    assert "ReadTransactionsDetail" in exc.description


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"null",
        b"[]",
        b"{",
        b"\xff\xfe",
        b'{"Data": {"Permissions": ["ReadBalances"]}}',  # no Risk
        b'{"Data": {"Permissions": ["ReadBalances"]}, "Risk": []}',
        b'{"Data": [], "Risk": {}}',
        b'{"Data": {"Permissions": ["ReadBalances"], "AccountIds": ["x"]}, "Risk": {}}',  # unknown member: fail closed
        b'{"Data": {"Permissions": ["ReadBalances"]}, "Risk": {}, "Extra": 1}',
        b'{"Data": {"Permissions": ["ReadBalances"]}, "Data": {"Permissions": ["ReadAccountsDetail"]}, "Risk": {}}',
        b'{"Data": {"Permissions": ["ReadBalances"], "ExpirationDateTime": NaN}, "Risk": {}}',
        b"[" * 5000,
        b'{"Data": {}, "Risk": {}}',
    ],
)
def test_malformed_bodies_are_invalid_request_never_an_exception(raw: bytes) -> None:
    assert refused(raw).status == 400


def test_oversized_body_is_413() -> None:
    assert refused(body(ALL, risk={"x": "y" * 17000})).status == 413


def test_risk_content_is_accepted_and_not_kept() -> None:
    req = parse_request(body(["ReadBalances"], risk={"PaymentContextCode": "Other"}), NOW)
    assert "Risk" not in req.data


def test_every_supported_permission_is_accepted_in_some_combination() -> None:
    assert set(SUPPORTED) == {
        "ReadAccountsBasic",
        "ReadAccountsDetail",
        "ReadBalances",
        "ReadTransactionsBasic",
        "ReadTransactionsCredits",
        "ReadTransactionsDebits",
        "ReadTransactionsDetail",
    }
    assert actions(list(SUPPORTED)) == ["accounts", "balances", "transactions"]


# -- the token ---------------------------------------------------------------------------------------


def test_client_credentials_token_is_the_tpps() -> None:
    """A client credentials token (RFC 6749 §4.4) has no grant and its subject is the client itself."""
    assert require_client_credentials({"sub": "tpp1", "client_id": "tpp1", "scope": "accounts"}) == "tpp1"


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "user1", "client_id": "tpp1", "grant_id": "g1"},  # a customer's token
        {"sub": "tpp1", "client_id": "tpp1", "grant_id": "g1"},
        {"sub": "user1", "client_id": "tpp1"},
        {"sub": "tpp1"},
    ],
)
def test_customer_token_cannot_lodge_a_consent(claims: dict) -> None:
    with pytest.raises(OAuthError) as exc:
        require_client_credentials(claims)
    assert (exc.value.error, exc.value.status) == ("insufficient_scope", 403)
    assert "client credentials" in exc.value.description


# -- the response ------------------------------------------------------------------------------------

RESOURCE = {
    "consent_id": "cns_abc-1",
    "client_id": "tpp1",
    "status": "AwaitingAuthorisation",
    "created_at": NOW,
    "status_updated_at": NOW + 60,
    "authorization_details": [
        {"type": "account_information", "actions": ["accounts"], "expires_at": "2027-03-06T12:00:00Z"}
    ],
    "data": {"Permissions": ["ReadAccountsDetail"]},
}


def test_response_is_the_uk_shape_with_the_effective_expiry() -> None:
    """OBReadConsentResponse1; without an ExpirationDateTime of its own the consent still ends at the
    AS's default validity, which the response states rather than omits."""
    out = consent_json(RESOURCE, "https://bank.example/bank/v1/account-access-consents")
    assert out == {
        "Data": {
            "ConsentId": "cns_abc-1",
            "Status": "AwaitingAuthorisation",
            "StatusUpdateDateTime": "2026-12-06T12:01:00Z",
            "CreationDateTime": "2026-12-06T12:00:00Z",
            "Permissions": ["ReadAccountsDetail"],
            "ExpirationDateTime": "2027-03-06T12:00:00Z",
        },
        "Risk": {},
        "Links": {"Self": "https://bank.example/bank/v1/account-access-consents/cns_abc-1"},
        "Meta": {},
    }


def test_response_echoes_the_tpps_date_times_as_sent() -> None:
    data = {
        "Permissions": ALL,
        "ExpirationDateTime": "2027-02-01T10:00:00+01:00",
        "TransactionFromDateTime": "2026-01-01T00:30:00+01:00",
    }
    out = consent_json({**RESOURCE, "status": "Authorised", "data": data}, "https://b/x")["Data"]
    assert out["Status"] == "Authorised"
    assert out["ExpirationDateTime"] == "2027-02-01T10:00:00+01:00"
    assert out["TransactionFromDateTime"] == "2026-01-01T00:30:00+01:00"
    assert "TransactionToDateTime" not in out
    assert out["Permissions"] == ALL


@pytest.mark.parametrize(
    "broken",
    [
        None,
        [],
        {**RESOURCE, "status": "Expired"},
        {**RESOURCE, "consent_id": "a/b"},
        {**RESOURCE, "data": None},
        {**RESOURCE, "created_at": "yesterday"},
        {**RESOURCE, "status_updated_at": 1.5},
        {},
    ],
)
def test_malformed_resources_are_value_errors(broken: object) -> None:
    with pytest.raises(ValueError) as exc:
        consent_json(broken, "https://b/x")
    assert not isinstance(exc.value, NotAnAccountAccessConsent)


def test_a_consent_resource_this_api_did_not_lodge_is_told_apart() -> None:
    with pytest.raises(NotAnAccountAccessConsent):
        consent_json({**RESOURCE, "data": {"something": "else"}}, "https://b/x")


# -- the calls to the authorization server (trust.ConsentResources) ---------------------------------


def _store(handler) -> ConsentResources:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    trust = AsTrust(
        http,
        issuer="https://as.example",
        audience="https://as.example/bank/v1",
        client_id="bank rs",
        client_secret="s3cr:t",
        cache_seconds=0,
        jwks_refresh_seconds=1,
        clock=lambda: NOW,
    )
    return ConsentResources(trust)


def test_as_calls_use_the_resource_server_credentials_and_the_tpps_client_id() -> None:
    """HTTP Basic as at RFC 7662 introspection (RFC 6749 §2.3.1: form-urlencoded before Basic)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status = 201 if request.method == "POST" else 200
        return httpx.Response(status, json={**RESOURCE, "status": "Revoked" if request.method == "DELETE" else "x"})

    store = _store(handler)
    asyncio.run(store.create("tpp1", [{"type": "account_information", "actions": ["accounts"]}], {"Permissions": []}))
    asyncio.run(store.get("tpp 1", "cns_abc-1"))
    asyncio.run(store.revoke("tpp1", "cns_abc-1"))
    post, get, delete = seen
    assert post.url == "https://as.example/consent-resources"
    assert json.loads(post.content) == {
        "client_id": "tpp1",
        "data": {"Permissions": []},
        "authorization_details": [{"type": "account_information", "actions": ["accounts"]}],
    }
    assert post.headers["content-type"] == "application/json"
    assert post.headers["authorization"] == "Basic " + base64.b64encode(b"bank%20rs:s3cr%3At").decode()
    assert str(get.url) == "https://as.example/consent-resources/cns_abc-1?client_id=tpp+1"
    assert (delete.method, delete.url.path) == ("DELETE", "/consent-resources/cns_abc-1")
    assert all(r.headers["authorization"] == post.headers["authorization"] for r in seen)


def test_as_404_is_none_and_400_is_the_tpps_invalid_request() -> None:
    store = _store(lambda r: httpx.Response(404, json={"error": "not_found"}))
    assert asyncio.run(store.get("tpp1", "x")) is None
    assert asyncio.run(store.revoke("tpp1", "x")) is None
    store = _store(
        lambda r: httpx.Response(
            400, json={"error": "invalid_authorization_details", "error_description": "this client may not use it"}
        )
    )
    with pytest.raises(OAuthError) as exc:
        asyncio.run(store.create("tpp1", [], {}))
    assert (exc.value.error, exc.value.status, exc.value.description) == (
        "invalid_request",
        400,
        "this client may not use it",
    )


def _down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("refused")


@pytest.mark.parametrize(
    "handler",
    [
        _down,
        lambda r: httpx.Response(500, json={"error": "server_error"}),
        lambda r: httpx.Response(502, content=b"<html>bad gateway</html>"),
        lambda r: httpx.Response(401, json={"error": "invalid_client"}),  # the bank's own credentials are wrong
        lambda r: httpx.Response(403, json={"error": "access_denied"}),  # not registered as a resource server
        lambda r: httpx.Response(200, content=b"not json"),
        lambda r: httpx.Response(200, json=[1]),
    ],
)
def test_as_failures_fail_closed_as_temporarily_unavailable(handler) -> None:
    """Whatever goes wrong between the bank and the AS is a 503 for the TPP, never a 5xx crash or a
    guess (like JWKS and introspection in trust.py)."""
    for call in (lambda s: s.create("tpp1", [], {}), lambda s: s.get("tpp1", "x"), lambda s: s.revoke("tpp1", "x")):
        with pytest.raises(OAuthError) as exc:
            asyncio.run(call(_store(handler)))
        assert (exc.value.error, exc.value.status) == ("temporarily_unavailable", 503)
