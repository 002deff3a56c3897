"""Finance rules shared by the authorization server and the bank: ISO 4217 currencies
(`currencies`), IBAN (`iban`), amounts (`money`), the open-banking authorization details types
(`open_banking`) and the consent-id grammar (`consent_ids`). Each rule is stated once, here.

Nearly a leaf package: it imports nothing from Fingrade except `fingrade.protocol.rfc3339`, the one
RFC 3339 date grammar. Its rules raise FinanceError (errors.py); each caller maps it to its own
answer (the AS to `invalid_authorization_details`, the bank to its open-banking errors)."""
