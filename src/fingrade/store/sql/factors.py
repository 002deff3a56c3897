"""The SQL durable store: customers' second factors and recovery codes (FactorStore)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from fingrade.oauth.models import Factor, FactorKind
from fingrade.protocol.crypto import b64url, b64url_decode
from fingrade.protocol.sealing import Sealer
from fingrade.store.sql.common import SqlPart
from fingrade.store.sql.schema import authn_factors, recovery_codes, users


def _context(factor_id: str) -> bytes:
    return b"totp|" + factor_id.encode()


class SqlFactorStore(SqlPart):
    """Factors; a TOTP secret is sealed with the key-encryption key, the factor id as associated data
    (a sealed secret copied onto another row does not open)."""

    sealer: Sealer

    def _factor(self, r: Any) -> Factor:
        return Factor(
            id=r.id,
            user_id=r.user_id,
            kind=FactorKind(r.kind),
            name=r.name,
            created_at=r.created_at,
            secret=self.sealer.open(r.secret_sealed, _context(r.id)) if r.secret_sealed is not None else None,
            credential_id=b64url_decode(r.credential_id) if r.credential_id else None,
            credential=r.credential,
            sign_count=r.sign_count,
            backup_eligible=bool(r.backup_eligible),
            last_used_at=r.last_used_at,
        )

    async def list_factors(self, user_id: str) -> list[Factor]:
        def q(conn: Connection) -> list[Any]:
            stmt = select(authn_factors).where(authn_factors.c.user_id == user_id)
            return list(conn.execute(stmt.order_by(authn_factors.c.created_at, authn_factors.c.id)))

        return [self._factor(r) for r in await self.db.read(q)]

    async def factor_by_credential(self, credential_id: bytes) -> Factor | None:
        def q(conn: Connection) -> Any:
            stmt = select(authn_factors).where(authn_factors.c.credential_id == b64url(credential_id))
            return conn.execute(stmt).first()

        row = await self.db.read(q)
        return self._factor(row) if row is not None else None

    async def add_factor(self, factor: Factor, limit: int) -> bool:
        values = dict(
            id=factor.id,
            user_id=factor.user_id,
            kind=factor.kind.value,
            name=factor.name,
            secret_sealed=self.sealer.seal(factor.secret, _context(factor.id)) if factor.secret is not None else None,
            credential_id=b64url(factor.credential_id) if factor.credential_id is not None else None,
            credential=factor.credential,
            sign_count=factor.sign_count,
            backup_eligible=factor.backup_eligible,
            created_at=factor.created_at,
            last_used_at=factor.last_used_at,
        )

        def q(conn: Connection) -> bool:
            # The user's row is locked (PostgreSQL) or the database is (SQLite) before counting, so
            # two enrolments racing cannot both pass the limit.
            conn.execute(update(users).where(users.c.id == factor.user_id).values(id=users.c.id))
            count = conn.execute(
                select(func.count()).select_from(authn_factors).where(authn_factors.c.user_id == factor.user_id)
            ).scalar_one()
            if count >= limit:
                return False
            conn.execute(insert(authn_factors).values(**values))
            return True

        try:
            return await self.db.write(q)
        except IntegrityError:  # the credential id is another factor's (WebAuthn §7.1 step 26)
            return False

    async def remove_factor(self, user_id: str, factor_id: str) -> bool:
        def q(conn: Connection) -> bool:
            mine = and_(authn_factors.c.id == factor_id, authn_factors.c.user_id == user_id)
            return bool(conn.execute(delete(authn_factors).where(mine)).rowcount)

        return await self.db.write(q)

    async def factor_used(self, factor_id: str, now: int, sign_count: int | None = None) -> bool:
        def q(conn: Connection) -> bool:
            where = authn_factors.c.id == factor_id
            values: dict[str, Any] = {"last_used_at": now}
            if sign_count is not None:
                where = and_(where, authn_factors.c.sign_count < sign_count)
                values["sign_count"] = sign_count
            return bool(conn.execute(update(authn_factors).where(where).values(**values)).rowcount)

        return await self.db.write(q)

    async def set_recovery_codes(self, user_id: str, code_hashes: list[str], now: int) -> None:
        def q(conn: Connection) -> None:
            conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
            if code_hashes:
                conn.execute(
                    insert(recovery_codes),
                    [{"code_hash": h, "user_id": user_id, "created_at": now} for h in code_hashes],
                )

        await self.db.write(q)

    async def use_recovery_code(self, user_id: str, code_hash: str) -> bool:
        def q(conn: Connection) -> bool:
            mine = and_(recovery_codes.c.code_hash == code_hash, recovery_codes.c.user_id == user_id)
            return bool(conn.execute(delete(recovery_codes).where(mine)).rowcount)

        return await self.db.write(q)

    async def recovery_codes_left(self, user_id: str) -> int:
        def q(conn: Connection) -> int:
            stmt = select(func.count()).select_from(recovery_codes).where(recovery_codes.c.user_id == user_id)
            return int(conn.execute(stmt).scalar_one())

        return await self.db.read(q)

    async def reset_factors(self, user_id: str) -> int:
        def q(conn: Connection) -> int:
            conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
            return int(conn.execute(delete(authn_factors).where(authn_factors.c.user_id == user_id)).rowcount)

        return await self.db.write(q)
