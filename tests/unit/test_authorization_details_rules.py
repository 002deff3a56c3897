"""RFC 9396 (Rich Authorization Requests): the pure validation and narrowing of
`authorization_details` (fingrade.oauth.authorization_details) with the open-banking types it
registers (fingrade.finance.open_banking), whose refusals are invalid_authorization_details (§5)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.details import IBAN, NOW, accounts, payment

from fingrade.finance import open_banking
from fingrade.oauth import authorization_details as ad
from fingrade.protocol.errors import OAuthError

pytestmark = pytest.mark.rar

ALL = frozenset(ad.SUPPORTED_TYPES)
CURRENCIES = frozenset({"CHF", "EUR", "GBP", "JPY", "KWD"})  # settings.payment_currencies
CTX = ad.Context(now=NOW, locations=frozenset({"https://as.example.com"}), currencies=CURRENCIES)


def parse(value: Any, allowed: frozenset[str] = ALL) -> list[dict[str, Any]]:
    return ad.parse(value if isinstance(value, str) else json.dumps(value), allowed, CTX)


def refused(value: Any, allowed: frozenset[str] = ALL) -> str:
    with pytest.raises(OAuthError) as info:
        parse(value, allowed)
    assert info.value.error == "invalid_authorization_details" and info.value.status == 400
    return info.value.description


def test_rfc9396_s2_payment_is_normalised() -> None:
    """RFC 9396 §2: an array of objects with `type`; the payment is returned normalised."""
    [p] = parse(
        [
            payment(
                instructedAmount={"currency": "EUR", "amount": "25"},
                creditorAccount={"iban": "gb33 bukb 2020 1555 5555 55"},
            )
        ]
    )
    assert p == {
        "type": "payment_initiation",
        "actions": ["initiate", "status"],
        "instructedAmount": {"currency": "EUR", "amount": "25.00"},
        "creditorName": "Acme Ltd",
        "creditorAccount": {"iban": IBAN},
        "remittanceInformationUnstructured": "Invoice 123",
    }


def test_rfc9396_s2_rfc_example_payment_is_accepted() -> None:
    """RFC 9396 §2: the payment of the RFC's own example (without its example.com location)."""
    [p] = parse(
        [
            {
                "type": "payment_initiation",
                "actions": ["initiate", "status", "cancel"],
                "instructedAmount": {"currency": "EUR", "amount": "123.50"},
                "creditorName": "Merchant A",
                "creditorAccount": {"iban": "DE02100100109307118603"},
                "remittanceInformationUnstructured": "Ref Number Merchant",
            }
        ]
    )
    assert p["instructedAmount"]["amount"] == "123.50"


def test_rfc9396_s2_account_information_defaults_and_bounds() -> None:
    """RFC 9396 §2 and §7.1: without expires_at the AS adds a 90-day validity."""
    [a] = parse([accounts(actions=["transactions", "accounts"])])
    assert a["actions"] == ["accounts", "transactions"]  # canonical order
    assert a["expires_at"] == "2026-12-20T14:13:20Z"
    [b] = parse(
        [
            accounts(
                expires_at="2027-01-01T01:00:00+01:00",
                accounts=[{"sortCodeAccountNumber": "20155512345678"}],
                transactions_from="2026-01-01",
                transactions_to="2026-03-31",
            )
        ]
    )
    assert b["expires_at"] == "2027-01-01T00:00:00Z" and b["accounts"] == [{"sortCodeAccountNumber": "20155512345678"}]


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("{not json", "not valid JSON"),
        ("[NaN]", "not valid JSON"),
        ('{"type": "payment_initiation"}', "JSON array"),
        ("[]", "must not be empty"),
        ([accounts()] * 6, "more than 5"),
        ("[" + " " * 5000 + "]", "longer than"),
        (["payment_initiation"], "JSON object"),
        ([{"actions": ["x"]}], "no type"),
        ([{"type": "tax_filing"}], "unknown type"),
        ('[{"type": "account_information", "actions": ["accounts"], "actions": ["balances"]}]', "repeated member"),
    ],
)
def test_rfc9396_s5_malformed_parameter_is_refused(value: Any, fragment: str) -> None:
    """RFC 9396 §5: a malformed parameter or an unknown type is invalid_authorization_details."""
    assert fragment in refused(value)


