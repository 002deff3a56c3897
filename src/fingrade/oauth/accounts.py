"""The customer's accounts, as the consent page needs them: a port the core owns.

Account selection at consent (RFC 9396 §7.1: the AS may add the accounts the customer chose to what
it grants) needs to know which accounts the customer holds and which of them the bank takes as the
payer of a payment. The core asks this port and never reads the bank's ledger; the web layer passes
an implementation in (`web/bank_wiring.py`: the bank's `bank/customer_accounts.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class AccountChoice:
    """One of the customer's accounts, as offered on the consent page."""

    iban: str
    name: str
    currency: str


class CustomerAccounts(Protocol):
    """The customer's accounts, as the bank sees them."""

    async def accounts(self, user_id: str) -> list[AccountChoice]:
        """The customer's open accounts (to share)."""
        ...

    async def payers(self, user_id: str, payment: dict[str, Any]) -> list[AccountChoice]:
        """The customer's accounts the bank takes as the payer of this `payment_initiation` detail
        (for one that names its `debtorAccount`: that account, if it can pay it)."""
        ...
