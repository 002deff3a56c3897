"""The SQL durable store: grants, refresh tokens and revoked access tokens (GrantStore)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, func, insert, select
from sqlalchemy.exc import IntegrityError

from fingrade.oauth.models import Grant, RefreshToken
from fingrade.store.sql.common import SqlPart, dumps
from fingrade.store.sql.direct import Statement
from fingrade.store.sql.schema import grants, refresh_tokens, revoked_tokens

INSERT_GRANT = insert(grants)  # a consent resource's grant, in its authorisation's transaction

# The statements of every code redemption, refresh and token check run on the driver (direct.py).
_GRANT_COLUMNS = (
    "id, client_id, user_id, scope, auth_time, created_at, revoked_at, authorization_details, acr, amr, "
    "linked_details_hash, linked_factors"
)
_RT_COLUMNS = "token_hash, grant_id, client_id, user_id, scope, created_at, expires_at, used_at, dpop_jkt, binding"
_INSERT_GRANT_DIRECT = Statement(
    f"INSERT INTO grants ({_GRANT_COLUMNS}) VALUES (:id, :client_id, :user_id, :scope, :auth_time, :created_at, "
    ":revoked_at, :authorization_details, :acr, :amr, :linked_details_hash, :linked_factors)"
)
_INSERT_RT_DIRECT = Statement(
    f"INSERT INTO refresh_tokens ({_RT_COLUMNS}) VALUES (:token_hash, :grant_id, :client_id, :user_id, :scope, "
    ":created_at, :expires_at, :used_at, :dpop_jkt, :binding)"
)
# A grant is usable while neither it is revoked nor its user disabled.
_GRANT_LIVE_DIRECT = Statement(
    "SELECT g.revoked_at, u.disabled FROM grants g LEFT JOIN users u ON u.id = g.user_id WHERE g.id = :gid"
)
_REVOKED_DIRECT = Statement("SELECT 1 FROM revoked_tokens WHERE jti = :jti")
_REVOKE_GRANT_DIRECT = Statement("UPDATE grants SET revoked_at = :now WHERE id = :gid AND revoked_at IS NULL")
_GRANT_DIRECT = Statement(f"SELECT {_GRANT_COLUMNS} FROM grants WHERE id = :gid")
# A refresh token with its grant, unless its user is disabled (then it is dead, as if unknown).
_RT_WITH_GRANT_DIRECT = Statement(
    f"SELECT {', '.join('r.' + c.strip() for c in _RT_COLUMNS.split(','))}, "
    f"{', '.join('g.' + c.strip() for c in _GRANT_COLUMNS.split(','))} "
    "FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id LEFT JOIN users u ON u.id = r.user_id "
    "WHERE r.token_hash = :h AND (u.disabled IS NULL OR NOT u.disabled)"
)
# Compare-and-set: of two concurrent refreshes with one token, exactly one updates the row.
_USE_RT_DIRECT = Statement(
    "UPDATE refresh_tokens SET used_at = :now WHERE token_hash = :h AND used_at IS NULL RETURNING token_hash"
)


def _grant_from_tuple(row: tuple[Any, ...]) -> Grant:
    """A grant from its columns in _GRANT_COLUMNS order (the table's order)."""
    return Grant(
        id=row[0],
        client_id=row[1],
        user_id=row[2],
        scope=row[3],
        auth_time=row[4],
        created_at=row[5],
        revoked_at=row[6],
        authorization_details=orjson.loads(row[7]) if row[7] else None,
        acr=row[8],
        amr=row[9].split() if row[9] else None,
        linked_details_hash=row[10],
        linked_factors=orjson.loads(row[11]) if row[11] else None,
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
        await self.db.direct.run(_INSERT_GRANT_DIRECT, **grant_values(grant))

    async def revoke_grant(self, grant_id: str, now: int) -> None:
        await self.db.direct.run(_REVOKE_GRANT_DIRECT, gid=grant_id, now=now)

    async def get_grant(self, grant_id: str) -> Grant | None:
        row = await self.db.direct.one(_GRANT_DIRECT, gid=grant_id)
        return _grant_from_tuple(row) if row else None

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
            # select(grants, ...) yields the table's columns in _GRANT_COLUMNS order, then rt_until.
            return [(_grant_from_tuple(tuple(row)[:12]), row.rt_until) for row in conn.execute(stmt)]

        return await self.db.read(q)

    async def save_refresh_token(self, token: RefreshToken) -> None:
        await self.db.direct.run(_INSERT_RT_DIRECT, **_rt_values(token))

    async def get_refresh_token(self, token_hash: str) -> tuple[RefreshToken, Grant] | None:
        row = await self.db.direct.one(_RT_WITH_GRANT_DIRECT, h=token_hash)
        if row is None:
            return None  # unknown, its grant gone, or its user disabled: dead, as if unknown
        rt = RefreshToken(
            token_hash=row[0],
            grant_id=row[1],
            client_id=row[2],
            user_id=row[3],
            scope=row[4],
            created_at=row[5],
            expires_at=row[6],
            used_at=row[7],
            dpop_jkt=row[8],
            binding=row[9],
        )
        return rt, _grant_from_tuple(row[10:])

    async def rotate_refresh_token(self, old_hash: str, new: RefreshToken, now: int) -> bool:
        async with self.db.direct.transaction() as tx:
            if await tx.one(_USE_RT_DIRECT, h=old_hash, now=now) is None:
                return False
            await tx.run(_INSERT_RT_DIRECT, **_rt_values(new))
            return True

    async def revoke_access_token(self, jti: str, expires_at: int) -> None:
        def q(conn: Connection) -> None:
            try:
                with conn.begin_nested():
                    conn.execute(insert(revoked_tokens).values(jti=jti, expires_at=expires_at))
            except IntegrityError:
                pass  # already revoked (perhaps concurrently): revocation is idempotent

        await self.db.write(q)

    async def token_status(self, jti: str, grant_id: str | None) -> bool:
        if await self.db.direct.one(_REVOKED_DIRECT, jti=jti) is not None:
            return False
        return grant_id is None or await self.grant_live(grant_id)

    async def grant_live(self, grant_id: str) -> bool:
        row = await self.db.direct.one(_GRANT_LIVE_DIRECT, gid=grant_id)
        return row is not None and row[0] is None and not row[1]
