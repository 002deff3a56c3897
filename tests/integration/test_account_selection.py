"""Account selection at consent, both
backends: for an `account_information` request that names no accounts the consent page offers the
customer's accounts as checkboxes, for a `payment_initiation` without `debtorAccount` the accounts in
the payment's currency as radio buttons; the grant keeps exactly the choice (RFC 9396 §7.1: the AS
may add to the details it grants), and the bank API then serves only the chosen accounts."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urlencode

import httpx
import pytest
from support.bank import Fintech, account_information, payment_body
from support.database import db_rows
from support.flow import CSRF, Authorized, checked_choices, consent, follow_to_client, login, query_of
from support.server import DEMO_PASSWORD, Server

pytestmark = [pytest.mark.consent, pytest.mark.rar, pytest.mark.payments]

PAYMENT = {
    "type": "payment_initiation",
    "instructedAmount": {"currency": "EUR", "amount": "12.50"},
    "creditorName": "Acme Ltd",
    "creditorAccount": {"iban": "GB33BUKB20201555555555"},
}


@pytest.fixture(scope="module")
def fintech(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Fintech:
    return Fintech(
        server, tmp_path_factory.mktemp("select-fintech"), "--authorization-details-type", "payment_initiation"
    )


def accounts_of(server: Server, username: str) -> dict[str, str]:
    """IBAN -> currency of a demo customer's accounts, from the bank's ledger."""
    return dict(
        db_rows(
            server,
            "SELECT a.iban, a.currency FROM bank_accounts a JOIN users u ON u.id = a.owner_user_id"
            " WHERE u.username = ?",
            username,
        )
    )


def to_consent(
    fintech: Fintech, browser: httpx.Client, details: list[dict], scope: str = "openid accounts"
) -> tuple[httpx.Response, str]:
    fc = fintech.client
    with fintech.server.client() as http:
        params, verifier = fc.request_params(scope=scope, authorization_details=json.dumps(details))
        pushed = fc.push(http, params)
    assert pushed.status_code == 201, pushed.text
    resp = browser.get(
        "/authorize?" + urlencode({"client_id": fc.client_id, "request_uri": pushed.json()["request_uri"]})
    )
    resp = follow_to_client(browser, resp, fc.redirect_uri)
    if 'name="password"' in resp.text:
        resp = follow_to_client(browser, login(browser, resp, "alice", DEMO_PASSWORD), fc.redirect_uri)
    assert 'name="decision"' in resp.text, resp.text[:300]
    return resp, verifier


def granted(fintech: Fintech, resp: httpx.Response, verifier: str) -> tuple[dict, str]:
    assert resp.status_code == 303, (resp.status_code, resp.text[:300])
    code = query_of(resp.headers["location"])["code"]
    with fintech.server.client() as http:
        tok = fintech.client.redeem(
            http,
            Authorized(code=code, params={}, verifier=verifier, redirect_uri=fintech.client.redirect_uri, location=""),
        )
    assert tok.status_code == 200, tok.text
    return tok.json(), tok.json()["access_token"]


def test_rfc9396_account_information_offers_the_customers_accounts(server: Server, fintech: Fintech) -> None:
    """Checkboxes for each of alice's accounts, all ticked at first; the choice goes into the grant's
    `accounts` and the bank lists only the chosen account."""
    alice = accounts_of(server, "alice")
    assert len(alice) >= 2
    with server.client(follow_redirects=False) as browser:
        page, verifier = to_consent(fintech, browser, [account_information()])
        assert "Which accounts may" in page.text
        ticked = checked_choices(page.text)
        assert set(ticked.values()) == set(alice) and all(k.startswith("account_") for k in ticked)
        first_name, first_iban = sorted(ticked.items())[0]
        body, token = granted(fintech, consent(browser, page, choices={first_name: first_iban}), verifier)
    assert body["authorization_details"][0]["accounts"] == [{"iban": first_iban}]
    with server.client() as http:
        listed = fintech.get(http, "/accounts", token).json()["Data"]["Account"]
    assert [a["Account"][0]["Identification"] for a in listed] == [first_iban]


def test_no_account_chosen_or_a_foreign_one_is_refused(server: Server, fintech: Fintech) -> None:
    """Nothing ticked → the page again with an error (400), no code; bob's IBAN slipped into the form →
    refused the same way; then a proper choice still completes (the request was not used up)."""
    bobs = next(iter(accounts_of(server, "bob")))
    with server.client(follow_redirects=False) as browser:
        page, verifier = to_consent(fintech, browser, [account_information()])
        empty = consent(browser, page, choices={})
        assert empty.status_code == 400 and "Choose at least one account" in empty.text
        assert 'role="alert"' in empty.text and "location" not in empty.headers
        foreign = consent(browser, page, choices={"account_1": bobs})
        assert foreign.status_code == 400 and "Choose at least one account" in foreign.text
        again = consent(browser, empty)  # as ticked on the error page (nothing) → still refused
        assert again.status_code == 400
        body, _ = granted(fintech, consent(browser, page), verifier)
    assert bobs not in json.dumps(body["authorization_details"])


def test_deny_needs_no_choice(server: Server, fintech: Fintech) -> None:
    with server.client(follow_redirects=False) as browser:
        page, _ = to_consent(fintech, browser, [account_information()])
        resp = consent(browser, page, decision="deny", choices={})
        assert resp.status_code == 303 and query_of(resp.headers["location"])["error"] == "access_denied"


def test_rfc9396_payment_debtor_chosen_among_accounts_in_its_currency(server: Server, fintech: Fintech) -> None:
    alice = accounts_of(server, "alice")
    eur = {iban for iban, cur in alice.items() if cur == "EUR"}
    other = {iban for iban, cur in alice.items() if cur != "EUR"}
    assert eur
    with server.client(follow_redirects=False) as browser:
        page, verifier = to_consent(fintech, browser, [PAYMENT])
        assert "Pay from which account?" in page.text
        offered = set(re.findall(r'name="debtor_account" value="([^"]+)"', page.text))
        assert offered == eur
        for bad in [*other, next(iter(accounts_of(server, "bob"))), ""]:
            resp = consent(browser, page, choices={"debtor_account": bad} if bad else {})
            assert resp.status_code == 400 and "Choose the account to pay from" in resp.text
        chosen = sorted(eur)[-1]
        body, _ = granted(fintech, consent(browser, page, choices={"debtor_account": chosen}), verifier)
    assert body["authorization_details"][0]["debtorAccount"] == {"iban": chosen}


def test_rfc9396_accounts_named_by_the_app_are_not_offered(server: Server, fintech: Fintech) -> None:
    iban = sorted(accounts_of(server, "alice"))[0]
    with server.client(follow_redirects=False) as browser:
        page, verifier = to_consent(
            fintech,
            browser,
            [account_information(accounts=[{"iban": iban}]), {**PAYMENT, "debtorAccount": {"iban": iban}}],
        )
        assert 'type="checkbox"' not in page.text and 'type="radio"' not in page.text
        assert CSRF.search(page.text)
        body, _ = granted(fintech, consent(browser, page), verifier)
    assert body["authorization_details"][0]["accounts"] == [{"iban": iban}]


# -- the payer: only accounts the bank takes, and never an account shown as the customer's unless it is --


def kinds_of(server: Server, username: str) -> dict[str, str]:
    """kind/currency -> IBAN of a demo customer's accounts."""
    return {
        f"{k}/{c}": iban
        for k, c, iban in db_rows(
            server,
            "SELECT a.kind, a.currency, a.iban FROM bank_accounts a JOIN users u ON u.id = a.owner_user_id"
            " WHERE u.username = ?",
            username,
        )
    }


