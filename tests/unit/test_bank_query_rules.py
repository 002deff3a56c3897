"""The bank API's query parameters (fingrade.bank.query): one strict parser for every endpoint.
Property: any query string is either a query whose every value is within what the ledger's columns
hold, or the bank's 400 invalid_request — never another exception (docs/banking-api.md "Errors")."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingrade.bank import ledger, query
from fingrade.protocol import rfc3339
from fingrade.protocol.errors import OAuthError

pytestmark = [pytest.mark.bank, pytest.mark.fuzz]

INT64 = 2**63


def transactions(raw: bytes) -> query.TransactionQuery:
    return query.transactions(query.parse(raw, query.TRANSACTIONS))


def refused(raw: bytes, allowed: frozenset[str] = query.TRANSACTIONS) -> str:
    with pytest.raises(OAuthError) as info:
        query.transactions(query.parse(raw, allowed))
    assert info.value.error == "invalid_request" and info.value.status == 400
    return info.value.description


def cursor(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def test_a_valid_transactions_query() -> None:
    q = transactions(
        b"fromBookingDateTime=2026-01-01&toBookingDateTime=2026-01-31T12%3A00%3A00%2B01%3A00&limit=7&cursor="
        + cursor(b"1780000000.txn_abc")
    )
    assert (q.booked_from, q.booked_to, q.limit) == (1767225600, 1769857200, 7)
    assert ledger.decode_cursor(q.cursor or "") == (1780000000, "txn_abc")
    assert transactions(b"").limit == ledger.DEFAULT_PAGE_SIZE
    assert transactions(b"toBookingDateTime=2026-01-31").booked_to == 1769903999  # the day's last second
    assert transactions(b"fromBookingDateTime=2026-01-31T00:00:00").booked_from == 1769817600  # no offset: UTC


@pytest.mark.parametrize(
    "raw",
    [
        b"limit=%C2%B2",
        b"limit=%D9%A3",
        b"limit=+5",
        b"limit=%205",
        b"limit=05",
        b"limit=0",
        b"limit=101",
        b"limit=",
        b"limit",
        b"limit=5&limit=5",
        b"limit=" + b"9" * 5000,
        b"cursor=" + cursor(b"1" * 120 + b".txn_x"),
        b"cursor=" + cursor(b"253402300800.txn_x"),
        b"cursor=" + cursor("\u0663.txn_x".encode()),
        b"cursor=%00",
        b"fromBookingDateTime=0001-01-01T00:00:00%2B01:00",
        b"toBookingDateTime=9999-12-31T23:59:59-01:00",
        b"fromBookingDateTime=2026-02-30",
        b"fromBookingDateTime=2026-01-01T00:00:00+01:00",  # '+' is a space
        b"fromBookingDateTime=2026-01-02&toBookingDateTime=2026-01-01",
        b"sort=asc",
        b"=1",
        b"&x",
        b"%zz",
        b"limit=%ff",
        b"limit=\xff",
        b"limit=5;cursor=x",
    ],
)
def test_malformed_queries_are_invalid_request(raw: bytes) -> None:
    refused(raw)


def test_endpoints_without_parameters_refuse_every_parameter() -> None:
    assert query.parse(b"", query.NONE) == query.parse(b"&&", query.NONE) == {}  # empty fields are skipped
    for raw in (b"limit=5", b"x", b"x=", b"=", b"&x&"):
        refused(raw, query.NONE)


_NAMES = st.sampled_from(["fromBookingDateTime", "toBookingDateTime", "limit", "cursor", "sort", "", "LIMIT"])
_DIGITS = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4)  # ², ٣, ３ ... and 0-9
_CURSORS = st.builds(
    lambda n, id_: cursor(f"{n}.{id_}".encode()).decode(),
    st.one_of(st.integers(-10, 10**130), st.just(INT64), _DIGITS),
    st.text(max_size=70),
)
_DATES = st.builds(
    lambda y, rest: f"{y:04d}{rest}",
    st.integers(0, 9999),
    st.sampled_from(
        [
            "-01-01",
            "-12-31",
            "-02-29",
            "-01-01T00:00:00Z",
            "-12-31T23:59:59-01:00",
            "-01-01T00:00:00+01:00",
            "-12-31T23:59:60",
            "-06-15T12:00:00.123456789Z",
        ]
    ),
)
_VALUES = st.one_of(st.text(max_size=40), _DIGITS, st.integers(-5, 10**25).map(str), _CURSORS, _DATES)


def _encoded(pairs: list[tuple[str, str]]) -> bytes:
    return "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in pairs).encode()


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.lists(st.tuples(_NAMES, _VALUES), max_size=5).map(_encoded), st.binary(max_size=80)))
def test_any_query_string_is_a_bounded_query_or_invalid_request(raw: bytes) -> None:
    """Property: a TransactionQuery whose bounds, page size and cursor fit the ledger (64-bit
    integer columns, ids of ours), or OAuthError 400 invalid_request."""
    try:
        q = transactions(raw)
    except OAuthError as exc:
        assert exc.error == "invalid_request" and exc.status == 400
        return
    for bound in (q.booked_from, q.booked_to):
        assert bound is None or rfc3339.MIN_EPOCH <= bound <= rfc3339.MAX_EPOCH
    assert 1 <= q.limit <= ledger.MAX_PAGE_SIZE
    if q.cursor is not None:
        booked_at, entry_id = ledger.decode_cursor(q.cursor)
        assert 0 <= booked_at <= rfc3339.MAX_EPOCH and entry_id.isascii() and len(entry_id) <= 64
