"""The bank's account information API (/bank/v1) on the real server, both backends, with DPoP-bound
tokens from the real flow (PAR + RFC 9396 authorization_details + login + consent).

Covers RFC 6750 §2/§3.1 and RFC 9449 §7 at the resource server, the
consent rules (docs/banking-api.md "Access rules"), pagination, the interaction headers."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from support.bank import PREFIX, Fintech, account_information
from support.inprocess import InProcessServer
from support.polling import wait_for
from support.refusals import www_authenticate
from support.server import Server

pytestmark = pytest.mark.bank

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def fintech(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Fintech:
    return Fintech(server, tmp_path_factory.mktemp("bank-fintech"))


@pytest.fixture(scope="module")
def full_token(fintech: Fintech) -> str:
    return fintech.token(account_information())


@pytest.fixture(scope="module")
def alice_accounts(fintech: Fintech, full_token: str, server: Server) -> list[dict]:
    with server.client() as http:
        resp = fintech.get(http, "/accounts", full_token)
    assert resp.status_code == 200, resp.text
    return resp.json()["Data"]["Account"]


@pytest.fixture(scope="module")
def bob_account(fintech: Fintech, server: Server) -> dict:
    token = fintech.token(account_information(("accounts",)), username="bob")
    with server.client() as http:
        resp = fintech.get(http, "/accounts", token)
    assert resp.status_code == 200, resp.text
    return resp.json()["Data"]["Account"][0]


def payload(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def assert_resource_error(resp: httpx.Response, status: int, error: str, scheme: str = "dpop") -> None:
    assert resp.status_code == status, resp.text
    assert resp.json()["error"] == error
    challenge = www_authenticate(resp)
    assert challenge["scheme"] == scheme
    assert challenge.get("error") == error
    assert resp.headers["cache-control"] == "no-store"
    assert UUID4.fullmatch(resp.headers["x-fapi-interaction-id"])


# -- every endpoint with the right token -------------------------------------------------------------


def test_accounts_lists_only_the_customers_accounts(
    fintech: Fintech, full_token: str, alice_accounts: list[dict], bob_account: dict
) -> None:
    """GET /accounts lists the customer's (`sub`) accounts, in the documented shape."""
    assert len(alice_accounts) >= 2
    ids = {a["AccountId"] for a in alice_accounts}
    assert bob_account["AccountId"] not in ids
    first = alice_accounts[0]
    assert set(first) >= {"AccountId", "Currency", "AccountType", "AccountSubType", "Nickname", "Status", "Account"}
    assert first["Account"][0]["SchemeName"] == "UK.OBIE.IBAN"


def test_account_balances_and_transactions(
    fintech: Fintech, full_token: str, alice_accounts: list[dict], server: Server
) -> None:
    """GET /accounts/{id}, /balances and /transactions with a DPoP-bound token (RFC 9449 §7.1)."""
    acc = alice_accounts[0]["AccountId"]
    with server.client() as http:
        one = fintech.get(http, f"/accounts/{acc}", full_token)
        assert one.status_code == 200, one.text
        assert one.json()["Data"]["Account"][0]["AccountId"] == acc
        bal = fintech.get(http, f"/accounts/{acc}/balances", full_token)
        assert bal.status_code == 200, bal.text
        types = {b["Type"]: b for b in bal.json()["Data"]["Balance"]}
        assert set(types) == {"InterimBooked", "InterimAvailable"}
        assert re.fullmatch(r"[0-9]+\.[0-9]{2}", types["InterimBooked"]["Amount"]["Amount"])
        assert types["InterimBooked"]["CreditDebitIndicator"] in ("Credit", "Debit")
        tx = fintech.get(http, f"/accounts/{acc}/transactions", full_token, params={"limit": "5"})
        assert tx.status_code == 200, tx.text
        rows = tx.json()["Data"]["Transaction"]
        assert len(rows) == 5 and all(r["AccountId"] == acc and r["Status"] == "Booked" for r in rows)
        assert tx.json()["Links"]["Next"].startswith(server.base_url + PREFIX + f"/accounts/{acc}/transactions?")
        assert tx.headers["cache-control"] == "no-store"


