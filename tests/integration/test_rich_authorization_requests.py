"""Rich Authorization Requests (RFC 9396) end to end, on both backends: the `authorization_details`
parameter at PAR and at the authorization endpoint (§2, §3), its errors (§5), the consent page,
storage with the grant, the token request and response (§6, §7), access tokens and introspection
(§9), metadata (§10)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from support.backends import BACKENDS
from support.database import db_rows
from support.demo import BACKEND_REDIRECT
from support.fapi import FapiClient
from support.flow import Authorized, consent, follow_to_client, login, pkce_pair, query_of
from support.operator import new_confidential_client
from support.refusals import assert_oauth_error
from support.server import DEMO_PASSWORD, Server, dedicated_server
from support.tokens import exchange, introspect

pytestmark = pytest.mark.rar

IBAN = "GB33BUKB20201555555555"
PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "25.00"},
    "creditorName": "Acme Ltd",
    "creditorAccount": {"iban": IBAN},
    "remittanceInformationUnstructured": "Invoice 123",
}


def accounts_detail(**over: Any) -> dict[str, Any]:
    """Account access for 60 days (at most 180 are allowed)."""
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=60)).strftime("%Y-%m-%dT00:00:00Z")
    return {
        "type": "account_information",
        "actions": ["accounts", "balances", "transactions"],
        "expires_at": expires,
        **over,
    }


def j(value: Any) -> str:
    return json.dumps(value)


@pytest.fixture(scope="module")
def rar_client(server: Server) -> tuple[str, str]:
    """A confidential client registered for both types (RFC 9396 §10.2)."""
    return new_confidential_client(
        server,
        "--authorization-details-type",
        "account_information",
        "--authorization-details-type",
        "payment_initiation",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        "refresh_token",
        "--grant-type",
        "client_credentials",
    )


@pytest.fixture(scope="module")
def ais_only_client(server: Server) -> tuple[str, str]:
    return new_confidential_client(server, "--authorization-details-type", "account_information")


@pytest.fixture(scope="module")
def plain_client(server: Server) -> tuple[str, str]:
    return new_confidential_client(server)


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def request_params(client_id: str, details: Any, **extra: str) -> tuple[str, dict[str, str]]:
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": BACKEND_REDIRECT,
        "scope": "openid",
        "state": "st-" + verifier[:6],
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    if details is not None:
        params["authorization_details"] = details if isinstance(details, str) else j(details)
    return verifier, params


def to_consent(browser: httpx.Client, resp: httpx.Response) -> httpx.Response:
    """Follow to the consent page (signing alice in if needed)."""
    resp = follow_to_client(browser, resp, BACKEND_REDIRECT)
    if resp.status_code == 200 and 'name="password"' in resp.text:
        resp = follow_to_client(browser, login(browser, resp, "alice", DEMO_PASSWORD), BACKEND_REDIRECT)
    return resp


def authorized(resp: httpx.Response, verifier: str) -> Authorized:
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    location = resp.headers["location"]
    assert location.startswith(BACKEND_REDIRECT), location
    return Authorized(
        code=query_of(location).get("code"),
        params=query_of(location),
        verifier=verifier,
        redirect_uri=BACKEND_REDIRECT,
        location=location,
    )


def pushed_flow(browser: httpx.Client, client: tuple[str, str], details: Any) -> tuple[httpx.Response, Authorized]:
    """PAR with authorization_details → consent page (returned) → approve → code."""
    verifier, params = request_params(client[0], details)
    pushed = browser.post("/par", data=params, auth=client)
    assert pushed.status_code == 201, pushed.text
    page = to_consent(
        browser,
        browser.get("/authorize?" + urlencode({"client_id": client[0], "request_uri": pushed.json()["request_uri"]})),
    )
    assert page.status_code == 200 and 'name="decision"' in page.text, page.text[:300]
    return page, authorized(consent(browser, page), verifier)


def tokens(browser: httpx.Client, client: tuple[str, str], details: Any) -> dict[str, Any]:
    _page, got = pushed_flow(browser, client, details)
    resp = exchange(browser, got, auth=client)
    assert resp.status_code == 200, resp.text
    return resp.json()


# -- refresh tokens: staying connected (OIDC Core §11) -------------------------------------------


def test_oidc_core_11_account_access_stays_connected_a_payment_does_not(
    browser: httpx.Client, rar_client: tuple[str, str]
) -> None:
    """A refresh token is access while the customer is away. An approved account_information detail
    is a standing consent until its expires_at (open banking: the app reads the accounts while the
    customer is away), so its consent page says "Stay connected" and the grant gets a refresh token
    without offline_access; a one-off payment gets neither (OIDC Core §11: it would need offline_access)."""
    page, got = pushed_flow(browser, rar_client, [accounts_detail()])
    assert "Stay connected" in page.text
    body = exchange(browser, got, auth=rar_client).json()
    assert body["refresh_token"], body
    page, got = pushed_flow(browser, rar_client, [PAYMENT])
    assert "Stay connected" not in page.text
    body = exchange(browser, got, auth=rar_client).json()
    assert body["access_token"] and "refresh_token" not in body


# -- §10 metadata and registration -------------------------------------------------------------------


def test_rfc9396_s10_1_metadata_advertises_supported_types(http: httpx.Client) -> None:
    """RFC 9396 §10.1: authorization_details_types_supported lists the types the AS understands."""
    doc = http.get("/.well-known/oauth-authorization-server").json()
    assert doc["authorization_details_types_supported"] == ["account_information", "payment_initiation"]


def test_rfc9396_s10_2_client_metadata_types_are_validated(server: Server, rar_client: tuple[str, str]) -> None:
    """RFC 9396 §10.2: authorization_details_types is client metadata; unknown types are refused."""
    shown = json.loads(server.cli("clients", "show", rar_client[0]).stdout)
    assert shown["authorization_details_types"] == ["account_information", "payment_initiation"]
    bad = server.cli(
        "clients",
        "add",
        "--name",
        "x",
        "--profile",
        "confidential",
        "--redirect-uri",
        BACKEND_REDIRECT,
        "--authorization-details-type",
        "tax_filing",
        check=False,
    )
    assert bad.returncode != 0


# -- §2, §3 acceptance; §7, §9 token response, access token, introspection; storage -----------------------


def test_rfc9396_s2_par_accepts_details_and_s7_token_response_returns_them(
    server: Server, browser: httpx.Client, rar_client: tuple[str, str]
) -> None:
    """RFC 9396 §2 (PAR, RFC 9126 §2.1), §7 (token response), §9.1 (JWT claim), §9.2 (introspection)."""
    details = [PAYMENT, accounts_detail()]
    body = tokens(browser, rar_client, details)
    # The customer's choices on the consent page are written in: the payer, the accounts to share.
    debtor, shared = body["authorization_details"][0]["debtorAccount"], body["authorization_details"][1]["accounts"]
    alices = {
        r[0]
        for r in db_rows(
            server,
            "SELECT a.iban FROM bank_accounts a JOIN users u ON u.id = a.owner_user_id WHERE u.username = ?",
            "alice",
        )
    }
    assert debtor["iban"] in alices and {a["iban"] for a in shared} == alices
    expected = [
        {**PAYMENT, "actions": ["initiate", "status"], "debtorAccount": debtor},
        {**accounts_detail(), "accounts": shared},
    ]
    assert body["authorization_details"] == expected
    assert claims(body["access_token"])["authorization_details"] == expected
    info = introspect(browser, body["access_token"], auth=rar_client).json()
    assert info["active"] is True and info["authorization_details"] == expected
    rt_info = introspect(browser, body["refresh_token"], auth=rar_client).json()
    assert rt_info["authorization_details"] == expected
    # Stored with the grant (migration 0003).
    grant_id = claims(body["access_token"])["grant_id"]
    [(stored,)] = db_rows(server, "SELECT authorization_details FROM grants WHERE id = ?", grant_id)
    assert json.loads(stored) == expected


def test_rfc9396_s3_authorization_endpoint_accepts_details(browser: httpx.Client, rar_client: tuple[str, str]) -> None:
    """RFC 9396 §3: the parameter on a front-channel authorization request."""
    verifier, params = request_params(rar_client[0], [accounts_detail(actions=["balances"])])
    page = to_consent(browser, browser.get("/authorize?" + urlencode(params)))
    assert "See the balances of your accounts" in page.text
    got = authorized(consent(browser, page), verifier)
    resp = exchange(browser, got, auth=rar_client)
    assert resp.status_code == 200, resp.text
    assert resp.json()["authorization_details"][0]["actions"] == ["balances"]


def test_rfc9396_s7_no_details_no_member(browser: httpx.Client, rar_client: tuple[str, str]) -> None:
    """RFC 9396 §7: a request without authorization_details gets none in its tokens."""
    verifier, params = request_params(rar_client[0], None)
    resp = to_consent(browser, browser.get("/authorize?" + urlencode(params)))
    if resp.status_code == 200:
        resp = consent(browser, resp)
    body = exchange(browser, authorized(resp, verifier), auth=rar_client).json()
    assert "authorization_details" not in body and "authorization_details" not in claims(body["access_token"])


# -- §5 errors -------------------------------------------------------------------------------------------

BAD = {
    "unknown type": [{"type": "tax_filing"}],
    "bad IBAN": [{**PAYMENT, "creditorAccount": {"iban": "GB34BUKB20201555555555"}}],
    "negative amount": [{**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "-1.00"}}],
    "zero amount": [{**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "0.00"}}],
    "three decimals": [{**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "1.005"}}],
    "bad currency": [{**PAYMENT, "instructedAmount": {"currency": "eur", "amount": "1.00"}}],
    "ISO 4217 currency the bank does not book": [
        {**PAYMENT, "instructedAmount": {"currency": "AUD", "amount": "1.00"}}
    ],
    "unknown field": [{**PAYMENT, "ultimateCreditor": "Mallory"}],
    "not JSON": "[{type: payment_initiation}",
    "not an array": PAYMENT,
    "empty array": [],
    "too many": [accounts_detail()] * 6,
    "too large": [{**PAYMENT, "creditorName": "x" * 5000}],
    # RFC 3339 date-times at the ends of the calendar: in UTC they fall outside years 1-9999
    "expires_at before year 1 in UTC": [accounts_detail(expires_at="0001-01-01T00:00:00+01:00")],
    "expires_at after year 9999 in UTC": [accounts_detail(expires_at="9999-12-31T23:59:59-01:00")],
    "expires_at in year 0": [accounts_detail(expires_at="0000-01-01T00:00:00Z")],
}


@pytest.mark.parametrize("case", list(BAD))
def test_rfc9396_s5_invalid_details_at_par_are_400(
    browser: httpx.Client, rar_client: tuple[str, str], case: str
) -> None:
    """RFC 9396 §5 with RFC 9126 §2.3: invalid_authorization_details, 400, as JSON."""
    _v, params = request_params(rar_client[0], BAD[case])
    assert_oauth_error(browser.post("/par", data=params, auth=rar_client), "invalid_authorization_details")


def test_rfc9396_s5_payment_in_a_currency_the_bank_does_not_book_is_refused_at_par(
    browser: httpx.Client, rar_client: tuple[str, str]
) -> None:
    """RFC 9396 §5: AUD is ISO 4217 but not in payment_currencies (default: the bank's booked
    currencies), so it is refused before the customer is asked, not by the bank after approval."""
    _v, params = request_params(rar_client[0], [{**PAYMENT, "instructedAmount": {"currency": "AUD", "amount": "5"}}])
    resp = browser.post("/par", data=params, auth=rar_client)
    assert_oauth_error(resp, "invalid_authorization_details")
    assert resp.json()["error_description"].startswith(
        "authorization_details[0]: instructedAmount.currency AUD: payments are made only in "
    )
    assert "EUR" in resp.json()["error_description"]


@pytest.fixture(scope="module")
def aud_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A bank that makes payments in AUD and EUR only (payment_currencies replaces the default)."""
    backend = BACKENDS[0]  # a setting of the core: one backend shows it
    with dedicated_server(
        tmp_path_factory.mktemp("aud-" + backend), backend, {"FINGRADE_PAYMENT_CURRENCIES": "EUR, AUD"}
    ) as srv:
        yield srv


