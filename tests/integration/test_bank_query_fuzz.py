"""Generated query strings at every GET endpoint of the bank API, on the live server (both backends),
with valid DPoP-bound tokens (RFC 9449 §7.1) for each endpoint: the answer is never a 5xx; a refused
query is the bank's 400 invalid_request, with `Cache-Control: no-store` and the interaction id, and
the keep-alive connection stays usable. Bounded for CI: derandomized, a fixed number of examples."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.bank import PREFIX, Fintech, account_information, payment_initiation
from support.server import Server

pytestmark = [pytest.mark.bank, pytest.mark.fuzz]

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True)
class Endpoint:
    path: str
    token: str
    ok: frozenset[int]  # what a valid query may get (a made-up payment or consent id is not found)


@pytest.fixture(scope="module")
def fintech(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Fintech:
    return Fintech(server, tmp_path_factory.mktemp("query-fuzz"), "--authorization-details-type", "payment_initiation")


@pytest.fixture(scope="module")
def endpoints(fintech: Fintech, server: Server) -> list[Endpoint]:
    accounts = fintech.token(account_information())
    payments = fintech.token(payment_initiation("1.00"), scope="openid payments")
    tpp = fintech.client_credentials()
    with server.client() as http:
        listed = fintech.get(http, "/accounts", accounts)
    assert listed.status_code == 200, listed.text
    acc = listed.json()["Data"]["Account"][0]["AccountId"]
    ok = frozenset({200})
    return [
        Endpoint("/accounts", accounts, ok),
        Endpoint(f"/accounts/{acc}", accounts, ok),
        Endpoint(f"/accounts/{acc}/balances", accounts, ok),
        Endpoint(f"/accounts/{acc}/transactions", accounts, ok),
        Endpoint("/payments/pay_made_up", payments, frozenset({404})),
        Endpoint("/account-access-consents/aac-00000000-0000-4000-8000-000000000000", tpp, frozenset({404})),
    ]


@pytest.fixture(scope="module")
def http(server: Server) -> Iterator[httpx.Client]:
    """One client, one keep-alive connection for every example: a dropped connection would show."""
    with server.client() as client:
        yield client


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


_DIGITS = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4)  # ², ٣, ３ ... and 0-9
_NUMBERS = st.one_of(
    _DIGITS,
    st.integers(-5, 10**25).map(str),
    st.sampled_from(["\u00b2", "1\u00b2", "\u0663", "\uff13", "\u2460", " 5", "+5", "05", "5 ", "1e2"]),
)
_CURSORS = st.builds(
    lambda n, i: _cursor(f"{n}.{i}"),
    st.one_of(st.integers(0, 10**130), st.integers(2**63 - 2, 2**63 + 2), _DIGITS),
    st.one_of(st.from_regex(r"txn_[A-Za-z0-9_-]{22}", fullmatch=True), st.text(max_size=20)),
)
_DATES = st.builds(
    lambda y, rest: f"{y:04d}{rest}",
    st.integers(0, 9999),
    st.sampled_from(
        [
            "-01-01",
            "-12-31",
            "-02-30",
            "-01-01T00:00:00+01:00",
            "-12-31T23:59:59-01:00",
            "-06-15T12:00:00Z",
            "-06-15T12:00:60.5",
        ]
    ),
)
_PAIR = st.one_of(
    st.tuples(st.just("limit"), _NUMBERS),
    st.tuples(st.just("cursor"), _CURSORS),
    st.tuples(st.sampled_from(["fromBookingDateTime", "toBookingDateTime"]), _DATES),
    st.tuples(st.sampled_from(["limit", "cursor", "fromBookingDateTime", "access", "Limit", ""]), st.text(max_size=30)),
)
_PAIRS = st.lists(_PAIR, min_size=1, max_size=3).map(
    lambda pairs: "&".join(f"{quote(n, safe='')}={quote(v, safe='')}" for n, v in pairs)
)
_RAW = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"), max_size=60)


@settings(
    max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(data=st.data(), raw=st.one_of(_PAIRS, _RAW))
def test_generated_query_strings_never_get_a_server_error(
    fintech: Fintech, endpoints: list[Endpoint], http: httpx.Client, server: Server, data: st.DataObject, raw: str
) -> None:
    # the transactions endpoint (the one with parameters) half of the time, any endpoint otherwise
    endpoint = data.draw(st.one_of(st.just(endpoints[3]), st.sampled_from(endpoints)))
    url = httpx.URL(server.base_url + PREFIX + endpoint.path, query=raw.encode())
    headers = {"Authorization": f"DPoP {endpoint.token}", "DPoP": fintech.proof(endpoint.path, endpoint.token)}
    resp = http.get(url, headers=headers)
    assert resp.status_code < 500, (url, resp.status_code, resp.text[:300])
    assert resp.status_code in endpoint.ok | {400}, (url, resp.status_code, resp.text[:300])
    assert resp.headers["cache-control"] == "no-store"
    assert UUID.fullmatch(resp.headers["x-fapi-interaction-id"])
    if resp.status_code == 400:
        assert resp.json()["error"] == "invalid_request", resp.text
