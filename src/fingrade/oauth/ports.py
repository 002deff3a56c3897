"""The storage ports of the protocol core: what it needs from storage, one narrow interface per
artifact.

The core owns these interfaces; the adapters in :mod:`fingrade.store` implement them (SQL on
SQLite or PostgreSQL, Redis for one-time state, and an in-memory store for tests and embedding).
Adapters depend on the core, never the reverse: nothing in :mod:`fingrade.oauth` imports
:mod:`fingrade.store`.

Durable state (clients, users, sessions, consents, grants, refresh tokens, revoked access tokens,
consent resources, signing keys, registration tokens, audit) is reached through `DurableStore`, the
composition of the narrow ports below; a function that needs one artifact only takes that port
(`KeyManager` takes a `SigningKeyStore`). One-time state (codes, interactions, jti replay caches,
sign-in attempt counters) lives in a `OneTimeStore` with atomic take-once semantics.

Times are integer seconds since the epoch. A method that is given `now` uses it; the others that
need the time read the store's own clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fingrade.finance.consent_ids import ConsentStatus
from fingrade.oauth.models import (
    Client,
    ConsentResource,
    Factor,
    Grant,
    RefreshToken,
    Session,
    SigningKey,
    User,
)

# -- one-time state ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptLimit:
    """One counter of attempts (failed sign-ins) with exponential back-off: `free` attempts are
    counted without delay; the attempt that uses up the free ones, and each further one, imposes a
    wait before the next (`backoff` seconds, doubling each time, never more than `max_wait`). The
    counter is forgotten `window` seconds after its last counted attempt."""

    kind: str
    key: str
    free: int
    backoff: int
    max_wait: int
    window: int

    def wait_after(self, count: int) -> int:
        """The wait imposed by the `count`-th counted attempt."""
        if count < self.free:
            return 0
        return min(self.backoff << min(count - self.free, 40), self.max_wait)  # backoff * 2**n


class OneTimeStore(Protocol):
    """Short-lived values with atomic single-use operations. Keys are opaque strings (hash secrets first)."""

    async def put(self, kind: str, key: str, value: dict[str, Any], ttl: int) -> None: ...

    async def get(self, kind: str, key: str) -> dict[str, Any] | None: ...

    async def take(self, kind: str, key: str) -> dict[str, Any] | None:
        """Delete and return the value; of two concurrent callers exactly one gets it."""

    async def exchange(self, kind: str, key: str, new_kind: str, new_key: str, value: dict[str, Any], ttl: int) -> bool:
        """Use up the live entry (kind, key) and store `value` under (new_kind, new_key), in one atomic
        step; False, and nothing stored, when the entry was not there (used up or expired). Of two
        concurrent callers at most one succeeds: a pushed request becomes exactly one code."""

    async def consume(self, kind: str, key: str) -> tuple[dict[str, Any], bool] | None:
        """Mark the value used and return (value, first_use). Only one caller ever sees first_use=True;
        later callers still see the value until it expires (that is how code reuse is detected)."""

    async def add(self, kind: str, key: str, ttl: int) -> bool:
        """Remember `key` for `ttl` seconds; False if it was already there (replay)."""

    async def add_all(self, entries: Sequence[tuple[str, str, int]]) -> list[bool]:
        """`add` of every (kind, key, ttl) in one atomic step (one statement, one script): for each,
        in order, False if it was already there (or named earlier in `entries`). The new ones are
        remembered even when another is a replay: each is single-use whatever the request's fate."""

    async def incr(self, kind: str, key: str, ttl: int) -> int:
        """Increment a counter that expires `ttl` seconds after it was created; returns the new value."""

    async def count(self, kind: str, key: str) -> int: ...

    async def reserve(self, limits: Sequence[AttemptLimit], now: int) -> int:
        """Count one attempt on every limit, all or none, before the attempt is made. 0: counted.
        Otherwise nothing is counted and the answer is the seconds to wait until every limit allows
        one. Atomic: of concurrent callers no more are counted than the limits allow."""

    async def release(self, limits: Sequence[AttemptLimit], now: int) -> None:
        """Take back one counted attempt on each limit (it was not a failure after all); a wait the
        remaining count no longer calls for is lifted."""

    async def forget(self, kind: str, prefix: str) -> int:
        """Delete every entry of `kind` whose key begins with `prefix` (not empty); how many."""

    async def delete(self, kind: str, key: str) -> None: ...

    async def purge_expired(self) -> int: ...

    async def close(self) -> None: ...