def test_rfc9396_s5_configured_payment_currencies_are_the_ones_accepted(aud_server: Server) -> None:
    """payment_currencies: a configured extra currency is approved; one left out (GBP) is refused."""
    client = new_confidential_client(aud_server, "--authorization-details-type", "payment_initiation")
    aud = {**PAYMENT, "instructedAmount": {"currency": "AUD", "amount": "25"}}
    with aud_server.client(follow_redirects=False) as browser:
        _v, params = request_params(client[0], [aud])
        pushed = browser.post("/par", data=params, auth=client)
        assert pushed.status_code == 201, pushed.text
        page = to_consent(
            browser,
            browser.get(
                "/authorize?" + urlencode({"client_id": client[0], "request_uri": pushed.json()["request_uri"]})
            ),
        )
        assert page.status_code == 200 and "Pay 25.00 AUD to Acme Ltd" in page.text
        _v, params = request_params(client[0], [{**PAYMENT, "instructedAmount": {"currency": "GBP", "amount": "5"}}])
        resp = browser.post("/par", data=params, auth=client)
        assert_oauth_error(resp, "invalid_authorization_details")
        assert resp.json()["error_description"].endswith("payments are made only in AUD, EUR")


@pytest.mark.parametrize("case", ["unknown type", "bad IBAN", "unknown field", "not JSON"])
def test_rfc9396_s5_invalid_details_at_authorization_endpoint_redirect(
    server: Server, browser: httpx.Client, rar_client: tuple[str, str], case: str
) -> None:
    """RFC 9396 §5: the error is an authorization error response (redirect with state and iss)."""
    _v, params = request_params(rar_client[0], BAD[case])
    resp = browser.get("/authorize?" + urlencode(params))
    assert resp.status_code in (302, 303), resp.text[:300]
    got = query_of(resp.headers["location"])
    assert resp.headers["location"].startswith(BACKEND_REDIRECT)
    assert got["error"] == "invalid_authorization_details"
    assert got["state"] == params["state"] and got["iss"] == server.issuer


