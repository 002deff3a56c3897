"""The bank's interaction headers (fingrade.bank.fapi_headers; FAPI 1.0 Part 1 §6.2.2, UK Open Banking
Read/Write API): what a client sends in them reaches the bank's log, so each is validated to its
grammar and only the validated value is ever logged. Property: any header text is either refused
(400 invalid_request) or becomes a value of that grammar — no text of the client's own choosing."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingrade.bank.fapi_headers import auth_date, customer_ip, interaction_id
from fingrade.protocol.errors import OAuthError

pytestmark = pytest.mark.bank

IP_TEXT = re.compile(r"[0-9a-f:.]{2,45}")
IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def refused(check, value: str) -> None:
    with pytest.raises(OAuthError) as info:
        check(value)
    assert info.value.error == "invalid_request" and info.value.status == 400


@pytest.mark.parametrize(
    "value, logged",
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("::ffff:192.0.2.7", "::ffff:c000:207"),
        ("::1", "::1"),
    ],
)
def test_fapi_customer_ip_address_is_an_ip_address(value: str, logged: str) -> None:
    """FAPI 1.0 Part 1 §6.2.2.4: an IPv4 or IPv6 address; the bank logs its canonical text."""
    assert customer_ip(value) == logged


@pytest.mark.parametrize(
    "value",
    [
        "fe80::1%eth0 client=evil auth_date=x",  # RFC 4007 zone id: any text after '%' (log-field injection)
        "fe80::1%1",
        "::1%\u202e",
        "192.0.2.7 ",
        " 192.0.2.7",
        "192.0.2.7, 198.51.100.1",
        "192.0.2",
        "192.000.002.007",
        "example.com",
        "[2001:db8::1]",
        "192.0.2.7:443",
        "\uff11\uff19\uff12.0.2.7",
        "",
    ],
)
def test_fapi_customer_ip_address_anything_else_is_refused(value: str) -> None:
    refused(customer_ip, value)


def test_fapi_auth_date_is_a_real_imf_fixdate() -> None:
    """RFC 9110 §5.6.7 IMF-fixdate; the day name must be that date's (10 Sep 2017 was a Sunday)."""
    assert auth_date("Sun, 10 Sep 2017 19:43:31 GMT") == "Sun, 10 Sep 2017 19:43:31 GMT"
    for bad in (
        "Mon, 10 Sep 2017 19:43:31 GMT",
        "Sun, 31 Sep 2017 19:43:31 GMT",
        "Sun, 10 Sep 2017 24:00:00 GMT",
        "Sun, 10 Sep 2017 19:43:31 UTC",
        "Sun, 10 Sep 2017 19:43:31 GMT x=y",
        "Sun, 10 Sep 0000 19:43:31 GMT",
        "Sun, 10 Sep \uff12\uff10\uff11\uff17 19:43:31 GMT",
    ):
        refused(auth_date, bad)


_IP_LIKE = st.one_of(
    st.text(st.sampled_from("0123456789abcdefABCDEF:.%[] -"), max_size=45),
    # real addresses, then perhaps a zone id (RFC 4007 §11: any text after '%') or blanks
    st.builds(
        lambda a, tail: f"{a}{tail}",
        st.ip_addresses().map(str),
        st.one_of(st.just(""), st.text(max_size=12).map(lambda t: "%" + t), st.sampled_from([" ", "\t", ","])),
    ),
)
_DATE_LIKE = st.builds(
    lambda d, n, m, y, t, z: f"{d}, {n:02d} {m} {y:04d} {t} {z}",
    st.sampled_from(["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "sun"]),
    st.integers(0, 40),
    st.sampled_from(["Jan", "Feb", "Sep", "Dec", "Foo"]),
    st.integers(0, 9999),
    st.sampled_from(["19:43:31", "24:00:00", "23:59:60", "00:00:00"]),
    st.sampled_from(["GMT", "UTC", "GMT\t", "GMT x"]),
)


@settings(max_examples=400, deadline=None)
@given(
    ip=st.one_of(_IP_LIKE, st.text(max_size=50)),
    date=st.one_of(_DATE_LIKE, st.text(max_size=40)),
    iid=st.text(max_size=60),
)
def test_header_values_reach_the_log_only_in_their_grammar(ip: str, date: str, iid: str) -> None:
    """Property: what the bank would log for these headers is the canonical address, the fixdate and
    a UUID, or the request is refused — never other characters (no spaces, `=`, `%`, controls)."""
    try:
        logged_ip = customer_ip(ip)
    except OAuthError as exc:
        assert exc.error == "invalid_request"
    else:
        assert logged_ip is not None and IP_TEXT.fullmatch(logged_ip), logged_ip
    try:
        logged_date = auth_date(date)
    except OAuthError as exc:
        assert exc.error == "invalid_request"
    else:
        assert logged_date is not None and IMF_FIXDATE.fullmatch(logged_date), logged_date
    assert UUID.fullmatch(interaction_id(iid))
