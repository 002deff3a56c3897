"""The SQL durable store: grants, refresh tokens and revoked access tokens (GrantStore)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, and_, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from fingrade.oauth.models import Grant, RefreshToken
from fingrade.store.sql.common import SqlPart, dumps
from fingrade.store.sql.schema import grants, refresh_tokens, revoked_tokens, users
from fingrade.store.sql.users import USER_DISABLED

# Hot-path statements are built once: constructing SQLAlchemy expressions costs more than
# running the query on SQLite (see docs/performance.md).
INSERT_GRANT = insert(grants)
_INSERT_RT = insert(refresh_tokens)
_REVOKED_JTI = select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == bindparam("jti"))
# A grant is usable while neither it is revoked nor its user disabled.
_GRANT_LIVE = (
    select(grants.c.revoked_at, users.c.disabled)
    .select_from(grants.outerjoin(users, users.c.id == grants.c.user_id))
    .where(grants.c.id == bindparam("gid"))
)
_RT = select(refresh_tokens).where(refresh_tokens.c.token_hash == bindparam("h"))
_GRANT = select(grants).where(grants.c.id == bindparam("gid"))


def _grant_live(conn: Connection, grant_id: str) -> bool:
    row = conn.execute(_GRANT_LIVE, {"gid": grant_id}).first()
    return row is not None and row.revoked_at is None and not row.disabled


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
        acr=row.acr,
        amr=row.amr.split() if row.amr else None,
        linked_details_hash=row.linked_details_hash,
        linked_factors=orjson.loads(row.linked_factors) if row.linked_factors else None,
    )


def grant_values(grant: Grant) -> dict[str, Any]:
    """The row of a new grant."""
    return dict(
        id=grant.id,
        client_id=grant.client_id,
        user_id=grant.user_id,
        scope=grant.scope,
        auth_time=grant.auth_time,
        created_at=grant.created_at,
        revoked_at=grant.revoked_at,
        authorization_details=dumps(grant.authorization_details) if grant.authorization_details else None,
        acr=grant.acr,
        amr=" ".join(grant.amr) if grant.amr else None,
        linked_details_hash=grant.linked_details_hash,
        linked_factors=dumps(grant.linked_factors) if grant.linked_factors is not None else None,
    )


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


class SqlGrantStore(SqlPart):
    """Grants and tokens."""

    async def create_grant(self, grant: Grant) -> None:
        def q(conn: Connection) -> None:
            conn.execute(INSERT_GRANT, grant_values(grant))

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
            if grow is None or conn.execute(USER_DISABLED, {"uid": row.user_id}).scalar():
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