def offered_payers(page: httpx.Response) -> list[str]:
    return re.findall(r'name="debtor_account" value="([^"]+)"', page.text)


def allow_offered(page: httpx.Response) -> bool:
    return 'name="decision" value="approve"' in page.text


def spaced(iban: str) -> str:
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def test_a_payment_to_the_customers_own_account_is_not_offered_that_account_as_payer(
    server: Server, fintech: Fintech
) -> None:
    """The creditor is alice's savings account: the payer choice leaves it out (the bank would refuse
    it: same_account), pre-selects her current account, and the approved payment is then paid (201)."""
    alice = kinds_of(server, "alice")
    detail = {**PAYMENT, "creditorAccount": {"iban": alice["savings/EUR"]}}
    with server.client(follow_redirects=False) as browser:
        page, verifier = to_consent(fintech, browser, [detail], scope="openid payments")
        assert offered_payers(page) == [alice["current/EUR"]]
        assert checked_choices(page.text) == {"debtor_account": alice["current/EUR"]}
        body, token = granted(fintech, consent(browser, page), verifier)
    approved = body["authorization_details"][0]
    assert approved["debtorAccount"] == {"iban": alice["current/EUR"]}
    with server.client() as http:
        paid = fintech.post(http, "/payments", token, payment_body(approved), key=str(uuid.uuid4()))
    assert paid.status_code == 201, paid.text
    assert paid.json()["Data"]["DebtorAccount"] == {"iban": alice["current/EUR"]}


