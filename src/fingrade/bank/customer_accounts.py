"""The customer's accounts for the authorization server's consent page, read from the bank's ledger.

This implements the core's port (`oauth/accounts.py` `CustomerAccounts`) without importing it: the
bank never imports the authorization server. The caller passes in how to make one of its values from
an account's IBAN, name and currency (the AS passes its `AccountChoice`), so no type of the bank's
reaches the AS. Which accounts are offered is the bank's rule: open ones to share, and as payers
those `payments.payers` takes, the same rule the payment is executed by.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from fingrade.bank.ledger import OPEN, Ledger
from fingrade.bank.payments import payers

Choice = TypeVar("Choice")


class LedgerCustomerAccounts(Generic[Choice]):
    def __init__(self, ledger: Ledger, choice: Callable[[str, str, str], Choice]) -> None:
        self.ledger = ledger
        self.choice = choice  # (iban, name, currency) -> the caller's value

    async def accounts(self, user_id: str) -> list[Choice]:
        """The customer's open accounts."""
        return [
            self.choice(a.iban, a.name, a.currency)
            for a in await self.ledger.list_accounts(user_id)
            if a.status == OPEN
        ]

    async def payers(self, user_id: str, payment: dict[str, Any]) -> list[Choice]:
        """The customer's accounts the bank takes as the payer of the `payment_initiation` detail."""
        return [
            self.choice(a.iban, a.name, a.currency) for a in payers(await self.ledger.list_accounts(user_id), payment)
        ]
