"""The bank's payment initiation API (/bank/v1/payments) on the real server, both backends, with
DPoP-bound tokens from the real flow (PAR + RFC 9396 `payment_initiation` authorization details +
login + consent). Rules in docs/banking-api.md, "Payments"."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from support.bank import Fintech, account_information, payment_body, payment_initiation
from support.database import db_rows, user_id
from support.flow import Authorized, consent, follow_to_client, login, query_of
from support.refusals import www_authenticate
from support.server import DEMO_PASSWORD, Server

pytestmark = [pytest.mark.bank, pytest.mark.payments]


@pytest.fixture(scope="module")
def fintech(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Fintech:
    return Fintech(
        server, tmp_path_factory.mktemp("bank-payments"), "--authorization-details-type", "payment_initiation"
    )


def pay_token(fintech: Fintech, detail: dict, username: str = "alice") -> str:
    return fintech.token(detail, username=username, scope="openid payments")


def accounts_of(server: Server, username: str) -> dict[str, tuple[str, str, int, int]]:
    """{kind/currency: (id, iban, balance, overdraft)} of a customer's accounts, straight from the DB."""
    rows = db_rows(
        server,
        "SELECT kind, currency, id, iban, balance, overdraft_limit FROM bank_accounts WHERE owner_user_id = ?",
        user_id(server, username),
    )
    return {f"{r[0]}/{r[1]}": (r[2], r[3], r[4], r[5]) for r in rows}


def ledger_problems(server: Server) -> list[Any]:
    """The ledger invariants (bank/ledger.check_ledger), checked from outside."""
    bad = db_rows(
        server,
        "SELECT a.id FROM bank_accounts a LEFT JOIN (SELECT account_id, SUM(amount) AS s "
        "FROM bank_entries GROUP BY account_id) e ON e.account_id = a.id "
        "WHERE a.balance != COALESCE(e.s, 0) OR (a.overdraft_limit IS NOT NULL "
        "AND a.balance < -a.overdraft_limit)",
    )
    bad += db_rows(server, "SELECT currency FROM bank_entries GROUP BY currency HAVING SUM(amount) != 0")
    return bad


def key() -> str:
    return str(uuid.uuid4())


def post(fintech: Fintech, token: str, body: Any, idem: str | None) -> httpx.Response:
    with fintech.server.client() as http:
        return fintech.post(http, "/payments", token, body, key=idem)


def get(fintech: Fintech, token: str, payment_id: str) -> httpx.Response:
    with fintech.server.client() as http:
        return fintech.get(http, f"/payments/{payment_id}", token)


# -- the happy path -------------------------------------------------------------------------------


def test_payment_end_to_end_moves_exactly_the_approved_amount(fintech: Fintech, server: Server) -> None:
    """PAR + consent + token → POST /payments executes the approved payment from the customer's
    current account (interim debtor rule) → GET status; the ledger moved by exactly the amount."""
    detail = payment_initiation("12.34")
    token = pay_token(fintech, detail)
    before = accounts_of(server, "alice")["current/EUR"]
    resp = post(fintech, token, payment_body(detail), key())
    assert resp.status_code == 201, resp.text
    data = resp.json()["Data"]
    assert data["Status"] == "AcceptedSettlementCompleted"
    assert data["InstructedAmount"] == {"Amount": "12.34", "Currency": "EUR"}
    assert data["CreditorAccount"] == {"iban": "DE89370400440532013000"}
    assert data["DebtorAccount"] == {"iban": before[1]}
    assert resp.headers["location"] == resp.json()["Links"]["Self"]
    assert resp.headers["cache-control"] == "no-store"
    assert resp.headers["x-fapi-interaction-id"]
    after = accounts_of(server, "alice")["current/EUR"]
    assert after[2] == before[2] - 1234
    status = get(fintech, token, data["PaymentId"])
    assert status.status_code == 200, status.text
    assert status.json()["Data"]["Status"] == "AcceptedSettlementCompleted"
    assert status.json()["Data"]["PaymentId"] == data["PaymentId"]
    assert ledger_problems(server) == []


