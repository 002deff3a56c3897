"""The durable store on SQL (SQLite or PostgreSQL)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, delete, exists, false, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from fingrade.keys.sealing import SealedDataError, Sealer
from fingrade.oauth.models import (
    Client,
    ConsentResource,
    ConsentStatus,
    Grant,
    RefreshToken,
    Session,
    SigningKey,
    User,
)
from fingrade.store.sql.db import Database
from fingrade.store.sql.schema import (
    audit_events,
    client_origins,
    clients,
    consent_resources,
    consents,
    grants,
    refresh_tokens,
    registration_tokens,
    revoked_tokens,
    sessions,
    signing_keys,
    users,
)

# Hot-path statements are built once: constructing SQLAlchemy expressions costs more than
# running the query on SQLite (see docs/performance.md).
_CLIENT = select(clients).where(clients.c.client_id == bindparam("cid"))
_CLIENT_ORIGINS = select(client_origins.c.origin).where(client_origins.c.client_id == bindparam("cid"))
# A disabled user's sessions are deleted when the user is disabled; the join keeps it so for a session
# created concurrently (fail closed).
_SESSION = (
    select(sessions)
    .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
    .where(
        and_(
            sessions.c.id_hash == bindparam("h"), sessions.c.expires_at > bindparam("now"), users.c.disabled == false()
        )
    )
)
_CONSENT = select(consents.c.scope).where(
    and_(consents.c.user_id == bindparam("uid"), consents.c.client_id == bindparam("cid"))
)
_INSERT_GRANT = insert(grants)
_INSERT_RT = insert(refresh_tokens)
_REVOKED_JTI = select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == bindparam("jti"))
# A grant is usable while neither it is revoked nor its user disabled.
_GRANT_LIVE = (
    select(grants.c.revoked_at, users.c.disabled)
    .select_from(grants.outerjoin(users, users.c.id == grants.c.user_id))
    .where(grants.c.id == bindparam("gid"))
)
_USER_DISABLED = select(users.c.disabled).where(users.c.id == bindparam("uid"))
_RT = select(refresh_tokens).where(refresh_tokens.c.token_hash == bindparam("h"))
_GRANT = select(grants).where(grants.c.id == bindparam("gid"))


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _grant_live(conn: Connection, grant_id: str) -> bool:
    row = conn.execute(_GRANT_LIVE, {"gid": grant_id}).first()
    return row is not None and row.revoked_at is None and not row.disabled


def _client_from_row(row: Any) -> Client:
    return Client(
        client_id=row.client_id,
        profile=row.profile,
        client_name=row.client_name,
        redirect_uris=orjson.loads(row.redirect_uris),
        token_endpoint_auth_method=row.token_endpoint_auth_method,
        grant_types=orjson.loads(row.grant_types),
        scope=row.scope,
        secret_hash=row.secret_hash,
        jwks=orjson.loads(row.jwks) if row.jwks else None,
        metadata=orjson.loads(row.metadata),
        resource_server=bool(row.resource_server),
        registration_token_hash=row.registration_token_hash,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _user_from_row(row: Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        password_hash=row.password_hash,
        name=row.name,
        email=row.email,
        email_verified=bool(row.email_verified),
        disabled=bool(row.disabled),
        created_at=row.created_at,
    )


def _grant_from_row(row: Any) -> Grant:
    return Grant(
        id=row.id,
        client_id=row.client_id,
        user_id=row.user_id,
        scope=row.scope,
        auth_time=row.auth_time,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        authorization_details=orjson.loads(row.authorization_details) if row.authorization_details else None,
    )


def _consent_resource_from_row(row: Any) -> ConsentResource:
    return ConsentResource(
        id=row.id,
        client_id=row.client_id,
        status=ConsentStatus(row.status),
        authorization_details=orjson.loads(row.authorization_details),
        data=orjson.loads(row.data),
        created_at=row.created_at,
        status_updated_at=row.status_updated_at,
        user_id=row.user_id,
        grant_id=row.grant_id,
    )


class SqlDurableStore:
    def __init__(self, db: Database, sealer: Sealer, client_cache_seconds: float = 0.0) -> None:
        self.db = db
        self.sealer = sealer
        # Clients are read on every token request and change rarely: a short cache saves most of
        # the endpoint's time. Changes made on this node apply at once; on other nodes within
        # `client_cache_seconds`. Unknown ids are never cached (a fresh registration works at once).
        self._client_ttl = client_cache_seconds
        self._clients: dict[str, tuple[float, Client]] = {}

    # -- clients ---------------------------------------------------------------------------
    async def get_client(self, client_id: str) -> Client | None:
        if "\x00" in client_id:
            return None  # no client_id holds NUL, and PostgreSQL text cannot even be queried with one
        if self._client_ttl > 0:
            hit = self._clients.get(client_id)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        client = await self._load_client(client_id)
        if client is not None and self._client_ttl > 0:
            if len(self._clients) > 10000:
                self._clients.clear()
            self._clients[client_id] = (time.monotonic() + self._client_ttl, client)
        return client

    async def _load_client(self, client_id: str) -> Client | None:
        def q(conn: Connection) -> Client | None:
            row = conn.execute(_CLIENT, {"cid": client_id}).first()
            if row is None:
                return None
            client = _client_from_row(row)
            client.allowed_origins = list(conn.execute(_CLIENT_ORIGINS, {"cid": client_id}).scalars())
            return client

        return await self.db.read(q)

    async def list_clients(self) -> list[Client]:
        def q(conn: Connection) -> list[Client]:
            origins: dict[str, list[str]] = {}
            for o in conn.execute(select(client_origins)):
                origins.setdefault(o.client_id, []).append(o.origin)
            out = []
            for row in conn.execute(select(clients).order_by(clients.c.client_id)):
                c = _client_from_row(row)
                c.allowed_origins = origins.get(c.client_id, [])
                out.append(c)
            return out

        return await self.db.read(q)

    async def save_client(self, client: Client) -> None:
        values = dict(
            client_id=client.client_id,
            profile=client.profile,
            client_name=client.client_name,
            redirect_uris=_dumps(client.redirect_uris),
            token_endpoint_auth_method=client.token_endpoint_auth_method,
            grant_types=_dumps(client.grant_types),
            scope=client.scope,
            secret_hash=client.secret_hash,
            jwks=_dumps(client.jwks) if client.jwks else None,
            metadata=_dumps(client.metadata),
            resource_server=client.resource_server,
            registration_token_hash=client.registration_token_hash,
            created_at=client.created_at,
            updated_at=client.updated_at,
        )

        def q(conn: Connection) -> None:
            found = conn.execute(select(clients.c.client_id).where(clients.c.client_id == client.client_id)).first()
            if found:
                conn.execute(update(clients).where(clients.c.client_id == client.client_id).values(**values))
            else:
                conn.execute(insert(clients).values(**values))
            conn.execute(delete(client_origins).where(client_origins.c.client_id == client.client_id))
            for origin in sorted(set(client.allowed_origins)):
                conn.execute(insert(client_origins).values(origin=origin, client_id=client.client_id))

        self._clients.pop(client.client_id, None)
        await self.db.write(q)

    async def delete_client(self, client_id: str) -> bool:
        self._clients.pop(client_id, None)

        def q(conn: Connection) -> bool:
            conn.execute(delete(client_origins).where(client_origins.c.client_id == client_id))
            conn.execute(delete(consents).where(consents.c.client_id == client_id))
            conn.execute(
                update(grants)
                .where(and_(grants.c.client_id == client_id, grants.c.revoked_at.is_(None)))
                .values(revoked_at=_now())
            )
            return conn.execute(delete(clients).where(clients.c.client_id == client_id)).rowcount > 0

        return await self.db.write(q)

    async def origin_registered(self, origin: str) -> bool:
        def q(conn: Connection) -> bool:
            return conn.execute(select(exists().where(client_origins.c.origin == origin))).scalar() or False

        return await self.db.read(q)

    # -- users and sessions ------------------------------------------------------------------
    async def get_user(self, user_id: str) -> User | None:
        def q(conn: Connection) -> User | None:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
            return _user_from_row(row) if row else None

        return await self.db.read(q)

    async def get_user_by_username(self, username: str) -> User | None:
        def q(conn: Connection) -> User | None:
            row = conn.execute(select(users).where(users.c.username == username)).first()
            return _user_from_row(row) if row else None

        return await self.db.read(q)

    async def list_users(self) -> list[User]:
        def q(conn: Connection) -> list[User]:
            return [_user_from_row(r) for r in conn.execute(select(users).order_by(users.c.username))]

        return await self.db.read(q)

    async def save_user(self, user: User) -> None:
        values = dict(
            id=user.id,
            username=user.username,
            password_hash=user.password_hash,
            name=user.name,
            email=user.email,
            email_verified=user.email_verified,
            disabled=user.disabled,
            created_at=user.created_at,
        )

        def q(conn: Connection) -> None:
            if conn.execute(select(users.c.id).where(users.c.id == user.id)).first():
                # The status changes only through set_user_disabled: a save of a user read before a
                # concurrent disable (a password rehash at sign-in) must not enable them again.
                del values["disabled"]
                conn.execute(update(users).where(users.c.id == user.id).values(**values))
            else:
                conn.execute(insert(users).values(**values))

        await self.db.write(q)

    async def set_user_disabled(self, user_id: str, disabled: bool, now: int) -> tuple[bool, int, list[str]] | None:
        """Disable or enable a user, in one transaction. Disabling also ends the user's sessions and
        revokes every live grant (its access and refresh tokens die with it). Returns (changed,
        sessions ended, grants revoked now), or None when there is no such user."""

        def q(conn: Connection) -> tuple[bool, int, list[str]] | None:
            current = conn.execute(_USER_DISABLED, {"uid": user_id}).first()
            if current is None:
                return None
            changed = bool(current.disabled) != disabled
            if changed:
                conn.execute(update(users).where(users.c.id == user_id).values(disabled=disabled))
            if not disabled:
                return changed, 0, []
            # Also when already disabled: whatever a concurrent sign-in or code created is ended too.
            ended = conn.execute(delete(sessions).where(sessions.c.user_id == user_id)).rowcount
            live = and_(grants.c.user_id == user_id, grants.c.revoked_at.is_(None))
            ids = [r.id for r in conn.execute(select(grants.c.id).where(live))]
            if ids:
                conn.execute(update(grants).where(and_(live, grants.c.id.in_(ids))).values(revoked_at=now))
            return changed, ended, ids

        return await self.db.write(q)

    async def create_session(self, session: Session) -> None:
        def q(conn: Connection) -> None:
            conn.execute(
                insert(sessions).values(
                    id_hash=session.id_hash,
                    user_id=session.user_id,
                    auth_time=session.auth_time,
                    expires_at=session.expires_at,
                    amr=" ".join(session.amr),
                )
            )

        await self.db.write(q)

    async def get_session(self, id_hash: str, now: int) -> Session | None:
        def q(conn: Connection) -> Session | None:
            row = conn.execute(_SESSION, {"h": id_hash, "now": now}).first()
            if row is None:
                return None
            return Session(
                id_hash=row.id_hash,
                user_id=row.user_id,
                auth_time=row.auth_time,
                expires_at=row.expires_at,
                amr=row.amr.split(),
            )

        return await self.db.read(q)

    async def delete_session(self, id_hash: str) -> None:
        def q(conn: Connection) -> None:
            conn.execute(delete(sessions).where(sessions.c.id_hash == id_hash))

        await self.db.write(q)

    # -- consents ----------------------------------------------------------------------------
    async def get_consent(self, user_id: str, client_id: str) -> frozenset[str]:
        def q(conn: Connection) -> frozenset[str]:
            scope = conn.execute(_CONSENT, {"uid": user_id, "cid": client_id}).scalar()
            return frozenset(scope.split()) if scope else frozenset()

        return await self.db.read(q)

    async def save_consent(self, user_id: str, client_id: str, scopes: frozenset[str], now: int) -> None:
        def q(conn: Connection) -> None:
            where = and_(consents.c.user_id == user_id, consents.c.client_id == client_id)
            # FOR UPDATE (PostgreSQL; SQLite serialises writers anyway) so concurrent consents merge
            # instead of losing scopes; a concurrent first insert is caught and merged into.
            current = conn.execute(select(consents.c.scope).where(where).with_for_update()).scalar()
            if current is None:
                try:
                    with conn.begin_nested():
                        conn.execute(
                            insert(consents).values(
                                user_id=user_id, client_id=client_id, scope=" ".join(sorted(scopes)), updated_at=now
                            )
                        )
                    return
                except IntegrityError:
                    current = conn.execute(select(consents.c.scope).where(where).with_for_update()).scalar() or ""
            merged = frozenset(current.split()) | scopes
            conn.execute(update(consents).where(where).values(scope=" ".join(sorted(merged)), updated_at=now))

        await self.db.write(q)

    # -- grants and tokens -------------------------------------------------------------------
    async def create_grant(self, grant: Grant) -> None:
        def q(conn: Connection) -> None:
            conn.execute(
                _INSERT_GRANT,
                dict(
                    id=grant.id,
                    client_id=grant.client_id,
                    user_id=grant.user_id,
                    scope=grant.scope,
                    auth_time=grant.auth_time,
                    created_at=grant.created_at,
                    revoked_at=grant.revoked_at,
                    authorization_details=_dumps(grant.authorization_details) if grant.authorization_details else None,
                ),
            )

        await self.db.write(q)

    async def revoke_grant(self, grant_id: str, now: int) -> None:
        def q(conn: Connection) -> None:
            conn.execute(
                update(grants)
                .where(and_(grants.c.id == grant_id, grants.c.revoked_at.is_(None)))
                .values(revoked_at=now)
            )

        await self.db.write(q)

    async def get_grant(self, grant_id: str) -> Grant | None:
        def q(conn: Connection) -> Grant | None:
            row = conn.execute(_GRANT, {"gid": grant_id}).first()
            return _grant_from_row(row) if row else None

        return await self.db.read(q)

    async def list_user_grants(self, user_id: str | None = None) -> list[tuple[Grant, int | None]]:
        """The grants of one user (all users when None), oldest first, each with the expiry of its
        latest unused refresh token (None: it has none, only short-lived access tokens)."""

        def q(conn: Connection) -> list[tuple[Grant, int | None]]:
            live_rt = (
                select(refresh_tokens.c.grant_id, func.max(refresh_tokens.c.expires_at).label("rt_until"))
                .where(refresh_tokens.c.used_at.is_(None))
                .group_by(refresh_tokens.c.grant_id)
                .subquery()
            )
            stmt = (
                select(grants, live_rt.c.rt_until)
                .select_from(grants.outerjoin(live_rt, live_rt.c.grant_id == grants.c.id))
                .where(grants.c.user_id.is_not(None))
                .order_by(grants.c.created_at, grants.c.id)
            )
            if user_id is not None:
                stmt = stmt.where(grants.c.user_id == user_id)
            return [(_grant_from_row(row), row.rt_until) for row in conn.execute(stmt)]

        return await self.db.read(q)

    async def list_consents(self, user_id: str) -> list[tuple[str, frozenset[str], int]]:
        def q(conn: Connection) -> list[tuple[str, frozenset[str], int]]:
            rows = conn.execute(select(consents).where(consents.c.user_id == user_id))
            return [(r.client_id, frozenset(r.scope.split()), r.updated_at) for r in rows]

        return await self.db.read(q)

    async def revoke_client_access(self, user_id: str, client_id: str, now: int) -> list[str]:
        """Withdraw everything one user gave one client, in one transaction: every live grant is
        revoked (its access and refresh tokens die with it) and the remembered consent is forgotten.
        Returns the ids of the grants revoked now."""

        def q(conn: Connection) -> list[str]:
            where = and_(grants.c.user_id == user_id, grants.c.client_id == client_id, grants.c.revoked_at.is_(None))
            ids = [r.id for r in conn.execute(select(grants.c.id).where(where))]
            if ids:
                conn.execute(update(grants).where(and_(where, grants.c.id.in_(ids))).values(revoked_at=now))
            conn.execute(delete(consents).where(and_(consents.c.user_id == user_id, consents.c.client_id == client_id)))
            return ids

        return await self.db.write(q)

    async def save_refresh_token(self, token: RefreshToken) -> None:
        def q(conn: Connection) -> None:
            conn.execute(_INSERT_RT, _rt_values(token))

        await self.db.write(q)

    async def get_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Grant] | None:
        def q(conn: Connection) -> tuple[RefreshToken, Grant] | None:
            row = conn.execute(_RT, {"h": token_hash}).first()
            if row is None:
                return None
            grow = conn.execute(_GRANT, {"gid": row.grant_id}).first()
            if grow is None or conn.execute(_USER_DISABLED, {"uid": row.user_id}).scalar():
                return None  # a disabled user's refresh tokens are dead, as if unknown
            rt = RefreshToken(
                token_hash=row.token_hash,
                grant_id=row.grant_id,
                client_id=row.client_id,
                user_id=row.user_id,
                scope=row.scope,
                created_at=row.created_at,
                expires_at=row.expires_at,
                used_at=row.used_at,
                dpop_jkt=row.dpop_jkt,
                binding=row.binding,
            )
            return rt, _grant_from_row(grow)

        return await self.db.read(q)

    async def rotate_refresh_token(self, old_hash: str, new: RefreshToken, now: int) -> bool:
        def q(conn: Connection) -> bool:
            # Compare-and-set: of two concurrent refreshes with one token, exactly one updates the row.
            won = (
                conn.execute(
                    update(refresh_tokens)
                    .where(and_(refresh_tokens.c.token_hash == old_hash, refresh_tokens.c.used_at.is_(None)))
                    .values(used_at=now)
                ).rowcount
                == 1
            )
            if won:
                conn.execute(_INSERT_RT, _rt_values(new))
            return won

        return await self.db.write(q)

    async def revoke_access_token(self, jti: str, expires_at: int) -> None:
        def q(conn: Connection) -> None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(revoked_tokens).values(jti=jti, expires_at=expires_at))
            except IntegrityError:
                pass  # already revoked (perhaps concurrently): revocation is idempotent

        await self.db.write(q)

    async def token_status(self, jti: str, grant_id: str | None) -> bool:
        def q(conn: Connection) -> bool:
            if conn.execute(_REVOKED_JTI, {"jti": jti}).first():
                return False
            return grant_id is None or _grant_live(conn, grant_id)

        return await self.db.read(q)

    async def grant_live(self, grant_id: str) -> bool:
        return await self.db.read(lambda conn: _grant_live(conn, grant_id))

    # -- consent resources (oauth/consent_resources.py): the status moves by conditional updates only
    async def create_consent_resource(self, resource: ConsentResource) -> None:
        def q(conn: Connection) -> None:
            conn.execute(
                insert(consent_resources).values(
                    id=resource.id,
                    client_id=resource.client_id,
                    status=resource.status,
                    authorization_details=_dumps(resource.authorization_details),
                    data=_dumps(resource.data),
                    created_at=resource.created_at,
                    status_updated_at=resource.status_updated_at,
                    user_id=resource.user_id,
                    grant_id=resource.grant_id,
                )
            )

        await self.db.write(q)

    async def get_consent_resource(self, consent_id: str) -> tuple[ConsentResource, int | None] | None:
        """The consent and, when it was authorised, its grant's revoked_at (None: live)."""

        def q(conn: Connection) -> tuple[ConsentResource, int | None] | None:
            row = conn.execute(
                select(consent_resources, grants.c.revoked_at.label("grant_revoked_at"))
                .select_from(consent_resources.outerjoin(grants, grants.c.id == consent_resources.c.grant_id))
                .where(consent_resources.c.id == consent_id)
            ).first()
            return (_consent_resource_from_row(row), row.grant_revoked_at) if row else None

        return await self.db.read(q)

    async def consent_resource_ids(self, grant_ids: list[str]) -> dict[str, str]:
        """grant id -> the id of the consent resource it authorised, for the grants that did."""

        def q(conn: Connection) -> dict[str, str]:
            out: dict[str, str] = {}
            for i in range(0, len(grant_ids), 500):  # bounded IN lists
                rows = conn.execute(
                    select(consent_resources.c.grant_id, consent_resources.c.id).where(
                        consent_resources.c.grant_id.in_(grant_ids[i : i + 500])
                    )
                )
                out.update({r.grant_id: r.id for r in rows})
            return out

        return await self.db.read(q)

    async def authorise_consent_resource(self, consent_id: str, grant: Grant, lodged_after: int) -> bool:
        """AwaitingAuthorisation -> Authorised and the grant created, in one transaction; False (and
        nothing written) when the consent is not awaiting authorisation by this grant's client or was
        lodged at or before `lodged_after`."""

        def q(conn: Connection) -> bool:
            done = (
                conn.execute(
                    update(consent_resources)
                    .where(
                        and_(
                            consent_resources.c.id == consent_id,
                            consent_resources.c.client_id == grant.client_id,
                            consent_resources.c.status == ConsentStatus.AWAITING_AUTHORISATION,
                            consent_resources.c.created_at > lodged_after,
                        )
                    )
                    .values(
                        status=ConsentStatus.AUTHORISED,
                        status_updated_at=grant.created_at,
                        user_id=grant.user_id,
                        grant_id=grant.id,
                        authorization_details=_dumps(grant.authorization_details or []),
                    )
                ).rowcount
                == 1
            )
            if done:
                conn.execute(
                    _INSERT_GRANT,
                    dict(
                        id=grant.id,
                        client_id=grant.client_id,
                        user_id=grant.user_id,
                        scope=grant.scope,
                        auth_time=grant.auth_time,
                        created_at=grant.created_at,
                        revoked_at=None,
                        authorization_details=_dumps(grant.authorization_details)
                        if grant.authorization_details
                        else None,
                    ),
                )
            return done

        return await self.db.write(q)

    async def set_consent_resource_status(
        self,
        consent_id: str,
        expected: tuple[ConsentStatus, ...],
        status: ConsentStatus,
        now: int,
        user_id: str | None = None,
    ) -> bool:
        """Move the consent to `status` if it is in one of `expected`; Revoked also revokes its grant
        in the same transaction (its tokens die at once). False when the status was not expected."""

        def q(conn: Connection) -> bool:
            values: dict[str, Any] = {"status": status, "status_updated_at": now}
            if user_id is not None:
                values["user_id"] = user_id
            done = (
                conn.execute(
                    update(consent_resources)
                    .where(and_(consent_resources.c.id == consent_id, consent_resources.c.status.in_(expected)))
                    .values(**values)
                ).rowcount
                == 1
            )
            if done and status == ConsentStatus.REVOKED:
                its_grant = select(consent_resources.c.grant_id).where(consent_resources.c.id == consent_id)
                conn.execute(
                    update(grants)
                    .where(and_(grants.c.id == its_grant.scalar_subquery(), grants.c.revoked_at.is_(None)))
                    .values(revoked_at=now)
                )
            return done

        return await self.db.write(q)

    # -- signing keys ------------------------------------------------------------------------
    async def list_signing_keys(self) -> list[SigningKey]:
        def q(conn: Connection) -> list[Any]:
            return list(conn.execute(select(signing_keys).order_by(signing_keys.c.created_at)))

        rows = await self.db.read(q)
        try:
            return [self._signing_key(r) for r in rows]
        except SealedDataError:
            raise SealedDataError(
                "the signing keys in the database were sealed with another key_encryption_key "
                "(configure the one they were created with)"
            ) from None

    def _signing_key(self, r: Any) -> SigningKey:
        return SigningKey(
            kid=r.kid,
            alg=r.alg,
            status=r.status,
            private_jwk=orjson.loads(self.sealer.open(r.private_jwk_encrypted, r.kid.encode())),
            public_jwk=orjson.loads(r.public_jwk),
            created_at=r.created_at,
            activated_at=r.activated_at,
            retired_at=r.retired_at,
        )

    async def save_signing_key(self, key: SigningKey) -> None:
        values = dict(
            kid=key.kid,
            alg=key.alg,
            status=key.status,
            private_jwk_encrypted=self.sealer.seal(orjson.dumps(key.private_jwk), key.kid.encode()),
            public_jwk=_dumps(key.public_jwk),
            created_at=key.created_at,
            activated_at=key.activated_at,
            retired_at=key.retired_at,
        )

        def q(conn: Connection) -> None:
            if conn.execute(select(signing_keys.c.kid).where(signing_keys.c.kid == key.kid)).first():
                conn.execute(update(signing_keys).where(signing_keys.c.kid == key.kid).values(**values))
            else:
                conn.execute(insert(signing_keys).values(**values))

        await self.db.write(q)

    async def delete_signing_key(self, kid: str) -> None:
        def q(conn: Connection) -> None:
            conn.execute(delete(signing_keys).where(signing_keys.c.kid == kid))

        await self.db.write(q)

    # -- registration initial access tokens --------------------------------------------------
    async def create_registration_token(self, token_hash: str, label: str, expires_at: int | None, now: int) -> None:
        def q(conn: Connection) -> None:
            conn.execute(
                insert(registration_tokens).values(
                    token_hash=token_hash, label=label, created_at=now, expires_at=expires_at
                )
            )

        await self.db.write(q)

    async def registration_token_valid(self, token_hash: str, now: int) -> bool:
        def q(conn: Connection) -> bool:
            row = conn.execute(
                select(registration_tokens).where(registration_tokens.c.token_hash == token_hash)
            ).first()
            return bool(row and row.revoked_at is None and (row.expires_at is None or row.expires_at > now))

        return await self.db.read(q)

    async def list_registration_tokens(self) -> list[dict[str, Any]]:
        def q(conn: Connection) -> list[dict[str, Any]]:
            return [
                dict(label=r.label, created_at=r.created_at, expires_at=r.expires_at, revoked_at=r.revoked_at)
                for r in conn.execute(select(registration_tokens).order_by(registration_tokens.c.created_at))
            ]

        return await self.db.read(q)

    async def revoke_registration_token(self, label: str) -> bool:
        def q(conn: Connection) -> bool:
            return (
                conn.execute(
                    update(registration_tokens)
                    .where(and_(registration_tokens.c.label == label, registration_tokens.c.revoked_at.is_(None)))
                    .values(revoked_at=_now())
                ).rowcount
                > 0
            )

        return await self.db.write(q)

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
        def q(conn: Connection) -> None:
            conn.execute(
                insert(audit_events).values(
                    at=now,
                    event=event,
                    client_id=client_id,
                    user_id=user_id,
                    ip=ip,
                    detail=_dumps(detail) if detail else None,
                )
            )

        await self.db.write(q)

    async def purge_expired(self, now: int) -> int:
        def q(conn: Connection) -> int:
            n = conn.execute(delete(sessions).where(sessions.c.expires_at <= now)).rowcount
            n += conn.execute(delete(revoked_tokens).where(revoked_tokens.c.expires_at <= now)).rowcount
            n += conn.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at <= now)).rowcount
            # Grants with nothing left that could be presented (no refresh token; access tokens have
            # lived out their maximum lifetime) are kept a day for audit, then removed.
            stale = and_(grants.c.created_at < now - 86400, ~exists().where(refresh_tokens.c.grant_id == grants.c.id))
            n += conn.execute(delete(grants).where(stale)).rowcount
            return n

        return await self.db.write(q)

    async def close(self) -> None:
        await self.db.close()


def _rt_values(t: RefreshToken) -> dict[str, Any]:
    return dict(
        token_hash=t.token_hash,
        grant_id=t.grant_id,
        client_id=t.client_id,
        user_id=t.user_id,
        scope=t.scope,
        created_at=t.created_at,
        expires_at=t.expires_at,
        used_at=t.used_at,
        dpop_jkt=t.dpop_jkt,
        binding=t.binding,
    )


def _now() -> int:
    return int(time.time())
