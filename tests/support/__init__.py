"""Test support shared by several suites (importable as `support.*`; pytest puts tests/ on the path):

- server.py: the real server (`fingrade serve`) in a subprocess, dedicated servers, PostgreSQL databases
- backends.py: the backends the server-backed tests run on (FINGRADE_TEST_BACKENDS)
- demo.py: the demo clients' ids, redirect URIs and credentials
- flow.py: the authorization code flow as a browser drives it, step by step
- tokens.py: getting and using tokens (redeem, client credentials, introspection), `Kit`, `race`
- operator.py: users and clients added with the command line
- refusals.py: how error answers must look (RFC 6749 §5.2, RFC 6750 §3, error pages)
- database.py: read-only peeks into a server's database and audit log
- polling.py: waiting for what another process does in its own time
- fapi.py, dpop.py, mtls.py, bank.py, pages.py: a FAPI 2.0 client, DPoP proofs, client certificates
  and nginx, a fintech at the bank API, the server's forms
- passkey_device.py: a passkey in software (WebAuthn registration and assertion answers)
- outage.py, uri_oracle.py: store outages; an independent RFC 3986 / CSP oracle

A suite's own support modules sit next to it: bank/bank_helpers.py (the ledger), browser/browserkit.py
(Chromium), interop/helpers.py (third-party clients), security/fuzzkit.py and fuzzgen.py (the fuzz
campaign's invariants and generators)."""
