"""The kinds of entry in the one-time store: each names one use of it, and together with the key
addresses an entry (a SQL row's `kind` column, part of a Redis key). The values are stored: changing
one orphans every entry of that kind (codes in flight, replay caches, throttling counters)."""

from __future__ import annotations

from enum import StrEnum

from fingrade.protocol import dpop


class OneTimeKind(StrEnum):
    # The authorization code flow.
    CODE = "code"  # RFC 6749 §4.1.2: a code and what redeeming it must prove (authorize.CodeGrant)
    PAR = "par"  # RFC 9126 §2.2: a pushed authorization request (authorize.PushedRequest)
    INTERACTION = "interaction"  # an authorization request parked for login and consent (interaction.py)
    TOKEN_RETRY = "token_retry"  # a token answer kept for a retry whose answer was lost (token_retry.py)
    # Replay caches: each artifact is accepted once while it is valid.
    DPOP_JTI = dpop.REPLAY_KIND  # RFC 9449 §11.1
    ASSERTION_JTI = "assertion_jti"  # RFC 7523 §3 item 7, OIDC Core §9
    REQUEST_OBJECT_JTI = "request_object_jti"  # RFC 9101 §10.3
    # Sign-in throttling counters (login_throttle.py).
    LOGIN_ADDRESS = "login_addr"
    LOGIN_ACCOUNT = "login_acct"
    LOGIN_ACCOUNT_ADDRESS = "login_acct_addr"
    LOGIN_DEVICE = "login_device"
    # Second factors (factors.py).
    TOTP_STEP = "totp_step"  # RFC 6238 §5.2: a time step's code accepted once per factor
    FACTOR_FAILURES = "factor_fail"  # wrong second-factor codes of one customer, throttled like passwords
    PASSKEY_CEREMONY = "passkey_ceremony"  # a WebAuthn challenge in flight, taken once (passkeys.py)
    # The customer's own pages (account_sign_in.py, account_security.py).
    ACCOUNT_SIGN_IN = "account_sign_in"  # a password accepted, the second factor still due
    ACCOUNT_ENROLMENT = "account_enrolment"  # an authenticator app offered on the security page, added once
