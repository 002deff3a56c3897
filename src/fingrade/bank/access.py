"""What a token lets its holder read: the `account_information` authorization details (RFC 9396)
of an access token, turned into decisions. Pure functions, no I/O.

Rules (docs/banking-api.md, "Access rules"):
- the token must carry the `accounts` scope (checked by the caller) and at least one
  `account_information` object; a token with the scope but no such object gets nothing (403,
  least privilege: the scope alone says nothing about which accounts or data);
- an object past its `expires_at` counts as absent; when every one has expired the consent is
  over and the token is refused like an expired one (401 invalid_token);
- an object grants its `actions` on the accounts it lists (IBAN, or a UK sort code and account
  number matched against the IBAN), or, when it lists none, on all of the customer's accounts
  (interim, until account selection at consent exists);
- `transactions` is limited to the object's `transactions_from` / `transactions_to` dates (UTC,
  inclusive).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from fingrade.protocol.errors import insufficient_scope, invalid_token

ACCOUNTS = "accounts"
BALANCES = "balances"
TRANSACTIONS = "transactions"


@dataclass(frozen=True)
class AccountAccess:
    """One unexpired `account_information` object of a token."""

    actions: frozenset[str]
    accounts: tuple[dict[str, str], ...] | None  # None: all of the customer's accounts
    transactions_from: dt.date | None = None
    transactions_to: dt.date | None = None

    def covers(self, iban: str) -> bool:
        if self.accounts is None:
            return True
        return any(_matches(ref, iban) for ref in self.accounts)


def _matches(ref: dict[str, str], iban: str) -> bool:
    if "iban" in ref:
        return ref["iban"] == iban
    number = ref.get("sortCodeAccountNumber")
    # A UK IBAN is GBkk + 4-letter bank code + sort code (6) + account number (8).
    return isinstance(number, str) and iban.startswith("GB") and len(iban) == 22 and iban[8:] == number


def _iso(moment: int) -> str:
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def grants(claims: dict[str, Any], now: int) -> list[AccountAccess]:
    """The account accesses a token carries and that are still in force."""
    details = claims.get("authorization_details")
    entries = (
        [d for d in details if isinstance(d, dict) and d.get("type") == "account_information"]
        if isinstance(details, list)
        else []
    )
    if not entries:
        raise insufficient_scope("the token carries no account_information authorization")
    cutoff = _iso(now)
    out = []
    for d in entries:
        expires = d.get("expires_at")
        if expires is not None and (not isinstance(expires, str) or expires <= cutoff):
            continue  # same fixed format as the AS writes (rfc3339.utc): string order is time order
        actions = d.get("actions")
        accounts = d.get("accounts")
        out.append(
            AccountAccess(
                actions=frozenset(a for a in actions if isinstance(a, str))
                if isinstance(actions, list)
                else frozenset(),
                accounts=tuple(a for a in accounts if isinstance(a, dict)) if isinstance(accounts, list) else None,
                transactions_from=_date(d.get("transactions_from")),
                transactions_to=_date(d.get("transactions_to")),
            )
        )
    if not out:
        raise invalid_token("the account access consent has expired")
    return out


def require_action(accesses: list[AccountAccess], action: str) -> list[AccountAccess]:
    """The accesses granting `action`; 403 insufficient_scope if none does (RFC 6750 §3.1)."""
    found = [a for a in accesses if action in a.actions]
    if not found:
        raise insufficient_scope(f"the consent does not include {action}")
    return found


def for_account(accesses: list[AccountAccess], iban: str) -> AccountAccess | None:
    """The first access covering the account; None: the account is outside the consent (404)."""
    return next((a for a in accesses if a.covers(iban)), None)


def visible(accesses: list[AccountAccess], iban: str) -> bool:
    """Whether the account is in the consent at all (any action): otherwise it does not exist for
    this token, so probing ids reveals nothing."""
    return any(a.covers(iban) for a in accesses)


def booking_window(access: AccountAccess, start: int | None, end: int | None) -> tuple[int | None, int | None]:
    """Intersect a requested booking range (epoch seconds, inclusive) with the granted dates."""
    if access.transactions_from is not None:
        lo = int(dt.datetime.combine(access.transactions_from, dt.time(), dt.UTC).timestamp())
        start = lo if start is None else max(start, lo)
    if access.transactions_to is not None:
        hi = int(dt.datetime.combine(access.transactions_to, dt.time(23, 59, 59), dt.UTC).timestamp())
        end = hi if end is None else min(end, hi)
    return start, end