def test_rfc9396_s10_2_type_not_registered_for_client_is_refused(
    browser: httpx.Client, ais_only_client: tuple[str, str], plain_client: tuple[str, str]
) -> None:
    """RFC 9396 §10.2 and §5: only the client's registered types; none registered, none allowed."""
    _v, params = request_params(ais_only_client[0], [PAYMENT])
    assert_oauth_error(browser.post("/par", data=params, auth=ais_only_client), "invalid_authorization_details")
    _v, params = request_params(ais_only_client[0], [accounts_detail()])
    assert browser.post("/par", data=params, auth=ais_only_client).status_code == 201
    _v, params = request_params(plain_client[0], [accounts_detail()])
    assert_oauth_error(browser.post("/par", data=params, auth=plain_client), "invalid_authorization_details")


# -- consent ---------------------------------------------------------------------------------------------


def test_rfc9396_s3_consent_page_shows_details_in_plain_words(
    browser: httpx.Client, rar_client: tuple[str, str]
) -> None:
    """RFC 9396 §3 (the AS asks the user about the details) — FAPI informed consent."""
    page, _got = pushed_flow(browser, rar_client, [PAYMENT, accounts_detail()])
    assert "Pay €25.00 to Acme Ltd" in page.text
    assert "GB33 BUKB 2020 1555 5555 55" in page.text
    assert "Invoice 123" in page.text
    assert "See the names and numbers, balances and transactions of your accounts" in page.text
    day = dt.date.fromisoformat(accounts_detail()["expires_at"][:10])
    assert f"Until {day.day} {day:%B %Y}" in page.text
    # A one-off payment is not a standing permission: the page says so instead of "withdraw any time".
    assert "the payment is made once, exactly as shown" in page.text
    assert "withdraw" not in page.text