def test_pagination_through_all_transactions(
    fintech: Fintech, full_token: str, alice_accounts: list[dict], server: Server
) -> None:
    """Following `Links.Next` yields every transaction once, newest first, the same as big pages."""
    acc = alice_accounts[0]["AccountId"]

    def walk(limit: int) -> list[dict]:
        seen: list[dict] = []
        params: dict[str, str] | None = {"limit": str(limit)}
        with server.client() as http:
            for _ in range(200):
                resp = fintech.get(http, f"/accounts/{acc}/transactions", full_token, params=params)
                assert resp.status_code == 200, resp.text
                seen += resp.json()["Data"]["Transaction"]
                nxt = resp.json()["Links"].get("Next")
                if not nxt:
                    return seen
                params = {k: v[0] for k, v in parse_qs(urlsplit(nxt).query).items()}
        raise AssertionError("pagination does not end")

    small, big = walk(7), walk(100)
    ids = [t["TransactionId"] for t in small]
    assert len(ids) == len(set(ids)) > 14
    assert ids == [t["TransactionId"] for t in big]
    stamps = [t["BookingDateTime"] for t in small]
    assert stamps == sorted(stamps, reverse=True)


def test_transactions_date_filter(
    fintech: Fintech, full_token: str, alice_accounts: list[dict], server: Server
) -> None:
    acc = alice_accounts[0]["AccountId"]
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=20)).date()
    start, end = f"{day}T00:00:00Z", f"{day + dt.timedelta(days=10)}T00:00:00Z"
    with server.client() as http:
        resp = fintech.get(
            http,
            f"/accounts/{acc}/transactions",
            full_token,
            params={"fromBookingDateTime": start, "toBookingDateTime": end, "limit": "100"},
        )
        assert resp.status_code == 200, resp.text
        rows = resp.json()["Data"]["Transaction"]
        assert rows and all(start <= r["BookingDateTime"] <= end for r in rows)
        bad = fintech.get(
            http, f"/accounts/{acc}/transactions", full_token, params={"fromBookingDateTime": "yesterday"}
        )
        assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
        bad = fintech.get(http, f"/accounts/{acc}/transactions", full_token, params={"limit": "1000"})
        assert bad.status_code == 400


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "\u00b2"},  # str.isdigit() says yes, int() says no
        {"limit": "\u0663"},  # int() reads ARABIC-INDIC DIGIT THREE as 3
        {"limit": " 5"},
        {"limit": "+5"},
        {"limit": "05"},
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "9" * 400},
        {"limit": ""},
        {"cursor": _cursor(b"1" * 120 + b".txn_x")},  # a 64-bit integer column cannot hold it
        {"cursor": _cursor(b"99999999999999999999.txn_x")},
        {"cursor": _cursor("\u00b2".encode() + b".txn_x")},
        {"cursor": _cursor(b"1780000000.txn x")},
        {"cursor": "MTc4MDAwMDAwMC50eG5feA=="},  # padding: never what Links.Next holds
        {"fromBookingDateTime": "0001-01-01T00:00:00+01:00"},  # before year 1 in UTC
        {"toBookingDateTime": "9999-12-31T23:59:59-01:00"},  # after year 9999 in UTC
        {"fromBookingDateTime": "2026-02-30"},
        {"fromBookingDateTime": "\u0662\u0660\u0662\u0666-01-01"},
        {"fromBookingDateTime": "2026-01-02", "toBookingDateTime": "2026-01-01"},
        {"sort": "asc"},  # not a parameter of this endpoint
    ],
)
def test_transactions_query_is_parsed_strictly(
    fintech: Fintech, full_token: str, alice_accounts: list[dict], server: Server, query: dict[str, str]
) -> None:
    """ASCII digits only, ranges bounded, cursors validated and bounded, dates strict (RFC 3339 §5.6):
    every malformed query parameter is the bank's 400 invalid_request, never a 500."""
    acc = alice_accounts[0]["AccountId"]
    with server.client() as http:
        resp = fintech.get(http, f"/accounts/{acc}/transactions", full_token, params=query)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"
    assert resp.headers["cache-control"] == "no-store" and UUID4.fullmatch(resp.headers["x-fapi-interaction-id"])


