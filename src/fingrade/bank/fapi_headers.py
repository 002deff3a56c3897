"""Open-banking interaction headers (FAPI 1.0 Part 1 §6.2.2, UK Open Banking Read/Write API):

- `x-fapi-interaction-id`: an RFC 4122 UUID that correlates one call across the fintech and the
  bank. A valid one sent by the client is echoed; otherwise (absent or not a UUID) the bank makes
  a fresh UUID4. Every bank API response carries it, errors included.
- `x-fapi-customer-ip-address`: the customer's IP address when the customer is present: an IPv4
  address in dotted-decimal form or an IPv6 address (RFC 4291 §2.2 text, no zone id: RFC 4007's
  `%zone` may hold any text and means nothing outside the sender's host).
- `x-fapi-auth-date`: when the customer last logged in at the fintech, an HTTP-date (RFC 9110
  §5.6.7, IMF-fixdate, e.g. `Sun, 10 Sep 2017 19:43:31 GMT`) naming a real moment, its day name
  that date's.
- `x-customer-user-agent`: free text; accepted, never read and never logged.

Malformed values of the customer IP address and auth date are a client error (400
invalid_request). These headers are logged with the interaction id, and only as validated here —
the canonical address, the fixdate, the UUID — never the text the client sent (a space or `=` in a
logged value would let a client write log fields of its own).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import uuid

from fingrade.protocol.errors import invalid_request

INTERACTION_ID = "x-fapi-interaction-id"
CUSTOMER_IP = "x-fapi-customer-ip-address"
AUTH_DATE = "x-fapi-auth-date"

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII)
# An IPv4 or IPv6 address has at most 45 of these characters; anything else (a '%' zone id, blanks,
# a port, brackets, other scripts' digits) is refused before the address is parsed.
_IP_TEXT = re.compile(r"[0-9A-Fa-f:.]{2,45}", re.ASCII)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_IMF_FIXDATE = re.compile(
    rf"({'|'.join(_DAYS)}), ([0-9]{{2}}) ({'|'.join(_MONTHS)}) ([0-9]{{4}}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT",
    re.ASCII,
)


def interaction_id(sent: str | None) -> str:
    """The id to answer with: the client's if it is a UUID, else a new UUID4."""
    if sent is not None and _UUID.fullmatch(sent.strip()):
        return sent.strip()
    return str(uuid.uuid4())


def customer_ip(value: str | None) -> str | None:
    """The canonical text of the address (what the bank logs), or None without the header."""
    if value is None:
        return None
    if not _IP_TEXT.fullmatch(value):
        raise invalid_request(f"{CUSTOMER_IP} must be an IPv4 or IPv6 address")
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise invalid_request(f"{CUSTOMER_IP} must be an IPv4 or IPv6 address") from None


def auth_date(value: str | None) -> str | None:
    if value is None:
        return None
    m = _IMF_FIXDATE.fullmatch(value)
    if m is None:
        raise invalid_request(f"{AUTH_DATE} must be an HTTP-date, e.g. Sun, 10 Sep 2017 19:43:31 GMT")
    day_name, mday, month, year, hour, minute, second = m.groups()
    try:
        day = dt.date(int(year), _MONTHS.index(month) + 1, int(mday))
        dt.time(int(hour), int(minute), int(second))
    except ValueError:
        raise invalid_request(f"{AUTH_DATE} is not a valid date") from None
    if _DAYS[day.weekday()] != day_name:
        raise invalid_request(f"{AUTH_DATE} names the wrong day of the week")
    return value