def test_payment_from_the_approved_debtor_account(fintech: Fintech, server: Server) -> None:
    """A detail's debtorAccount that is the customer's own account is the account debited."""
    savings = accounts_of(server, "alice")["savings/EUR"]
    detail = payment_initiation("1.00", debtorAccount={"iban": savings[1]})
    resp = post(fintech, pay_token(fintech, detail), payment_body(detail), key())
    assert resp.status_code == 201, resp.text
    assert resp.json()["Data"]["DebtorAccount"] == {"iban": savings[1]}
    assert accounts_of(server, "alice")["savings/EUR"][2] == savings[2] - 100


def test_payment_from_another_customers_debtor_account_is_refused(fintech: Fintech, server: Server) -> None:
    """A debtorAccount that is not the customer's is never debited: the customer cannot approve it
    (no Allow on the consent page; a forged Allow is 400, no code), and the bank takes a payer only by
    the same rule (`payments.payers`, tests/unit/test_bank_payments_rules.py: 422
    debtor_account_unavailable)."""
    bobs = accounts_of(server, "bob")["current/EUR"]
    detail = payment_initiation("1.00", debtorAccount={"iban": bobs[1]})
    fc = fintech.client
    with server.client() as http, server.client(follow_redirects=False) as browser:
        params, verifier = fc.request_params(scope="openid payments", authorization_details=json.dumps([detail]))
        pushed = fc.push(http, params)
        assert pushed.status_code == 201, pushed.text
        page = browser.get(
            "/authorize?" + urlencode({"client_id": fc.client_id, "request_uri": pushed.json()["request_uri"]})
        )
        page = follow_to_client(browser, page, fc.redirect_uri)
        if 'name="password"' in page.text:
            page = follow_to_client(browser, login(browser, page, "alice", DEMO_PASSWORD), fc.redirect_uri)
        assert 'value="deny"' in page.text and 'value="approve"' not in page.text
        forged = consent(browser, page)
        assert forged.status_code == 400 and "location" not in forged.headers
    assert accounts_of(server, "bob")["current/EUR"][2] == bobs[2]


# -- exactly the approved payment, once ---------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"instructedAmount": {"currency": "EUR", "amount": "12.35"}},
        {"instructedAmount": {"currency": "GBP", "amount": "12.34"}},
        {"creditorName": "Mallory"},
        {"creditorAccount": {"iban": "GB33BUKB20201555555555"}},
        {"remittanceInformationUnstructured": "Invoice 43"},
    ],
)
def test_body_differing_from_the_approval_is_refused(fintech: Fintech, server: Server, change: dict) -> None:
    """The body must be exactly the approved payment: 403 insufficient_scope (RFC 6750 §3.1), nothing moves."""
    detail = payment_initiation("12.34")
    token = pay_token(fintech, detail)
    before = accounts_of(server, "alice")["current/EUR"][2]
    resp = post(fintech, token, {**payment_body(detail), **change}, key())
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"] == "insufficient_scope"
    assert www_authenticate(resp)["scheme"] == "dpop"
    assert accounts_of(server, "alice")["current/EUR"][2] == before


def test_second_execution_of_one_approval_is_refused(fintech: Fintech, server: Server) -> None:
    """Once per grant: another Idempotency-Key with the same approval gets 409 consent_already_used."""
    detail = payment_initiation("2.00")
    token = pay_token(fintech, detail)
    assert post(fintech, token, payment_body(detail), key()).status_code == 201
    before = accounts_of(server, "alice")["current/EUR"][2]
    again = post(fintech, token, payment_body(detail), key())
    assert again.status_code == 409, again.text
    assert again.json()["error"] == "consent_already_used"
    assert accounts_of(server, "alice")["current/EUR"][2] == before


# -- idempotency ----------------------------------------------------------------------------------


def test_idempotent_retry_replays_the_same_response(fintech: Fintech, server: Server) -> None:
    detail = payment_initiation("3.00")
    token = pay_token(fintech, detail)
    idem = key()
    first = post(fintech, token, payment_body(detail), idem)
    assert first.status_code == 201, first.text
    before = accounts_of(server, "alice")["current/EUR"][2]
    second = post(fintech, token, payment_body(detail), idem)
    assert second.status_code == 201, second.text
    assert second.content == first.content
    assert accounts_of(server, "alice")["current/EUR"][2] == before