def test_rfc9396_s10_2_type_not_registered_by_client_is_refused() -> None:
    """RFC 9396 §10.2 (client metadata authorization_details_types) and §5."""
    assert "may not use" in refused([payment()], frozenset({"account_information"}))
    assert "may not use" in refused([accounts()], frozenset())


@pytest.mark.parametrize(
    "bad",
    [
        {"iban": "GB34BUKB20201555555555"},  # wrong check digits
        {"iban": "GB33BUKB2020155555555X"},
        {"iban": "XX"},
        {"iban": 12},
        {"sortCodeAccountNumber": "2015551234567"},
        {"iban": IBAN, "sortCodeAccountNumber": "20155512345678"},
        {},
        {"iban": IBAN, "name": "x"},
    ],
)
def test_rfc9396_s5_bad_creditor_account_is_refused(bad: dict[str, Any]) -> None:
    """RFC 9396 §5: an object not conforming to its type (ISO 13616 mod 97 checksum)."""
    refused([payment(creditorAccount=bad)])


@pytest.mark.parametrize(
    "amount",
    [
        {"currency": "EUR", "amount": "0"},
        {"currency": "EUR", "amount": "0.00"},
        {"currency": "EUR", "amount": "-5.00"},
        {"currency": "EUR", "amount": "1.234"},
        {"currency": "EUR", "amount": 25},
        {"currency": "EUR", "amount": "1e3"},
        {"currency": "EUR", "amount": "01.00"},
        {"currency": "EUR", "amount": "1000000000.00"},
        {"currency": "JPY", "amount": "100.5"},
        {"currency": "eur", "amount": "1.00"},
        {"currency": "XYZ", "amount": "1.00"},
        {"currency": "EURO", "amount": "1.00"},
        {"currency": "EUR"},
        {"currency": "EUR", "amount": "1.00", "fx": "x"},
    ],
)
def test_rfc9396_s5_bad_instructed_amount_is_refused(amount: dict[str, Any]) -> None:
    """RFC 9396 §5: amount > 0, at most the currency's decimals (ISO 4217), a string, bounded."""
    refused([payment(instructedAmount=amount)])


@pytest.mark.parametrize("currency", ["AUD", "CAD", "BIF"])
def test_rfc9396_s5_iso_4217_currency_outside_payment_currencies_is_refused(currency: str) -> None:
    """RFC 9396 §5: a valid ISO 4217 code the bank does not make payments in does not conform; the
    description says which currencies do, so the app can tell its user."""
    amount = {"currency": currency, "amount": "10"}
    assert refused([payment(instructedAmount=amount)]) == (
        f"authorization_details[0]: instructedAmount.currency {currency}: payments are made only in "
        "CHF, EUR, GBP, JPY, KWD"
    )
    wider = ad.Context(now=NOW, locations=CTX.locations, currencies=CURRENCIES | {currency})
    [p] = ad.parse(json.dumps([payment(instructedAmount=amount)]), ALL, wider)
    assert p["instructedAmount"]["currency"] == currency


def test_rfc9396_s6_1_narrowing_checks_the_currency_too() -> None:
    """A token request's details are validated with the same rules, currencies included (§6.1)."""
    granted = parse([payment()])
    narrower = ad.Context(now=NOW, locations=CTX.locations, currencies=frozenset({"GBP"}))
    with pytest.raises(OAuthError, match="payments are made only in GBP"):
        ad.narrow(json.dumps([payment()]), granted, ALL, narrower)
    assert ad.narrow(json.dumps([payment()]), granted, ALL, CTX) == granted


def test_account_information_needs_no_currency() -> None:
    """The currency rule is the payment's: account access is granted whatever the accounts' currencies."""
    none = ad.Context(now=NOW, locations=CTX.locations, currencies=frozenset({"EUR"}))
    assert ad.parse(json.dumps([accounts()]), ALL, none)[0]["type"] == "account_information"


