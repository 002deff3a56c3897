"""The SQL durable store: consents remembered per user and client (ConsentStore)."""

from __future__ import annotations

from sqlalchemy import Connection, and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from fingrade.store.sql.common import SqlPart
from fingrade.store.sql.direct import Statement
from fingrade.store.sql.schema import consents, grants

# Hot-path statements are built once: constructing SQLAlchemy expressions costs more than
# running the query on SQLite (see docs/performance.md).
_CONSENT_DIRECT = Statement("SELECT scope FROM consents WHERE user_id = :uid AND client_id = :cid")


class SqlConsentStore(SqlPart):
    """Remembered consents."""

    async def get_consent(self, user_id: str, client_id: str) -> frozenset[str]:
        row = await self.db.direct.one(_CONSENT_DIRECT, uid=user_id, cid=client_id)
        return frozenset(row[0].split()) if row and row[0] else frozenset()

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
