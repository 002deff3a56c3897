"""The whole open-banking journey in Chromium, as docs/banking-api.md "Journey" tells a
fintech developer: a FAPI 2.0 app (private_key_jwt, DPoP, PAR) asks for account access with RFC 9396
`account_information` details naming no account → the customer signs in, shares ONE of her accounts
and allows → the app redeems the code and reads that account (balances; transactions by date range,
page by page) and nothing else → a second PAR for a `payment_initiation` → the customer picks the
account to pay from → the app pays with an Idempotency-Key, asks the status and sees the debit in the
balances → the customer revokes the app on /account/connections and the bank API answers 401.

On a server with strong customer authentication on (its default): alice signs in with her password
and a code from her authenticator app, and confirms the payment with a fresh code on a page that
shows its amount and payee (docs/sca.md); the bank pays only what she confirmed."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal

import httpx
import pytest
from browserkit import fintech_connects
from playwright.sync_api import BrowserContext, Page, expect
from support.backends import BACKENDS
from support.bank import PREFIX, Fintech, account_information, payment_body, payment_initiation
from support.sca import SCA_ON, Authenticator
from support.server import Server, drop_pg_database, start_server

pytestmark = [pytest.mark.bank, pytest.mark.payments, pytest.mark.sca]


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """This module's own server, with strong customer authentication on (the shared one runs with it
    off); made before Playwright starts (its PostgreSQL database needs asyncio.run)."""
    backend = str(request.param)
    srv = start_server(tmp_path_factory.mktemp(f"journey-{backend}"), backend=backend, extra_env=SCA_ON)
    yield srv
    srv.stop()
    if srv.backend == "postgres":
        drop_pg_database(srv.env["FINGRADE_DATABASE_URL"])


APP = Authenticator(wait=True)  # alice's authenticator app: each code once, waiting for the next

SHARED, OTHER = "Rainy day savings", "Everyday account"  # alice's demo accounts (bank/demo.py)


def cents(amount: dict, indicator: str = "Credit") -> int:
    """A UK OB amount ({"Amount": "12.34", ...}, never negative) with its indicator as signed cents."""
    value = int(Decimal(amount["Amount"]) * 100)
    return -value if indicator == "Debit" else value


def booked(fintech: Fintech, http: httpx.Client, token: str, account_id: str) -> int:
    resp = fintech.get(http, f"/accounts/{account_id}/balances", token)
    assert resp.status_code == 200, resp.text
    [b] = [b for b in resp.json()["Data"]["Balance"] if b["Type"] == "InterimBooked"]
    return cents(b["Amount"], b["CreditDebitIndicator"])


def transactions(
    fintech: Fintech, http: httpx.Client, token: str, account_id: str, **params: str
) -> tuple[list[dict], int]:
    """Every transaction of the query, following Links.Next (the cursor, with the query kept) to the
    end; and the number of pages."""
    path, rows, pages = f"/accounts/{account_id}/transactions", [], 0
    while True:
        resp = fintech.get(http, path, token, params=params)
        assert resp.status_code == 200, resp.text
        rows += resp.json()["Data"]["Transaction"]
        pages += 1
        if "Next" not in resp.json()["Links"]:
            return rows, pages
        nxt = httpx.URL(resp.json()["Links"]["Next"])
        assert nxt.path == PREFIX + path
        kept = {k: v for k, v in nxt.params.items() if k != "cursor"}
        assert kept == {k: v for k, v in params.items() if k != "cursor"}
        params = dict(nxt.params)


def refused_soon(call: Callable[[], httpx.Response]) -> httpx.Response:
    """The bank refuses a revoked token once its positive introspection cache lapses
    (bank_introspection_cache_seconds, default 2 s)."""
    deadline = time.monotonic() + 5
    while (resp := call()).status_code != 401:
        assert resp.status_code == 200, resp.text
        assert time.monotonic() < deadline, "the bank still accepts the revoked token"
        time.sleep(0.25)
    return resp


def account_ids(server: Server, tmp: pytest.TempPathFactory) -> dict[str, str]:
    """{IBAN: AccountId} of all of alice's accounts, as the bank knows them: the test's own view,
    through another app she lets see everything (no database peeking from a Playwright thread)."""
    oracle = Fintech(server, tmp.mktemp("journey-oracle"))
    token = oracle.token(account_information(("accounts",)), app=APP)  # the consent form as it comes: all ticked
    with server.client() as http:
        resp = oracle.get(http, "/accounts", token)
    assert resp.status_code == 200, resp.text
    return {a["Account"][0]["Identification"]: a["AccountId"] for a in resp.json()["Data"]["Account"]}


def iban_of(page: Page, role: str, label: str) -> str:
    value = page.get_by_role(role, name=re.compile("^" + re.escape(label))).get_attribute("value")
    assert value
    return value


def test_journey_par_login_account_selection_consent_api_payment_revocation(
    context: BrowserContext, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ids = account_ids(server, tmp_path_factory)
    fintech = Fintech(
        server, tmp_path_factory.mktemp("journey-fintech"), "--authorization-details-type", "payment_initiation"
    )
    page = context.new_page()
    chosen: dict[str, str] = {}

    # 1. Account access: PAR with a detail that names no account; the customer shares her savings only.
    def share_savings_only(p: Page) -> None:
        group = p.get_by_role("group", name=re.compile("^Which accounts may"))
        expect(group.get_by_role("checkbox")).to_have_count(2)  # her two open accounts, both ticked at first
        group.get_by_role("checkbox", name=re.compile("^" + OTHER)).uncheck()
        expect(group.get_by_role("checkbox", name=re.compile("^" + SHARED))).to_be_checked()
        chosen["iban"], chosen["other"] = iban_of(p, "checkbox", SHARED), iban_of(p, "checkbox", OTHER)

    ais = fintech_connects(
        page,
        fintech,
        [account_information()],
        "openid accounts",
        choose=share_savings_only,
        login=True,
        authenticator=APP,
    )
    # RFC 9396 §7.1: the AS wrote the customer's choice into the approved detail.
    assert ais["authorization_details"][0]["accounts"] == [{"iban": chosen["iban"]}]
    token, savings, current = ais["access_token"], ids[chosen["iban"]], ids[chosen["other"]]

    with server.client() as http:
        # 2. Account information: exactly the shared account.
        listed = fintech.get(http, "/accounts", token)
        assert listed.status_code == 200, listed.text
        [acc] = listed.json()["Data"]["Account"]
        assert acc["AccountId"] == savings
        assert acc["Account"][0] == {
            "SchemeName": "UK.OBIE.IBAN",
            "Identification": chosen["iban"],
            "Name": "Alice Andersen",
        }
        assert fintech.get(http, f"/accounts/{savings}", token).status_code == 200
        for path in (f"/accounts/{current}", f"/accounts/{current}/balances", f"/accounts/{current}/transactions"):
            refused = fintech.get(http, path, token)
            assert (refused.status_code, refused.json()["error"]) == (404, "not_found"), path
        before = booked(fintech, http, token, savings)

        # Transactions: a date range (the opening day left out), followed page by page via Links.Next.
        rows, _ = transactions(fintech, http, token, savings, limit="100")  # newest first
        first_day = dt.date.fromisoformat(rows[-1]["BookingDateTime"][:10])
        start, end = (first_day + dt.timedelta(days=1)).isoformat(), dt.datetime.now(dt.UTC).date().isoformat()
        expected = [r["TransactionId"] for r in rows if start <= r["BookingDateTime"][:10] <= end]
        assert 2 < len(expected) < len(rows)
        got, pages = transactions(
            fintech, http, token, savings, fromBookingDateTime=start, toBookingDateTime=end, limit="2"
        )
        assert [r["TransactionId"] for r in got] == expected
        assert pages == -(-len(expected) // 2)

    # 3. A payment: a second PAR; the customer (still signed in) picks the account to pay from.
    detail = payment_initiation("7.50", remittance="Journey " + uuid.uuid4().hex[:8])

    def pay_from_savings(p: Page) -> None:
        group = p.get_by_role("group", name="Pay from which account?")
        expect(group.get_by_role("radio").first).to_be_checked()  # the first account, at first
        group.get_by_role("radio", name=re.compile("^" + SHARED)).check()

    pis = fintech_connects(
        page, fintech, [detail], "openid payments", choose=pay_from_savings, login=False, authenticator=APP
    )
    assert pis["authorization_details"][0]["debtorAccount"] == {"iban": chosen["iban"]}
    pay_token, key = pis["access_token"], str(uuid.uuid4())
    with server.client() as http:
        paid = fintech.post(http, "/payments", pay_token, payment_body(detail), key=key)
        assert paid.status_code == 201, paid.text
        data = paid.json()["Data"]
        assert data["Status"] == "AcceptedSettlementCompleted"
        assert data["DebtorAccount"] == {"iban": chosen["iban"]}
        assert data["InstructedAmount"] == {"Amount": "7.50", "Currency": "EUR"}
        assert paid.headers["location"] == paid.json()["Links"]["Self"]
        # A retry with the same key (say, after a timeout) answers the same and books nothing more.
        again = fintech.post(http, "/payments", pay_token, payment_body(detail), key=key)
        assert (again.status_code, again.json()) == (201, paid.json())
        status = fintech.get(http, f"/payments/{data['PaymentId']}", pay_token)
        assert status.status_code == 200, status.text
        assert status.json()["Data"]["Status"] == "AcceptedSettlementCompleted"

        # The account-information token sees the debit, once.
        assert booked(fintech, http, token, savings) == before - 750
        newest = fintech.get(http, f"/accounts/{savings}/transactions", token, params={"limit": "1"})
        [row] = newest.json()["Data"]["Transaction"]
        assert cents(row["Amount"], row["CreditDebitIndicator"]) == -750
        assert row["TransactionInformation"] == detail["remittanceInformationUnstructured"]

        # 4. The customer revokes the app (all its grants: account access and payment).
        page.goto("/account/connections")
        name = f"Fintech {fintech.client.key.kid}"
        with page.expect_navigation():
            page.get_by_role("button", name=f"Revoke access of {name}").click()
        expect(page.get_by_role("status")).to_contain_text(f"{name} can no longer access your bank")
        assert refused_soon(lambda: fintech.get(http, "/accounts", token)).json()["error"] == "invalid_token"
        assert (
            refused_soon(lambda: fintech.get(http, f"/payments/{data['PaymentId']}", pay_token)).json()["error"]
            == "invalid_token"
        )
