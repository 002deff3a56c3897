"""Domain errors of the bank ledger. Each carries a stable `code`, which the bank's HTTP layer maps
to an open-banking error (status and error code); the message is safe to show to the client. The
finance rules' errors (amounts, currencies, IBANs) are ledger errors too: one hierarchy to map."""

from __future__ import annotations

from fingrade.finance.errors import FinanceError, InvalidAmount, InvalidIban, UnsupportedCurrency

LedgerError = FinanceError

__all__ = [
    "AccountClosed",
    "CurrencyMismatch",
    "InsufficientFunds",
    "InvalidAmount",
    "InvalidCursor",
    "InvalidIban",
    "InvalidQuery",
    "InvalidText",
    "LedgerError",
    "SameAccount",
    "UnknownAccount",
    "UnsupportedCurrency",
]


class CurrencyMismatch(LedgerError):
    code = "currency_mismatch"


class UnknownAccount(LedgerError):
    code = "unknown_account"


class AccountClosed(LedgerError):
    code = "account_closed"


class SameAccount(LedgerError):
    code = "same_account"


class InsufficientFunds(LedgerError):
    code = "insufficient_funds"


class InvalidText(LedgerError):
    code = "invalid_text"


class InvalidCursor(LedgerError):
    code = "invalid_cursor"


class InvalidQuery(LedgerError):
    code = "invalid_query"