def test_query_bounds_at_the_ends_of_the_calendar_are_accepted(
    fintech: Fintech, full_token: str, alice_accounts: list[dict], server: Server
) -> None:
    acc = alice_accounts[0]["AccountId"]
    with server.client() as http:
        resp = fintech.get(
            http,
            f"/accounts/{acc}/transactions",
            full_token,
            params={"fromBookingDateTime": "0001-01-01", "toBookingDateTime": "9999-12-31T23:59:59Z", "limit": "100"},
        )
    assert resp.status_code == 200, resp.text
    assert resp.json()["Data"]["Transaction"]


@pytest.mark.parametrize("path", ["/accounts", "/accounts/{acc}", "/accounts/{acc}/balances"])
@pytest.mark.parametrize("raw", ["limit=5", "x", "%zz", "a=1&a=1", "cursor=" + "A" * 10])
def test_endpoints_without_parameters_refuse_a_query(
    fintech: Fintech, full_token: str, alice_accounts: list[dict], server: Server, path: str, raw: str
) -> None:
    """One query parser for every endpoint: a parameter an endpoint does not have is refused (400),
    not silently ignored."""
    path = path.format(acc=alice_accounts[0]["AccountId"])
    with server.client() as http:
        resp = fintech.get(http, f"{path}?{raw}", full_token)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_request"


# -- consent rules ------------------------------------------------------------------------------------


def test_rfc9396_transactions_limited_to_granted_dates(
    fintech: Fintech, alice_accounts: list[dict], server: Server
) -> None:
    """`transactions_from` / `transactions_to` bound what the token can read, whatever is asked."""
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=40)).date()
    token = fintech.token(
        account_information(
            ("transactions",), transactions_from=str(day), transactions_to=str(day + dt.timedelta(days=14))
        )
    )
    acc = alice_accounts[0]["AccountId"]
    with server.client() as http:
        resp = fintech.get(http, f"/accounts/{acc}/transactions", token, params={"limit": "100"})
        assert resp.status_code == 200, resp.text
        rows = resp.json()["Data"]["Transaction"]
        assert rows
        assert all(str(day) <= r["BookingDateTime"][:10] <= str(day + dt.timedelta(days=14)) for r in rows)
        outside = fintech.get(
            http,
            f"/accounts/{acc}/transactions",
            token,
            params={"fromBookingDateTime": str(day + dt.timedelta(days=20))},
        )
        assert outside.status_code == 200 and outside.json()["Data"]["Transaction"] == []


def test_rfc6750_3_1_missing_action_is_insufficient_scope(
    fintech: Fintech, alice_accounts: list[dict], server: Server
) -> None:
    """A consent without `balances` / `transactions` / `accounts` gets 403 insufficient_scope with a
    DPoP challenge (RFC 6750 §3.1, RFC 9449 §7.1)."""
    acc = alice_accounts[0]["AccountId"]
    only_accounts = fintech.token(account_information(("accounts",)))
    only_balances = fintech.token(account_information(("balances",)))
    with server.client() as http:
        assert fintech.get(http, f"/accounts/{acc}", only_accounts).status_code == 200
        assert_resource_error(fintech.get(http, f"/accounts/{acc}/balances", only_accounts), 403, "insufficient_scope")
        assert_resource_error(
            fintech.get(http, f"/accounts/{acc}/transactions", only_accounts), 403, "insufficient_scope"
        )
        assert fintech.get(http, f"/accounts/{acc}/balances", only_balances).status_code == 200
        assert_resource_error(fintech.get(http, "/accounts", only_balances), 403, "insufficient_scope")