def test_rfc9396_s5_three_decimals_where_the_currency_has_them() -> None:
    """ISO 4217 minor units: KWD has three decimals, JPY none."""
    assert (
        parse([payment(instructedAmount={"currency": "KWD", "amount": "1.234"})])[0]["instructedAmount"]["amount"]
        == "1.234"
    )
    assert (
        parse([payment(instructedAmount={"currency": "JPY", "amount": "100"})])[0]["instructedAmount"]["amount"]
        == "100"
    )


@pytest.mark.parametrize(
    "entry",
    [
        payment(chargeBearer="DEBT"),  # unknown member of a known type: fail closed
        accounts(datatypes=["x"]),
        accounts(identifier="x"),
        accounts(privileges=["admin"]),
        payment(creditorName=""),
        payment(creditorName="x" * 141),
        payment(creditorName=None),
        payment(remittanceInformationUnstructured="a\u202eb"),
        payment(actions=["status"]),
        payment(locations=["https://evil.example"]),
        accounts(actions=[]),
        accounts(actions=["balances", "balances"]),
        accounts(actions=["write"]),
        accounts(actions=None),
        accounts(expires_at="2026-09-20T00:00:00Z"),  # in the past
        accounts(expires_at="2027-09-21T00:00:00Z"),  # more than 180 days
        accounts(expires_at="2027-01-01"),
        accounts(transactions_from="2026-13-01"),
        accounts(transactions_from="2026-03-01", transactions_to="2026-01-01"),
        accounts(actions=["balances"], transactions_from="2026-01-01"),
        accounts(accounts=[]),
        accounts(accounts=[{"iban": IBAN}, {"iban": IBAN}]),
    ],
)
def test_rfc9396_s5_object_not_conforming_to_its_type_is_refused(entry: dict[str, Any]) -> None:
    """RFC 9396 §5: unknown members, missing or malformed members → invalid_authorization_details."""
    refused([entry])


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00+01:00",  # 31 December of year 0 in UTC
        "9999-12-31T23:59:59-01:00",  # year 10000 in UTC
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "0000-01-01T00:00:00Z",
        "2027-02-29T00:00:00Z",  # not a leap year
        "2027-01-01T24:00:00Z",
        "2027-01-01T00:00:00+24:00",
        "2027-01-01T00:00:00." + "0" * 60 + "Z",  # longer than any date-time needs to be
        "2027-01-01T00:00:00",  # RFC 3339 §5.6: the offset is required
        "２０２７-01-01T00:00:00Z",  # digits, but not ASCII ones
    ],
)
def test_rfc3339_expires_at_at_the_ends_of_the_calendar_is_refused(value: str) -> None:
    """RFC 3339 §5.6 date-times that Python's datetime cannot hold in UTC, or that are not valid at
    all, are invalid_authorization_details (RFC 9396 §5), never an error of the server."""
    assert "expires_at" in refused([accounts(expires_at=value)])


def utc(epoch: int) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rfc3339_like() -> st.SearchStrategy[str]:
    """Strings shaped like RFC 3339 date-times: well-formed ones at the ends of the calendar (where
    an offset moves the instant out of years 1-9999), and ones with every field a little out of range."""
    two = st.integers(0, 99).map(lambda n: f"{n:02d}")
    hour, minute = st.integers(0, 23).map(lambda n: f"{n:02d}"), st.integers(0, 59).map(lambda n: f"{n:02d}")
    offset = st.tuples(st.sampled_from("+-"), hour, minute).map(lambda t: f"{t[0]}{t[1]}:{t[2]}")
    at_the_ends = st.builds(
        lambda d, h, m, s, o: f"{d}T{h}:{m}:{s}{o}",
        st.sampled_from(["0001-01-01", "9999-12-31"]),
        hour,
        minute,
        minute,
        offset,
    )
    year = st.one_of(st.integers(0, 9999), st.integers(2026, 2027)).map(lambda n: f"{n:04d}")
    frac = st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=12).map(lambda d: "." + d))
    loose = st.builds(
        lambda y, mo, d, sep, h, mi, s, f, o: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{f}{o}",
        year,
        two,
        two,
        st.sampled_from("Tt "),
        two,
        two,
        st.sampled_from(["00", "59", "60", "61"]),
        frac,
        st.one_of(
            st.sampled_from(["Z", "z", "", "-00:00"]),
            offset,
            st.tuples(st.sampled_from("+-"), two, two).map(lambda t: f"{t[0]}{t[1]}:{t[2]}"),
        ),
    )
    return st.one_of(at_the_ends, loose)