@pytest.mark.parametrize(
    "case",
    ["debtor is the creditor", "debtor is another customer's", "debtor is elsewhere", "no account in the currency"],
)
def test_a_payment_no_account_of_the_customer_can_make_cannot_be_approved(
    server: Server, fintech: Fintech, case: str
) -> None:
    """The page says why, shows no Allow button and never calls another customer's (or another
    bank's) account "your account"; a forged Allow is refused (400, no code); Deny returns
    access_denied to the app (RFC 6749 §4.1.2.1)."""
    alice, bob = kinds_of(server, "alice"), kinds_of(server, "bob")
    foreign = {
        "debtor is the creditor": alice["current/EUR"],
        "debtor is another customer's": bob["current/EUR"],
        "debtor is elsewhere": "DE89370400440532013000",
    }.get(case)
    detail = (
        {**PAYMENT, "creditorAccount": {"iban": alice["current/EUR"]}, "debtorAccount": {"iban": foreign}}
        if foreign
        else {**PAYMENT, "instructedAmount": {"currency": "GBP", "amount": "5.00"}}
    )
    with server.client(follow_redirects=False) as browser:
        page, _ = to_consent(fintech, browser, [detail])
        assert not allow_offered(page) and offered_payers(page) == []
        assert 'role="alert"' in page.text and "cannot be approved" in page.text
        if foreign:
            assert f"From your account {spaced(foreign)}" not in page.text
            assert not re.search(r"[Yy]our account[^<]*" + re.escape(spaced(foreign)), page.text)
        forged = consent(browser, page, choices={"debtor_account": alice["current/EUR"]})
        assert forged.status_code == 400 and "location" not in forged.headers
        assert "cannot be approved" in forged.text and not allow_offered(forged)
        denied = consent(browser, page, decision="deny", choices={})
        assert denied.status_code == 303 and query_of(denied.headers["location"])["error"] == "access_denied"


def test_a_payer_the_app_names_is_shown_as_the_customers_only_when_it_is(server: Server, fintech: Fintech) -> None:
    """An app-named debtorAccount that is alice's, in the currency, is shown as her account, by name."""
    alice = kinds_of(server, "alice")
    detail = {**PAYMENT, "debtorAccount": {"iban": alice["savings/EUR"]}}
    with server.client(follow_redirects=False) as browser:
        page, verifier = to_consent(fintech, browser, [detail])
        assert allow_offered(page) and offered_payers(page) == []
        assert f"From your account Rainy day savings · {spaced(alice['savings/EUR'])}" in page.text
        body, _ = granted(fintech, consent(browser, page), verifier)
    assert body["authorization_details"][0]["debtorAccount"] == {"iban": alice["savings/EUR"]}