def test_rfc9396_token_without_account_information_is_refused(
    fintech: Fintech, alice_accounts: list[dict], server: Server
) -> None:
    """The `accounts` scope alone grants nothing (least privilege): 403 insufficient_scope."""
    token = fintech.token()
    assert "authorization_details" not in payload(token)
    with server.client() as http:
        assert_resource_error(fintech.get(http, "/accounts", token), 403, "insufficient_scope")


def test_scope_accounts_is_required(fintech: Fintech, server: Server) -> None:
    token = fintech.token(account_information(), scope="openid")
    with server.client() as http:
        assert_resource_error(fintech.get(http, "/accounts", token), 403, "insufficient_scope")


def test_rfc9396_only_listed_accounts(fintech: Fintech, alice_accounts: list[dict], server: Server) -> None:
    """A consent naming one IBAN shows that account only; the customer's others look absent (404)."""
    first, second = alice_accounts[0], alice_accounts[1]
    token = fintech.token(account_information(accounts=[{"iban": first["Account"][0]["Identification"]}]))
    with server.client() as http:
        listed = fintech.get(http, "/accounts", token).json()["Data"]["Account"]
        assert [a["AccountId"] for a in listed] == [first["AccountId"]]
        assert fintech.get(http, f"/accounts/{first['AccountId']}/balances", token).status_code == 200
        for path in ("", "/balances", "/transactions"):
            resp = fintech.get(http, f"/accounts/{second['AccountId']}{path}", token)
            assert resp.status_code == 404 and resp.json()["error"] == "not_found"


def test_other_customers_account_is_not_found(
    fintech: Fintech, full_token: str, bob_account: dict, server: Server
) -> None:
    """Another customer's account id answers exactly like an id that does not exist."""
    with server.client() as http:
        for path in ("", "/balances", "/transactions"):
            theirs = fintech.get(http, f"/accounts/{bob_account['AccountId']}{path}", full_token)
            none = fintech.get(http, f"/accounts/acc_does_not_exist{path}", full_token)
            assert theirs.status_code == none.status_code == 404
            assert theirs.json() == none.json()


