"""Both stores in memory: `MemoryDurableStore` and `MemoryOneTimeStore`.

For unit tests, embedding and experiments. Not a backend the configuration offers: the state lives
in one process and ends with it, and nodes cannot share it (a code redeemed on one node would be
unknown on another, a replay cache would not span them). The semantics are those of the SQL store,
and the store contract tests (tests/stores/test_durable_contract.py, test_onetime_contract.py) run
against both.

- Atomicity: no method awaits anything, so on one event loop each runs to completion before any
  other coroutine runs, as a transaction would (consume, take, add, reserve, refresh rotation's
  compare-and-set). Use a store from one event loop (one thread).
- Values are copied in and out, as a database would: changing an object read from the store, or one
  after it was saved, changes nothing stored. One-time values go through JSON like the SQL and
  Redis stores' (a value that cannot be serialised fails here too).
- Time: TTLs of the one-time store and the few durable methods that take no `now` (removing a
  client, revoking a registration token) read `clock`, integer seconds, the wall clock unless one is
  injected. Every other method uses the `now` it is given.
- A write that would duplicate a key raises `DuplicateKeyError` where the SQL store's constraint
  raises its driver's integrity error (a second user with one username, a second grant with one id).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

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
from fingrade.oauth.ports import AttemptLimit

T = TypeVar("T")

Clock = Callable[[], int]


def wall_clock() -> int:
    return int(time.time())


def _copy(value: T) -> T:
    return copy.deepcopy(value)


K = TypeVar("K")
V = TypeVar("V")


def _drop(table: dict[K, V], doomed: Callable[[V], bool]) -> int:
    """Delete the entries whose value is `doomed`; how many."""
    keys = [k for k, v in table.items() if doomed(v)]
    for k in keys:
        del table[k]
    return len(keys)


class DuplicateKeyError(ValueError):
    """A write would have stored a second row under a unique key."""


# -- one-time state ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    value: bytes | None  # JSON; None for replay-cache entries and attempt counters
    used: int  # consumed flag, counter value or counted attempts
    expires_at: int
    not_before: int = 0  # attempt counters: no attempt before this time


class MemoryOneTimeStore:
    def __init__(self, clock: Clock = wall_clock) -> None:
        self.clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}

    def _live(self, kind: str, key: str, now: int) -> _Entry | None:
        entry = self._entries.get((kind, key))
        return entry if entry is not None and entry.expires_at > now else None

    async def put(self, kind: str, key: str, value: dict[str, Any], ttl: int) -> None:
        self._entries[(kind, key)] = _Entry(orjson.dumps(value), 0, self.clock() + ttl)

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        entry = self._live(kind, key, self.clock())
        return orjson.loads(entry.value) if entry is not None and entry.value is not None else None

    async def take(self, kind: str, key: str) -> dict[str, Any] | None:
        entry = self._live(kind, key, self.clock())
        if entry is None:
            return None
        del self._entries[(kind, key)]
        return orjson.loads(entry.value) if entry.value is not None else None

    async def exchange(self, kind: str, key: str, new_kind: str, new_key: str, value: dict[str, Any], ttl: int) -> bool:
        now = self.clock()
        if self._live(kind, key, now) is None:
            return False
        del self._entries[(kind, key)]
        self._entries[(new_kind, new_key)] = _Entry(orjson.dumps(value), 0, now + ttl)
        return True

    async def consume(self, kind: str, key: str) -> tuple[dict[str, Any], bool] | None:
        entry = self._live(kind, key, self.clock())
        if entry is None or entry.value is None:
            return None
        first = entry.used == 0
        entry.used = 1
        return orjson.loads(entry.value), first

    async def add(self, kind: str, key: str, ttl: int) -> bool:
        now = self.clock()
        if self._live(kind, key, now) is not None:
            return False  # a live entry is left as it was: a replay does not extend it
        self._entries[(kind, key)] = _Entry(None, 0, now + ttl)
        return True

    async def add_all(self, entries: Sequence[tuple[str, str, int]]) -> list[bool]:
        return [await self.add(kind, key, ttl) for kind, key, ttl in entries]

    async def incr(self, kind: str, key: str, ttl: int) -> int:
        now = self.clock()
        entry = self._live(kind, key, now)
        if entry is None:
            self._entries[(kind, key)] = _Entry(None, 1, now + ttl)
            return 1
        entry.used += 1
        return entry.used

    async def count(self, kind: str, key: str) -> int:
        entry = self._live(kind, key, self.clock())
        return entry.used if entry is not None else 0

    async def reserve(self, limits: Sequence[AttemptLimit], now: int) -> int:
        seen: list[tuple[AttemptLimit, int]] = []
        wait = 0
        for limit in limits:
            entry = self._live(limit.kind, limit.key, now)
            count, not_before = (entry.used, entry.not_before) if entry is not None else (0, 0)
            wait = max(wait, not_before - now)
            seen.append((limit, count))
        if wait > 0:
            return wait  # all or none: nothing counted
        for limit, count in seen:
            not_before = now + limit.wait_after(count + 1)
            self._entries[(limit.kind, limit.key)] = _Entry(
                None, count + 1, max(now + limit.window, not_before), not_before
            )
        return 0

    async def release(self, limits: Sequence[AttemptLimit], now: int) -> None:
        for limit in limits:
            entry = self._live(limit.kind, limit.key, now)
            if entry is None:
                continue
            entry.used = max(entry.used - 1, 0)
            if entry.used < limit.free:
                entry.not_before = 0

    async def forget(self, kind: str, prefix: str) -> int:
        if not prefix:
            raise ValueError("forget needs a key prefix")
        doomed = [k for k in self._entries if k[0] == kind and k[1].startswith(prefix)]
        for k in doomed:
            del self._entries[k]
        return len(doomed)

    async def delete(self, kind: str, key: str) -> None:
        self._entries.pop((kind, key), None)

    async def purge_expired(self) -> int:
        now = self.clock()
        return _drop(self._entries, lambda entry: entry.expires_at <= now)

    async def close(self) -> None:
        return None


# -- durable state -------------------------------------------------------------------------------


@dataclass(slots=True)
class _RegistrationToken:
    label: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None = None


class MemoryDurableStore:
    """Every durable port (fingrade.oauth.ports.DurableStore) on dictionaries. Signing keys are kept
    as they are given (there is no storage to seal them against). Audit events are appended to
    `audit_events`, a list of dicts with the columns of the SQL store's audit table."""

    def __init__(self, clock: Clock = wall_clock) -> None:
        self.clock = clock
        self._clients: dict[str, Client] = {}
        self._users: dict[str, User] = {}
        self._user_ids: dict[str, str] = {}  # username -> id
        self._sessions: dict[str, Session] = {}
        self._factors: dict[str, Factor] = {}
        self._recovery_codes: dict[str, str] = {}  # code hash -> user id
        self._consents: dict[tuple[str, str], tuple[frozenset[str], int]] = {}  # (user, client) -> scopes, at
        self._grants: dict[str, Grant] = {}
        self._refresh_tokens: dict[str, RefreshToken] = {}
        self._revoked_tokens: dict[str, int] = {}  # jti -> expires_at
        self._consent_resources: dict[str, ConsentResource] = {}
        self._signing_keys: dict[str, SigningKey] = {}
        self._registration_tokens: dict[str, _RegistrationToken] = {}  # by token hash
        self.audit_events: list[dict[str, Any]] = []

    def _user_disabled(self, user_id: str | None) -> bool:
        user = self._users.get(user_id) if user_id is not None else None
        return user is not None and user.disabled

    def _revoke_grants(self, now: int, match: Callable[[Grant], bool]) -> list[str]:
        ids = [g.id for g in self._grants.values() if g.revoked_at is None and match(g)]
        for gid in ids:
            self._grants[gid].revoked_at = now
        return ids

    def _insert_grant(self, grant: Grant, revoked_at: int | None) -> None:
        stored = _copy(grant)
        stored.revoked_at = revoked_at
        stored.authorization_details = stored.authorization_details or None  # as SQL stores an empty list
        self._grants[grant.id] = stored

    # -- clients ---------------------------------------------------------------------------
    async def get_client(self, client_id: str) -> Client | None:
        return _copy(self._clients.get(client_id))

    async def list_clients(self) -> list[Client]:
        return [_copy(self._clients[cid]) for cid in sorted(self._clients)]

    async def save_client(self, client: Client) -> None:
        stored = _copy(client)
        stored.allowed_origins = sorted(set(client.allowed_origins))
        stored.jwks = stored.jwks or None  # as SQL stores an empty key set
        self._clients[client.client_id] = stored

    async def delete_client(self, client_id: str) -> bool:
        for consent in [k for k in self._consents if k[1] == client_id]:
            del self._consents[consent]
        self._revoke_grants(self.clock(), lambda g: g.client_id == client_id)
        return self._clients.pop(client_id, None) is not None

    async def origin_registered(self, origin: str) -> bool:
        return any(origin in c.allowed_origins for c in self._clients.values())

    # -- users and sessions ------------------------------------------------------------------
    async def get_user(self, user_id: str) -> User | None:
        return _copy(self._users.get(user_id))

    async def get_user_by_username(self, username: str) -> User | None:
        user_id = self._user_ids.get(username)
        return _copy(self._users[user_id]) if user_id is not None else None

    async def list_users(self) -> list[User]:
        return [_copy(self._users[self._user_ids[name]]) for name in sorted(self._user_ids)]

    async def save_user(self, user: User) -> None:
        owner = self._user_ids.get(user.username)
        if owner is not None and owner != user.id:
            raise DuplicateKeyError(f"username {user.username!r} is taken")
        stored = _copy(user)
        current = self._users.get(user.id)
        if current is not None:
            # The status changes only through set_user_disabled.
            stored.disabled = current.disabled
            del self._user_ids[current.username]
        self._users[user.id] = stored
        self._user_ids[user.username] = user.id

    async def set_user_disabled(self, user_id: str, disabled: bool, now: int) -> tuple[bool, int, list[str]] | None:
        user = self._users.get(user_id)
        if user is None:
            return None
        changed = user.disabled != disabled
        user.disabled = disabled
        if not disabled:
            return changed, 0, []
        ended = [h for h, s in self._sessions.items() if s.user_id == user_id]
        for h in ended:
            del self._sessions[h]
        return changed, len(ended), self._revoke_grants(now, lambda g: g.user_id == user_id)

    async def create_session(self, session: Session) -> None:
        if session.id_hash in self._sessions:
            raise DuplicateKeyError("session exists")
        self._sessions[session.id_hash] = _copy(session)

    async def get_session(self, id_hash: str, now: int) -> Session | None:
        session = self._sessions.get(id_hash)
        if session is None or session.expires_at <= now:
            return None
        user = self._users.get(session.user_id)
        if user is None or user.disabled:
            return None  # as the SQL store's join on users: fail closed
        return _copy(session)

    async def delete_session(self, id_hash: str) -> None:
        self._sessions.pop(id_hash, None)

    # -- second factors ----------------------------------------------------------------------
    async def list_factors(self, user_id: str) -> list[Factor]:
        mine = [f for f in self._factors.values() if f.user_id == user_id]
        return [_copy(f) for f in sorted(mine, key=lambda f: (f.created_at, f.id))]

    async def factor_by_credential(self, credential_id: bytes) -> Factor | None:
        found = [f for f in self._factors.values() if f.credential_id == credential_id]
        return _copy(found[0]) if found else None

    async def add_factor(self, factor: Factor, limit: int) -> bool:
        if factor.id in self._factors:
            raise DuplicateKeyError("factor exists")
        if factor.credential_id is not None and any(
            f.credential_id == factor.credential_id for f in self._factors.values()
        ):
            return False  # as the SQL store: the credential id is another factor's
        if sum(f.user_id == factor.user_id for f in self._factors.values()) >= limit:
            return False
        self._factors[factor.id] = _copy(factor)
        return True

    async def remove_factor(self, user_id: str, factor_id: str) -> bool:
        factor = self._factors.get(factor_id)
        if factor is None or factor.user_id != user_id:
            return False
        del self._factors[factor_id]
        return True

    async def factor_used(self, factor_id: str, now: int, sign_count: int | None = None) -> bool:
        factor = self._factors.get(factor_id)
        if factor is None or (sign_count is not None and sign_count <= factor.sign_count):
            return False
        factor.last_used_at = now
        if sign_count is not None:
            factor.sign_count = sign_count
        return True

    async def set_recovery_codes(self, user_id: str, code_hashes: list[str], now: int) -> None:
        _drop(self._recovery_codes, lambda owner: owner == user_id)
        for h in code_hashes:
            self._recovery_codes[h] = user_id

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        if self._recovery_codes.get(code_hash) != user_id:
            return False
        del self._recovery_codes[code_hash]
        return True

    async def recovery_codes_left(self, user_id: str) -> int:
        return sum(owner == user_id for owner in self._recovery_codes.values())

    async def reset_factors(self, user_id: str) -> int:
        _drop(self._recovery_codes, lambda owner: owner == user_id)
        return _drop(self._factors, lambda f: f.user_id == user_id)

    # -- consents ----------------------------------------------------------------------------
    async def get_consent(self, user_id: str, client_id: str) -> frozenset[str]:
        found = self._consents.get((user_id, client_id))
        return found[0] if found is not None else frozenset()

    async def save_consent(self, user_id: str, client_id: str, scopes: frozenset[str], now: int) -> None:
        current = self._consents.get((user_id, client_id))
        merged = frozenset(scopes) | (current[0] if current is not None else frozenset())
        self._consents[(user_id, client_id)] = (merged, now)

    async def list_consents(self, user_id: str) -> list[tuple[str, frozenset[str], int]]:
        return [(cid, scopes, at) for (uid, cid), (scopes, at) in self._consents.items() if uid == user_id]

    async def revoke_client_access(self, user_id: str, client_id: str, now: int) -> list[str]:
        ids = self._revoke_grants(now, lambda g: g.user_id == user_id and g.client_id == client_id)
        self._consents.pop((user_id, client_id), None)
        return ids

    # -- grants and tokens -------------------------------------------------------------------
    async def create_grant(self, grant: Grant) -> None:
        if grant.id in self._grants:
            raise DuplicateKeyError("grant exists")
        self._insert_grant(grant, grant.revoked_at)

    async def revoke_grant(self, grant_id: str, now: int) -> None:
        self._revoke_grant(grant_id, now)

    def _revoke_grant(self, grant_id: str, now: int) -> None:
        grant = self._grants.get(grant_id)
        if grant is not None and grant.revoked_at is None:
            grant.revoked_at = now

    async def get_grant(self, grant_id: str) -> Grant | None:
        return _copy(self._grants.get(grant_id))

    async def list_user_grants(self, user_id: str | None = None) -> list[tuple[Grant, int | None]]:
        until: dict[str, int] = {}
        for rt in self._refresh_tokens.values():
            if rt.used_at is None:
                until[rt.grant_id] = max(until.get(rt.grant_id, rt.expires_at), rt.expires_at)
        found = [
            g for g in self._grants.values() if g.user_id is not None and (user_id is None or g.user_id == user_id)
        ]
        found.sort(key=lambda g: (g.created_at, g.id))
        return [(_copy(g), until.get(g.id)) for g in found]

    async def save_refresh_token(self, token: RefreshToken) -> None:
        if token.token_hash in self._refresh_tokens:
            raise DuplicateKeyError("refresh token exists")
        self._refresh_tokens[token.token_hash] = _copy(token)

    async def get_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Grant] | None:
        rt = self._refresh_tokens.get(token_hash)
        if rt is None:
            return None
        grant = self._grants.get(rt.grant_id)
        if grant is None or self._user_disabled(rt.user_id):
            return None  # a disabled user's refresh tokens are dead, as if unknown
        return _copy(rt), _copy(grant)

    async def rotate_refresh_token(self, old_hash: str, new: RefreshToken, now: int) -> bool:
        old = self._refresh_tokens.get(old_hash)
        if old is None or old.used_at is not None:
            return False  # compare-and-set: only the first rotation of a token wins
        if new.token_hash in self._refresh_tokens:
            raise DuplicateKeyError("refresh token exists")  # nothing written, as a rolled-back transaction
        old.used_at = now
        self._refresh_tokens[new.token_hash] = _copy(new)
        return True

    async def revoke_access_token(self, jti: str, expires_at: int) -> None:
        self._revoked_tokens.setdefault(jti, expires_at)

    async def token_status(self, jti: str, grant_id: str | None) -> bool:
        if jti in self._revoked_tokens:
            return False
        return grant_id is None or self._grant_live(grant_id)

    async def grant_live(self, grant_id: str) -> bool:
        return self._grant_live(grant_id)

    def _grant_live(self, grant_id: str) -> bool:
        grant = self._grants.get(grant_id)
        return grant is not None and grant.revoked_at is None and not self._user_disabled(grant.user_id)

    # -- consent resources -------------------------------------------------------------------
    async def create_consent_resource(self, resource: ConsentResource) -> None:
        if resource.id in self._consent_resources:
            raise DuplicateKeyError("consent resource exists")
        self._consent_resources[resource.id] = _copy(resource)

    async def get_consent_resource(self, consent_id: str) -> tuple[ConsentResource, int | None] | None:
        resource = self._consent_resources.get(consent_id)
        if resource is None:
            return None
        grant = self._grants.get(resource.grant_id) if resource.grant_id is not None else None
        return _copy(resource), grant.revoked_at if grant is not None else None

    async def consent_resource_ids(self, grant_ids: list[str]) -> dict[str, str]:
        wanted = set(grant_ids)
        return {r.grant_id: r.id for r in self._consent_resources.values() if r.grant_id in wanted}

    async def authorise_consent_resource(self, consent_id: str, grant: Grant, lodged_after: int) -> bool:
        resource = self._consent_resources.get(consent_id)
        if (
            resource is None
            or resource.client_id != grant.client_id
            or resource.status != ConsentStatus.AWAITING_AUTHORISATION
            or resource.created_at <= lodged_after
        ):
            return False
        if grant.id in self._grants:
            raise DuplicateKeyError("grant exists")  # nothing written, as a rolled-back transaction
        resource.status = ConsentStatus.AUTHORISED
        resource.status_updated_at = grant.created_at
        resource.user_id = grant.user_id
        resource.grant_id = grant.id
        resource.authorization_details = _copy(grant.authorization_details or [])
        self._insert_grant(grant, None)
        return True

    async def set_consent_resource_status(
        self,
        consent_id: str,
        expected: tuple[ConsentStatus, ...],
        status: ConsentStatus,
        now: int,
        user_id: str | None = None,
    ) -> bool:
        resource = self._consent_resources.get(consent_id)
        if resource is None or resource.status not in expected:
            return False
        resource.status = status
        resource.status_updated_at = now
        if user_id is not None:
            resource.user_id = user_id
        if status == "Revoked" and resource.grant_id is not None:
            self._revoke_grant(resource.grant_id, now)
        return True

    # -- signing keys ------------------------------------------------------------------------
    async def list_signing_keys(self) -> list[SigningKey]:
        return [_copy(k) for k in sorted(self._signing_keys.values(), key=lambda k: k.created_at)]

    async def save_signing_key(self, key: SigningKey) -> None:
        self._signing_keys[key.kid] = _copy(key)

    async def delete_signing_key(self, kid: str) -> None:
        self._signing_keys.pop(kid, None)

    # -- registration initial access tokens --------------------------------------------------
    async def create_registration_token(self, token_hash: str, label: str, expires_at: int | None, now: int) -> None:
        if token_hash in self._registration_tokens or any(t.label == label for t in self._registration_tokens.values()):
            raise DuplicateKeyError("registration token exists")
        self._registration_tokens[token_hash] = _RegistrationToken(label, now, expires_at)

    async def registration_token_valid(self, token_hash: str, now: int) -> bool:
        t = self._registration_tokens.get(token_hash)
        return t is not None and t.revoked_at is None and (t.expires_at is None or t.expires_at > now)

    async def list_registration_tokens(self) -> list[dict[str, Any]]:
        return [
            dict(label=t.label, created_at=t.created_at, expires_at=t.expires_at, revoked_at=t.revoked_at)
            for t in sorted(self._registration_tokens.values(), key=lambda t: t.created_at)
        ]

    async def revoke_registration_token(self, label: str) -> bool:
        now = self.clock()
        found = [t for t in self._registration_tokens.values() if t.label == label and t.revoked_at is None]
        for t in found:
            t.revoked_at = now
        return bool(found)

    # -- audit -------------------------------------------------------------------------------
    async def audit(
        self,
        event: str,
        now: int,
        *,
        client_id: str | None = None,
        user_id: str | None = None,
        ip: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self.audit_events.append(
            dict(
                at=now,
                event=event,
                client_id=client_id,
                user_id=user_id,
                ip=ip,
                detail=_copy(detail) if detail else None,
            )
        )

    # -- housekeeping ------------------------------------------------------------------------
    async def purge_expired(self, now: int) -> int:
        n = _drop(self._sessions, lambda s: s.expires_at <= now)
        n += _drop(self._revoked_tokens, lambda expires_at: expires_at <= now)
        n += _drop(self._refresh_tokens, lambda rt: rt.expires_at <= now)
        # Grants with nothing left that could be presented are kept a day for audit, then removed.
        with_tokens = {rt.grant_id for rt in self._refresh_tokens.values()}
        return n + _drop(self._grants, lambda g: g.created_at < now - 86400 and g.id not in with_tokens)

    async def close(self) -> None:
        return None
