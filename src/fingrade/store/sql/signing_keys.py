"""The SQL durable store: signing keys, private keys sealed at rest (SigningKeyStore)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select, update

from fingrade.oauth.models import SigningKey
from fingrade.protocol.sealing import SealedDataError, Sealer
from fingrade.store.sql.common import SqlPart, dumps
from fingrade.store.sql.schema import signing_keys


class SqlSigningKeyStore(SqlPart):
    """Signing keys; the private JWK is sealed with the key-encryption key, the kid as associated data."""

    sealer: Sealer

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
            public_jwk=dumps(key.public_jwk),
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