def test_rfc9396_expired_consent_is_refused(clocked_server: InProcessServer, tmp_path: Path) -> None:
    """After `expires_at` the consent is over: 401 invalid_token although the token itself is valid.
    The server runs in this process on a clock the test moves (the bank's too), to the second."""
    fintech = Fintech(clocked_server, tmp_path)
    clock = clocked_server.clock
    clock.freeze()
    expires = clock() + 60
    token = fintech.token(
        account_information(expires_at=dt.datetime.fromtimestamp(expires, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    )
    assert payload(token)["exp"] > expires + 1  # the token outlives the consent
    with clocked_server.client() as http:
        listed = fintech.get(http, "/accounts", token)
        assert listed.status_code == 200, listed.text
        acc = listed.json()["Data"]["Account"][0]["AccountId"]
        clock.advance(59)
        assert fintech.get(http, f"/accounts/{acc}/balances", token).status_code == 200
        clock.advance(1)
        assert_resource_error(fintech.get(http, f"/accounts/{acc}/balances", token), 401, "invalid_token")


def test_rfc7009_revoked_token_refused_within_cache_time(clocked_server: InProcessServer, tmp_path: Path) -> None:
    """A revoked token is refused once the bank's positive introspection cache (default 2 s) has
    lapsed. The server runs in this process on a clock the test moves (the bank's too)."""
    fintech = Fintech(clocked_server, tmp_path)
    clock = clocked_server.clock
    clock.freeze()
    token = fintech.token(account_information())
    with clocked_server.client() as http:
        assert fintech.get(http, "/accounts", token).status_code == 200
        revoked = http.post("/revoke", data={"token": token, **fintech.client.auth_params()})
        assert revoked.status_code == 200, revoked.text
        clock.advance(2)
        assert_resource_error(fintech.get(http, "/accounts", token), 401, "invalid_token")


# -- the token and the proof ------------------------------------------------------------------------


def test_rfc9449_7_2_dpop_token_as_bearer_refused(full_token: str, alice_accounts: list[dict], server: Server) -> None:
    acc = alice_accounts[0]["AccountId"]
    with server.client() as http:
        resp = http.get(f"{PREFIX}/accounts/{acc}/balances", headers={"Authorization": f"Bearer {full_token}"})
    assert resp.status_code == 401
    assert www_authenticate(resp)["error"] == "invalid_token"


def test_rfc9449_11_1_replayed_proof_refused(
    fintech: Fintech, full_token: str, alice_accounts: list[dict], server: Server
) -> None:
    acc = alice_accounts[0]["AccountId"]
    path = f"/accounts/{acc}/balances"
    proof = fintech.proof(path, full_token)
    headers = {"Authorization": f"DPoP {full_token}", "DPoP": proof}
    with server.client() as http:
        assert http.get(PREFIX + path, headers=headers).status_code == 200
        assert_resource_error(http.get(PREFIX + path, headers=headers), 401, "invalid_dpop_proof")


def test_rfc9449_4_3_proof_for_another_url_or_token_refused(
    fintech: Fintech, full_token: str, alice_accounts: list[dict], server: Server
) -> None:
    """htu is checked against the configured public URL; ath binds the proof to the token."""
    acc = alice_accounts[0]["AccountId"]
    path = f"/accounts/{acc}/balances"
    other = fintech.token(account_information())
    cases = [
        fintech.proof("/accounts", full_token),
        fintech.proof(path, other),
        fintech.proof(path, full_token, method="POST"),
        fintech.client.dpop.proof("GET", "https://evil.example" + PREFIX + path, token=full_token),
    ]
    with server.client() as http:
        for proof in cases:
            resp = http.get(PREFIX + path, headers={"Authorization": f"DPoP {full_token}", "DPoP": proof})
            assert_resource_error(resp, 401, "invalid_dpop_proof")
        missing = http.get(PREFIX + path, headers={"Authorization": f"DPoP {full_token}"})
        assert_resource_error(missing, 401, "invalid_dpop_proof")


def test_rfc6750_2_3_token_in_query_refused(full_token: str, fintech: Fintech, server: Server) -> None:
    with server.client() as http:
        resp = http.get(
            f"{PREFIX}/accounts",
            params={"access_token": full_token},
            headers={"DPoP": fintech.proof("/accounts", full_token)},
        )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"
    assert "www-authenticate" in resp.headers


def test_rfc6750_3_1_no_token(server: Server) -> None:
    with server.client() as http:
        resp = http.get(f"{PREFIX}/accounts")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert "error=" not in resp.headers["www-authenticate"]  # §3.1: no error code without a token


def test_rfc9068_4_tampered_or_foreign_tokens_refused(fintech: Fintech, full_token: str, server: Server) -> None:
    """A token whose signature does not verify, or a non-access-token JWT, is invalid_token."""
    head, body, sig = full_token.split(".")
    claims = payload(full_token)
    claims["sub"] = "someone-else"
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{head}.{forged_body}.{sig}"
    with server.client() as http:
        resp = fintech.get(http, "/accounts", forged)
        assert_resource_error(resp, 401, "invalid_token")


# -- interaction headers ------------------------------------------------------------


def test_fapi_interaction_id_echoed_or_generated(fintech: Fintech, full_token: str, server: Server) -> None:
    sent = str(uuid.uuid4())
    with server.client() as http:
        ok = fintech.get(http, "/accounts", full_token, headers={"x-fapi-interaction-id": sent})
        assert ok.status_code == 200 and ok.headers["x-fapi-interaction-id"] == sent
        fresh = fintech.get(http, "/accounts", full_token)
        assert UUID4.fullmatch(fresh.headers["x-fapi-interaction-id"])
        bad = fintech.get(http, "/accounts", full_token, headers={"x-fapi-interaction-id": "not-a-uuid\u00e9"[:10]})
        assert bad.status_code == 200 and UUID4.fullmatch(bad.headers["x-fapi-interaction-id"])
        for resp in (
            http.get(f"{PREFIX}/accounts", headers={"x-fapi-interaction-id": sent}),
            http.get(f"{PREFIX}/nothing-here", headers={"x-fapi-interaction-id": sent}),
            fintech.get(http, "/accounts/acc_nope", full_token, headers={"x-fapi-interaction-id": sent}),
        ):
            assert resp.status_code in (401, 404)
            assert resp.headers["x-fapi-interaction-id"] == sent


def test_fapi_customer_ip_and_auth_date_validated(fintech: Fintech, full_token: str, server: Server) -> None:
    good = {"x-fapi-customer-ip-address": "2001:db8::1", "x-fapi-auth-date": "Sun, 10 Sep 2017 19:43:31 GMT"}
    with server.client() as http:
        assert fintech.get(http, "/accounts", full_token, headers=good).status_code == 200
        for bad in (
            {"x-fapi-customer-ip-address": "300.1.1.1"},
            {"x-fapi-auth-date": "2017-09-10"},
            {"x-fapi-auth-date": "Sun, 10 Sep 2017 19:43:31 CET"},
        ):
            resp = fintech.get(http, "/accounts", full_token, headers=bad)
            assert resp.status_code == 400 and resp.json()["error"] == "invalid_request"
            assert UUID4.fullmatch(resp.headers["x-fapi-interaction-id"])


def test_interaction_headers_never_put_client_text_into_the_log(
    fintech: Fintech, full_token: str, server: Server
) -> None:
    """x-fapi-customer-ip-address is an IP address (FAPI 1.0 Part 1 §6.2.2.4), nothing more: an IPv6
    zone id carrying log fields is refused (400) and never logged; x-customer-user-agent is free text
    and is never logged; a valid address is logged in its canonical form only."""
    marker = "evil" + uuid.uuid4().hex[:8]
    log = server.data_dir / "server.log"
    with server.client() as http:
        for hostile in (f"fe80::1%eth0 client={marker} auth_date=x", f"::1%{marker}", f"192.0.2.7 {marker}"):
            resp = fintech.get(http, "/accounts", full_token, headers={"x-fapi-customer-ip-address": hostile})
            assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", resp.text
            assert marker not in resp.text
        for hostile in (f"Sun, 10 Sep 2017 19:43:31 GMT {marker}=1", "Mon, 10 Sep 2017 19:43:31 GMT"):
            resp = fintech.get(http, "/accounts", full_token, headers={"x-fapi-auth-date": hostile})
            assert resp.status_code == 400 and resp.json()["error"] == "invalid_request", resp.text
        ok = fintech.get(
            http,
            "/accounts",
            full_token,
            headers={
                "x-fapi-customer-ip-address": "2001:DB8:0:0:0:0:0:7",
                "x-customer-user-agent": f"Mozilla/5.0 client={marker}",
                "x-fapi-interaction-id": f"{uuid.uuid4()} client={marker}",
            },
        )
        assert ok.status_code == 200, ok.text
    wait_for(lambda: "customer_ip=2001:db8::7" in log.read_text(errors="replace"), timeout=5)
    assert marker not in log.read_text(errors="replace")


def test_methods_other_than_get_refused(fintech: Fintech, full_token: str, server: Server) -> None:
    with server.client() as http:
        resp = http.post(
            f"{PREFIX}/accounts",
            headers={"Authorization": f"DPoP {full_token}", "DPoP": fintech.proof("/accounts", full_token, "POST")},
        )
    assert resp.status_code == 405 and resp.headers["allow"] == "GET"
