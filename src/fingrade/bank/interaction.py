"""Open-banking interaction headers (FAPI 1.0 Part 1 §6.2.2, UK Open Banking Read/Write API):

- `x-fapi-interaction-id`: an RFC 4122 UUID that correlates one call across the fintech and the
  bank. A valid one sent by the client is echoed; otherwise (absent or not a UUID) the bank makes
  a fresh UUID4. Every bank API response carries it, errors included.
- `x-fapi-customer-ip-address`: the customer's IP address when the customer is present; must be an
  IPv4 or IPv6 address.
- `x-fapi-auth-date`: when the customer last logged in at the fintech, an HTTP-date (RFC 9110
  §5.6.7, IMF-fixdate, e.g. `Sun, 10 Sep 2017 19:43:31 GMT`).

Malformed values of the last two are a client error (400 invalid_request); they are logged (the
address and date only, never credentials) with the interaction id.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from email.utils import parsedate_to_datetime

from ..oauth.errors import invalid_request

INTERACTION_ID = "x-fapi-interaction-id"
CUSTOMER_IP = "x-fapi-customer-ip-address"
AUTH_DATE = "x-fapi-auth-date"

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_IMF_FIXDATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                          r"[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT")


def interaction_id(sent: str | None) -> str:
    """The id to answer with: the client's if it is a UUID, else a new UUID4."""
    if sent is not None and _UUID.fullmatch(sent.strip()):
        return sent.strip()
    return str(uuid.uuid4())


def customer_ip(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise invalid_request(f"{CUSTOMER_IP} must be an IPv4 or IPv6 address") from None


def auth_date(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not _IMF_FIXDATE.fullmatch(value):
        raise invalid_request(f"{AUTH_DATE} must be an HTTP-date, e.g. Sun, 10 Sep 2017 19:43:31 GMT")
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise invalid_request(f"{AUTH_DATE} is not a valid date") from None
    return value
