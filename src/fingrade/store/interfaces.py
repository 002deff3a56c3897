"""The narrow interfaces the protocol core talks to.

Durable state (clients, users, grants, consents, refresh tokens, keys, audit) lives in SQL.
One-time state (codes, interactions, jti replay caches, throttling counters) lives in a store
with atomic take-once semantics, backed by SQL or Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fingrade.oauth.models import Client, ConsentResource, ConsentStatus, Grant, RefreshToken, Session, SigningKey, User


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
        return min(self.backoff * 2 ** min(count - self.free, 40), self.max_wait)


class OneTimeStore(Protocol):
    """Short-lived values with atomic single-use operations. Keys are opaque strings (hash secrets first)."""

    async def put(self, kind: str, key: str, value: dict[str, Any], ttl: int) -> None: ...

    async def get(self, kind: str, key: str) -> dict[str, Any] | None: ...

    async def take(self, kind: str, key: str) -> dict[str, Any] | None:
        """Delete and return the value; of two concurrent callers exactly one gets it."""

    async def consume(self, kind: str, key: str) -> tuple[dict[str, Any], bool] | None:
        """Mark the value used and return (value, first_use). Only one caller ever sees first_use=True;
        later callers still see the value until it expires (that is how code reuse is detected)."""

    async def add(self, kind: str, key: str, ttl: int) -> bool:
        """Remember `key` for `ttl` seconds; False if it was already there (replay)."""

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


class DurableStore(Protocol):
    # clients
    async def get_client(self, client_id: str) -> Client | None: ...
    async def list_clients(self) -> list[Client]: ...
    async def save_client(self, client: Client) -> None: ...
    async def delete_client(self, client_id: str) -> bool: ...
    async def origin_registered(self, origin: str) -> bool: ...

    # users and sessions
    async def get_user(self, user_id: str) -> User | None: ...
    async def get_user_by_username(self, username: str) -> User | None: ...
    async def list_users(self) -> list[User]: ...
    async def save_user(self, user: User) -> None: ...
    async def set_user_disabled(self, user_id: str, disabled: bool, now: int) -> tuple[bool, int, list[str]] | None:
        """Disabling ends the user's sessions and revokes their live grants in the same transaction;
        (changed, sessions ended, grants revoked) or None for an unknown user. A disabled user's
        sessions, refresh tokens and grants (token_status) are not usable even if one slipped in."""

    async def create_session(self, session: Session) -> None: ...
    async def get_session(self, id_hash: str, now: int) -> Session | None: ...
    async def delete_session(self, id_hash: str) -> None: ...

    # consents: remembered per user, client and scopes
    async def get_consent(self, user_id: str, client_id: str) -> frozenset[str]: ...
    async def save_consent(self, user_id: str, client_id: str, scopes: frozenset[str], now: int) -> None: ...

    # grants and tokens (a grant keeps the RFC 9396 authorization_details the user approved)
    async def create_grant(self, grant: Grant) -> None: ...
    async def revoke_grant(self, grant_id: str, now: int) -> None: ...
    async def get_grant(self, grant_id: str) -> Grant | None: ...
    async def list_user_grants(self, user_id: str | None = None) -> list[tuple[Grant, int | None]]:
        """Grants of a user (all users when None) with the expiry of their latest unused refresh token."""

    async def list_consents(self, user_id: str) -> list[tuple[str, frozenset[str], int]]: ...
    async def revoke_client_access(self, user_id: str, client_id: str, now: int) -> list[str]:
        """Revoke all of a user's live grants for a client and forget the consent; the revoked grant ids."""

    async def save_refresh_token(self, token: RefreshToken) -> None: ...
    async def get_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Grant] | None: ...
    async def rotate_refresh_token(self, old_hash: str, new: RefreshToken, now: int) -> bool:
        """Atomically mark `old_hash` used and store `new`; False if it had been used already."""

    async def revoke_access_token(self, jti: str, expires_at: int) -> None: ...
    async def token_status(self, jti: str, grant_id: str | None) -> bool:
        """True when neither the token (by jti) nor its grant has been revoked."""

    async def grant_live(self, grant_id: str) -> bool:
        """True when the grant exists, is not revoked and its user is not disabled."""

    # consent resources lodged by a resource server (oauth/consent_resources.py)
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

    # signing keys
    async def list_signing_keys(self) -> list[SigningKey]: ...
    async def save_signing_key(self, key: SigningKey) -> None: ...
    async def delete_signing_key(self, kid: str) -> None: ...

    # registration initial access tokens (RFC 7591 §3)
    async def create_registration_token(
        self, token_hash: str, label: str, expires_at: int | None, now: int
    ) -> None: ...
    async def registration_token_valid(self, token_hash: str, now: int) -> bool: ...
    async def revoke_registration_token(self, label: str) -> bool: ...
    async def list_registration_tokens(self) -> list[dict[str, Any]]:
        """Every token's label, created_at, expires_at and revoked_at (never the token), oldest first."""

    # audit
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

    async def purge_expired(self, now: int) -> int: ...
    async def close(self) -> None: ...