def test_same_key_different_body_is_refused(fintech: Fintech, server: Server) -> None:
    detail = payment_initiation("4.00")
    token = pay_token(fintech, detail)
    idem = key()
    assert post(fintech, token, payment_body(detail), idem).status_code == 201
    other = {**payment_body(detail), "debtorAccount": {"iban": accounts_of(server, "alice")["current/EUR"][1]}}
    resp = post(fintech, token, other, idem)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "idempotency_key_reused"


@pytest.mark.parametrize("header", [None, "", "x" * 65, "has space", "tab\tkey"])
def test_idempotency_key_required_and_well_formed(fintech: Fintech, header: str | None) -> None:
    detail = payment_initiation("5.00")
    token = pay_token(fintech, detail)
    with fintech.server.client() as http:
        hdrs = {} if header is None else {"Idempotency-Key": header}
        resp = fintech.post(http, "/payments", token, payment_body(detail), headers=hdrs)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"


def _race(n: int, fn: Any) -> list[httpx.Response]:
    out: list[Any] = [None] * n
    gate = threading.Barrier(n)

    def run(i: int) -> None:
        gate.wait()
        out[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_retries_with_one_key_make_one_payment(fintech: Fintech, server: Server) -> None:
    """Concurrent retries with the same key and body: all get the same 201, one transfer is booked."""
    detail = payment_initiation("6.00", remittance=f"race {uuid.uuid4().hex[:8]}")
    token = pay_token(fintech, detail)
    idem = key()
    before = accounts_of(server, "alice")["current/EUR"][2]
    got = _race(6, lambda i: post(fintech, token, payment_body(detail), idem))
    assert [r.status_code for r in got] == [201] * 6, [r.text for r in got]
    assert len({r.content for r in got}) == 1
    assert accounts_of(server, "alice")["current/EUR"][2] == before - 600
    assert db_rows(
        server, "SELECT COUNT(*) FROM bank_transfers WHERE remittance = ?", detail["remittanceInformationUnstructured"]
    ) == [(1,)]


def test_concurrent_executions_of_one_approval_make_one_payment(fintech: Fintech, server: Server) -> None:
    """Different keys, one approval, at once: exactly one 201, the others 409."""
    detail = payment_initiation("7.00", remittance=f"race {uuid.uuid4().hex[:8]}")
    token = pay_token(fintech, detail)
    got = _race(5, lambda i: post(fintech, token, payment_body(detail), key()))
    codes = sorted(r.status_code for r in got)
    assert codes == [201, 409, 409, 409, 409], [r.text for r in got]
    assert db_rows(
        server, "SELECT COUNT(*) FROM bank_transfers WHERE remittance = ?", detail["remittanceInformationUnstructured"]
    ) == [(1,)]


def test_concurrent_payments_that_would_overdraw_only_allowed_ones_succeed(fintech: Fintech, server: Server) -> None:
    """concurrent payments from one account (alice's savings, no overdraft) that
    together would overdraw it — exactly the ones the balance covers succeed; the books balance."""
    savings = accounts_of(server, "alice")["savings/EUR"]
    available = savings[2] + (savings[3] or 0)
    assert available > 100
    amount = available // 3 + 1  # two fit, three do not
    details = [
        payment_initiation(
            f"{amount // 100}.{amount % 100:02d}", debtorAccount={"iban": savings[1]}, remittance=f"drain {i}"
        )
        for i in range(4)
    ]
    tokens = [pay_token(fintech, d) for d in details]
    got = _race(4, lambda i: post(fintech, tokens[i], payment_body(details[i]), key()))
    codes = sorted(r.status_code for r in got)
    assert codes == [201, 201, 422, 422], [r.text for r in got]
    assert all(r.json()["error"] == "insufficient_funds" for r in got if r.status_code == 422)
    assert accounts_of(server, "alice")["savings/EUR"][2] == savings[2] - 2 * amount
    assert ledger_problems(server) == []


def test_insufficient_funds_writes_nothing(fintech: Fintech, server: Server) -> None:
    detail = payment_initiation("900000000.00")
    before = accounts_of(server, "alice")["current/EUR"][2]
    transfers = db_rows(server, "SELECT COUNT(*) FROM bank_transfers")
    resp = post(fintech, pay_token(fintech, detail), payment_body(detail), key())
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"] == "insufficient_funds"
    assert accounts_of(server, "alice")["current/EUR"][2] == before
    assert db_rows(server, "SELECT COUNT(*) FROM bank_transfers") == transfers


# -- who may see and do what --------------------------------------------------------------------------


def test_other_customers_payment_is_not_found(fintech: Fintech, server: Server) -> None:
    detail = payment_initiation("1.50")
    token = pay_token(fintech, detail)
    resp = post(fintech, token, payment_body(detail), key())
    assert resp.status_code == 201, resp.text
    bob = pay_token(fintech, payment_initiation("1.00"), username="bob")
    hidden = get(fintech, bob, resp.json()["Data"]["PaymentId"])
    assert hidden.status_code == 404, hidden.text
    assert get(fintech, token, "pay_doesnotexist").status_code == 404


def test_token_without_payment_detail_is_refused(fintech: Fintech, server: Server) -> None:
    """Scope `payments` but no payment_initiation detail: 403 insufficient_scope."""
    token = fintech.token(account_information(), scope="openid accounts payments")
    resp = post(fintech, token, payment_body(payment_initiation()), key())
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"] == "insufficient_scope"


def test_token_without_payments_scope_is_refused(fintech: Fintech, server: Server) -> None:
    detail = payment_initiation("1.00")
    token = fintech.token(detail, scope="openid accounts")
    resp = post(fintech, token, payment_body(detail), key())
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"] == "insufficient_scope"


def test_rfc9449_s7_1_bearer_presented_dpop_token_is_refused(fintech: Fintech, server: Server) -> None:
    """RFC 9449 §7.1: a DPoP-bound token presented as Bearer is refused (401), nothing moves."""
    detail = payment_initiation("1.00")
    token = pay_token(fintech, detail)
    with server.client() as http:
        resp = http.post(
            "/bank/v1/payments",
            json=payment_body(detail),
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key()},
        )
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"] == "invalid_token"