# -- durable state, one port per artifact --------------------------------------------------------


class ClientStore(Protocol):
    """Registered clients (RFC 7591) and the browser origins they allow at the token endpoint."""

    async def get_client(self, client_id: str) -> Client | None: ...
    async def list_clients(self) -> list[Client]: ...
    async def save_client(self, client: Client) -> None: ...
    async def delete_client(self, client_id: str) -> bool:
        """Remove the client, its origins and its remembered consents, and revoke its live grants;
        False when there was no such client."""

    async def origin_registered(self, origin: str) -> bool: ...


class UserStore(Protocol):
    """Users and their sign-in sessions."""

    async def get_user(self, user_id: str) -> User | None: ...
    async def get_user_by_username(self, username: str) -> User | None: ...
    async def list_users(self) -> list[User]: ...
    async def save_user(self, user: User) -> None:
        """Create or update a user; an update never changes the disabled status (set_user_disabled does)."""

    async def set_user_disabled(self, user_id: str, disabled: bool, now: int) -> tuple[bool, int, list[str]] | None:
        """Disabling ends the user's sessions and revokes their live grants in the same transaction;
        (changed, sessions ended, grants revoked) or None for an unknown user. A disabled user's
        sessions, refresh tokens and grants (token_status) are not usable even if one slipped in."""

    async def create_session(self, session: Session) -> None: ...
    async def get_session(self, id_hash: str, now: int) -> Session | None:
        """The session unless it expired or its user is disabled."""

    async def delete_session(self, id_hash: str) -> None: ...


class FactorStore(Protocol):
    """Customers' second factors (TOTP secrets sealed at rest, passkeys as given) and their recovery
    codes (stored as hashes). oauth/factors.py holds the rules."""

    async def list_factors(self, user_id: str) -> list[Factor]:
        """The user's factors, oldest first."""

    async def factor_by_credential(self, credential_id: bytes) -> Factor | None:
        """The passkey with this WebAuthn credential id (a discoverable credential names no user)."""

    async def add_factor(self, factor: Factor, limit: int) -> bool:
        """Enrol a factor unless the user has `limit` already or its credential id is another
        factor's (False then); atomically."""

    async def remove_factor(self, user_id: str, factor_id: str) -> bool: ...
    async def factor_used(self, factor_id: str, now: int, sign_count: int | None = None) -> bool:
        """Record a successful use. For a passkey with a counter, only if `sign_count` is above the
        stored one (compare-and-set: two sign-ins racing with one counter value cannot both pass,
        W3C WebAuthn §6.1.1); False then, and nothing changes."""

    async def set_recovery_codes(self, user_id: str, code_hashes: list[str], now: int) -> None:
        """Replace the user's recovery codes with these."""

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        """Remove the code if the user has it; True exactly once per code, whatever the concurrency."""

    async def recovery_codes_left(self, user_id: str) -> int: ...
    async def reset_factors(self, user_id: str) -> int:
        """Remove every factor and recovery code of the user (an operator's reset); how many factors."""


class ConsentStore(Protocol):
    """Consents remembered per user and client (the scopes approved so far)."""

    async def get_consent(self, user_id: str, client_id: str) -> frozenset[str]: ...
    async def save_consent(self, user_id: str, client_id: str, scopes: frozenset[str], now: int) -> None:
        """Add `scopes` to the remembered ones (concurrent saves merge, none is lost)."""

    async def list_consents(self, user_id: str) -> list[tuple[str, frozenset[str], int]]:
        """(client id, scopes, updated_at) of every consent the user remembers."""

    async def revoke_client_access(self, user_id: str, client_id: str, now: int) -> list[str]:
        """Revoke all of a user's live grants for a client and forget the consent; the revoked grant ids."""