@settings(max_examples=400, deadline=None)
@given(st.one_of(_rfc3339_like(), st.text(max_size=40)))
def test_rfc3339_any_expires_at_is_accepted_or_refused_cleanly(value: str) -> None:
    """Property: whatever `expires_at` holds, the request is either valid (a UTC second within the
    180 days allowed) or invalid_authorization_details (RFC 9396 §5) — no other exception."""
    try:
        [d] = parse([accounts(expires_at=value)])
    except OAuthError as exc:
        assert exc.error == "invalid_authorization_details" and exc.status == 400
        return
    assert len(d["expires_at"]) == 20 and d["expires_at"].endswith("Z")
    assert utc(NOW) < d["expires_at"] <= utc(NOW + open_banking.MAX_VALIDITY.days * 86400)


def test_rfc9396_s2_2_locations_only_for_our_resource_server() -> None:
    """RFC 9396 §2.2 `locations`: accepted when it names the resource server our tokens are for."""
    assert parse([accounts(locations=["https://as.example.com"])])[0]["locations"] == ["https://as.example.com"]


def test_rfc9396_s6_1_narrowing_keeps_within_the_grant() -> None:
    """RFC 9396 §6.1: a token request may ask for less (fewer actions), never more."""
    granted = parse([accounts(transactions_from="2026-01-01"), payment()])
    got = ad.narrow(json.dumps([{"type": "account_information", "actions": ["balances"]}]), granted, ALL, CTX)
    assert got == [{**granted[0], "actions": ["balances"]}]
    for wider in (
        [accounts(actions=["balances"], transactions_from="2025-01-01")],
        [{"type": "account_information", "actions": ["balances"], "expires_at": "2027-03-01T00:00:00Z"}],
        [payment(instructedAmount={"currency": "EUR", "amount": "26.00"})],
        [payment(creditorAccount={"iban": "DE02100100109307118603"})],
    ):
        with pytest.raises(OAuthError) as info:
            ad.narrow(json.dumps(wider), granted, ALL, CTX)
        assert info.value.error == "invalid_authorization_details"
    assert ad.narrow(json.dumps([payment()]), granted, ALL, CTX) == [granted[1]]


def test_rfc9396_s6_expired_account_access_is_no_longer_carried() -> None:
    """RFC 9396 §6/§7: later tokens of a grant carry only the details still in force."""
    granted = parse([accounts(expires_at="2026-10-01T00:00:00Z"), payment()])
    assert ad.unexpired(granted, NOW) == granted
    later = NOW + 30 * 86400  # 2026-10-21
    assert ad.unexpired(granted, later) == [granted[1]]


@pytest.mark.parametrize(
    "types, ok",
    [
        (["account_information", "payment_initiation"], True),
        ([], True),
        (["tax_filing"], False),
        ("payment_initiation", False),
        ([1], False),
    ],
)
def test_rfc9396_s10_2_registration_validates_authorization_details_types(base_core: Any, types: Any, ok: bool) -> None:
    """RFC 9396 §10.2: client metadata authorization_details_types, only supported types."""
    from fingrade.oauth.registration import build_client

    meta = {
        "client_name": "Fintech",
        "redirect_uris": ["https://app.example.com/cb"],
        "authorization_details_types": types,
    }
    if ok:
        client, _secret = build_client(base_core, meta)
        assert client.metadata.get("authorization_details_types", []) == types
    else:
        with pytest.raises(OAuthError) as info:
            build_client(base_core, meta)
        assert info.value.error == "invalid_client_metadata"
