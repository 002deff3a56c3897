"""Durable-store races that PostgreSQL exposes (SQLite serialises writers): concurrent writes of
one row must neither fail nor lose data."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from fingrade.keys.sealing import Sealer
from fingrade.store.sql.db import Database
from fingrade.store.sql.durable import SqlDurableStore
from fingrade.store.sql.migrate import upgrade
from support.server import _create_pg_database, drop_pg_database


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    url = _create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_concurrent_first_consents_merge(kind: str, tmp_path: Path, pg_url: str) -> None:
    """Two first consents of one user for one client at once: no error, and no scope is lost."""
    async def main() -> None:
        db = Database(f"sqlite:///{tmp_path / 'c.db'}" if kind == "sqlite" else pg_url)
        await upgrade(db)
        store = SqlDurableStore(db, Sealer(b"k" * 32))
        try:
            for i in range(5):
                user = f"u{i}-{secrets.token_hex(3)}"
                await asyncio.gather(*(store.save_consent(user, "c", frozenset({"openid", s}), 1)
                                       for s in ("profile", "email", "accounts", "payments")))
                assert await store.get_consent(user, "c") == {"openid", "profile", "email", "accounts", "payments"}
            jti = secrets.token_hex(8)
            await asyncio.gather(*(store.revoke_access_token(jti, 2**40) for _ in range(5)))
            assert await store.token_status(jti, None) is False
        finally:
            await db.close()
    asyncio.run(main())