def test_other_clients_payment_is_not_found(
    fintech: Fintech, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Payment status only for the client that made it (same customer, another app: 404)."""
    detail = payment_initiation("1.25")
    resp = post(fintech, pay_token(fintech, detail), payment_body(detail), key())
    assert resp.status_code == 201, resp.text
    other = Fintech(
        server, tmp_path_factory.mktemp("bank-payments-other"), "--authorization-details-type", "payment_initiation"
    )
    hidden = get(other, pay_token(other, payment_initiation("1.00")), resp.json()["Data"]["PaymentId"])
    assert hidden.status_code == 404, hidden.text


def test_status_needs_the_status_action(fintech: Fintech, server: Server) -> None:
    detail = payment_initiation("1.75", actions=("initiate",))
    token = pay_token(fintech, detail)
    resp = post(fintech, token, payment_body(detail), key())
    assert resp.status_code == 201, resp.text
    status = get(fintech, token, resp.json()["Data"]["PaymentId"])
    assert status.status_code == 403, status.text
    assert status.json()["error"] == "insufficient_scope"


@pytest.mark.parametrize(
    "raw", [b"not json", b"[]", b'{"instructedAmount": {"currency": "EUR", "amount": 1.0}}', b'{"unknown": 1}']
)
def test_malformed_payment_body_is_invalid_request(fintech: Fintech, raw: bytes) -> None:
    token = pay_token(fintech, payment_initiation("1.00"))
    resp = post(fintech, token, raw, key())
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"


def test_repeated_json_members_are_refused_and_nothing_is_booked_rfc8259_4(fintech: Fintech, server: Server) -> None:
    """RFC 8259 §4: with a repeated member, which value counts depends on the reader. A body whose
    last `instructedAmount` is the approved one (and the first another amount) is refused with 400
    invalid_request, nothing is booked, and the approval stays usable for the exact body."""
    detail = payment_initiation("2.22")
    token = pay_token(fintech, detail)
    body = json.dumps(payment_body(detail))
    amount = json.dumps(detail["instructedAmount"])
    other = json.dumps({"currency": "EUR", "amount": "999.99"})
    before = accounts_of(server, "alice")["current/EUR"]
    for raw in (
        '{"instructedAmount": ' + other + ", " + body[1:],
        body[:-1] + ', "instructedAmount": ' + amount + "}",
        body[:-1] + ', "creditorAccount": {"iban": "DE89370400440532013000", "iban": "DE89370400440532013000"}}',
    ):
        resp = post(fintech, token, raw.encode(), key())
        assert resp.status_code == 400, (raw, resp.text)
        assert resp.json()["error"] == "invalid_request"
    assert accounts_of(server, "alice")["current/EUR"][2] == before[2]
    assert post(fintech, token, payment_body(detail), key()).status_code == 201
    assert ledger_problems(server) == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"a": NaN}',
        b'{"a": 1e999}',
        b"[" * 100 + b"]" * 100,
        b'{"creditorName": "\\ud800"}',
        b'{"creditorName": "a\\u0000"}',
        b'{"creditorName": "\xff"}',
        b"\xef\xbb\xbf{}",
    ],
)
def test_unreadable_json_is_invalid_request(fintech: Fintech, raw: bytes) -> None:
    """NaN/Infinity, numbers beyond a float, deep nesting, lone surrogates, U+0000, invalid UTF-8, a
    BOM (RFC 8259 §6, §8.1, §8.2, §9): one reader refuses them all with 400 invalid_request."""
    token = pay_token(fintech, payment_initiation("1.00"))
    resp = post(fintech, token, raw, key())
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"


def test_payments_methods(fintech: Fintech, server: Server) -> None:
    with server.client() as http:
        resp = http.put("/bank/v1/payments", content=b"{}")
        assert resp.status_code == 405 and resp.headers["allow"] == "POST"
        resp = http.delete("/bank/v1/payments/pay_x")
        assert resp.status_code == 405 and resp.headers["allow"] == "GET"


def test_refreshed_token_cannot_execute_the_approval_again(fintech: Fintech, server: Server) -> None:
    """Once per grant, not per token: a refreshed access token carries the same grant_id (409)."""
    detail = payment_initiation("1.10")
    client = fintech.client
    with server.client() as http, server.client(follow_redirects=False) as browser:
        # A payment alone gets no refresh token (oauth/offline_access.py): this app asks to stay connected.
        resp = client.flow(
            http, browser, scope="openid offline_access payments", authorization_details=json.dumps([detail])
        )
        assert resp.status_code == 200, resp.text
        first = resp.json()
        assert "refresh_token" in first, first
        refreshed = http.post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"], **client.auth_params()},
            headers=client.dpop_header("/token"),
        )
        assert refreshed.status_code == 200, refreshed.text
    assert post(fintech, first["access_token"], payment_body(detail), key()).status_code == 201
    again = post(fintech, refreshed.json()["access_token"], payment_body(detail), key())
    assert again.status_code == 409, again.text
    assert again.json()["error"] == "consent_already_used"


def test_journey_payer_chosen_at_consent_is_debited(fintech: Fintech, server: Server) -> None:
    """The journey: PAR → login → the customer picks the payer (savings) at consent → token →
    POST without debtorAccount → the chosen account is debited (the AS wrote it into the detail)."""
    savings = accounts_of(server, "alice")["savings/EUR"]
    detail = payment_initiation("0.50")
    fc = fintech.client
    with server.client() as http, server.client(follow_redirects=False) as browser:
        params, verifier = fc.request_params(scope="openid payments", authorization_details=json.dumps([detail]))
        pushed = fc.push(http, params)
        assert pushed.status_code == 201, pushed.text
        page = browser.get(
            "/authorize?" + urlencode({"client_id": fc.client_id, "request_uri": pushed.json()["request_uri"]})
        )
        page = follow_to_client(browser, page, fc.redirect_uri)
        if 'name="password"' in page.text:
            page = follow_to_client(browser, login(browser, page, "alice", DEMO_PASSWORD), fc.redirect_uri)
        assert f'name="debtor_account" value="{savings[1]}"' in page.text
        resp = consent(browser, page, choices={"debtor_account": savings[1]})
        assert resp.status_code == 303, resp.text[:300]
        code = query_of(resp.headers["location"])["code"]
        tok = fc.redeem(
            http, Authorized(code=code, params={}, verifier=verifier, redirect_uri=fc.redirect_uri, location="")
        )
    assert tok.status_code == 200, tok.text
    assert tok.json()["authorization_details"][0]["debtorAccount"] == {"iban": savings[1]}
    paid = post(fintech, tok.json()["access_token"], payment_body(detail), key())
    assert paid.status_code == 201, paid.text
    assert paid.json()["Data"]["DebtorAccount"] == {"iban": savings[1]}
    assert accounts_of(server, "alice")["savings/EUR"][2] == savings[2] - 50
