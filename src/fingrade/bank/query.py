"""The bank API's query parameters: one strict parser, used by every endpoint (`request_checks.verified_claims`
parses the query of each request against the parameters its endpoint declares).

- The query string: at most MAX_QUERY bytes, `application/x-www-form-urlencoded` with strict
  percent-encoding and UTF-8; no parameter twice, no empty value, no NUL.
- Only the parameters the endpoint declares: any other is refused (fail closed — a filter the
  client believes applied but the bank ignored would return more than the client asked for).
- Each value by its grammar, never by Python's lenient conversions (`str.isdigit()` accepts `²`,
  `int()` accepts `٣` and ` 5`): numbers are ASCII digits within their range; dates and date-times
  go through rfc3339.py (bounded to years 1-9999); the cursor is decoded and bounded by the
  ledger, its owner (`ledger.decode_cursor`), so no value reaches the database out of its column's
  range.

Every refusal is 400 `invalid_request` (docs/banking-api.md, "Errors").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from fingrade.bank import ledger
from fingrade.bank.errors import InvalidCursor
from fingrade.protocol import rfc3339
from fingrade.protocol.errors import invalid_request
from fingrade.protocol.http import safe_name

MAX_QUERY = 2048  # bytes of the raw query string
MAX_VALUE = 300  # characters of one decoded value (the OpenAPI document's maxLength)
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_LIMIT = re.compile(r"[1-9][0-9]{0,2}", re.ASCII)

FROM, TO, LIMIT, CURSOR = "fromBookingDateTime", "toBookingDateTime", "limit", "cursor"
NONE: frozenset[str] = frozenset()
TRANSACTIONS = frozenset({FROM, TO, LIMIT, CURSOR})


def parse(raw: bytes, allowed: frozenset[str]) -> dict[str, str]:
    """The query's parameters (name -> decoded value), each one of `allowed`; OAuthError 400
    otherwise. Empty `&`-separated fields are skipped (as the URL standard's form decoding does);
    `+` is a space, so a date-time's `+01:00` must be sent as `%2B01:00`."""
    if len(raw) > MAX_QUERY:
        raise invalid_request("the query string is too long")
    if _BAD_ESCAPE.search(raw):
        raise invalid_request("the query string has a malformed percent-encoding")
    out: dict[str, str] = {}
    for field in raw.split(b"&"):
        if not field:
            continue
        name_raw, _, value_raw = field.partition(b"=")
        try:
            name = unquote_plus(name_raw.decode("ascii"), errors="strict")
            value = unquote_plus(value_raw.decode("ascii"), errors="strict")
        except UnicodeDecodeError:  # a raw byte above 0x7f, or an escape that is not UTF-8
            raise invalid_request("the query string is not percent-encoded UTF-8") from None
        if name not in allowed:
            raise invalid_request(f"unknown query parameter {safe_name(name)}".rstrip())
        if name in out:
            raise invalid_request(f"{name} is repeated")
        if not value or len(value) > MAX_VALUE or "\x00" in value:
            raise invalid_request(f"{name} must be 1 to {MAX_VALUE} characters")
        out[name] = value
    return out


@dataclass(frozen=True)
class TransactionQuery:
    """GET /accounts/{id}/transactions: the booking range (epoch seconds, both inclusive, either
    open), the page size and the position after which the page starts."""

    booked_from: int | None
    booked_to: int | None
    limit: int
    cursor: str | None  # as sent; valid (ledger.decode_cursor accepted it)
    params: dict[str, str]  # the validated parameters, for Links.Self


def _bound(params: dict[str, str], name: str, end: bool) -> int | None:
    """A date (the whole UTC day: its first or last second) or an RFC 3339 date-time (UTC without an offset)."""
    value = params.get(name)
    if value is None:
        return None
    try:
        if len(value) == 10:
            first, last = rfc3339.day_bounds(rfc3339.full_date(value))
            return last if end else first
        return rfc3339.date_time(value, offset_required=False)
    except rfc3339.InvalidDateTime:
        raise invalid_request(f"{name} must be a date or a date-time such as 2026-01-31T00:00:00Z") from None


def transactions(params: dict[str, str]) -> TransactionQuery:
    start, end = _bound(params, FROM, end=False), _bound(params, TO, end=True)
    if start is not None and end is not None and start > end:
        raise invalid_request(f"{FROM} is after {TO}")
    limit = params.get(LIMIT)
    if limit is not None and not (_LIMIT.fullmatch(limit) and int(limit) <= ledger.MAX_PAGE_SIZE):
        raise invalid_request(f"limit must be 1-{ledger.MAX_PAGE_SIZE}")
    cursor = params.get(CURSOR)
    if cursor is not None:
        try:
            ledger.decode_cursor(cursor)
        except InvalidCursor as exc:
            raise invalid_request(exc.message) from None
    return TransactionQuery(
        booked_from=start,
        booked_to=end,
        limit=int(limit) if limit is not None else ledger.DEFAULT_PAGE_SIZE,
        cursor=cursor,
        params=params,
    )
