"""RFC 3339 §5.6 date-times and dates (fingrade.protocol.rfc3339): the one parser behind RFC 9396 `expires_at`,
the bank's query bounds and UK consent dates. Property: any text is an epoch second within years
1-9999 (UTC) or InvalidDateTime — never OverflowError or another exception."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingrade.protocol import rfc3339

pytestmark = pytest.mark.fuzz


@pytest.mark.parametrize(
    "text, expected",
    [
        ("1970-01-01T00:00:00Z", 0),
        ("2027-02-25T00:00:00Z", 1803513600),
        ("2027-01-01T01:00:00+01:00", 1798761600),
        ("2027-01-01t01:00:00.999999z", 1798765200),  # §5.6 NOTE: lower-case t and z; the fraction is dropped
        ("2026-12-31T23:59:60Z", 1798761599),  # a leap second counts as the second before it
        ("2027-01-01T00:00:00-00:00", 1798761600),  # §4.3: unknown local offset
        ("0001-01-01T00:00:00Z", rfc3339.MIN_EPOCH),
        ("9999-12-31T23:59:59Z", rfc3339.MAX_EPOCH),
        ("0001-01-01T00:00:00-01:00", rfc3339.MIN_EPOCH + 3600),
    ],
)
def test_rfc3339_5_6_date_time(text: str, expected: int) -> None:
    assert rfc3339.date_time(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "0000-06-01T00:00:00Z",
        "2027-02-29T00:00:00Z",
        "2027-13-01T00:00:00Z",
        "2027-01-00T00:00:00Z",
        "2027-01-01T24:00:00Z",
        "2027-01-01T00:60:00Z",
        "2027-01-01T00:00:61Z",
        "2027-01-01T00:00:00+24:00",
        "2027-01-01T00:00:00+01:60",
        "2027-01-01T00:00:00",
        "2027-01-01 00:00:00Z",
        "2027-01-01T00:00Z",
        "2027-01-01T00:00:00.Z",
        "2027-01-01T00:00:00+0100",
        "+2027-01-01T00:00:00Z",
        "2027-W01-1T00:00:00Z",
        "２０２７-01-01T00:00:00Z",
        "2027-01-01T00:00:00Z\n",
        " 2027-01-01T00:00:00Z",
        "2027-01-01T00:00:00." + "0" * 60 + "Z",
        "",
    ],
)
def test_rfc3339_5_6_malformed_or_unrepresentable_date_time_is_refused(text: str) -> None:
    with pytest.raises(rfc3339.InvalidDateTime):
        rfc3339.date_time(text)


def test_date_time_without_offset_only_when_allowed() -> None:
    """The bank's query bounds are documented as UTC when they have no offset."""
    assert rfc3339.date_time("2027-01-01T00:00:00", offset_required=False) == 1798761600
    with pytest.raises(rfc3339.InvalidDateTime):
        rfc3339.date_time("2027-01-01T00:00:00")


def test_rfc3339_5_6_full_date_and_its_day() -> None:
    assert rfc3339.full_date("9999-12-31") == dt.date(9999, 12, 31)
    assert rfc3339.day_bounds(dt.date(1970, 1, 2)) == (86400, 172799)
    for bad in ("0000-01-01", "2027-02-29", "2027-1-01", "20270101", "２０２７-01-01", "2027-01-01T00:00:00Z"):
        with pytest.raises(rfc3339.InvalidDateTime):
            rfc3339.full_date(bad)


def _oracle(text: str) -> int | None:
    """Python's own reading of a well-formed RFC 3339 date-time, where it has one (whole seconds:
    a float timestamp with a fraction would round)."""
    try:
        whole = re.sub(r"\.[0-9]+", "", text.upper()).replace("Z", "+00:00").replace(":60", ":59")
        moment = dt.datetime.fromisoformat(whole)
        return int(moment.timestamp()) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


_MESSAGES = {
    "must be an RFC 3339 date-time with an offset, e.g. 2027-02-25T00:00:00Z",
    "is not a valid date",
    "is not a valid time of day",
    "has an invalid offset",
    "is out of range (years 1 to 9999 in UTC)",
}
_TWO = st.integers(0, 99).map(lambda n: f"{n:02d}")
_SHAPED = st.builds(
    lambda y, mo, d, h, mi, s, f, o: f"{y:04d}-{mo}-{d}T{h}:{mi}:{s}{f}{o}",
    st.one_of(st.integers(0, 9999), st.sampled_from([1, 9999])),
    _TWO,
    _TWO,
    _TWO,
    _TWO,
    _TWO,
    st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=9).map(lambda d: "." + d)),
    st.one_of(
        st.sampled_from(["Z", "z", "", "+00:00", "-00:00"]),
        st.tuples(st.sampled_from("+-"), _TWO, _TWO).map(lambda t: f"{t[0]}{t[1]}:{t[2]}"),
    ),
)


@settings(max_examples=500, deadline=None)
@given(st.one_of(_SHAPED, st.text(max_size=70)))
def test_any_text_is_a_date_time_or_a_clean_refusal(text: str) -> None:
    """Property: a value within the representable range that Python reads the same way, formatted
    back to a valid UTC date-time — or InvalidDateTime; nothing else is ever raised."""
    try:
        epoch = rfc3339.date_time(text)
    except rfc3339.InvalidDateTime as exc:
        assert str(exc) in _MESSAGES  # fixed phrases: the input is never quoted back
        return
    assert rfc3339.MIN_EPOCH <= epoch <= rfc3339.MAX_EPOCH
    expected = _oracle(text)
    if expected is not None:
        assert epoch == expected
    assert rfc3339.date_time(rfc3339.utc(epoch)) == epoch


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_any_text_is_a_full_date_or_a_clean_refusal(text: str) -> None:
    try:
        day = rfc3339.full_date(text)
    except rfc3339.InvalidDateTime:
        return
    assert day.isoformat() == text
