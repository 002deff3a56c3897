"""Errors of the finance rules. Each carries a stable `code`, which the bank's HTTP layer maps to an
open-banking error (status and error code); the message is safe to show to the client."""

from __future__ import annotations


class FinanceError(Exception):
    code = "finance_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidAmount(FinanceError):
    code = "invalid_amount"


class UnsupportedCurrency(FinanceError):
    code = "unsupported_currency"


class InvalidIban(FinanceError):
    code = "invalid_iban"


class InvalidDetail(FinanceError):
    """An open-banking authorization detail (or its part: an account reference, an amount) that does
    not conform to its type; the message names the member. RFC 9396 §5 at the AS."""

    code = "invalid_detail"
