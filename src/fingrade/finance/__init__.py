"""Finance rules shared by the authorization server and the bank: ISO 4217 currencies, IBAN,
amounts, the open-banking authorization details types and consent-id grammar. A leaf package:
it imports nothing else from Fingrade."""
