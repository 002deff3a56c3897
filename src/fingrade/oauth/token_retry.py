"""Retrying a token request whose answer was lost, without weakening theft detection.

An authorization code is consumed, and a public client's refresh token rotated, in a commit before
the answer is sent. When that answer is lost (a crash, a dropped connection, a client timeout), the
client's retry presents a used credential, which is how theft shows (RFC 6749 §4.1.2, RFC 9700
§4.14.2): the grant would be revoked and a false `code_reuse` / `refresh_reuse` recorded.

The rule: within `token_retry_grace_seconds` of the first use, a request that presents the same
code or refresh token *with the same proof of possession* gets the same answer again. The proof is
fingerprinted: the authenticated client, the DPoP key thumbprint, the client certificate's
thumbprint and the request parameters, PKCE `code_verifier` included (client authentication
parameters aside: a new assertion per request is expected). A new DPoP proof by the same key is
required (it is checked, single use, before this). Anything else still counts as theft: another
client, key, certificate or verifier, or a retry after the grace period.

The answer is kept in the one-time store for the grace period only, sealed with AES-256-GCM under
the key-encryption key (bound to its record), so the store never holds usable tokens in clear. A
public client's refresh token qualifies only when it is DPoP-bound: an unbound one is its own only
proof, and a thief's copy would be "the same request".
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from fingrade.oauth.context import Core
from fingrade.oauth.onetime_kinds import OneTimeKind
from fingrade.protocol.crypto import equal
from fingrade.protocol.errors import invalid_grant
from fingrade.protocol.sealing import SealedDataError

log = logging.getLogger("fingrade.token")

KIND = OneTimeKind.TOKEN_RETRY
WAIT_SECONDS = 1.5  # how long a retry waits for a concurrent first request to keep its answer
_POLL_SECONDS = 0.05
# Authentication parameters differ between a request and its retry (a client assertion is single use);
# client authentication itself has been checked and is represented by the client_id.
_NOT_FINGERPRINTED = frozenset({"client_assertion", "client_assertion_type", "client_secret"})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One redemption of a code or refresh token: which one (`key`) and by what proof (`fingerprint`)."""

    key: str
    fingerprint: str


def attempt(
    core: Core,
    what: Literal["code", "refresh"],
    secret_hash: str,
    *,
    client_id: str,
    jkt: str | None,
    x5t: str | None,
    params: dict[str, str],
) -> Attempt:
    """`what`: which credential; `secret_hash`: the stored hash of the code or refresh token."""
    proof = orjson.dumps(
        {
            "client_id": client_id,
            "jkt": jkt,
            "x5t": x5t,
            "params": {k: v for k, v in params.items() if k not in _NOT_FINGERPRINTED},
        },
        option=orjson.OPT_SORT_KEYS,
    )
    # Keyed, so the store holds nothing that helps guess the verifier or the parameters.
    fingerprint = hmac.new(core.server_key, b"token-retry|" + proof, hashlib.sha256).hexdigest()
    return Attempt(key=f"{what}:{secret_hash}", fingerprint=fingerprint)


def enabled(core: Core) -> bool:
    return core.settings.token_retry_grace_seconds > 0 and core.sealer is not None


def _context(a: Attempt) -> bytes:
    return b"fingrade token retry|" + a.key.encode()


async def begin(core: Core, a: Attempt) -> None:
    """Right after the credential was used: who used it, so that a retry arriving before the answer
    is kept waits for it instead of counting as theft."""
    if enabled(core):
        await core.onetime.put(KIND, a.key, {"fp": a.fingerprint}, core.settings.token_retry_grace_seconds)


async def keep(core: Core, a: Attempt, body: dict[str, Any]) -> None:
    """Keep the answer, sealed, for the grace period."""
    if not enabled(core):
        return
    assert core.sealer is not None
    sealed = core.sealer.seal(orjson.dumps(body), _context(a))
    await core.onetime.put(
        KIND,
        a.key,
        {"fp": a.fingerprint, "sealed": base64.b64encode(sealed).decode()},
        core.settings.token_retry_grace_seconds,
    )


async def replay(core: Core, a: Attempt, *, wait: bool) -> dict[str, Any] | None:
    """The answer kept for this retry, or None when the request is not a retry of the first one
    (no record: another request or the grace period is over; another fingerprint): the caller treats
    it as theft. A matching record whose answer never came (the first request failed or died) is
    refused without revoking anything: there are no tokens to protect. `wait`: the credential was
    used just now, so a record may still be on its way."""
    if not enabled(core):
        return None
    assert core.sealer is not None
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        record = await core.onetime.get(KIND, a.key)
        if record is not None:
            if not isinstance(record.get("fp"), str) or not equal(record["fp"], a.fingerprint):
                return None
            if isinstance(record.get("sealed"), str):
                try:
                    body: dict[str, Any] = orjson.loads(
                        core.sealer.open(base64.b64decode(record["sealed"]), _context(a))
                    )
                except (SealedDataError, ValueError):
                    # Not sealed by this deployment's key for this record: nothing to send, nothing to trust.
                    log.error("a kept token answer cannot be opened (key_encryption_key differs between nodes?)")
                    raise invalid_grant("the answer to the first request is not available") from None
                log.info("token request retried within the grace period: the kept answer is sent again")
                return body
        elif not wait:
            return None
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(_POLL_SECONDS)
    if record is None:
        return None
    raise invalid_grant("the first request with this grant did not complete; start a new authorization")
