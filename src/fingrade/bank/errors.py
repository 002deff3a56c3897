"""Domain errors of the bank ledger. Each carries a stable `code`, which the coming HTTP layer maps
to an open-banking error (status and error code); the message is safe to show to the client."""

from __future__ import annotations


class LedgerError(Exception):
    code = "ledger_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidAmount(LedgerError):
    code = "invalid_amount"


class UnsupportedCurrency(LedgerError):
    code = "unsupported_currency"


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


class InvalidIban(LedgerError):
    code = "invalid_iban"


class InvalidText(LedgerError):
    code = "invalid_text"


class InvalidCursor(LedgerError):
    code = "invalid_cursor"


class InvalidQuery(LedgerError):
    code = "invalid_query"
