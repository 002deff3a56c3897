"""The SQL durable store: registration initial access tokens, RFC 7591 §3 (RegistrationTokenStore)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, insert, select, update

from fingrade.store.sql.common import SqlPart, wall_clock
from fingrade.store.sql.schema import registration_tokens


class SqlRegistrationTokenStore(SqlPart):
    """Initial access tokens, by hash."""

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
                    .values(revoked_at=wall_clock())
                ).rowcount
                > 0
            )

        return await self.db.write(q)
