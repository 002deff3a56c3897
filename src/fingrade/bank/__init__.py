"""The bank: the open-banking resource server and the demo bank's ledger it serves.

A separate part of Fingrade: it never imports `fingrade.web` and trusts the authorization server
only through public protocols. Its state lives in its own `bank_*` tables (schema.py), created by
its own migration chain (migrate.py, migrations/)."""