def test_rfc9396_s3_consent_page_escapes_details(browser: httpx.Client, rar_client: tuple[str, str]) -> None:
    """RFC 9396 §3 / RFC 9700: a creditorName with markup is shown as text, never as HTML."""
    page, _got = pushed_flow(browser, rar_client, [{**PAYMENT, "creditorName": "<script>alert(1)</script>"}])
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text


def test_rfc9396_s3_remembered_consent_does_not_cover_details(
    browser: httpx.Client, rar_client: tuple[str, str]
) -> None:
    """RFC 9396 §3: a remembered scope consent does not cover a payment: the page is shown again,
    and prompt=none with details answers consent_required (OIDC Core §3.1.2.6)."""
    tokens(browser, rar_client, [PAYMENT])  # alice is signed in and has consented to `openid` for this client
    verifier, params = request_params(rar_client[0], None, prompt="none")
    plain = browser.get("/authorize?" + urlencode(params))
    assert query_of(plain.headers["location"]).get("code"), plain.headers["location"]  # control: no page needed
    _v, params = request_params(rar_client[0], [PAYMENT], prompt="none")
    resp = browser.get("/authorize?" + urlencode(params))
    assert query_of(resp.headers["location"])["error"] == "consent_required"
    _v, params = request_params(rar_client[0], [PAYMENT])
    page = to_consent(browser, browser.get("/authorize?" + urlencode(params)))
    assert page.status_code == 200 and "Pay €25.00 to Acme Ltd" in page.text