class GrantStore(Protocol):
    """Grants (token families; a grant keeps the RFC 9396 authorization_details the user approved),
    their refresh tokens and the revoked access-token ids."""

    async def create_grant(self, grant: Grant) -> None: ...
    async def revoke_grant(self, grant_id: str, now: int) -> None: ...
    async def get_grant(self, grant_id: str) -> Grant | None: ...
    async def list_user_grants(self, user_id: str | None = None) -> list[tuple[Grant, int | None]]:
        """Grants of a user (all users when None) with the expiry of their latest unused refresh token."""

    async def save_refresh_token(self, token: RefreshToken) -> None: ...
    async def get_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Grant] | None:
        """The token and its grant; None also when the grant is gone or the user disabled."""

    async def rotate_refresh_token(self, old_hash: str, new: RefreshToken, now: int) -> bool:
        """Atomically mark `old_hash` used and store `new`; False if it had been used already."""

    async def revoke_access_token(self, jti: str, expires_at: int) -> None:
        """Remember the access token's jti as revoked until it expires; idempotent."""

    async def token_status(self, jti: str, grant_id: str | None) -> bool:
        """True when neither the token (by jti) nor its grant has been revoked."""

    async def grant_live(self, grant_id: str) -> bool:
        """True when the grant exists, is not revoked and its user is not disabled."""


class ConsentResourceStore(Protocol):
    """Consent resources lodged by a resource server (oauth/consent_resources.py): the status moves
    by conditional updates only."""

    async def create_consent_resource(self, resource: ConsentResource) -> None: ...
    async def get_consent_resource(self, consent_id: str) -> tuple[ConsentResource, int | None] | None:
        """The consent and its grant's revoked_at (None: no grant or a live one)."""

    async def consent_resource_ids(self, grant_ids: list[str]) -> dict[str, str]:
        """grant id -> the consent resource it authorised (only grants that did)."""

    async def authorise_consent_resource(self, consent_id: str, grant: Grant, lodged_after: int) -> bool:
        """AwaitingAuthorisation (lodged after `lodged_after`) -> Authorised with the grant created,
        atomically; False: nothing written."""

    async def set_consent_resource_status(
        self,
        consent_id: str,
        expected: tuple[ConsentStatus, ...],
        status: ConsentStatus,
        now: int,
        user_id: str | None = None,
    ) -> bool:
        """Conditional status change; Revoked revokes the consent's grant in the same transaction."""


class SigningKeyStore(Protocol):
    """The authorization server's signing keys (private keys sealed at rest where the store persists)."""

    async def list_signing_keys(self) -> list[SigningKey]:
        """Oldest first."""

    async def save_signing_key(self, key: SigningKey) -> None: ...
    async def delete_signing_key(self, kid: str) -> None: ...


class RegistrationTokenStore(Protocol):
    """Initial access tokens for dynamic client registration (RFC 7591 §3), by hash."""

    async def create_registration_token(
        self, token_hash: str, label: str, expires_at: int | None, now: int
    ) -> None: ...
    async def registration_token_valid(self, token_hash: str, now: int) -> bool: ...
    async def list_registration_tokens(self) -> list[dict[str, Any]]:
        """Oldest first: {label, created_at, expires_at, revoked_at} (never the token or its hash)."""

    async def revoke_registration_token(self, label: str) -> bool:
        """False when no unrevoked token has this label."""


class AuditLog(Protocol):
    """Security events (logins, consents, reuse, revocations, client and key changes)."""

    async def audit(
        self,
        event: str,
        now: int,
        *,
        client_id: str | None = None,
        user_id: str | None = None,
        ip: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None: ...


class Housekeeping(Protocol):
    async def purge_expired(self, now: int) -> int:
        """Remove what can no longer be used (sessions, refresh tokens and revoked jtis past their
        expiry; grants left with nothing to present, a day after creation); how many."""

    async def close(self) -> None: ...


class DurableStore(
    ClientStore,
    UserStore,
    FactorStore,
    ConsentStore,
    GrantStore,
    ConsentResourceStore,
    SigningKeyStore,
    RegistrationTokenStore,
    AuditLog,
    Housekeeping,
    Protocol,
):
    """Every durable port at once: what the wiring (runtime.py) builds and `Core.store` holds."""