# -- §6 token requests -------------------------------------------------------------------------------------


def refresh(browser: httpx.Client, client: tuple[str, str], rt: str, details: Any = None) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": rt}
    if details is not None:
        data["authorization_details"] = j(details)
    return browser.post("/token", data=data, auth=client)


def test_rfc9396_s6_refresh_keeps_details_and_may_narrow(browser: httpx.Client, rar_client: tuple[str, str]) -> None:
    """RFC 9396 §6: a refresh keeps the approved details; with the parameter it may ask for less."""
    body = tokens(browser, rar_client, [PAYMENT, accounts_detail()])
    granted = body["authorization_details"]
    again = refresh(browser, rar_client, body["refresh_token"])
    assert again.status_code == 200 and again.json()["authorization_details"] == granted
    narrowed = refresh(
        browser, rar_client, body["refresh_token"], [{"type": "account_information", "actions": ["balances"]}]
    )
    assert narrowed.status_code == 200, narrowed.text
    assert narrowed.json()["authorization_details"] == [{**granted[1], "actions": ["balances"]}]
    assert claims(narrowed.json()["access_token"])["authorization_details"] == narrowed.json()["authorization_details"]
    # The grant is unchanged: a later refresh without the parameter gets everything again.
    assert refresh(browser, rar_client, body["refresh_token"]).json()["authorization_details"] == granted


@pytest.mark.parametrize(
    "wider",
    [
        [{**PAYMENT, "instructedAmount": {"currency": "EUR", "amount": "2500.00"}}],
        [{**PAYMENT, "creditorAccount": {"iban": "DE02100100109307118603"}}],
        [
            {
                "type": "account_information",
                "actions": ["accounts", "balances", "transactions"],
                "transactions_from": "2000-01-01",
            }
        ],
    ],
)
def test_rfc9396_s6_1_refresh_refuses_widening(
    browser: httpx.Client, rar_client: tuple[str, str], wider: list[dict[str, Any]]
) -> None:
    """RFC 9396 §6.1: a token request asking for more than was authorized is refused (§8: the
    invalid_authorization_details error at the token endpoint)."""
    body = tokens(browser, rar_client, [PAYMENT, accounts_detail(transactions_from="2026-01-01")])
    assert_oauth_error(refresh(browser, rar_client, body["refresh_token"], wider), "invalid_authorization_details")


def test_rfc9396_s6_refresh_of_grant_without_details_cannot_add_them(
    browser: httpx.Client, rar_client: tuple[str, str]
) -> None:
    """RFC 9396 §6: details may only narrow a grant; a grant without details cannot gain some."""
    verifier, params = request_params(rar_client[0], None, scope="openid offline_access")
    resp = to_consent(browser, browser.get("/authorize?" + urlencode(params)))
    if resp.status_code == 200:
        resp = consent(browser, resp)
    body = exchange(browser, authorized(resp, verifier), auth=rar_client).json()
    assert_oauth_error(refresh(browser, rar_client, body["refresh_token"], [PAYMENT]), "invalid_authorization_details")


def test_rfc9396_s6_code_exchange_may_narrow(browser: httpx.Client, rar_client: tuple[str, str]) -> None:
    """RFC 9396 §6: the token request for the code may name part of the authorized details."""
    _page, got = pushed_flow(browser, rar_client, [PAYMENT, accounts_detail()])
    data = {
        "grant_type": "authorization_code",
        "code": got.code,
        "redirect_uri": got.redirect_uri,
        "code_verifier": got.verifier,
        "authorization_details": j([PAYMENT]),
    }
    resp = browser.post("/token", data=data, auth=rar_client)
    assert resp.status_code == 200, resp.text
    [payment] = resp.json()["authorization_details"]
    # The payer the customer chose stays part of the payment (RFC 9396 §6: never wider, never looser).
    assert payment == {**PAYMENT, "actions": ["initiate", "status"], "debtorAccount": payment["debtorAccount"]}


def test_rfc9396_s6_client_credentials_with_details_is_refused(
    browser: httpx.Client, rar_client: tuple[str, str]
) -> None:
    """RFC 9396 §6: our types need the customer's approval, so client_credentials refuses them."""
    resp = browser.post(
        "/token", data={"grant_type": "client_credentials", "authorization_details": j([PAYMENT])}, auth=rar_client
    )
    assert_oauth_error(resp, "invalid_authorization_details")
    ok = browser.post("/token", data={"grant_type": "client_credentials", "scope": "accounts"}, auth=rar_client)
    assert ok.status_code == 200, ok.text


# -- FAPI 2.0: PAR + private_key_jwt + DPoP ------------------------------------------------------------------


def test_rfc9396_fapi2_client_payment_flow(
    server: Server, http: httpx.Client, browser: httpx.Client, tmp_path: Path
) -> None:
    """RFC 9396 with FAPI 2.0 SP: the details travel through PAR and come back in the DPoP-bound token."""
    fapi = FapiClient.register(server, tmp_path, "--authorization-details-type", "payment_initiation")
    resp = fapi.flow(http, browser, authorization_details=j([PAYMENT]))
    assert resp.status_code == 200, resp.text
    assert resp.json()["token_type"] == "DPoP"
    assert resp.json()["authorization_details"][0]["creditorName"] == "Acme Ltd"
    assert claims(resp.json()["access_token"])["authorization_details"][0]["instructedAmount"]["amount"] == "25.00"


def _set_grant_details(server: Server, grant_id: str, details: list[dict[str, Any]]) -> None:
    """Age a grant's details in place (the request itself cannot ask for a past expires_at)."""
    if server.backend == "postgres":
        import asyncio

        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(server.env["FINGRADE_DATABASE_URL"])
            try:
                await conn.execute("UPDATE grants SET authorization_details = $1 WHERE id = $2", j(details), grant_id)
            finally:
                await conn.close()

        asyncio.run(run())
        return
    import sqlite3

    conn = sqlite3.connect(server.data_dir / "fingrade.db", timeout=10)
    try:
        conn.execute("UPDATE grants SET authorization_details = ? WHERE id = ?", (j(details), grant_id))
        conn.commit()
    finally:
        conn.close()


def test_rfc9396_s6_expired_account_access_ends_with_its_expiry(
    server: Server, browser: httpx.Client, rar_client: tuple[str, str]
) -> None:
    """RFC 9396 §6/§7: after expires_at an account access is no longer in new tokens; a grant with
    nothing left in force cannot be refreshed (invalid_grant)."""
    body = tokens(browser, rar_client, [PAYMENT, accounts_detail()])
    grant_id = claims(body["access_token"])["grant_id"]
    payment, access = body["authorization_details"]
    _set_grant_details(server, grant_id, [payment, {**access, "expires_at": "2020-01-01T00:00:00Z"}])
    again = refresh(browser, rar_client, body["refresh_token"])
    assert again.status_code == 200 and again.json()["authorization_details"] == [payment]
    _set_grant_details(server, grant_id, [{**access, "expires_at": "2020-01-01T00:00:00Z"}])
    assert_oauth_error(refresh(browser, rar_client, body["refresh_token"]), "invalid_grant")
